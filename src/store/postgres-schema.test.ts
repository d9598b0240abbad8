/**
 * The shared migrations and the queue claim on a real PostgreSQL server: a private cluster in
 * a temporary directory, listening on 127.0.0.1 on a free port. This keeps the schema honest
 * for the PostgreSQL backend before that backend exists.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { MIGRATIONS, POSTGRES_DIALECT, migrationsTableStatement } from './migrations.js';
import { claimDueSql } from './queue-sql.js';

const versions = readdirSync('/usr/lib/postgresql').sort((a, b) => Number(b) - Number(a));
const bin = join('/usr/lib/postgresql', versions[0] ?? 'missing', 'bin');
const isRoot = process.getuid?.() === 0;

/** Run a PostgreSQL tool, as the postgres user when the tests run as root (initdb refuses root). */
function runTool(tool: string, args: string[]): void {
  const command = isRoot
    ? ['runuser', '-u', 'postgres', '--', join(bin, tool), ...args]
    : [join(bin, tool), ...args];
  execFileSync(command[0]!, command.slice(1), { stdio: 'pipe', timeout: 60_000 });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

const directory = mkdtempSync(join(tmpdir(), 'herald-pg-'));
const dataDir = join(directory, 'data');
let port = 0;
let started = false;

async function connect(): Promise<pg.Client> {
  const client = new pg.Client({ host: '127.0.0.1', port, user: 'herald', database: 'postgres' });
  await client.connect();
  return client;
}

beforeAll(async () => {
  if (isRoot) {
    const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
    chownSync(directory, uid, gid);
    chmodSync(directory, 0o700);
  }
  port = await freePort();
  runTool('initdb', ['-D', dataDir, '-A', 'trust', '-U', 'herald', '--no-sync', '-E', 'UTF8']);
  runTool('pg_ctl', [
    '-D',
    dataDir,
    '-w',
    '-l',
    join(directory, 'server.log'),
    '-o',
    `-c listen_addresses=127.0.0.1 -p ${port} -k ${directory} -c fsync=off`,
    'start',
  ]);
  started = true;
});

afterAll(() => {
  if (started) runTool('pg_ctl', ['-D', dataDir, '-m', 'immediate', 'stop']);
  rmSync(directory, { recursive: true, force: true });
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
