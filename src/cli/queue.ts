/**
 * `herald queue list|show|retry|delete`: inspect the queue and act on it, like Postfix's
 * `postqueue -p` and `postsuper -r`/`-d`. A queue id names a message; `--entry` names one
 * recipient's entry of it. Works on the store directly, so it also works while the server is
 * stopped; a running server picks retried entries up at its next wake-up.
 */
import type { Command } from 'commander';

import type { QueueEntry, QueueStatus } from '../store/types.js';

import { CliError, EXIT_FAILURE, EXIT_USAGE } from './exit-codes.js';
import {
  addCommonOptions,
  printJson,
  printTable,
  withManagement,
  type CommonOptions,
} from './domain.js';

const STATUSES: readonly QueueStatus[] = ['queued', 'deferred', 'delivered', 'failed'];

interface SelectorOptions extends CommonOptions {
  entry?: string;
  all?: boolean;
}

function parseEntryId(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const id = Number(value);
  if (!Number.isSafeInteger(id) || id <= 0) {
    throw new CliError(`invalid entry id ${JSON.stringify(value)}: expected a positive integer`);
  }
  return id;
}

/** Builds the store selector from a queue id, `--entry` or `--all`; exactly one is required. */
function selector(queueId: string | undefined, options: SelectorOptions, allowAll: boolean) {
  const entryId = parseEntryId(options.entry);
  const given = [queueId !== undefined, entryId !== undefined, options.all === true];
  if (given.filter(Boolean).length !== 1 || (options.all && !allowAll)) {
    const forms = allowAll ? 'a queue id, --entry ID or --all' : 'a queue id or --entry ID';
    throw new CliError(`give exactly one of ${forms}`, EXIT_USAGE);
  }
  if (queueId !== undefined) return { messageId: queueId };
  if (entryId !== undefined) return { entryId };
  return { all: true };
}

export function registerQueueCommands(program: Command): void {
  const queue = program
    .command('queue')
    .description('inspect and act on the delivery queue (works on the store directly)');

  addCommonOptions(
    queue
      .command('list')
      .description('list queue entries, oldest first')
      .option('--status <status>', `only entries with this status: ${STATUSES.join(', ')}`)
      .option('--domain <domain>', 'only entries for this recipient domain')
      .option('--limit <count>', 'at most this many entries', '1000'),
  ).action(async (options: CommonOptions & { status?: string; domain?: string; limit: string }) => {
    const status = options.status as QueueStatus | undefined;
    if (status !== undefined && !STATUSES.includes(status)) {
      throw new CliError(
        `invalid status ${JSON.stringify(status)}: expected ${STATUSES.join(', ')}`,
      );
    }
    const limit = Number(options.limit);
    if (!Number.isSafeInteger(limit) || limit <= 0) {
      throw new CliError(
        `invalid limit ${JSON.stringify(options.limit)}: expected a positive integer`,
      );
    }
    await withManagement(options, async (context) => {
      const entries = await context.store.listEntries({
        ...(status ? { status } : {}),
        ...(options.domain ? { recipientDomain: options.domain.toLowerCase() } : {}),
        limit,
      });
      if (options.json) return printJson(entries);
      printEntries(entries);
    });
  });

  addCommonOptions(
    queue
      .command('show <queueId>')
      .description('show a message: its entries, every attempt, and with --body the message')
      .option('--body', 'print the stored message after the entries'),
  ).action(async (queueId: string, options: CommonOptions & { body?: boolean }) => {
    await withManagement(options, async (context) => {
      const entries = await context.store.listEntriesOfMessage(queueId);
      if (entries.length === 0) throw new CliError(`queue id ${queueId} not found`, EXIT_FAILURE);
      const events = await context.store.listEvents({ messageId: queueId });
      const body = options.body ? await context.store.getMessageBody(queueId) : undefined;
      if (options.json) {
        return printJson({ entries, events, ...(body ? { body: body.toString('utf8') } : {}) });
      }

      printEntries(entries);
      process.stdout.write('\n');
      printTable(
        ['TIME', 'ENTRY', 'EVENT', 'MX', 'VERDICT', 'REPLY'],
        events.map((e) => [
          e.time.toISOString(),
          String(e.entryId),
          e.kind,
          e.mx ?? '-',
          e.verdict,
          e.reply ?? '',
        ]),
      );
      if (body) process.stdout.write(`\n${body.toString('utf8')}`);
    });
  });

  addCommonOptions(
    queue
      .command('retry [queueId]')
      .description('make deferred entries due now: one message, one entry, or all')
      .option('--entry <id>', 'only this entry')
      .option('--all', 'every deferred and queued entry'),
  ).action(async (queueId: string | undefined, options: SelectorOptions) => {
    const which = selector(queueId, options, true);
    await withManagement(options, async (context) => {
      const changed = await context.store.retryNow(which);
      if (options.json) return printJson({ changed });
      process.stdout.write(`${changed} ${changed === 1 ? 'entry' : 'entries'} due now\n`);
      if (changed === 0 && !options.all) throw new CliError('no matching entry', EXIT_FAILURE);
    });
  });

  addCommonOptions(
    queue
      .command('delete [queueId]')
      .description('delete a message from the queue without delivering it, or one entry of it')
      .option('--entry <id>', 'only this entry'),
  ).action(async (queueId: string | undefined, options: SelectorOptions) => {
    const which = selector(queueId, options, false) as { messageId?: string; entryId?: number };
    await withManagement(options, async (context) => {
      const deleted = await context.store.deleteEntries(which);
      if (options.json) return printJson({ deleted });
      process.stdout.write(`${deleted} ${deleted === 1 ? 'entry' : 'entries'} deleted\n`);
      if (deleted === 0) throw new CliError('no matching entry', EXIT_FAILURE);
    });
  });
}

function printEntries(entries: QueueEntry[]): void {
  printTable(
    ['QUEUE ID', 'ENTRY', 'STATUS', 'TRIES', 'NEXT ATTEMPT', 'SENDER', 'RECIPIENT', 'LAST REPLY'],
    entries.map((e) => [
      e.messageId,
      String(e.id),
      e.status,
      String(e.attempts),
      e.status === 'queued' || e.status === 'deferred' ? e.nextAttemptAt.toISOString() : '-',
      e.sender === '' ? '<>' : e.sender,
      e.recipient,
      e.lastReply ?? '',
    ]),
  );
}
