/**
 * Two `herald serve` nodes on one PostgreSQL database, each with its own data directory and
 * listeners, sharing the SRS secrets. Both start at once on an empty database, so they create
 * the schema concurrently. smtp-source sends to both at once, and an `smtp-server` sink records
 * what arrives, matched by the Message-ID that smtp-source writes into each message.
 *
 * - Mail accepted by either node arrives exactly once.
 * - A node killed with SIGKILL in the middle of a stream loses nothing: the entries it had
 *   leased become due when the lease expires (2 s here) and the other node delivers them.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { openStore } from '../../src/store/index.js';
import { PostgresStore } from '../../src/store/postgres.js';
import { startDnsServer, type DnsServer } from '../helpers/dns-server.js';
import { startPostgres, type PostgresCluster } from '../helpers/postgres.js';
import { startSmtpSink, type SmtpSink } from '../helpers/smtp-sink.js';
import {
  API_TOKEN,
  makeDataDir,
  removeDataDir,
  runHerald,
  startHerald,
  type HeraldInstance,
} from '../e2e/harness.js';
import { SMTP_SOURCE } from '../e2e/peers.js';

const SINK_HOST = '127.0.0.31';

let postgres: PostgresCluster;
let dns: DnsServer;
let sink: SmtpSink;
let secretsDir: string;
const dataDirs: string[] = [];
const nodes: HeraldInstance[] = [];

beforeAll(async () => {
  postgres = await startPostgres();
  dns = await startDnsServer({
    records: [
      { name: 'dest.test', type: 'MX', priority: 10, exchange: 'mx.dest.test' },
      { name: 'mx.dest.test', type: 'A', address: SINK_HOST },
    ],
  });
  sink = await startSmtpSink({ host: SINK_HOST });
  secretsDir = makeDataDir();
});

afterEach(async () => {
  for (const node of nodes.splice(0)) await node.stop('SIGKILL');
  for (const dir of dataDirs.splice(0)) removeDataDir(dir);
  sink.messages.length = 0;
  sink.reply.dataDelayMs = undefined;
});

afterAll(async () => {
  await sink?.close();
  await dns?.close();
  await postgres?.stop();
  if (secretsDir) removeDataDir(secretsDir);
});

/** Settings of both nodes: one database, one SRS secret, short leases, fast retries. */
function nodeSettings(storeUrl: string, name: string) {
  return {
    hostname: `${name}.herald.test`,
    store: { url: storeUrl },
    srs: { domain: 'srs.herald.test', secretsFile: join(secretsDir, 'srs-secrets') },
    limits: { commandsPerMinute: 1_000_000, maxConnectionsPerClient: 100 },
    delivery: { leaseTime: '2s', concurrency: 20 },
    log: { level: 'warn' },
  };
}

/**
 * Starts two nodes at once on a new, empty database, so they create the schema concurrently,
 * then adds a catch-all alias through the store.
 */
async function startCluster(): Promise<{ url: string; a: HeraldInstance; b: HeraldInstance }> {
  const url = await postgres.createDatabase();
  const started = await Promise.all(
    ['mx-a', 'mx-b'].map(async (name) => {
      const dataDir = makeDataDir();
      dataDirs.push(dataDir);
      const node = await startHerald({
        dnsAddress: dns.address,
        deliveryPort: sink.port,
        dataDir,
        settings: nodeSettings(url, name),
      });
      nodes.push(node);
      return node;
    }),
  );
  // Forwarding signs nothing, so the domain needs no DKIM keys and the store API suffices.
  const setup = await openStore({ url });
  try {
    const domain = await setup.addDomain('load.test');
    await setup.addAlias({
      domainId: domain.id,
      localPart: '*',
      targets: ['inbox@dest.test'],
      enabled: true,
      dmarcPolicy: 'forward',
    });
  } finally {
    await setup.close();
  }
  return { url, a: started[0]!, b: started[1]! };
}

/**
 * Sends `count` messages with smtp-source over 5 sessions and resolves with the queue ids of
 * the messages that got a 250 at the end of data. `onAccepted` receives the running count.
 */
function sendMessages(
  port: number,
  count: number,
  onAccepted: (accepted: number) => void = () => undefined,
): Promise<string[]> {
  return new Promise((resolveRun) => {
    const child = spawn(
      SMTP_SOURCE,
      [
        '-v',
        '-s',
        '5',
        '-m',
        String(count),
        '-N',
        '-f',
        'sender@author.test',
        '-t',
        'user@load.test',
        '-M',
        'client.author.test',
        `127.0.0.1:${port}`,
      ],
      { stdio: ['ignore', 'ignore', 'pipe'], timeout: 60_000 },
    );
    const queueIds: string[] = [];
    let partial = '';
    child.stderr.on('data', (chunk: Buffer) => {
      const lines = (partial + chunk.toString('latin1')).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        const match = /<<< 250 .*queued as ([A-Za-z0-9]+)/i.exec(line);
        if (!match) continue;
        queueIds.push(match[1]!);
        onAccepted(queueIds.length);
      }
    });
    child.once('exit', () => resolveRun(queueIds));
  });
}

/** Polls the shared queue until no entry waits for delivery; returns the pending count. */
async function waitForEmptyQueue(store: PostgresStore, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const counts = await store.countByStatus();
    const pending = counts.queued + counts.deferred;
    if (pending === 0 || Date.now() > deadline) return pending;
    await new Promise((resolveWait) => setTimeout(resolveWait, 200));
  }
}

