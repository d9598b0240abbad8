/**
 * Campaign throughput and memory: a campaign to a list of N recipients (100,000 by default)
 * rendered, signed with RSA-2048 through the DKIM signing pool and delivered by the delivery
 * workers to Postfix's `smtp-sink` on loopback, against the raw RSA-2048 signing rate of every
 * core together, measured in the same run. A streamed CSV import of M rows (1,000,000 by
 * default) runs first. Peak resident memory is sampled every 50 ms in each phase.
 *
 *   npm run build && npx tsx bench/campaign.ts [recipients] [import-rows]
 *
 * The import, the campaign and the stage measurements each run in a fresh child `node`
 * process on the compiled code in `dist/`, as `herald serve` runs it, so no TypeScript loader
 * sits in the measured process or in its worker threads. This process keeps the DNS server and
 * `smtp-sink`, as a real resolver and receiver would be outside Herald. Build first: the
 * children load whatever `dist/` holds. `CAMPAIGN_NODE_FLAGS` adds flags to the children's
 * `node` command, for example `--cpu-prof --cpu-prof-dir=/tmp/prof`, and `CAMPAIGN_DIST` points
 * the children at another build (an older commit's, to compare).
 *
 * The stage measurements take up to 20,000 recipients through one stage at a time (compose,
 * sign, enqueue, deliver), so the report shows which stage limits the whole.
 *
 * The raw rate is `crypto.sign('sha256', ...)` of a 200-byte input in one worker thread per
 * core for 3 seconds, measured before and after the campaign; the report uses the median.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { availableParallelism, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';

import { startDnsServer } from '../test/helpers/dns-server.js';

const RECIPIENTS = Number(process.argv[2] ?? 100_000);
const IMPORT_ROWS = Number(process.argv[3] ?? 1_000_000);
const CORES = availableParallelism();
const SINK_ADDRESS = '127.0.0.51';
/** The compiled code the children run: `dist/`, or the folder `CAMPAIGN_DIST` names. */
const DIST = process.env.CAMPAIGN_DIST
  ? pathToFileURL(`${path.resolve(process.env.CAMPAIGN_DIST)}/`)
  : new URL('../dist/', import.meta.url);

/** Input of a child process, passed as JSON in the environment. */
interface ChildInput {
  mode: 'import' | 'campaign' | 'stages';
  dist: string;
  recipients: number;
  importRows: number;
  cores: number;
  privateKeyPem: string;
  dnsServer: string;
  sinkPort: number;
}

interface Peak {
  peakMiB: number;
  heapMiB: number;
  externalMiB: number;
}

interface ImportResult {
  seconds: number;
  imported: number;
  peak: Peak;
}

interface CampaignResult {
  queuedSeconds: number;
  deliveredSeconds: number;
  peak: Peak;
  /** Resident memory just before the send starts, with the list, workers and pool set up. */
  baselineMiB: number;
  /** Attempts deferred (and retried a second later) on the way. */
  deferred: number;
  /** The queue store's group commit counters at the end. */
  commits: number;
  writes: number;
}

/** Messages per second of each stage run on its own. */
interface StageResult {
  messages: number;
  compose: number;
  sign: number;
  enqueue: number;
  deliver: number;
}

type ChildResult = ImportResult | CampaignResult | StageResult;

/**
 * Runs one measured part in a child process, as plain JavaScript under `node`. The parent
 * sends this function's source text, so it uses nothing but its argument, Node's built-in
 * modules and the compiled modules under `input.dist`. The child reports through
 * `process.send`.
 */
