/** `herald list create|show|import|export`: mailing lists and their subscribers. */
import { createReadStream, createWriteStream } from 'node:fs';

import type { Command } from 'commander';

import { addCommonOptions, printJson, printTable, type CommonOptions } from './domain.js';
import { CliError, EXIT_FAILURE, EXIT_USAGE } from './exit-codes.js';
import { parseId, resolveOrganisation, withDistribution } from './org.js';

export function registerListCommands(program: Command): void {
  const list = program
    .command('list')
    .description('manage mailing lists and subscribers (works on the store directly)');

  addCommonOptions(
    list
      .command('create <organisation> <name>')
      .description('create a list in an organisation (by id or name)')
      .option('--description <text>', 'what the list is for', ''),
  ).action(
    async (reference: string, name: string, options: CommonOptions & { description: string }) => {
      const { ADMIN } = await import('../distribution/service.js');
      await withDistribution(options, async ({ service, distribution }) => {
        const organisation = await resolveOrganisation(distribution, reference);
        const created = await service.createList(ADMIN, organisation.id, name, options.description);
        if (options.json) printJson(created);
        else
          process.stdout.write(
            `list ${created.id} ${created.name} created in ${organisation.name}\n`,
          );
      });
    },
  );

  addCommonOptions(
    list.command('show [list-id]').description('show lists, or one list with its counts'),
  ).action(async (listId: string | undefined, options: CommonOptions) => {
    const { ADMIN } = await import('../distribution/service.js');
    await withDistribution(options, async ({ service, distribution }) => {
      if (listId === undefined) {
        const lists = await service.listLists(ADMIN);
        if (options.json) return printJson(lists);
        return printTable(
          ['ID', 'ORGANISATION', 'NAME'],
          lists.map((item) => [String(item.id), String(item.organisationId), item.name]),
        );
      }
      const found = await service.getList(ADMIN, parseId(listId, 'list'));
      const counts = await distribution.countSubscribers(found.id);
      if (options.json) return printJson({ ...found, counts });
      process.stdout.write(
        `list ${found.id} ${found.name} (organisation ${found.organisationId})\n`,
      );
      for (const [status, count] of Object.entries(counts))
        process.stdout.write(`  ${status}: ${count}\n`);
    });
  });

  addCommonOptions(
    list
      .command('import <list-id> <file>')
      .description(
        'import subscribers from a CSV file with a header row (email, name, other columns become fields)',
      ),
  ).action(async (listId: string, file: string, options: CommonOptions) => {
    const { ADMIN } = await import('../distribution/service.js');
    await withDistribution(options, async ({ service }) => {
      const input = createReadStream(file);
      const opened = new Promise<void>((resolve, reject) => {
        input.once('open', () => resolve());
        input.once('error', (error) =>
          reject(new CliError(`cannot read ${file}: ${error.message}`, EXIT_USAGE)),
        );
      });
      await opened;
      const summary = await service.importCsv(ADMIN, parseId(listId, 'list'), input, {
        onReject: options.json
          ? undefined
          : (reject) =>
              process.stderr.write(
                `${file}:${reject.line}: ${reject.reason}${reject.address ? ` (${reject.address})` : ''}\n`,
              ),
      });
      if (options.json) return printJson(summary);
      const rows = `${summary.rows} ${summary.rows === 1 ? 'row' : 'rows'}`;
      const duplicates = `${summary.duplicates} ${summary.duplicates === 1 ? 'duplicate' : 'duplicates'}`;
      process.stdout.write(
        `${rows}: ${summary.imported} imported, ${duplicates}, ` +
          `${summary.rejected - summary.duplicates} invalid\n`,
      );
      if (summary.rejected > summary.duplicates) process.exitCode = EXIT_FAILURE;
    });
  });

  addCommonOptions(
    list
      .command('export <list-id>')
      .description('export a list as CSV')
      .option('-o, --output <file>', 'write to a file instead of standard output'),
  ).action(async (listId: string, options: CommonOptions & { output?: string }) => {
    const { ADMIN } = await import('../distribution/service.js');
    await withDistribution(options, async ({ service }) => {
      const output = options.output ? createWriteStream(options.output) : process.stdout;
      const count = await service.exportCsv(ADMIN, parseId(listId, 'list'), output, {
        end: output !== process.stdout,
      });
      if (options.output)
        process.stderr.write(`${count} subscribers written to ${options.output}\n`);
    });
  });
}
