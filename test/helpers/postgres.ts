/**
 * A private PostgreSQL cluster for tests: `initdb` in a temporary directory, a server on
 * 127.0.0.1 and a free port with its Unix socket in that directory, and no password (trust
 * authentication, reachable only from this machine). initdb refuses to run as root, so when
 * the tests run as root the cluster belongs to the `postgres` user and its tools run through
 * `runuser`.
 *
 * `stop()` ends the server by the PID in its `postmaster.pid` (fast shutdown, then SIGKILL if it
 * has not exited after ten seconds) and removes the directory.
 *
 *     const cluster = await startPostgres();
 *     const url = await cluster.createDatabase();   // postgres://herald@127.0.0.1:PORT/db_1
 *     ...
 *     await cluster.stop();
 */
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import pg from 'pg';

export interface PostgresCluster {
  /** PID of the postmaster; the server's other processes are its children. */
  pid: number;
  host: string;
  port: number;
  /** Superuser that owns every database of the cluster. */
  user: string;
  /** URL of the cluster's `postgres` database. */
  url: string;
  /** Create an empty database and return its URL; the name is generated unless given. */
  createDatabase(name?: string): Promise<string>;
  /** Run one SQL statement on the `postgres` database, or on the database at `url`. */
  query(sql: string, values?: unknown[], url?: string): Promise<pg.QueryResult>;
  /** Stop the server by PID and remove its directory. Safe to call twice. */
  stop(): Promise<void>;
}

export interface StartPostgresOptions {
  /**
   * Turn off fsync (true by default), so tests do not wait for the disk. Crash tests that kill
   * Herald, not PostgreSQL, stay valid, because a running server returns every committed
   * transaction whether or not it has reached the disk. Benchmarks pass false.
   */
  noFsync?: boolean;
  /** Extra `-c name=value` server settings. */
  settings?: Record<string, string | number>;
}

const USER = 'herald';

/** Directory of the newest PostgreSQL server installed from Debian's packages. */
export function postgresBinDir(): string {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).sort((a, b) => Number(b) - Number(a)) : [];
  const newest = versions.find((version) => existsSync(join(root, version, 'bin', 'initdb')));
  if (newest === undefined) {
    throw new Error(`no PostgreSQL server under ${root}: install Debian's postgresql package`);
  }
  return join(root, newest, 'bin');
}

export async function startPostgres(options: StartPostgresOptions = {}): Promise<PostgresCluster> {
  const bin = postgresBinDir();
  const asRoot = process.getuid?.() === 0;
  const directory = mkdtempSync(join(tmpdir(), 'herald-pg-'));
  const dataDir = join(directory, 'data');
  if (asRoot) {
    const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
    chownSync(directory, uid, gid);
  }
  chmodSync(directory, 0o700);

  const run = (tool: string, args: string[]): void => {
    const command = asRoot
      ? ['runuser', '-u', 'postgres', '--', join(bin, tool), ...args]
      : [join(bin, tool), ...args];
    execFileSync(command[0]!, command.slice(1), { stdio: 'pipe', timeout: 60_000 });
  };

  run('initdb', ['-D', dataDir, '-A', 'trust', '-U', USER, '--no-sync', '-E', 'UTF8']);
  const settings: Record<string, string | number> = {
    listen_addresses: '127.0.0.1',
    unix_socket_directories: directory,
    max_connections: 200,
    ...(options.noFsync === false ? {} : { fsync: 'off', synchronous_commit: 'off' }),
    ...options.settings,
  };

  // Another process may take the free port between the check and the start: try a few ports.
  let port = 0;
  let lastError: unknown;
  for (let attempt = 0; attempt < 5; attempt++) {
    port = await freePort();
    const serverOptions = [
      `-p ${port}`,
      ...Object.entries(settings).map(([k, v]) => `-c ${k}=${v}`),
    ];
    try {
      run('pg_ctl', [
        '-D',
        dataDir,
        '-w',
        '-t',
        '60',
        '-l',
        join(directory, 'server.log'),
        '-o',
        serverOptions.join(' '),
        'start',
      ]);
      lastError = undefined;
      break;
    } catch (error) {
      lastError = error;
    }
  }
  if (lastError !== undefined) {
    const log = existsSync(join(directory, 'server.log'))
      ? readFileSync(join(directory, 'server.log'), 'utf8')
      : '';
    rmSync(directory, { recursive: true, force: true });
    const reason = lastError instanceof Error ? lastError.message : JSON.stringify(lastError);
    throw new Error(`PostgreSQL did not start: ${reason}\n${log}`);
  }
  const pid = Number(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);

  const host = '127.0.0.1';
  const url = `postgres://${USER}@${host}:${port}/postgres`;
  let databases = 0;
  let stopped = false;

  const query = async (
    sql: string,
    values?: unknown[],
    databaseUrl = url,
  ): Promise<pg.QueryResult> => {
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    try {
      return await client.query(sql, values);
    } finally {
      await client.end();
    }
  };

  return {
    pid,
    host,
    port,
    user: USER,
    url,
    query,
    async createDatabase(name?: string): Promise<string> {
      const database = name ?? `db_${process.pid}_${++databases}`;
      if (!/^[a-z_][a-z0-9_]*$/.test(database))
        throw new Error(`invalid database name ${database}`);
      await query(`CREATE DATABASE ${database}`);
      return `postgres://${USER}@${host}:${port}/${database}`;
    },
    async stop(): Promise<void> {
      if (stopped) return;
      stopped = true;
      await stopByPid(pid);
      rmSync(directory, { recursive: true, force: true });
    },
  };
}

/** SIGINT is PostgreSQL's fast shutdown: it ends the sessions and writes a checkpoint. */
async function stopByPid(pid: number): Promise<void> {
  if (!isAlive(pid)) return;
  process.kill(pid, 'SIGINT');
  const deadline = Date.now() + 10_000;
  while (isAlive(pid) && Date.now() < deadline) await sleep(50);
  if (isAlive(pid)) process.kill(pid, 'SIGKILL');
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
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