/** Count the arrivals at the sink of each Message-ID. */
function arrivals(): Map<string, number> {
  const counts = new Map<string, number>();
  for (const message of sink.messages) {
    const id = /^Message-Id: (<[^>]+>)/im.exec(message.body.toString('latin1'))?.[1] ?? '';
    counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  return counts;
}

/** Message-ID header of a stored message. */
async function messageIdOf(store: PostgresStore, queueId: string): Promise<string | undefined> {
  const body = await store.getMessageBody(queueId);
  return body === undefined ? undefined : /^Message-Id: (<[^>]+>)/im.exec(body.toString())?.[1];
}

/** Signs in to a node's admin pages with the API token and returns the page at `path`. */
async function adminPage(node: HeraldInstance, path: string): Promise<string> {
  const base = `http://127.0.0.1:${node.httpPort}`;
  const login = await fetch(`${base}/admin/login`, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ username: 'admin', password: API_TOKEN, next: path }).toString(),
    signal: AbortSignal.timeout(10_000),
  });
  expect(login.status).toBe(303);
  const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0]!;
  const response = await fetch(`${base}${path}`, {
    headers: { cookie },
    signal: AbortSignal.timeout(10_000),
  });
  expect(response.status).toBe(200);
  return response.text();
}

describe('two nodes on one database', () => {
  it('deliver mail accepted by either node once', async () => {
    const { url, a, b } = await startCluster();
    const [fromA, fromB] = await Promise.all([
      sendMessages(a.mxPort, 100),
      sendMessages(b.mxPort, 100),
    ]);
    expect(fromA.length).toBe(100);
    expect(fromB.length).toBe(100);

    const store = new PostgresStore({ url });
    try {
      expect(await waitForEmptyQueue(store, 60_000)).toBe(0);
      const counts = await store.countByStatus();
      expect(counts.delivered).toBe(200);
      expect(counts.failed).toBe(0);

      const arrived = arrivals();
      expect(sink.messages.length).toBe(200);
      expect(arrived.size).toBe(200);
      for (const queueId of [...fromA, ...fromB]) {
        const messageId = await messageIdOf(store, queueId);
        expect(messageId, queueId).toBeDefined();
        expect(arrived.get(messageId!), `${queueId} ${messageId}`).toBe(1);
      }
      for (const queueId of [...fromA, ...fromB]) {
        const [entry] = await store.listEntriesOfMessage(queueId);
        expect(entry?.attempts, queueId).toBe(1);
      }

      // Both nodes report to the store, and the CLI lists them from it.
      const listed = await runHerald(['cluster', 'nodes', '--json', '--config', a.configPath]);
      expect(listed.code, listed.stderr).toBe(0);
      const nodes = JSON.parse(listed.stdout) as Array<{
        name: string;
        alive: boolean;
        leasedEntries: number;
      }>;
      expect(nodes.map((node) => node.name.split(':')[0])).toEqual([
        'mx-a.herald.test',
        'mx-b.herald.test',
      ]);
      for (const node of nodes) {
        expect(node.alive, node.name).toBe(true);
        expect(node.leasedEntries, node.name).toBe(0);
      }

      // Each node's /metrics shows both nodes alive, read from the shared store.
      const metrics = await fetch(`http://127.0.0.1:${b.httpPort}/metrics`).then((r) => r.text());
      for (const node of nodes) {
        expect(metrics).toContain(`herald_node_up{node="${node.name}"} 1`);
        expect(metrics).toContain(`herald_node_leased_entries{node="${node.name}"} 0`);
      }

      // The admin pages of node A list both nodes as alive, and name node A as this one.
      const page = await adminPage(a, '/admin/nodes');
      for (const node of nodes) {
        const row = new RegExp(`<code>${node.name}</code>[^<]*</td>\\s*<td>alive</td>`);
        expect(page).toMatch(row);
      }
      expect(page).toContain(`<code>${nodes[0]!.name}</code> (this node)`);
    } finally {
      await store.close();
    }
  });

  it('deliver the work of a node killed mid-stream', async () => {
    const { url, a, b } = await startCluster();
    // A slow receiver keeps deliveries in flight, so node A holds leases when it dies.
    sink.reply.dataDelayMs = 100;
    const store = new PostgresStore({ url });
    try {
      let killed = false;
      let orphaned: number[] = [];
      const killA = async () => {
        a.child.kill('SIGKILL');
        await a.stop();
        const held = await postgres.query(
          `SELECT id FROM queue_entries WHERE status IN ('queued', 'deferred')
             AND lease_owner LIKE 'mx-a.herald.test:%'`,
          [],
          url,
        );
        orphaned = held.rows.map((row: { id: string }) => Number(row.id));
      };
      let killing: Promise<void> | undefined;
      const [fromA, fromB] = await Promise.all([
        sendMessages(a.mxPort, 300, (accepted) => {
          if (accepted >= 100 && !killed) {
            killed = true;
            killing = killA();
          }
        }),
        sendMessages(b.mxPort, 150),
      ]);
      await killing;
      expect(killed).toBe(true);
      expect(fromA.length).toBeGreaterThanOrEqual(100);
      expect(fromA.length).toBeLessThan(300);
      expect(fromB.length).toBe(150);
      expect(orphaned.length).toBeGreaterThan(0);

      expect(await waitForEmptyQueue(store, 60_000)).toBe(0);
      for (const entryId of orphaned) {
        expect((await store.getEntry(entryId))?.status, String(entryId)).toBe('delivered');
      }
      const arrived = arrivals();
      for (const queueId of [...fromA, ...fromB]) {
        const messageId = await messageIdOf(store, queueId);
        expect(messageId, queueId).toBeDefined();
        expect(arrived.get(messageId!) ?? 0, `${queueId} ${messageId}`).toBeGreaterThanOrEqual(1);
      }
    } finally {
      await store.close();
    }
  });
});
