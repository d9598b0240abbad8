/**
 * Delivery throughput: how fast the delivery workers drain a SQLite queue into Postfix's
 * `smtp-sink` on loopback, with connection reuse (the default) and with a new connection for
 * every message (`maxTransactions: 1`), measured side by side in alternating rounds.
 *
 *   npx tsx bench/delivery.ts [messages] [rounds]
 *
 * Each round enqueues the messages first (one recipient each, one destination domain), then
 * starts the workers and times until every entry is delivered. Every delivery is committed to
 * the store with `synchronous = FULL`, as in production.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { startDnsServer } from '../test/helpers/dns-server.js';
import { Resolver } from '../src/dns/index.js';
import { startDeliveryWorkers, type DeliveryWorkerOptions } from '../src/delivery/index.js';
import { createLogger } from '../src/log/index.js';
import { openStore } from '../src/store/index.js';

const MESSAGES = Number(process.argv[2] ?? 2_000);
const ROUNDS = Number(process.argv[3] ?? 3);
const SINK_ADDRESS = '127.0.0.21';
const SMTP_SINK = '/usr/sbin/smtp-sink';

const body = Buffer.from(
  'From: Bench <bench@origin.test>\r\nTo: someone@bench.test\r\nSubject: delivery bench\r\n' +
    'Message-ID: <bench@origin.test>\r\n\r\n' +
    'A line of text that stands for the body of a small message.\r\n'.repeat(40),
);

interface Variant {
  name: string;
  pool: DeliveryWorkerOptions['pool'];
}

const variants: Variant[] = [
  { name: 'connection reuse (default)', pool: undefined },
  { name: 'new connection per message', pool: { maxTransactions: 1 } },
];

async function freePort(host: string): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function startSmtpSink(port: number): Promise<ChildProcess> {
  const args = ['-u', 'nobody', `${SINK_ADDRESS}:${port}`, '256'];
  const child = spawn(SMTP_SINK, args, { stdio: 'ignore' });
  // smtp-sink prints nothing when ready: poll the port, for at most five seconds.
  for (let i = 0; i < 100; i++) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, SINK_ADDRESS, () => {
        socket.destroy();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
    if (open) return child;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  child.kill();
  throw new Error(`smtp-sink did not listen on ${SINK_ADDRESS}:${port} within 5 s`);
}

async function runRound(variant: Variant, port: number, dnsAddress: string): Promise<number> {
  const dir = mkdtempSync(path.join(tmpdir(), 'herald-bench-delivery-'));
  const store = await openStore({ url: `sqlite:${path.join(dir, 'queue.sqlite')}` });
  try {
    for (let sent = 0; sent < MESSAGES; sent += 100) {
      const batch = Array.from({ length: Math.min(100, MESSAGES - sent) }, (_, i) =>
        store.enqueue({
          body,
          origin: 'submission',
          originalSender: 'bench@origin.test',
          recipients: [
            {
              recipient: `user${sent + i}@bench.test`,
              sender: 'bench@origin.test',
              bounceTo: 'bench@origin.test',
            },
          ],
        }),
      );
      await Promise.all(batch);
    }

    let delivered = 0;
    let failed = 0;
    let finish: () => void = () => undefined;
    const done = new Promise<void>((resolve) => (finish = resolve));
    const started = process.hrtime.bigint();
    const workers = startDeliveryWorkers({
      store,
      resolver: new Resolver({ servers: [dnsAddress], timeoutMs: 2_000 }),
      logger: createLogger({ level: 'silent' }),
      pool: variant.pool,
      config: {
        hostname: 'herald.bench.test',
        delivery: {
          port,
          concurrency: 20,
          perDomainConcurrency: 20,
          perDomainRatePerMinute: 0,
          requireTls: [],
          retrySchedule: { initialDelay: 300_000, factor: 2, maxDelay: 14_400_000 },
          maxQueueLifetime: 432_000_000,
          connectTimeout: 5_000,
          leaseTime: 600_000,
          retainFinished: 604_800_000,
        },
      },
      onOutcome: (_entry, outcome) => {
        if (outcome.status === 'delivered') delivered++;
        else failed++;
        if (delivered + failed === MESSAGES) finish();
      },
    });
    await done;
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    await workers.stop();
    if (failed > 0) throw new Error(`${failed} of ${MESSAGES} deliveries did not succeed`);
    return MESSAGES / seconds;
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

async function main(): Promise<void> {
  const port = await freePort(SINK_ADDRESS);
  const sink = await startSmtpSink(port);
  const dns = await startDnsServer({
    records: [
      { name: 'bench.test', type: 'MX', priority: 10, exchange: 'mx.bench.test' },
      { name: 'mx.bench.test', type: 'A', address: SINK_ADDRESS },
    ],
  });
  const rates = new Map<string, number[]>(variants.map((variant) => [variant.name, []]));
  const ratios: number[] = [];
  try {
    for (let round = 0; round < ROUNDS; round++) {
      const roundRates: number[] = [];
      for (const variant of variants) {
        const rate = await runRound(variant, port, dns.address);
        rates.get(variant.name)!.push(rate);
        roundRates.push(rate);
        console.error(`round ${round + 1}: ${variant.name}: ${rate.toFixed(0)} messages/s`);
      }
      ratios.push(roundRates[0]! / roundRates[1]!);
    }
  } finally {
    sink.kill();
    await dns.close();
  }

  console.log(`${MESSAGES} messages per round, ${ROUNDS} rounds, Node ${process.version}`);
  console.log('| case | messages/s (median) |');
  console.log('| --- | ---: |');
  for (const variant of variants) {
    console.log(`| ${variant.name} | ${median(rates.get(variant.name)!).toFixed(0)} |`);
  }
  console.log(`reuse / new connection, median of per-round ratios: ${median(ratios).toFixed(2)}`);
}

await main();
