/**
 * The store contract and the multi-node guarantees of the PostgreSQL backend, on a private
 * cluster (see `test/helpers/postgres.ts`). Every contract test gets a database of its own.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { startPostgres, type PostgresCluster } from '../../test/helpers/postgres.js';
import { describeStoreContract } from './contract.js';
import { openStore } from './index.js';
import { MIGRATIONS, POSTGRES_DIALECT, migrationsTableStatement } from './migrations.js';
import { CLUSTER_MIGRATIONS } from './postgres-cluster.js';
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
      const expected = [...MIGRATIONS, ...CLUSTER_MIGRATIONS].map((m) => m.version);
      expect(rows.map((row) => Number(row.version))).toEqual(expected);
      await stores[0]!.addDomain('example.org');
      expect((await stores[7]!.listDomains()).map((d) => d.name)).toEqual(['example.org']);
    } finally {
      await Promise.all(stores.map((store) => store.close()));
    }
  });

  it('keeps DKIM keys made before the PEM column', async () => {
    const url = await cluster.createDatabase();
    const before = [...MIGRATIONS.filter((m) => m.version <= 4), ...CLUSTER_MIGRATIONS];
    await query(url, migrationsTableStatement());
    for (const migration of before) {
      for (const statement of migration.statements(POSTGRES_DIALECT)) await query(url, statement);
      await query(
        url,
        `INSERT INTO schema_migrations (version, name, applied_at)
         VALUES (${migration.version}, 'before the PEM column', 0)`,
      );
    }
    await query(url, `INSERT INTO domains (id, name, created_at) VALUES (1, 'old.example', 0)`);
    await query(
      url,
      `INSERT INTO dkim_keys (id, domain_id, selector, algorithm, private_key_path,
         public_record, status, created_at)
       VALUES (7, 1, 'h20250101r', 'rsa-sha256', '/keys/old.pem', 'v=DKIM1; p=A', 'active', 0)`,
    );

    const store = await openStore({ url });
    try {
      const [key] = await store.listDkimKeys(1);
      expect(key).toMatchObject({ id: 7, selector: 'h20250101r', privateKeyPath: '/keys/old.pem' });
      expect(await store.getDkimPrivateKey(7)).toBeUndefined();
    } finally {
      await store.close();
    }
  });

  it('shares statements among enqueues and isolates a bad message', async () => {
    const url = await cluster.createDatabase();
    const store = new PostgresStore({ url });
    try {
      await store.migrate();
      const messages = Array.from({ length: 250 }, (_, i) => ({
        ...message(`r${i}@example.net`),
        // Two recipients for every fifth message, so entries of one message stay together.
        recipients: Array.from({ length: i % 5 === 0 ? 2 : 1 }, (_, k) => ({
          recipient: `r${i}-${k}@example.net`,
          sender: 'author@example.org',
          bounceTo: '',
        })),
      }));
      // A missing body fails the NOT NULL constraint: only its own enqueue may fail.
      const broken = { ...message('broken@example.net'), body: null as unknown as Buffer };
      const results = await Promise.allSettled([
        ...messages.slice(0, 120).map((m) => store.enqueue(m)),
        store.enqueue(broken),
        ...messages.slice(120).map((m) => store.enqueue(m)),
      ]);
      expect(results[120]!.status).toBe('rejected');
      const fulfilled = results.filter((r) => r.status === 'fulfilled');
      expect(fulfilled).toHaveLength(250);
      for (const [index, result] of results.entries()) {
        if (index === 120) continue;
        const m = messages[index < 120 ? index : index - 1]!;
        const { messageId, entryIds } = (
          result as PromiseFulfilledResult<{ messageId: string; entryIds: number[] }>
        ).value;
        expect(entryIds).toHaveLength(m.recipients.length);
        const entries = await store.listEntriesOfMessage(messageId);
        expect(entries.map((entry) => entry.id)).toEqual(entryIds);
        expect(entries.map((entry) => entry.recipient)).toEqual(
          m.recipients.map((r) => r.recipient),
        );
        expect((await store.getMessageBody(messageId))!.equals(m.body)).toBe(true);
      }
      const { rows } = await query(
        url,
        "SELECT COUNT(*) AS n FROM queue_events WHERE kind = 'queued'",
      );
      expect(Number(rows[0]!.n)).toBe(300);
    } finally {
      await store.close();
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

  it('listNodes reports heartbeats and leases', async () => {
    const url = await cluster.createDatabase();
    const first = new PostgresStore({ url });
    const second = new PostgresStore({ url });
    await first.migrate();
    try {
      await first.enqueue(message('a@example.net'));
      await first.enqueue(message('b@example.net'));
      await first.claimDue({ owner: 'mx-a:1:aa', limit: 1, leaseMs: 60_000 });
      await second.claimDue({ owner: 'mx-b:2:bb', limit: 5, leaseMs: 60_000 });
      await second.claimDue({ owner: 'mx-c:3:cc', limit: 5, leaseMs: 60_000 });
      const nodes = await second.listNodes();
      expect(nodes.map((n) => [n.name, n.alive, n.leasedEntries])).toEqual([
        ['mx-a:1:aa', true, 1],
        ['mx-b:2:bb', true, 1],
        ['mx-c:3:cc', true, 0],
      ]);
      // A node unseen for more than a day goes at the next heartbeat of another node.
      await cluster.query(
        `INSERT INTO cluster_nodes (name, first_seen_at, last_seen_at) VALUES ('gone:0:00', 0, 0)`,
        [],
        url,
      );
      expect((await second.listNodes()).length).toBe(4);
      await second.claimDue({ owner: 'mx-d:4:dd', limit: 1, leaseMs: 60_000 });
      const names = (await second.listNodes()).map((n) => n.name);
      expect(names).toEqual(['mx-a:1:aa', 'mx-b:2:bb', 'mx-c:3:cc', 'mx-d:4:dd']);

      // Seen from two minutes on, every node is stale and its leases have run out.
      const later = await first.listNodes({ now: new Date(Date.now() + 120_000) });
      expect(later.map((n) => [n.alive, n.leasedEntries])).toEqual([
        [false, 0],
        [false, 0],
        [false, 0],
        [false, 0],
      ]);
    } finally {
      await first.close();
      await second.close();
    }
  });

  it('destination slots are shared and freed by a dead node', async () => {
    const url = await cluster.createDatabase();
    const first = await openStore({ url });
    const second = await openStore({ url });
    try {
      const a1 = await first.tryAcquireDestinationSlot!('Example.NET', 2);
      const a2 = await first.tryAcquireDestinationSlot!('example.net', 2);
      expect(a1).toBeDefined();
      expect(a2).toBeDefined();
      expect(await second.tryAcquireDestinationSlot!('example.net', 2)).toBeUndefined();
      expect(await second.tryAcquireDestinationSlot!('other.example', 2)).toBeDefined();
      await a1!();
      const b1 = await second.tryAcquireDestinationSlot!('example.net', 2);
      expect(b1).toBeDefined();
      expect(await first.tryAcquireDestinationSlot!('example.net', 2)).toBeUndefined();
      // Closing the store ends its session, as a killed node's connection does.
      await first.close();
      expect(await second.tryAcquireDestinationSlot!('example.net', 2)).toBeDefined();
    } finally {
      await first.close();
      await second.close();
    }
  });

  it('destination starts are spaced across nodes', async () => {
    const url = await cluster.createDatabase();
    const first = await openStore({ url });
    const second = await openStore({ url });
    try {
      // 60 a minute is one start a second, whichever node reserves it.
      const waits = [
        await first.reserveDestinationStart!('example.net', 60),
        await second.reserveDestinationStart!('example.net', 60),
        await first.reserveDestinationStart!('example.net', 60),
      ];
      expect(waits[0]).toBe(0);
      expect(waits[1]).toBeGreaterThan(900);
      expect(waits[1]).toBeLessThanOrEqual(1000);
      expect(waits[2]).toBeGreaterThan(1900);
      expect(waits[2]).toBeLessThanOrEqual(2000);
      await second.cancelDestinationStart!('example.net', 60);
      const next = await second.reserveDestinationStart!('example.net', 60);
      expect(next).toBeGreaterThan(1900);
      expect(next).toBeLessThanOrEqual(2000);
      expect(await first.reserveDestinationStart!('other.example', 60)).toBe(0);
      expect(await first.reserveDestinationStart!('example.net', 0)).toBe(0);
    } finally {
      await first.close();
      await second.close();
    }
  });

  it('watchQueue wakes other nodes on enqueue', async () => {
    const url = await cluster.createDatabase();
    const sender = await openStore({ url });
    const watcher = await openStore({ url });
    try {
      let calls = 0;
      let woken: () => void = () => undefined;
      const stop = watcher.watchQueue!(() => {
        calls++;
        woken();
      });
      // LISTEN starts on a connection that opens in the background: let it start first.
      await new Promise((resolve) => setTimeout(resolve, 300));
      const wake = new Promise<void>((resolve) => (woken = resolve));
      await sender.enqueue(message('a@example.net'));
      await Promise.race([
        wake,
        new Promise((_, reject) => setTimeout(() => reject(new Error('no notification')), 5000)),
      ]);
      expect(calls).toBeGreaterThanOrEqual(1);

      stop();
      const before = calls;
      await sender.enqueue(message('b@example.net'));
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(calls).toBe(before);
    } finally {
      await sender.close();
      await watcher.close();
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
