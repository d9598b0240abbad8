/**
 * `herald cluster nodes`: the nodes that share the configured PostgreSQL store, from the
 * heartbeats the store records. A node appears once its delivery workers have claimed or
 * renewed leases, and counts as alive while it keeps doing so. Works on the store directly,
 * like `herald queue`.
 */
import type { Command } from 'commander';

import { CliError, EXIT_USAGE } from './exit-codes.js';
import {
  addCommonOptions,
  printJson,
  printTable,
  withManagement,
  type CommonOptions,
} from './domain.js';

export function registerClusterCommands(program: Command): void {
  const cluster = program
    .command('cluster')
    .description('show the nodes that share a PostgreSQL store (works on the store directly)');

  addCommonOptions(
    cluster
      .command('nodes')
      .description('list nodes with their last heartbeat and the queue entries they lease')
      .option('--stale <seconds>', 'count a node as dead after this many seconds unseen', '90'),
  ).action(async (options: CommonOptions & { stale: string }) => {
    const staleSeconds = Number(options.stale);
    if (!Number.isFinite(staleSeconds) || staleSeconds <= 0) {
      throw new CliError(
        `invalid --stale ${JSON.stringify(options.stale)}: expected a positive number of seconds`,
        EXIT_USAGE,
      );
    }
    await withManagement(options, async (context) => {
      const { store } = context;
      if (store.listNodes === undefined) {
        throw new CliError(
          'the configured store keeps no node list: set store.url to a postgres:// URL',
          EXIT_USAGE,
        );
      }
      const now = new Date();
      const nodes = await store.listNodes({ now, staleAfterMs: staleSeconds * 1000 });
      if (options.json) return printJson(nodes);
      printTable(
        ['NODE', 'STATE', 'LAST SEEN', 'LEASED', 'FIRST SEEN'],
        nodes.map((node) => [
          node.name,
          node.alive ? 'alive' : 'dead',
          `${Math.round((now.getTime() - node.lastSeenAt.getTime()) / 1000)}s ago`,
          String(node.leasedEntries),
          node.firstSeenAt.toISOString(),
        ]),
      );
    });
  });
}
