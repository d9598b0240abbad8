/**
 * `herald org create|list|add-domain|token`: organisations (tenants), the hosted domains they
 * send from, and their API tokens. Like the other management commands it works on the store
 * directly, so the server need not run.
 *
 * This file also contains what the list and campaign commands share: opening the mail store and
 * the distribution store from the configuration, and mapping errors to exit codes.
 */
import type { Command } from 'commander';

import type { HeraldConfig } from '../config/settings.js';
import type { CampaignSender } from '../distribution/sender.js';
import type { DistributionService } from '../distribution/service.js';
import type { DistributionStore, Organisation } from '../distribution/types.js';
import type { Store } from '../store/types.js';
import { addCommonOptions, printJson, printTable, type CommonOptions } from './domain.js';
import { CliError, EXIT_FAILURE, EXIT_USAGE } from './exit-codes.js';

export interface DistributionCliContext {
  store: Store;
  distribution: DistributionStore;
  service: DistributionService;
  /** The campaign sender, when `withSender` asked for it. */
  sender?: CampaignSender;
}

/**
 * Opens the configured stores and runs `body`. With `withSender`, it also loads the DKIM keys
 * and starts a signing pool, which preview, test sends and sending need.
 */
export async function withDistribution<T>(
  options: CommonOptions & { withSender?: boolean },
  body: (context: DistributionCliContext) => Promise<T>,
): Promise<T> {
  const { loadConfig } = await import('../config/load.js');
  const { openStore } = await import('../store/index.js');
  const { openDistributionStore } = await import('../store/distribution-index.js');
  const { DistributionService } = await import('../distribution/service.js');

  let config;
  try {
    config = loadConfig(options.config, process.env);
  } catch (error) {
    throw new CliError((error as Error).message, EXIT_USAGE);
  }
  const store = await openStore({ url: config.store.url });
  const distribution = await openDistributionStore(config.store.url).catch(
    async (error: unknown) => {
      await store.close();
      throw error;
    },
  );
  const closers: (() => Promise<void>)[] = [];
  try {
    let sender;
    if (options.withSender) {
      const built = await buildSender(store, distribution, config.distribution);
      sender = built.sender;
      closers.push(built.close);
    }
    const service = new DistributionService({ store, distribution, sender });
    return await body({ store, distribution, service, sender });
  } catch (error) {
    throw toCliError(error);
  } finally {
    for (const close of closers) await close();
    await distribution.close();
    await store.close();
  }
}

async function buildSender(
  store: Store,
  distribution: DistributionStore,
  config: HeraldConfig['distribution'],
) {
  const { DkimKeyring } = await import('../domains/keyring.js');
  const { createSigningPool } = await import('../dkim/index.js');
  const { CampaignSender } = await import('../distribution/sender.js');
  const { FeedbackRecorder } = await import('../distribution/feedback.js');
  const { distributionSettings } = await import('../distribution/settings.js');

  const { keyring, errors } = await DkimKeyring.load(store);
  for (const error of errors) {
    process.stderr.write(
      `herald: DKIM key ${error.selector}._domainkey.${error.domain} not loaded: ${error.error.message}\n`,
    );
  }
  const settings = distributionSettings(config);
  const pool = createSigningPool();
  const sender = new CampaignSender({
    store,
    distribution,
    signer: pool,
    keys: keyring,
    settings,
    recorder: new FeedbackRecorder(distribution, settings.softBounceThreshold),
  });
  return { sender, close: () => pool.close() };
}

/** Maps service errors to exit codes: bad input 2, missing or conflicting 1. */
function toCliError(error: unknown): unknown {
  if (!(error instanceof Error) || error instanceof CliError) return error;
  if (error.name === 'InvalidRequestError' || error.name === 'CampaignError') {
    return new CliError(error.message, EXIT_USAGE);
  }
  if (
    ['NotFoundError', 'StoreConflictError', 'StateConflictError', 'StoreNotFoundError'].includes(
      error.name,
    )
  ) {
    return new CliError(error.message, EXIT_FAILURE);
  }
  return error;
}

/** Finds an organisation by id or by name. */
export async function resolveOrganisation(
  distribution: DistributionStore,
  reference: string,
): Promise<Organisation> {
  const byId = /^\d+$/.test(reference)
    ? await distribution.getOrganisation(Number(reference))
    : undefined;
  const organisation = byId ?? (await distribution.findOrganisation(reference));
  if (!organisation)
    throw new CliError(`organisation ${reference} not found: see herald org list`, EXIT_FAILURE);
  return organisation;
}

/** Parses a positive integer argument such as a list or campaign id. */
export function parseId(value: string, what: string): number {
  const id = Number(value);
  if (!Number.isSafeInteger(id) || id <= 0)
    throw new CliError(`invalid ${what} id "${value}": expected a positive integer`, EXIT_USAGE);
  return id;
}

export function registerOrgCommands(program: Command): void {
  const org = program
    .command('org')
    .description(
      'manage organisations, their domains and API tokens (works on the store directly)',
    );

  addCommonOptions(
    org
      .command('create <name>')
      .description('create an organisation')
      .option('-d, --domain <domain...>', 'hosted domains the organisation sends from'),
  ).action(async (name: string, options: CommonOptions & { domain?: string[] }) => {
    const { ADMIN } = await import('../distribution/service.js');
    await withDistribution(options, async ({ service }) => {
      const organisation = await service.createOrganisation(ADMIN, name);
      for (const domain of options.domain ?? [])
        await service.assignDomain(ADMIN, organisation.id, domain);
      if (options.json) printJson({ ...organisation, domains: options.domain ?? [] });
      else process.stdout.write(`organisation ${organisation.id} ${organisation.name} created\n`);
    });
  });

  addCommonOptions(org.command('list').description('list organisations and their domains')).action(
    async (options: CommonOptions) => {
      const { ADMIN } = await import('../distribution/service.js');
      await withDistribution(options, async ({ service }) => {
        const organisations = await service.listOrganisations(ADMIN);
        const rows = await Promise.all(
          organisations.map(async (organisation) => ({
            ...organisation,
            domains: await service.listDomains(ADMIN, organisation.id),
          })),
        );
        if (options.json) return printJson(rows);
        printTable(
          ['ID', 'NAME', 'DOMAINS'],
          rows.map((row) => [String(row.id), row.name, row.domains.join(', ')]),
        );
      });
    },
  );

  addCommonOptions(
    org
      .command('add-domain <organisation> <domain>')
      .description('let an organisation send from a hosted domain'),
  ).action(async (reference: string, domain: string, options: CommonOptions) => {
    const { ADMIN } = await import('../distribution/service.js');
    await withDistribution(options, async ({ service, distribution }) => {
      const organisation = await resolveOrganisation(distribution, reference);
      await service.assignDomain(ADMIN, organisation.id, domain);
      process.stdout.write(`domain ${domain.toLowerCase()} assigned to ${organisation.name}\n`);
    });
  });

  addCommonOptions(
    org
      .command('token <organisation>')
      .description('create an API token for an organisation; the secret is printed once')
      .option('-l, --label <text>', 'what the token is for', ''),
  ).action(async (reference: string, options: CommonOptions & { label: string }) => {
    const { ADMIN } = await import('../distribution/service.js');
    await withDistribution(options, async ({ service, distribution }) => {
      const organisation = await resolveOrganisation(distribution, reference);
      const token = await service.createToken(ADMIN, organisation.id, 'member', options.label);
      if (options.json) printJson({ organisation: organisation.id, token });
      else process.stdout.write(`${token}\n`);
    });
  });
}
