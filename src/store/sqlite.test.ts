import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';

import { describeStoreContract } from './contract.js';
import { openStore } from './index.js';
import { MIGRATIONS, SQLITE_DIALECT, migrationsTableStatement } from './migrations.js';
import { claimDueSql } from './queue-sql.js';
import { SqliteStore } from './sqlite.js';

const directory = mkdtempSync(join(tmpdir(), 'herald-store-'));
let counter = 0;
let lastPath = '';

afterAll(() => rmSync(directory, { recursive: true, force: true }));

describeStoreContract('sqlite', async (options) => {
  if (options?.shared !== true) lastPath = join(directory, `contract-${++counter}.sqlite`);
  return openStore({ url: `sqlite:${lastPath}` });
});

describe('sqlite store', () => {
  it('uses WAL with synchronous FULL', async () => {
    const path = join(directory, 'pragmas.sqlite');
    const store = await openStore({ url: path });
    await store.close();
    const db = new Database(path, { readonly: true });
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    const versions = db.prepare('SELECT version FROM schema_migrations ORDER BY version').all();
    db.close();
    expect(versions).toEqual(MIGRATIONS.map((m) => ({ version: m.version })));
  });

  it('keeps DKIM keys made before the PEM column', async () => {
    const path = join(directory, 'before-pem.sqlite');
    const db = new Database(path);
    for (const migration of MIGRATIONS.filter((m) => m.version <= 4)) {
      for (const statement of migration.statements(SQLITE_DIALECT)) db.exec(statement);
    }
    db.exec(`INSERT INTO domains (id, name, created_at) VALUES (1, 'old.example', 0)`);
    db.exec(`INSERT INTO dkim_keys (id, domain_id, selector, algorithm, private_key_path,
               public_record, status, created_at)
             VALUES (7, 1, 'h20250101r', 'rsa-sha256', '/keys/old.pem', 'v=DKIM1; p=A', 'active', 0)`);
    db.exec(migrationsTableStatement());
    const record = db.prepare(
      'INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, 0)',
    );
    for (const migration of MIGRATIONS.filter((m) => m.version <= 4)) {
      record.run(migration.version, migration.name);
    }
    db.close();

    const store = await openStore({ url: path });
    try {
      const [key] = await store.listDkimKeys(1);
      expect(key).toMatchObject({ id: 7, selector: 'h20250101r', privateKeyPath: '/keys/old.pem' });
      expect(await store.getDkimPrivateKey(7)).toBeUndefined();
    } finally {
      await store.close();
    }
  });

  it('creates private folder and files', async () => {
    const path = join(directory, 'private', 'nested', 'herald.sqlite');
    const store = await openStore({ url: path });
    await store.addDomain('modes.test');
    const mode = (file: string) => statSync(file).mode & 0o777;
    expect(mode(join(directory, 'private', 'nested'))).toBe(0o700);
    expect(mode(path)).toBe(0o600);
    expect(mode(`${path}-wal`)).toBe(0o600);
    expect(mode(`${path}-shm`)).toBe(0o600);
    await store.close();
  });

  it('narrows a world-readable database file', async () => {
    const path = join(directory, 'wide.sqlite');
    writeFileSync(path, '');
    chmodSync(path, 0o644);
    const store = await openStore({ url: path });
    await store.close();
    expect(statSync(path).mode & 0o777).toBe(0o600);
  });

  it('group commit shares transactions', async () => {
    const store = new SqliteStore({ path: join(directory, 'group.sqlite') });
    await store.migrate();
    await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        store.enqueue({
          body: Buffer.from(`Subject: ${i}\r\n\r\n`),
          origin: 'submission',
          originalSender: 'a@example.org',
          recipients: [{ recipient: `r${i}@example.net`, sender: 'a@example.org', bounceTo: '' }],
        }),
      ),
    );
    expect(store.stats.enqueued).toBe(200);
    expect(store.stats.commits).toBeLessThanOrEqual(2);
    expect(store.stats.largestBatch).toBeGreaterThanOrEqual(100);
    await store.close();
  });

  it('group commit covers claims and attempts', async () => {
    const store = new SqliteStore({ path: join(directory, 'group-attempts.sqlite') });
    await store.migrate();
    await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        store.enqueue({
          body: Buffer.from(`Subject: ${i}\r\n\r\n`),
          origin: 'inbound',
          originalSender: 'a@example.org',
          recipients: [{ recipient: `r${i}@example.net`, sender: 'a@example.org', bounceTo: '' }],
        }),
      ),
    );
    const claimed = await store.claimDue({ owner: 'w1', limit: 50, leaseMs: 60_000 });
    const before = store.stats.commits;
    await Promise.all(
      claimed.map((entry) =>
        store.completeAttempt(entry.id, 'w1', {
          status: 'delivered',
          reply: '250 2.0.0 Ok',
          mx: 'mx.example.net',
          dsn: '2.0.0',
        }),
      ),
    );
    expect(store.stats.commits - before).toBe(1);
    expect((await store.countByStatus()).delivered).toBe(50);
    await store.close();
  });

  it('wakes a watcher when another connection commits', async () => {
    const path = join(directory, 'watch.sqlite');
    const server = await openStore({ url: `sqlite:${path}` });
    const cli = await openStore({ url: `sqlite:${path}` });
    const calls: number[] = [];
    const unwatch = server.watchQueue!(() => calls.push(Date.now()));
    const message = (recipient: string) => ({
      body: Buffer.from('Subject: s\r\n\r\nbody\r\n'),
      origin: 'campaign' as const,
      originalSender: 'a@example.org',
      recipients: [{ recipient, sender: 'a@example.org', bounceTo: '' }],
    });
    try {
      // Its own commits do not call the watcher.
      await server.enqueue(message('own@example.net'));
      await new Promise((wake) => setTimeout(wake, 600));
      expect(calls).toHaveLength(0);
      const sent = Date.now();
      await cli.enqueue(message('other@example.net'));
      const deadline = Date.now() + 3_000;
      while (calls.length === 0 && Date.now() < deadline) {
        await new Promise((wake) => setTimeout(wake, 25));
      }
      expect(calls).toHaveLength(1);
      // It polls every 250 ms; the bound leaves room for a busy machine.
      expect(calls[0]! - sent).toBeLessThan(2_000);
    } finally {
      unwatch();
      await cli.close();
      await server.close();
    }
  });

  it('sets the page cache size', async () => {
    const pragma = (store: SqliteStore) =>
      (store as unknown as { db: Database.Database }).db.pragma('cache_size', { simple: true });
    const defaults = new SqliteStore({ path: join(directory, 'cache-default.sqlite') });
    const chosen = new SqliteStore({ path: join(directory, 'cache-chosen.sqlite'), cacheKiB: 512 });
    // A negative value is a size in KiB.
    expect(pragma(defaults)).toBe(-4096);
    expect(pragma(chosen)).toBe(-512);
    await defaults.close();
    await chosen.close();
  });

  it('outcome-only batches skip the fsync', async () => {
    const store = new SqliteStore({ path: join(directory, 'relaxed.sqlite') });
    await store.migrate();
    const message = (i: number) => ({
      body: Buffer.from(`Subject: ${i}\r\n\r\n`),
      origin: 'submission' as const,
      originalSender: 'a@example.org',
      recipients: [{ recipient: `r${i}@example.net`, sender: 'a@example.org', bounceTo: '' }],
    });
    const delivered = {
      status: 'delivered' as const,
      reply: '250 2.0.0 Ok',
      mx: 'mx.example.net',
      dsn: '2.0.0',
    };
    // The connection's own setting, which no other connection can read.
    const synchronous = () =>
      (store as unknown as { db: Database.Database }).db.pragma('synchronous', { simple: true });

    await Promise.all([message(1), message(2)].map((item) => store.enqueue(item)));
    expect(store.stats.relaxedCommits).toBe(0);

    const claimed = await store.claimDue({ owner: 'w1', limit: 2, leaseMs: 60_000 });
    expect(claimed).toHaveLength(2);
    expect(store.stats.relaxedCommits).toBe(1);
    await store.completeAttempt(claimed[0]!.id, 'w1', delivered);
    expect(store.stats.relaxedCommits).toBe(2);
    // FULL is 2: writes outside the relaxed batches keep their fsync.
    expect(synchronous()).toBe(2);

    // An enqueue in the same batch makes the whole commit durable.
    const commits = store.stats.commits;
    await Promise.all([
      store.completeAttempt(claimed[1]!.id, 'w1', delivered),
      store.enqueue(message(3)),
    ]);
    expect(store.stats.commits).toBe(commits + 1);
    expect(store.stats.relaxedCommits).toBe(2);
    expect((await store.countByStatus()).delivered).toBe(2);
    await store.close();
  });

  it('a failing message does not fail its batch', async () => {
    const store = new SqliteStore({ path: join(directory, 'isolation.sqlite') });
    await store.migrate();
    const good = store.enqueue({
      body: Buffer.from('ok'),
      origin: 'inbound',
      originalSender: '',
      recipients: [{ recipient: 'a@example.net', sender: '', bounceTo: '' }],
    });
    // A null body violates NOT NULL inside the shared transaction.
    const bad = store.enqueue({
      body: null as unknown as Buffer,
      origin: 'inbound',
      originalSender: '',
      recipients: [{ recipient: 'b@example.net', sender: '', bounceTo: '' }],
    });
    await expect(good).resolves.toMatchObject({ entryIds: [1] });
    await expect(bad).rejects.toThrow();
    expect((await store.countByStatus()).queued).toBe(1);
    await store.close();
  });

  it('close commits pending enqueues', async () => {
    const path = join(directory, 'close.sqlite');
    const store = new SqliteStore({ path });
    await store.migrate();
    const pending = store.enqueue({
      body: Buffer.from('x'),
      origin: 'inbound',
      originalSender: '',
      recipients: [{ recipient: 'a@example.net', sender: '', bounceTo: '' }],
    });
    await store.close();
    const { messageId } = await pending;
    const reopened = await openStore({ url: path });
    expect((await reopened.getMessageBody(messageId))?.toString()).toBe('x');
    await reopened.close();
  });

  it('acknowledged messages survive SIGKILL', async () => {
    const path = join(directory, 'crash.sqlite');
    const script = fileURLToPath(new URL('./fixtures/enqueue-and-crash.ts', import.meta.url));
    const output = await new Promise<string>((resolve) => {
      execFile(
        process.execPath,
        ['--import', 'tsx', script, path, '150'],
        { timeout: 30_000 },
        (_error, stdout) => resolve(stdout),
      );
    });
    const ids = output.split('\n').filter((line) => line !== '');
    expect(ids.length).toBe(150);
    const store = await openStore({ url: path });
    for (const id of ids) expect(await store.getMessageBody(id), id).toBeDefined();
    await store.close();
  });

  it('claims scan the due index in order', async () => {
    const path = join(directory, 'plan.sqlite');
    await (await openStore({ url: path })).close();
    const db = new Database(path, { readonly: true });
    const plan = db
      .prepare(`EXPLAIN QUERY PLAN ${claimDueSql(SQLITE_DIALECT)}`)
      .all({ owner: 'w', expires: 2, now: 1, limit: 10 }) as { detail: string }[];
    db.close();
    const details = plan.map((row) => row.detail).join('\n');
    expect(details).toContain('USING INDEX queue_entries_due');
    expect(details).not.toContain('TEMP B-TREE');
  });

  it('migrates concurrently from two connections', async () => {
    const path = join(directory, 'concurrent-migrate.sqlite');
    const first = new SqliteStore({ path });
    const second = new SqliteStore({ path });
    await Promise.all([first.migrate(), second.migrate()]);
    await first.addDomain('example.org');
    expect((await second.listDomains()).length).toBe(1);
    await first.close();
    await second.close();
  });

  it('openStore hides the password of a PostgreSQL URL', async () => {
    // Port 1 on loopback has no listener, so the PostgreSQL backend fails at once.
    await expect(openStore({ url: 'postgres://herald:secret@127.0.0.1:1/herald' })).rejects.toThrow(
      /postgres:\/\/herald:\*\*\*@127\.0\.0\.1:1\/herald/,
    );
  });
});
