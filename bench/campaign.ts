/**
 * Campaign throughput and memory: a campaign to a list of N recipients (100,000 by default)
 * rendered, signed with RSA-2048 through the DKIM signing pool and delivered by the delivery
 * workers to Postfix's `smtp-sink` on loopback, against the raw RSA-2048 signing rate of every
 * core together, measured in the same run. A streamed CSV import of M rows (1,000,000 by
 * default) runs first, so that its memory figure starts from a fresh process. Peak resident
 * memory is sampled every 50 ms in each phase.
 *
 *   npx tsx bench/campaign.ts [recipients] [import-rows]
 *
 * The raw rate is `crypto.sign('sha256', ...)` of a 200-byte input in one worker thread per
 * core for 3 seconds, measured before and after the campaign; the report uses the median.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { availableParallelism, tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { Worker } from 'node:worker_threads';

import { startDeliveryWorkers } from '../src/delivery/index.js';
import { createSigningPool, dkimRecordValue } from '../src/dkim/index.js';
import { FeedbackRecorder } from '../src/distribution/feedback.js';
import { CampaignSender } from '../src/distribution/sender.js';
import { ADMIN, DistributionService } from '../src/distribution/service.js';
import { DEFAULT_DISTRIBUTION_SETTINGS } from '../src/distribution/settings.js';
import { Resolver } from '../src/dns/index.js';
import { createLogger } from '../src/log/index.js';
import { openSqliteDistributionStore } from '../src/store/distribution-sqlite.js';
import { openStore } from '../src/store/index.js';
import { startDnsServer } from '../test/helpers/dns-server.js';

const RECIPIENTS = Number(process.argv[2] ?? 100_000);
const IMPORT_ROWS = Number(process.argv[3] ?? 1_000_000);
const CORES = availableParallelism();
const SINK_ADDRESS = '127.0.0.51';

/**
 * Samples the resident set size until stopped; returns the peak in MiB and, at that peak, the
 * V8 heap in use and the memory outside it (Buffers, SQLite), to show where the peak comes from.
 */
function startRssSampler(): () => { peakMiB: number; heapMiB: number; externalMiB: number } {
  let peak = process.memoryUsage();
  const sample = (): void => {
    const now = process.memoryUsage();
    if (now.rss > peak.rss) peak = now;
  };
  const timer = setInterval(sample, 50);
  return () => {
    clearInterval(timer);
    sample();
    const mib = (bytes: number): number => bytes / 1024 / 1024;
    return { peakMiB: mib(peak.rss), heapMiB: mib(peak.heapUsed), externalMiB: mib(peak.external) };
  };
}

