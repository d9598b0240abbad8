/** `herald alias add|list|remove`: forwarding addresses of hosted domains. */
import type { Command } from 'commander';

import type { DmarcForwardPolicy } from '../store/types.js';

import {
  addCommonOptions,
  printJson,
  printTable,
  withManagement,
  type CommonOptions,
} from './domain.js';

export function registerAliasCommands(program: Command): void {
  const alias = program
    .command('alias')
    .description('manage forwarding aliases (works on the store directly)');

  addCommonOptions(
    alias
      .command('add <address> <targets...>')
      .description('forward ADDRESS (local@domain, or *@domain for the catch-all) to TARGETS')
      .option('--disabled', 'create the alias disabled: its address answers 550 at RCPT')
      .option(
        '--dmarc-policy <policy>',
        'for mail that would fail DMARC after forwarding: forward, rewrite-from or reject',
        'rewrite-from',
      )
      .option('--replace', 'replace the alias if it exists'),
  ).action(
    async (
      address: string,
      targets: string[],
      options: CommonOptions & { disabled?: boolean; dmarcPolicy: string; replace?: boolean },
    ) => {
      await withManagement(options, async (context) => {
        const service = await import('../domains/service.js');
        const created = await service.addAlias(context, {
          address,
          targets,
          enabled: !options.disabled,
          dmarcPolicy: options.dmarcPolicy as DmarcForwardPolicy,
          replace: options.replace ?? false,
        });
        if (options.json) return printJson(created);
        process.stdout.write(`${address} -> ${created.targets.join(', ')}\n`);
      });
    },
  );

  addCommonOptions(
    alias.command('list <domain>').description('list the aliases of a domain'),
  ).action(async (domain: string, options: CommonOptions) => {
    await withManagement(options, async (context) => {
      const service = await import('../domains/service.js');
      const aliases = await service.listAliases(context, domain);
      if (options.json) return printJson(aliases);
      printTable(
        ['ADDRESS', 'STATE', 'DMARC', 'TARGETS'],
        aliases.map((a) => [
          `${a.localPart}@${domain.toLowerCase()}`,
          a.enabled ? 'enabled' : 'disabled',
          a.dmarcPolicy,
          a.targets.join(', '),
        ]),
      );
    });
  });

  addCommonOptions(alias.command('remove <address>').description('remove an alias')).action(
    async (address: string, options: CommonOptions) => {
      await withManagement(options, async (context) => {
        const service = await import('../domains/service.js');
        await service.removeAlias(context, address);
        process.stdout.write(`removed ${address}\n`);
      });
    },
  );
}
