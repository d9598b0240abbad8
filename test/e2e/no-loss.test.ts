/**
 * No loss across a crash: smtp-source sends 2,000 messages to a catch-all alias, and the server
 * is killed with SIGKILL in the middle of the stream and restarted on the same data directory.
 * Every message that received a 250 after DATA must then reach Postfix's smtp-sink. Messages are
 * matched by the Message-ID smtp-source writes into each one; duplicates are allowed (a
 * delivery cut off before its verdict was stored is delivered again), losses are not.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';

import { startDnsServer, type DnsServer } from '../helpers/dns-server.js';

import {
  freePort,
  makeDataDir,
  removeDataDir,
  runHerald,
  startHerald,
  writeConfig,
  type HeraldInstance,
} from './harness.js';
import { SMTP_SOURCE, startPostfixSink, type PostfixSink } from './peers.js';

const SINK_HOST = '127.0.0.24';
const MESSAGES = 2000;
/** The kill comes after this many messages were acknowledged. */
const KILL_AFTER = 700;

let dns: DnsServer;
let sink: PostfixSink;
let dataDir: string;
let herald: HeraldInstance | undefined;

/**
 * Settings that let one client send 2,000 messages quickly. The lease is the default 10
 * minutes: the restarted server must free the leases of the killed process itself instead of
 * waiting for them to run out.
 */
const settings = {
  limits: { commandsPerMinute: 1_000_000, maxConnectionsPerClient: 100 },
  delivery: { leaseTime: '10m', concurrency: 20 },
  log: { level: 'warn' },
};

beforeAll(async () => {
  dns = await startDnsServer({
    records: [
      { name: 'dest.test', type: 'MX', priority: 10, exchange: 'mx.dest.test' },
      { name: 'mx.dest.test', type: 'A', address: SINK_HOST },
    ],
  });
  sink = await startPostfixSink(SINK_HOST, await freePort(SINK_HOST));
  dataDir = makeDataDir();
  const { configPath } = await writeConfig(dataDir, {
    dnsAddress: dns.address,
    deliveryPort: sink.port,
    settings,
  });
  for (const step of [
    ['domain', 'add', 'load.test'],
    ['alias', 'add', '*@load.test', 'inbox@dest.test'],
  ]) {
    const result = await runHerald([...step, '--config', configPath]);
    expect(result.code, result.stderr).toBe(0);
  }
});

afterAll(async () => {
  await herald?.stop('SIGKILL');
  await sink?.close();
  await dns?.close();
  if (dataDir) removeDataDir(dataDir);
});

/**
 * Runs smtp-source verbosely and counts end-of-data 250 replies (the reply to the line `.`).
 * Calls `onAccepted` with the running count; resolves with the queue ids of accepted messages.
 */
function runSmtpSource(port: number, onAccepted: (count: number) => void) {
  return new Promise<{ accepted: number; queueIds: string[] }>((resolveRun) => {
    const child = spawn(
      SMTP_SOURCE,
      [
        '-v',
        '-s',
        '10',
        '-m',
        String(MESSAGES),
        '-N',
        '-f',
        'sender@author.test',
        '-t',
        'user@load.test',
        '-M',
        'client.author.test',
        `127.0.0.1:${port}`,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let accepted = 0;
    const queueIds: string[] = [];
    let partial = '';
    // smtp-source logs on stderr; a reply to end of data is the only 250 with "queued".
    child.stderr.on('data', (chunk: Buffer) => {
      const lines = (partial + chunk.toString('latin1')).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        const match = /<<< 250 .*queued(?: as ([A-Za-z0-9]+))?/i.exec(line);
        if (!match) continue;
        accepted++;
        if (match[1]) queueIds.push(match[1]);
        onAccepted(accepted);
      }
    });
    child.once('exit', () => resolveRun({ accepted, queueIds }));
  });
}

describe('crash safety', () => {
  it('delivers every acknowledged message after SIGKILL and restart', async () => {
    herald = await startHerald({
      dnsAddress: dns.address,
      deliveryPort: sink.port,
      dataDir,
      settings,
    });
    const first = herald;
    let killed = false;
    const result = await runSmtpSource(first.mxPort, (count) => {
      if (count >= KILL_AFTER && !killed) {
        killed = true;
        first.child.kill('SIGKILL');
      }
    });
    expect(killed).toBe(true);
    expect(await first.stop()).toBe('SIGKILL');
    expect(result.accepted).toBeGreaterThanOrEqual(KILL_AFTER);
    expect(result.accepted).toBeLessThan(MESSAGES);

    // The restart resumes the queue from the same data directory.
    herald = await startHerald({
      dnsAddress: dns.address,
      deliveryPort: sink.port,
      dataDir,
      settings,
    });
    const restarted = herald;

    // Every acknowledged message is in the store and reaches the sink.
    const deadline = Date.now() + 90_000;
    let pending = Infinity;
    while (Date.now() < deadline) {
      const counts = await restarted.api('GET', '/api/queue?status=queued&limit=5000');
      const deferred = await restarted.api('GET', '/api/queue?status=deferred&limit=5000');
      pending = (counts.body as unknown[]).length + (deferred.body as unknown[]).length;
      if (pending === 0) break;
      await new Promise((resolveWait) => setTimeout(resolveWait, 500));
    }
    expect(pending).toBe(0);

    const delivered = await restarted.api('GET', '/api/queue?status=delivered&limit=5000');
    const deliveredIds = new Set(
      (delivered.body as Array<{ messageId: string }>).map((e) => e.messageId),
    );
    expect(deliveredIds.size).toBeGreaterThanOrEqual(result.accepted);
    for (const queueId of result.queueIds) expect(deliveredIds.has(queueId), queueId).toBe(true);

    // Match the sink's dumps to the stored messages by the Message-ID smtp-source wrote.
    const sinkIds = new Set(
      sink.messages().map((dump) => /^Message-Id: (<[^>]+>)/im.exec(dump)?.[1] ?? ''),
    );
    sinkIds.delete('');
    expect(sinkIds.size).toBeGreaterThanOrEqual(result.accepted);
    for (const queueId of deliveredIds) {
      const shown = await restarted.api('GET', `/api/queue/${queueId}?body=1`);
      const messageId = /^Message-Id: (<[^>]+>)/im.exec(String(shown.body.body))?.[1];
      expect(messageId, `Message-Id of ${queueId}`).toBeDefined();
      expect(sinkIds.has(messageId!), `${queueId} ${messageId} at the sink`).toBe(true);
    }
  });
});
