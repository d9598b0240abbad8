/**
 * `herald domain add|list|show|remove`: hosted domains and the DNS records they publish. Like
 * the other management commands it works on the store directly, so the server need not run.
 * A running server notices the change within its keyring check interval.
 *
 * This file also holds the helpers the alias, credential and queue commands share: opening the
 * configuration and store, and turning service errors into exit codes.
 */
import type { Command } from 'commander';

import type { ServiceContext } from '../domains/service.js';

import { CliError, EXIT_FAILURE, EXIT_USAGE } from './exit-codes.js';

export interface CommonOptions {
  config?: string;
  json?: boolean;
}

/** Opens the configured store, runs `body`, and closes the store whatever happens. */
export async function withManagement<T>(
  options: CommonOptions,
  body: (context: ServiceContext & { hostname: string; srsDomain: string }) => Promise<T>,
): Promise<T> {
  const { openManagementContext } = await import('../domains/context.js');
  const context = await openManagementContext(options.config, process.env).catch((error) => {
    throw new CliError((error as Error).message, EXIT_USAGE);
  });
  try {
    return await body(context);
  } catch (error) {
    throw toCliError(error);
  } finally {
    await context.store.close();
  }
}

/** Maps the service layer's errors to exit codes: bad input 2, missing or conflicting 1. */
function toCliError(error: unknown): unknown {
  if (!(error instanceof Error)) return error;
  if (error.name === 'InvalidInputError') return new CliError(error.message, EXIT_USAGE);
  if (error.name === 'NotFoundError' || error.name === 'ConflictError') {
    return new CliError(error.message, EXIT_FAILURE);
  }
  return error;
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** Prints rows as columns separated by two spaces, each as wide as its widest cell. */
export function printTable(header: string[], rows: string[][]): void {
  const widths = header.map((cell, column) =>
    Math.max(cell.length, ...rows.map((row) => (row[column] ?? '').length)),
  );
  for (const row of [header, ...rows]) {
    const cells = row.map((cell, column) =>
      column === row.length - 1 ? cell : cell.padEnd(widths[column] ?? 0),
    );
    process.stdout.write(`${cells.join('  ')}\n`);
  }
}

function configOption(command: Command): Command {
  return command.option('-c, --config <file>', 'configuration file, YAML or TOML');
}

export function addCommonOptions(command: Command): Command {
  return configOption(command).option('--json', 'print JSON instead of text');
}

export function registerDomainCommands(program: Command): void {
  const domain = program
    .command('domain')
    .description('manage hosted domains and their DKIM keys (works on the store directly)');

  addCommonOptions(
    domain
      .command('add <name>')
      .description('add a domain, generate its RSA-2048 and Ed25519 keys, print its DNS records')
      .option('--srs-domain <domain>', 'SRS domain for this domain (default: srs.domain)'),
  ).action(async (name: string, options: CommonOptions & { srsDomain?: string }) => {
    await withManagement(options, async (context) => {
      const service = await import('../domains/service.js');
      await service.addDomain(context, name, { srsDomain: options.srsDomain ?? null });
      await printDomainRecords(context, name, options);
    });
  });

  addCommonOptions(domain.command('list').description('list hosted domains')).action(
    async (options: CommonOptions) => {
      await withManagement(options, async (context) => {
        const service = await import('../domains/service.js');
        const domains = await service.listDomains(context);
        if (options.json) return printJson(domains);
        printTable(
          ['DOMAIN', 'SRS DOMAIN', 'CREATED'],
          domains.map((d) => [d.name, d.srsDomain ?? context.srsDomain, d.createdAt.toISOString()]),
        );
      });
    },
  );

  addCommonOptions(
    domain
      .command('show <name>')
      .description('print the DNS records the domain must publish: DKIM, MX, SPF, DMARC'),
  ).action(async (name: string, options: CommonOptions) => {
    await withManagement(options, (context) => printDomainRecords(context, name, options));
  });

  configOption(
    domain
      .command('remove <name>')
      .description('remove a domain with its keys, aliases and credentials'),
  ).action(async (name: string, options: CommonOptions) => {
    await withManagement(options, async (context) => {
      const service = await import('../domains/service.js');
      await service.removeDomain(context, name);
      process.stdout.write(`removed ${name}\n`);
    });
  });
}

async function printDomainRecords(
  context: ServiceContext & { hostname: string; srsDomain: string },
  name: string,
  options: CommonOptions,
): Promise<void> {
  const service = await import('../domains/service.js');
  const { domainRecords } = await import('../domains/records.js');
  const details = await service.getDomainDetails(context, name);
  const records = domainRecords(details.domain, details.keys, context);
  if (options.json) return printJson({ ...details, records });

  process.stdout.write(`Domain ${details.domain.name}: publish these DNS records.\n`);
  for (const record of records) {
    process.stdout.write(`\n; ${record.purpose}\n${record.zoneLine}\n`);
    if (record.note) process.stdout.write(`; ${record.note}\n`);
  }
}
