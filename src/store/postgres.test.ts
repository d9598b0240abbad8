/**
 * The store contract and the multi-node guarantees of the PostgreSQL backend, on a private
 * cluster (see `test/helpers/postgres.ts`). Every contract test gets a database of its own.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { startPostgres, type PostgresCluster } from '../../test/helpers/postgres.js';
import { describeStoreContract } from './contract.js';
import { openStore } from './index.js';
import { MIGRATIONS } from './migrations.js';
import { PostgresStore } from './postgres.js';
import type { NewMessage, Store } from './types.js';

let cluster: PostgresCluster;
let lastUrl = '';

beforeAll(async () => {
  cluster = await startPostgres();
});

afterAll(async () => {
  await cluster?.stop();
});

describeStoreContract('postgres', async (options) => {
  if (options?.shared !== true) lastUrl = await cluster.createDatabase();
  return openStore({ url: lastUrl });
});

function message(recipient: string): NewMessage {
  return {
    body: Buffer.from(`Subject: ${recipient}\r\n\r\nhello\r\n`),
    origin: 'inbound',
    originalSender: 'author@example.org',
    recipients: [{ recipient, sender: 'author@example.org', bounceTo: 'author@example.org' }],
  };
}

describe('postgres store', () => {
  it('migrates once when eight nodes start together', async () => {
    const url = await cluster.createDatabase();
    const stores = Array.from({ length: 8 }, () => new PostgresStore({ url }));
    try {
      await Promise.all(stores.map((store) => store.migrate()));
      const { rows } = await query(url, 'SELECT version FROM schema_migrations ORDER BY version');
      expect(rows.map((row) => Number(row.version))).toEqual(MIGRATIONS.map((m) => m.version));
      await stores[0]!.addDomain('example.org');
      expect((await stores[7]!.listDomains()).map((d) => d.name)).toEqual(['example.org']);
    } finally {
      await Promise.all(stores.map((store) => store.close()));
    }
  });

  it('concurrent claims from four nodes are disjoint', async () => {
    const url = await cluster.createDatabase();
    const nodes: Store[] = [];
    for (let i = 0; i < 4; i++) nodes.push(await openStore({ url }));
    try {
      await Promise.all(
        Array.from({ length: 400 }, (_, i) => nodes[i % 4]!.enqueue(message(`r${i}@example.net`))),
      );
      // Every node claims in small batches until the queue is empty, all at the same time.
      const claimed = await Promise.all(
        nodes.map(async (node, index) => {
          const ids: number[] = [];
          for (;;) {
            const batch = await node.claimDue({ owner: `node${index}`, limit: 7, leaseMs: 60_000 });
            if (batch.length === 0) return ids;
            ids.push(...batch.map((entry) => entry.id));
          }
        }),
      );
      const all = claimed.flat();
      expect(all.length).toBe(400);
      expect(new Set(all).size).toBe(400);
      for (const ids of claimed) expect(ids.length).toBeGreaterThan(0);
    } finally {
      for (const node of nodes) await node.close();
    }
  });

  it('a dead node loses its lease to a live one', async () => {
    const url = await cluster.createDatabase();
    const dead = await openStore({ url });
    const live = await openStore({ url });
    try {
      const { entryIds } = await dead.enqueue(message('a@example.net'));
      const [held] = await dead.claimDue({ owner: 'dead', limit: 1, leaseMs: 300 });
      expect(held?.id).toBe(entryIds[0]);
      expect(await live.claimDue({ owner: 'live', limit: 1, leaseMs: 60_000 })).toEqual([]);
      await new Promise((resolve) => setTimeout(resolve, 400));
      const [taken] = await live.claimDue({ owner: 'live', limit: 1, leaseMs: 60_000 });
      expect(taken?.id).toBe(entryIds[0]);
      await live.completeAttempt(taken!.id, 'live', {
        status: 'delivered',
        reply: '250 2.0.0 Ok',
        mx: 'mx.example.net',
        dsn: '2.0.0',
      });
      await expect(
        dead.completeAttempt(held!.id, 'dead', {
          status: 'delivered',
          reply: '250 2.0.0 Ok',
          mx: 'mx.example.net',
          dsn: '2.0.0',
        }),
      ).rejects.toThrow(/no longer held by dead/);
      const attempts = (await live.listEvents({ entryId: held!.id })).filter(
        (event) => event.kind === 'attempt',
      );
      expect(attempts.length).toBe(1);
    } finally {
      await dead.close();
      await live.close();
    }
  });

  it('campaign and subscriber ids round-trip', async () => {
    const store = await openStore({ url: await cluster.createDatabase() });
    try {
      const { messageId } = await store.enqueue({
        ...message('a@example.net'),
        origin: 'campaign',
        recipients: [
          { recipient: 'a@example.net', sender: 's@example.org', bounceTo: '', campaignId: 7 },
          { recipient: 'b@example.net', sender: 's@example.org', bounceTo: '', subscriberId: 9 },
        ],
      });
      const entries = await store.listEntriesOfMessage(messageId);
      expect(entries.map((e) => [e.recipient, e.campaignId, e.subscriberId])).toEqual([
        ['a@example.net', 7, null],
        ['b@example.net', null, 9],
      ]);
    } finally {
      await store.close();
    }
  });

  it('openStore names the server it cannot reach', async () => {
    // Port 1 on loopback has no listener, so the connection is refused at once.
    await expect(openStore({ url: 'postgres://herald:secret@127.0.0.1:1/herald' })).rejects.toThrow(
      /^store\.url postgres:\/\/herald:\*\*\*@127\.0\.0\.1:1\/herald: .*ECONNREFUSED/,
    );
  });
});

async function query(url: string, sql: string): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await client.query(sql);
  } finally {
    await client.end();
  }
}
