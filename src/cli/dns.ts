/**
 * `herald dns check DOMAIN`: checks the records a hosted domain must publish against live DNS
 * (the servers of `dns.servers`) and prints each finding with its fix; exit status 1 when the
 * domain is not ready. `herald dns rotate DOMAIN` starts a DKIM key rotation, and
 * `herald dns rotation DOMAIN` shows where it stands, switching signing once DNS serves the
 * new keys. Like the other management commands they work on the store directly.
 */
import type { Command } from 'commander';

import { addCommonOptions, printJson, withManagement, type CommonOptions } from './domain.js';
import { CliError, EXIT_FAILURE } from './exit-codes.js';

async function checkLookups(options: CommonOptions) {
  const { loadConfig } = await import('../config/load.js');
  const { createCheckLookups } = await import('../dns/check.js');
  const config = loadConfig(options.config, process.env);
  return createCheckLookups({ servers: config.dns.servers, timeoutMs: config.dns.timeout });
}

export function registerDnsCommands(program: Command): void {
  const dns = program
    .command('dns')
    .description('check the DNS records of hosted domains and rotate their DKIM keys');

  addCommonOptions(
    dns
      .command('check <domain>')
      .description('look up every record the domain must publish and report what is wrong'),
  ).action(async (name: string, options: CommonOptions) => {
    const lookups = await checkLookups(options);
    const { report, readiness } = await withManagement(options, async (context) => {
      const { domainCheckTarget } = await import('../domains/rotation.js');
      const { checkDomain, checkReadiness, sendingAddressesOf } = await import('../dns/check.js');
      const target = await domainCheckTarget(context, name);
      const result = await checkDomain(lookups, target);
      const card = await checkReadiness(lookups, result, {
        sendingAddresses: await sendingAddressesOf(lookups, target),
        oneClickUnsubscribe: true,
        outboundTls: true,
      });
      return { report: result, readiness: card };
    });
    if (options.json) printJson({ ...report, readiness });
    else {
      const { formatCheckReport, formatReadiness } = await import('../dns/check-format.js');
      process.stdout.write(formatCheckReport(report));
      process.stdout.write(formatReadiness(readiness));
    }
    if (!report.ok) throw new CliError(`${report.domain} is not ready`, EXIT_FAILURE);
  });

  addCommonOptions(
    dns
      .command('rotate <domain>')
      .description('create new DKIM keys (pending) and print the records to publish'),
  ).action(async (name: string, options: CommonOptions) => {
    await withManagement(options, async (context) => {
      const { startRotation } = await import('../domains/rotation.js');
      const status = await startRotation(context, name);
      if (options.json) return printJson(status);
      process.stdout.write(`${status.message}\n`);
      for (const { key } of status.pending) {
        process.stdout.write(
          `\n${key.selector}._domainkey.${status.domain}. IN TXT "${key.publicRecord}"\n`,
        );
      }
    });
  });

  addCommonOptions(
    dns
      .command('rotation <domain>')
      .description('check pending keys in DNS, switch signing when they are served, show status'),
  ).action(async (name: string, options: CommonOptions) => {
    const lookups = await checkLookups(options);
    await withManagement(options, async (context) => {
      const { advanceRotation } = await import('../domains/rotation.js');
      const status = await advanceRotation(context, lookups, name);
      if (options.json) return printJson(status);
      process.stdout.write(`${status.domain}: ${status.stage}. ${status.message}\n`);
      for (const { key, check } of status.pending) {
        const problem = check?.findings.find((finding) => finding.severity === 'error');
        process.stdout.write(`pending ${key.selector}: ${problem ? problem.message : 'served'}\n`);
      }
    });
  });
}