async function childMain(input: ChildInput): Promise<ChildResult> {
  const { createPrivateKey } = await import('node:crypto');
  const { mkdtempSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const path = await import('node:path');
  const { Readable } = await import('node:stream');
  const load = (file: string): Promise<unknown> => import(new URL(file, input.dist).href);
  const { startDeliveryWorkers } = (await load(
    'delivery/index.js',
  )) as typeof import('../src/delivery/index.js');
  const { createSigningPool } = (await load(
    'dkim/index.js',
  )) as typeof import('../src/dkim/index.js');
  const { FeedbackRecorder } = (await load(
    'distribution/feedback.js',
  )) as typeof import('../src/distribution/feedback.js');
  const { CampaignSender } = (await load(
    'distribution/sender.js',
  )) as typeof import('../src/distribution/sender.js');
  const { ADMIN, DistributionService } = (await load(
    'distribution/service.js',
  )) as typeof import('../src/distribution/service.js');
  const { DEFAULT_DISTRIBUTION_SETTINGS } = (await load(
    'distribution/settings.js',
  )) as typeof import('../src/distribution/settings.js');
  const { Resolver } = (await load('dns/index.js')) as typeof import('../src/dns/index.js');
  const { createLogger } = (await load('log/index.js')) as typeof import('../src/log/index.js');
  const { openSqliteDistributionStore } = (await load(
    'store/distribution-sqlite.js',
  )) as typeof import('../src/store/distribution-sqlite.js');
  const { openStore } = (await load('store/index.js')) as typeof import('../src/store/index.js');

  const mib = (bytes: number): number => bytes / 1024 / 1024;
  const seconds = (since: bigint): number => Number(process.hrtime.bigint() - since) / 1e9;

  /** Samples the resident set size until stopped, and the main thread's heap at the peak. */
  function startRssSampler(): () => Peak {
    let peak = process.memoryUsage();
    const sample = (): void => {
      const now = process.memoryUsage();
      if (now.rss > peak.rss) peak = now;
    };
    const timer = setInterval(sample, 50);
    return () => {
      clearInterval(timer);
      sample();
      return {
        peakMiB: mib(peak.rss),
        heapMiB: mib(peak.heapUsed),
        externalMiB: mib(peak.external),
      };
    };
  }

  const dir = mkdtempSync(path.join(tmpdir(), `herald-bench-${input.mode}-`));
  const file = path.join(dir, 'herald.db');
  const store = await openStore({ url: `sqlite:${file}` });
  const distribution = await openSqliteDistributionStore(file);
  const cleanups: Array<() => Promise<void>> = [];
  try {
    if (input.mode === 'import') {
      const service = new DistributionService({ store, distribution });
      const organisation = await service.createOrganisation(ADMIN, 'Import');
      const list = await service.createList(ADMIN, organisation.id, 'Big');
      const rows = input.importRows;
      function* csv(): Generator<string> {
        yield 'email,first_name,last_name,city\n';
        for (let start = 0; start < rows; start += 1000) {
          let chunk = '';
          const end = Math.min(rows, start + 1000);
          for (let i = start; i < end; i++)
            chunk += `user${i}@example${i % 97}.test,First${i},Last${i},City${i % 500}\n`;
          yield chunk;
        }
      }
      const sample = startRssSampler();
      const started = process.hrtime.bigint();
      const summary = await service.importCsv(ADMIN, list.id, Readable.from(csv()));
      return { seconds: seconds(started), imported: summary.imported, peak: sample() };
    }

    const pool = createSigningPool({ size: input.cores });
    cleanups.push(() => pool.close());
    const privateKey = createPrivateKey(input.privateKeyPem);
    const domain = 'news.bench.test';
    const selector = 'bench';
    await store.addDomain(domain);

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
    const count = input.mode === 'campaign' ? input.recipients : Math.min(input.recipients, 20_000);
    for (let start = 0; start < count; start += 5000) {
      const rows = Array.from({ length: Math.min(5000, count - start) }, (_, i) => ({
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
    let expected = count;
    let finish: () => void = () => undefined;
    const startWorkers = (): ReturnType<typeof startDeliveryWorkers> =>
      startDeliveryWorkers({
        store,
        // The resolver's replies come from the parent process, which may be descheduled on a
        // busy machine, so a long timeout and quick retries keep that out of the rate.
        resolver: new Resolver({ servers: [input.dnsServer], timeoutMs: 10_000 }),
        logger: createLogger({ level: 'silent' }),
        maxSleepMs: 500,
        config: {
          hostname: 'herald.bench.test',
          delivery: {
            port: input.sinkPort,
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
          if (delivered + failed === expected) finish();
        },
      });

    if (input.mode === 'stages') {
      const context = await sender.prepare(campaign);
      const subscribers = (
        await distribution.pageSubscribers(list.id, {
          afterId: 0,
          limit: count,
          status: 'subscribed',
        })
      ).subscribers;
      const batch = settings.batchSize;

      let started = process.hrtime.bigint();
      const composed = subscribers.map((subscriber) => sender.preview(context, subscriber));
      const compose = count / seconds(started);

      // Two batches in flight, as the sender keeps one signing while it composes the next.
      started = process.hrtime.bigint();
      const signed: Buffer[] = [];
      let ahead: Promise<Buffer[]> | undefined;
      for (let start = 0; start <= composed.length; start += batch) {
        const next =
          start < composed.length
            ? pool.signBatch(composed.slice(start, start + batch), {
                signatures: context.signatures,
              })
            : undefined;
        if (ahead) signed.push(...(await ahead));
        ahead = next;
      }
      const sign = count / seconds(started);

      started = process.hrtime.bigint();
      for (let start = 0; start < signed.length; start += batch) {
        await Promise.all(
          signed.slice(start, start + batch).map((body, index) => {
            const recipient = subscribers[start + index]!.address;
            const sender = `bounce+${start + index}@${domain}`;
            return store.enqueue({
              body,
              origin: 'campaign',
              originalSender: sender,
              recipients: [{ recipient, sender, bounceTo: '' }],
            });
          }),
        );
      }
      const enqueue = count / seconds(started);

      const done = new Promise<void>((resolve) => (finish = resolve));
      started = process.hrtime.bigint();
      const workers = startWorkers();
      await done;
      const deliver = count / seconds(started);
      await workers.stop();
      if (failed > 0) throw new Error(`${failed} of ${count} deliveries did not succeed`);
      return { messages: count, compose, sign, enqueue, deliver };
    }

    const done = new Promise<void>((resolve) => (finish = resolve));
    expected = count;
    const workers = startWorkers();
    notify = () => workers.notify();
    const baselineMiB = mib(process.memoryUsage().rss);
    const sample = startRssSampler();
    const started = process.hrtime.bigint();
    await service.send(ADMIN, campaign.id);
    const result = await sender.run(campaign.id);
    const queuedSeconds = seconds(started);
    await done;
    const deliveredSeconds = seconds(started);
    const peak = sample();
    await workers.stop();
    if (result.status !== 'sent') throw new Error(`campaign ended ${result.status}`);
    if (failed > 0) throw new Error(`${failed} of ${count} deliveries did not succeed`);
    const stats = (store as { stats?: { commits: number; writes: number } }).stats;
    return {
      queuedSeconds,
      deliveredSeconds,
      peak,
      baselineMiB,
      deferred,
      commits: stats?.commits ?? 0,
      writes: stats?.writes ?? 0,
    };
  } finally {
    for (const cleanup of cleanups) await cleanup();
    await distribution.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Runs `childMain` in a fresh `node` process, from a temporary `.mjs` file that contains its
 * source text. A function compiled by tsx calls esbuild's `__name` helper to keep function
 * names, so the file defines it as a no-op.
 */
async function runChild<T extends ChildResult>(input: ChildInput): Promise<T> {
  const dir = mkdtempSync(path.join(tmpdir(), 'herald-bench-child-'));
  const script = path.join(dir, `${input.mode}.mjs`);
  writeFileSync(
    script,
    'const __name = (target) => target;\n' +
      `const result = await (${childMain.toString()})(JSON.parse(process.env.HERALD_BENCH_INPUT));\n` +
      'process.send(result, () => process.exit(0));\n',
  );
  const flags = (process.env.CAMPAIGN_NODE_FLAGS ?? '').split(/\s+/).filter(Boolean);
  const child = spawn(process.execPath, [...flags, script], {
    env: { ...process.env, HERALD_BENCH_INPUT: JSON.stringify(input) },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  try {
    return await new Promise<T>((resolve, reject) => {
      let result: T | undefined;
      child.on('message', (message) => (result = message as T));
      child.on('error', reject);
      child.on('exit', (code) => {
        if (code === 0 && result !== undefined) resolve(result);
        else reject(new Error(`the ${input.mode} child process exited with code ${code}`));
      });
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
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

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

function describePeak(peak: Peak): string {
  return (
    `peak RSS ${peak.peakMiB.toFixed(0)} MiB (main-thread heap ${peak.heapMiB.toFixed(0)} MiB, ` +
    `external ${peak.externalMiB.toFixed(0)} MiB at the peak)`
  );
}

async function main(): Promise<void> {
  if (!existsSync(fileURLToPath(new URL('distribution/sender.js', DIST)))) {
    throw new Error('dist/ has no compiled code; run `npm run build` first');
  }
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pem = privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
  console.log(`cores: ${CORES}, recipients: ${RECIPIENTS}, import rows: ${IMPORT_ROWS}`);

  const port = await freePort(SINK_ADDRESS);
  const sink = await startSmtpSink(port);
  const dns = await startDnsServer({
    records: [
      { name: 'list.bench.test', type: 'MX', priority: 10, exchange: 'mx.list.bench.test' },
      { name: 'mx.list.bench.test', type: 'A', address: SINK_ADDRESS },
      {
        name: 'bench._domainkey.news.bench.test',
        type: 'TXT',
        value: `v=DKIM1; k=rsa; p=${publicKey.export({ format: 'der', type: 'spki' }).toString('base64')}`,
      },
    ],
  });
  const input: ChildInput = {
    mode: 'import',
    dist: DIST.href,
    recipients: RECIPIENTS,
    importRows: IMPORT_ROWS,
    cores: CORES,
    privateKeyPem: pem,
    dnsServer: dns.address,
    sinkPort: port,
  };
  try {
    if (IMPORT_ROWS > 0) {
      const imported = await runChild<ImportResult>({ ...input, mode: 'import' });
      console.log(
        `import: ${imported.imported} rows in ${imported.seconds.toFixed(1)} s ` +
          `(${(imported.imported / imported.seconds).toFixed(0)} rows/s), ${describePeak(imported.peak)}`,
      );
    }

    const before = await rawSignRate(pem);
    console.log(`raw RSA-2048 sign rate, all cores (before): ${before.toFixed(0)}/s`);
    const campaign = await runChild<CampaignResult>({ ...input, mode: 'campaign' });
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
      `campaign ${describePeak(campaign.peak)}, ${campaign.baselineMiB.toFixed(0)} MiB before the send; ` +
        `deferred attempts: ${campaign.deferred}; queue commits: ${campaign.commits} ` +
        `for ${campaign.writes} grouped writes`,
    );

    const stages = await runChild<StageResult>({ ...input, mode: 'stages' });
    const rate = (value: number): string =>
      `${value.toFixed(0)}/s (${((value / raw) * 100).toFixed(0)}% of raw)`;
    console.log(
      `stages, ${stages.messages} messages each, one at a time: compose ${rate(stages.compose)}, ` +
        `sign ${rate(stages.sign)}, enqueue ${rate(stages.enqueue)}, deliver ${rate(stages.deliver)}`,
    );
  } finally {
    await dns.close();
    sink.kill();
  }
}

await main();