const SIGN_WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const { createPrivateKey, sign } = require('node:crypto');
const key = createPrivateKey(workerData.pem);
const data = Buffer.alloc(200, 7);
const end = Date.now() + workerData.ms;
let count = 0;
while (Date.now() < end) { sign('sha256', data, key); count++; }
parentPort.postMessage(count);
`;

/** RSA-2048 signatures per second with one worker thread per core. */
async function rawSignRate(pem: string, ms = 3000): Promise<number> {
  const counts = await Promise.all(
    Array.from(
      { length: CORES },
      () =>
        new Promise<number>((resolve, reject) => {
          const worker = new Worker(SIGN_WORKER, { eval: true, workerData: { pem, ms } });
          worker.once('message', (count: number) => resolve(count));
          worker.once('error', reject);
        }),
    ),
  );
  return (counts.reduce((sum, count) => sum + count, 0) * 1000) / ms;
}

async function freePort(host: string): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function startSmtpSink(port: number): Promise<ChildProcess> {
  const child = spawn('/usr/sbin/smtp-sink', ['-u', 'nobody', `${SINK_ADDRESS}:${port}`, '256'], {
    stdio: 'ignore',
  });
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

interface CampaignResult {
  queuedSeconds: number;
  deliveredSeconds: number;
  peakMiB: number;
  heapMiB: number;
  externalMiB: number;
  /** Resident memory just before the send starts, with the list, workers and pool set up. */
  baselineMiB: number;
  /** Attempts deferred (and retried a second later) on the way. */
  deferred: number;
}

async function runCampaign(privateKeyPem: string): Promise<CampaignResult> {
  const dir = mkdtempSync(path.join(tmpdir(), 'herald-bench-campaign-'));
  const file = path.join(dir, 'herald.db');
  const port = await freePort(SINK_ADDRESS);
  const sink = await startSmtpSink(port);
  const store = await openStore({ url: `sqlite:${file}` });
  const distribution = await openSqliteDistributionStore(file);
  const pool = createSigningPool({ size: CORES });
  try {
    const { createPrivateKey } = await import('node:crypto');
    const privateKey = createPrivateKey(privateKeyPem);
    const domain = 'news.bench.test';
    const selector = 'bench';
    await store.addDomain(domain);
    const dns = await startDnsServer({
      records: [
        { name: 'list.bench.test', type: 'MX', priority: 10, exchange: 'mx.list.bench.test' },
        { name: 'mx.list.bench.test', type: 'A', address: SINK_ADDRESS },
        {
          name: `${selector}._domainkey.${domain}`,
          type: 'TXT',
          value: dkimRecordValue(privateKey),
        },
      ],
    });

    const settings = { ...DEFAULT_DISTRIBUTION_SETTINGS, batchSize: 500 };
    const recorder = new FeedbackRecorder(distribution, settings.softBounceThreshold);
    let notify = (): void => undefined;
    const sender = new CampaignSender({
      store,
      distribution,
      signer: pool,
      keys: { signaturesFor: () => [{ domain, selector, privateKey }] },
      settings,
      recorder,
      notify: () => notify(),
    });
    const service = new DistributionService({ store, distribution, sender });
    const organisation = await service.createOrganisation(ADMIN, 'Bench');
    await service.assignDomain(ADMIN, organisation.id, domain);
    const list = await service.createList(ADMIN, organisation.id, 'Everyone');
    for (let start = 0; start < RECIPIENTS; start += 5000) {
      const rows = Array.from({ length: Math.min(5000, RECIPIENTS - start) }, (_, i) => ({
        address: `member${start + i}@list.bench.test`,
        name: `Member ${start + i}`,
        fields: { city: 'Oslo' },
      }));
      await distribution.addSubscribers(list.id, rows);
    }
    const campaign = await service.createCampaign(ADMIN, {
      organisationId: organisation.id,
      listId: list.id,
      name: 'bench',
      fromAddress: 'Bench <news@news.bench.test>',
      subject: 'News for {{first_name|member}}',
      html:
        '<h1>News</h1>' +
        '<p>Hello {{first_name}} in {{city}}, here is what happened this month.</p>'.repeat(20) +
        '<p><a href="{{unsubscribe_url}}">Unsubscribe</a></p>',
    });

    let delivered = 0;
    let failed = 0;
    let deferred = 0;
    let finish: () => void = () => undefined;
    const done = new Promise<void>((resolve) => (finish = resolve));
    const workers = startDeliveryWorkers({
      store,
      // The DNS server runs in this process, whose thread is busy composing and committing,
      // so its replies can be late: a long timeout and quick retries keep that out of the rate.
      resolver: new Resolver({ servers: [dns.address], timeoutMs: 10_000 }),
      logger: createLogger({ level: 'silent' }),
      maxSleepMs: 500,
      config: {
        hostname: 'herald.bench.test',
        delivery: {
          port,
          concurrency: 20,
          perDomainConcurrency: 20,
          perDomainRatePerMinute: 0,
          requireTls: [],
          retrySchedule: { initialDelay: 1_000, factor: 1, maxDelay: 1_000 },
          maxQueueLifetime: 432_000_000,
          connectTimeout: 10_000,
          leaseTime: 600_000,
          retainFinished: 604_800_000,
        },
      },
      onOutcome: (_entry, outcome) => {
        if (outcome.status === 'delivered') delivered++;
        else if (outcome.status === 'failed') failed++;
        else deferred++;
        if (delivered + failed === RECIPIENTS) finish();
      },
    });
    notify = () => workers.notify();

    const baselineMiB = process.memoryUsage().rss / 1024 / 1024;
    const sample = startRssSampler();
    const started = process.hrtime.bigint();
    await service.send(ADMIN, campaign.id);
    const result = await sender.run(campaign.id);
    const queuedSeconds = Number(process.hrtime.bigint() - started) / 1e9;
    await done;
    const deliveredSeconds = Number(process.hrtime.bigint() - started) / 1e9;
    const { peakMiB, heapMiB, externalMiB } = sample();
    await workers.stop();
    await dns.close();
    if (result.status !== 'sent') throw new Error(`campaign ended ${result.status}`);
    if (failed > 0) throw new Error(`${failed} of ${RECIPIENTS} deliveries did not succeed`);
    return {
      queuedSeconds,
      deliveredSeconds,
      peakMiB,
      heapMiB,
      externalMiB,
      baselineMiB,
      deferred,
    };
  } finally {
    await pool.close();
    await distribution.close();
    await store.close();
    sink.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function runImport(): Promise<{ seconds: number; peakMiB: number; imported: number }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'herald-bench-import-'));
  const file = path.join(dir, 'herald.db');
  const store = await openStore({ url: `sqlite:${file}` });
  const distribution = await openSqliteDistributionStore(file);
  try {
    const service = new DistributionService({ store, distribution });
    const organisation = await service.createOrganisation(ADMIN, 'Import');
    const list = await service.createList(ADMIN, organisation.id, 'Big');
    function* csv(): Generator<string> {
      yield 'email,first_name,last_name,city\n';
      for (let start = 0; start < IMPORT_ROWS; start += 1000) {
        let chunk = '';
        const end = Math.min(IMPORT_ROWS, start + 1000);
        for (let i = start; i < end; i++)
          chunk += `user${i}@example${i % 97}.test,First${i},Last${i},City${i % 500}\n`;
        yield chunk;
      }
    }
    const sample = startRssSampler();
    const started = process.hrtime.bigint();
    const summary = await service.importCsv(ADMIN, list.id, Readable.from(csv()));
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    return { seconds, peakMiB: sample().peakMiB, imported: summary.imported };
  } finally {
    await distribution.close();
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
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pem = privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
  console.log(`cores: ${CORES}, recipients: ${RECIPIENTS}, import rows: ${IMPORT_ROWS}`);

  if (IMPORT_ROWS > 0) {
    const imported = await runImport();
    console.log(
      `import: ${imported.imported} rows in ${imported.seconds.toFixed(1)} s ` +
        `(${(imported.imported / imported.seconds).toFixed(0)} rows/s), peak RSS ${imported.peakMiB.toFixed(0)} MiB`,
    );
  }

  const before = await rawSignRate(pem);
  console.log(`raw RSA-2048 sign rate, all cores (before): ${before.toFixed(0)}/s`);
  const campaign = await runCampaign(pem);
  const after = await rawSignRate(pem);
  console.log(`raw RSA-2048 sign rate, all cores (after):  ${after.toFixed(0)}/s`);
  const raw = median([before, after]);

  const queuedRate = RECIPIENTS / campaign.queuedSeconds;
  const deliveredRate = RECIPIENTS / campaign.deliveredSeconds;
  console.log(
    `campaign: ${RECIPIENTS} queued in ${campaign.queuedSeconds.toFixed(1)} s (${queuedRate.toFixed(0)}/s), ` +
      `delivered in ${campaign.deliveredSeconds.toFixed(1)} s (${deliveredRate.toFixed(0)}/s)`,
  );
  console.log(`delivered rate / raw sign rate: ${((deliveredRate / raw) * 100).toFixed(1)}%`);
  console.log(`queued rate / raw sign rate:    ${((queuedRate / raw) * 100).toFixed(1)}%`);
  console.log(
    `campaign peak RSS: ${campaign.peakMiB.toFixed(0)} MiB ` +
      `(${campaign.baselineMiB.toFixed(0)} MiB before the send; main-thread heap ${campaign.heapMiB.toFixed(0)} MiB, ` +
      `external ${campaign.externalMiB.toFixed(0)} MiB at the peak), deferred attempts: ${campaign.deferred}`,
  );
}

await main();
