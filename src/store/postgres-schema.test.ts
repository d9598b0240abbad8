/**
 * The shared migrations and the raw claim statement on a private PostgreSQL cluster on
 * 127.0.0.1, one level below the PostgreSQL store. The schema applies in one transaction. Two
 * claims run in overlapping transactions, and SKIP LOCKED keeps them disjoint without waiting.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { startPostgres, type PostgresCluster } from '../../test/helpers/postgres.js';
import { MIGRATIONS, POSTGRES_DIALECT, migrationsTableStatement } from './migrations.js';
import { claimDueSql } from './queue-sql.js';

let cluster: PostgresCluster;
let url = '';

async function connect(): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  return client;
}

beforeAll(async () => {
  cluster = await startPostgres();
  url = await cluster.createDatabase();
});

afterAll(async () => {
  await cluster?.stop();
});

describe('migrations on PostgreSQL', () => {
  it('apply in one transaction', async () => {
    const client = await connect();
    try {
      await client.query('BEGIN');
      await client.query(migrationsTableStatement());
      for (const migration of MIGRATIONS) {
        for (const statement of migration.statements(POSTGRES_DIALECT))
          await client.query(statement);
        await client.query(
          'INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)',
          [migration.version, migration.name, Date.now()],
        );
      }
      await client.query('COMMIT');
      const tables = await client.query<{ table_name: string }>(
        `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'
         ORDER BY table_name`,
      );
      expect(tables.rows.map((row) => row.table_name)).toEqual([
        'aliases',
        'credentials',
        'dkim_keys',
        'domains',
        'messages',
        'queue_entries',
        'queue_events',
        'schema_migrations',
        'srs_tokens',
      ]);
    } finally {
      await client.end();
    }
  });

  it('claims are disjoint across connections', async () => {
    const setup = await connect();
    const now = Date.now();
    await setup.query(
      `INSERT INTO messages (id, body, size, origin, original_sender, created_at)
       VALUES ('m1', $1, 2, 'inbound', '', $2)`,
      [Buffer.from([0xff, 0x00]), now],
    );
    for (let i = 0; i < 20; i++) {
      await setup.query(
        `INSERT INTO queue_entries (message_id, recipient, recipient_domain, sender, bounce_to,
           origin, status, created_at, next_attempt_at)
         VALUES ('m1', $1, 'example.net', '', '', 'inbound', 'queued', $2, $2)`,
        [`r${i}@example.net`, now],
      );
    }
    const body = await setup.query<{ body: Buffer }>(`SELECT body FROM messages WHERE id = 'm1'`);
    expect(body.rows[0]?.body.equals(Buffer.from([0xff, 0x00]))).toBe(true);

    // Two workers hold their transactions open at the same time: SKIP LOCKED makes the second
    // take other rows instead of waiting for the first.
    const first = await connect();
    const second = await connect();
    try {
      await first.query('BEGIN');
      await second.query('BEGIN');
      const claim = claimDueSql(POSTGRES_DIALECT);
      const a = await first.query<{ id: string }>(claim, ['w1', now + 60_000, now, 12]);
      const b = await second.query<{ id: string }>(claim, ['w2', now + 60_000, now, 12]);
      await first.query('COMMIT');
      await second.query('COMMIT');
      const ids = [...a.rows, ...b.rows].map((row) => row.id);
      expect(a.rows.length).toBe(12);
      expect(b.rows.length).toBe(8);
      expect(new Set(ids).size).toBe(20);
      const third = await setup.query(claim, ['w3', now + 60_000, now, 12]);
      expect(third.rows.length).toBe(0);
    } finally {
      await first.end();
      await second.end();
      await setup.end();
    }
  });
});
