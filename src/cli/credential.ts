/**
 * `herald credential add|list|remove`: usernames and passwords for submission (port 587).
 * Passwords are never taken as arguments, where `ps` and shell history would show them: they
 * come from standard input with `--password-stdin`, or are generated and printed once.
 */
import { randomBytes } from 'node:crypto';

import type { Command } from 'commander';

import { CliError, EXIT_USAGE } from './exit-codes.js';
import {
  addCommonOptions,
  printJson,
  printTable,
  withManagement,
  type CommonOptions,
} from './domain.js';

export function registerCredentialCommands(program: Command): void {
  const credential = program
    .command('credential')
    .description('manage submission credentials (works on the store directly)');

  addCommonOptions(
    credential
      .command('add <username>')
      .description('add a submission credential; without --password-stdin a password is generated')
      .option('--domain <domain>', 'domain the credential may send for (default: from username)')
      .option('--password-stdin', 'read the password from the first line of standard input'),
  ).action(
    async (
      username: string,
      options: CommonOptions & { domain?: string; passwordStdin?: boolean },
    ) => {
      const generated = !options.passwordStdin;
      const password = generated ? randomBytes(18).toString('base64url') : await readPassword();
      await withManagement(options, async (context) => {
        const service = await import('../domains/service.js');
        const created = await service.addCredential(context, {
          username,
          password,
          ...(options.domain ? { domain: options.domain } : {}),
        });
        if (options.json) return printJson(generated ? { ...created, password } : created);
        process.stdout.write(`added ${created.username} for ${created.domain ?? ''}\n`);
        if (generated) process.stdout.write(`password: ${password}\n`);
      });
    },
  );

  addCommonOptions(
    credential.command('list <domain>').description('list the credentials of a domain'),
  ).action(async (domain: string, options: CommonOptions) => {
    await withManagement(options, async (context) => {
      const service = await import('../domains/service.js');
      const credentials = await service.listCredentials(context, domain);
      if (options.json) return printJson(credentials);
      printTable(
        ['USERNAME', 'DOMAIN', 'CREATED'],
        credentials.map((c) => [c.username, c.domain ?? '', c.createdAt.toISOString()]),
      );
    });
  });

  addCommonOptions(
    credential.command('remove <username>').description('remove a credential'),
  ).action(async (username: string, options: CommonOptions) => {
    await withManagement(options, async (context) => {
      const service = await import('../domains/service.js');
      await service.removeCredential(context, username);
      process.stdout.write(`removed ${username}\n`);
    });
  });
}

async function readPassword(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  const password = Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0] ?? '';
  if (password === '') throw new CliError('no password on standard input', EXIT_USAGE);
  return password;
}
