/**
 * Relay and campaign throughput with one node on SQLite, one node on PostgreSQL and two nodes
 * on one PostgreSQL database, side by side in one run, on loopback:
 *
 *   relay:    smtp-source -> MX of each node -> catch-all alias -> SRS sender -> smtp-sink
 *   campaign: a list in the store -> each node's scheduler claims batches, renders, signs
 *             with RSA-2048, queues -> delivery workers of every node -> smtp-sink
 *
 * Both stores accept durably: SQLite with `synchronous = FULL`, PostgreSQL with fsync and
 * `synchronous_commit = on` (the private cluster of `test/helpers/postgres.ts`). With two
 * nodes, smtp-source sends half of the messages to each node, and both nodes deliver from the
 * shared queue. A relay run's time starts with the first connection and ends when Postfix's
 * smtp-sink has counted every message. A campaign run starts with the send call to the first
 * node's REST API; the other node's scheduler (looking every 200 ms here) joins in. It ends
 * when smtp-sink has counted every message. The CPU seconds of the Herald processes and of the
 * PostgreSQL server (postmaster and its children) over the run show where the time goes.
 *
 *   npx tsx bench/cluster.ts            # 2,000 messages per set-up and workload, 3 rounds
 *   BENCH_MESSAGES=500 BENCH_ROUNDS=1 BENCH_WORKLOADS=campaign npx tsx bench/cluster.ts
 *
 * The raw RSA-2048 sign rate of one core (`crypto.sign` of a 200-byte input, before and
 * after the run) gives the signing cost a campaign cannot go below.
 *
 * The nodes run from the sources through tsx, like the end-to-end tests. Run it as root or as
 * a user that may run Postfix's smtp-sink; everything listens on 127.0.0.0/8 only.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createPrivateKey, generateKeyPairSync, sign } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { startDnsServer } from '../test/helpers/dns-server.js';
import { startPostgres, type PostgresCluster } from '../test/helpers/postgres.js';
import {
  freePort,
  makeDataDir,
  removeDataDir,
  runHerald,
  startHerald,
  writeConfig,
  type HeraldInstance,
} from '../test/e2e/harness.js';

const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 2000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
type Workload = 'relay' | 'campaign';
const WORKLOADS = (process.env.BENCH_WORKLOADS ?? 'relay,campaign')
  .split(',')
  .map((name) => name.trim())
  .filter((name): name is Workload => name === 'relay' || name === 'campaign');
/** Concurrent inbound sessions in total, split evenly over the nodes. */
const SESSIONS = 100;
const SINK_HOST = '127.0.0.33';
const SMTP_SOURCE = '/usr/sbin/smtp-source';
const SMTP_SINK = '/usr/sbin/smtp-sink';
/** Linux reports process CPU time in clock ticks of 1/100 s (`getconf CLK_TCK`). */
const CLOCK_TICKS = 100;

interface SetUp {
  name: string;
  nodes: number;
  store: 'sqlite' | 'postgres';
}

const SET_UPS: SetUp[] = [
  { name: '1 node, SQLite', nodes: 1, store: 'sqlite' },
  { name: '1 node, PostgreSQL', nodes: 1, store: 'postgres' },
  { name: '2 nodes, PostgreSQL', nodes: 2, store: 'postgres' },
];

interface Sample {
  seconds: number;
  rate: number;
  /** CPU seconds of the Herald processes per 1,000 messages. */
  heraldCpu: number;
  /** CPU seconds of the PostgreSQL server per 1,000 messages (0 for SQLite). */
  postgresCpu: number;
}

const sleep = (ms: number) => new Promise((resolveSleep) => setTimeout(resolveSleep, ms));

/** Postfix's smtp-sink with `-c`, whose running counters tell when the mail has arrived. */
async function startCountingSink(port: number) {
  const args = ['-c', '-m', '512', `${SINK_HOST}:${port}`, '1024'];
  if (process.getuid?.() === 0) args.unshift('-u', 'nobody');
  const child = spawn(SMTP_SINK, args, { stdio: ['ignore', 'pipe', 'ignore'] });
  let messages = 0;
  child.stdout.on('data', (chunk: Buffer) => {
    const last = [...chunk.toString('latin1').matchAll(/mesg=(\d+)/g)].at(-1);
    if (last) messages = Number(last[1]);
  });
  await sleep(300);
  return {
    count: () => messages,
    async waitFor(total: number, timeoutMs = 300_000) {
      const deadline = Date.now() + timeoutMs;
      while (messages < total) {
        if (Date.now() > deadline) throw new Error(`smtp-sink counted ${messages} of ${total}`);
        await sleep(20);
      }
    },
    stop: () => stopChild(child),
  };
}

type Sink = Awaited<ReturnType<typeof startCountingSink>>;

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolveStop) => {
    child.once('exit', () => resolveStop());
    child.kill('SIGTERM');
  });
}

/** Runs smtp-source to completion. */
function smtpSource(port: number, messages: number, sessions: number): Promise<void> {
  const args = ['-s', String(sessions), '-m', String(messages), '-l', '2000', '-N'];
  args.push('-f', 'sender@author.test', '-t', 'user@load.test', '-M', 'client.author.test');
  args.push(`127.0.0.1:${port}`);
  return new Promise((resolveRun, reject) => {
    const child = spawn(SMTP_SOURCE, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.once('exit', (code) =>
      code === 0 ? resolveRun() : reject(new Error(`smtp-source failed: ${stderr}`)),
    );
  });
}

/** User plus system CPU seconds that a process has used so far; 0 once it is gone. */
function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which is in parentheses and may contain spaces.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return 0;
  }
}

/** CPU seconds of a process and its direct children (the PostgreSQL server's backends). */
function treeCpuSeconds(pid: number): number {
  let total = cpuSeconds(pid);
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (parent === pid) total += cpuSeconds(Number(entry));
    } catch {
      // The process ended while the list was read.
    }
  }
  return total;
}

function nodeSettings(storeUrl: string, name: string, secretsFile: string) {
  return {
    hostname: `${name}.herald.test`,
    store: { url: storeUrl },
    srs: { domain: 'srs.herald.test', secretsFile },
    delivery: { concurrency: 50, perDomainConcurrency: 20 },
    limits: { commandsPerMinute: 10_000_000, maxConnectionsPerClient: 1000 },
    distribution: { batchSize: 250, schedulerInterval: '200ms' },
    log: { level: 'warn' },
  };
}

type Cli = (...args: string[]) => Promise<string>;

/** Adds the relay set-up: a catch-all alias at load.test that forwards to the sink. */
async function prepareRelay(cli: Cli): Promise<void> {
  await cli('domain', 'add', 'load.test');
  await cli('alias', 'add', '*@load.test', 'inbox@dest.test');
}

/**
 * Adds the campaign set-up: a sending domain with its keys, an organisation, a list of
 * `MESSAGES` subscribers at dest.test and a campaign. Returns the campaign id.
 */
async function prepareCampaign(cli: Cli, directory: string): Promise<number> {
  await cli('domain', 'add', 'news.test');
  await cli('org', 'create', 'Bench Club', '--domain', 'news.test');
  const list = JSON.parse(await cli('list', 'create', 'Bench Club', 'Members', '--json')) as {
    id: number;
  };
  const rows = ['email,name'];
  for (let i = 0; i < MESSAGES; i++) rows.push(`member${i}@dest.test,Member${i} Bench`);
  const csv = join(directory, 'members.csv');
  writeFileSync(csv, `${rows.join('\n')}\n`);
  await cli('list', 'import', String(list.id), csv, '--json');
  const html = join(directory, 'news.html');
  // About 2 KB of HTML, so each message is about 5 KB with its text part and headers.
  writeFileSync(html, `<p>Hello {{first_name}},</p>${'<p>News of the season. </p>'.repeat(80)}`);
  const campaign = JSON.parse(
    await cli(
      'campaign',
      'create',
      '--list',
      String(list.id),
      '--from',
      'Bench Club <news@news.test>',
      '--subject',
      'News for {{first_name}}',
      '--html',
      html,
      '--json',
    ),
  ) as { id: number };
  return campaign.id;
}

/** RSA-2048 signatures per second on one core, over about one second. */
function rawSignRate(): number {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const key = createPrivateKey(privateKey.export({ type: 'pkcs8', format: 'pem' }));
  const input = Buffer.alloc(200, 'a');
  const started = performance.now();
  let count = 0;
  while (performance.now() - started < 1000) {
    sign('sha256', input, key);
    count++;
  }
  return count / ((performance.now() - started) / 1000);
}

async function runSetUp(
  setUp: SetUp,
  workload: Workload,
  postgres: PostgresCluster,
  dnsAddress: string,
  sink: Sink,
  sinkPort: number,
): Promise<Sample> {
  const directories: string[] = [];
  const nodes: HeraldInstance[] = [];
  try {
    const setupDir = makeDataDir();
    directories.push(setupDir);
    const storeUrl =
      setUp.store === 'sqlite'
        ? `sqlite:${join(setupDir, 'herald.sqlite')}`
        : await postgres.createDatabase();
    const secretsFile = join(setupDir, 'srs-secrets');
    const { configPath } = await writeConfig(setupDir, {
      dnsAddress,
      deliveryPort: sinkPort,
      settings: nodeSettings(storeUrl, 'setup', secretsFile),
    });
    const cli: Cli = async (...args) => {
      const result = await runHerald([...args, '--config', configPath]);
      if (result.code !== 0) throw new Error(`herald ${args.join(' ')} failed: ${result.stderr}`);
      return result.stdout;
    };
    const campaignId =
      workload === 'campaign' ? await prepareCampaign(cli, setupDir) : await prepareRelay(cli);
    for (let i = 0; i < setUp.nodes; i++) {
      const dataDir = makeDataDir();
      directories.push(dataDir);
      nodes.push(
        await startHerald({
          dnsAddress,
          deliveryPort: sinkPort,
          dataDir,
          settings: nodeSettings(storeUrl, `node${i + 1}`, secretsFile),
        }),
      );
    }

    const heraldCpu = () => nodes.reduce((sum, node) => sum + cpuSeconds(node.child.pid!), 0);
    const postgresCpu = () => (setUp.store === 'postgres' ? treeCpuSeconds(postgres.pid) : 0);
    const before = { sink: sink.count(), herald: heraldCpu(), postgres: postgresCpu() };
    let started = performance.now();
    if (campaignId === undefined) {
      const share = Math.floor(MESSAGES / nodes.length);
      await Promise.all(
        nodes.map((node, index) => {
          const messages = index === 0 ? MESSAGES - share * (nodes.length - 1) : share;
          return smtpSource(node.mxPort, messages, Math.floor(SESSIONS / nodes.length));
        }),
      );
    } else {
      // The first node starts at once; the others' schedulers join within 200 ms.
      started = performance.now();
      const sent = await nodes[0]!.api('POST', `/api/campaigns/${campaignId}/send`);
      if (sent.status !== 200)
        throw new Error(`campaign send failed: ${JSON.stringify(sent.body)}`);
    }
    await sink.waitFor(before.sink + MESSAGES);
    const seconds = (performance.now() - started) / 1000;
    const perThousand = 1000 / MESSAGES;
    return {
      seconds,
      rate: MESSAGES / seconds,
      heraldCpu: (heraldCpu() - before.herald) * perThousand,
      postgresCpu: (postgresCpu() - before.postgres) * perThousand,
    };
  } finally {
    for (const node of nodes) await node.stop();
    for (const directory of directories) removeDataDir(directory);
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

async function main(): Promise<void> {
  const postgres = await startPostgres({ noFsync: false });
  const sinkPort = await freePort(SINK_HOST);
  const sink = await startCountingSink(sinkPort);
  const dns = await startDnsServer({
    records: [
      { name: 'dest.test', type: 'MX', priority: 10, exchange: 'mx.dest.test' },
      { name: 'mx.dest.test', type: 'A', address: SINK_HOST },
    ],
  });

  const rawBefore = rawSignRate();
  const key = (workload: Workload, setUp: SetUp) => `${workload}: ${setUp.name}`;
  const results = new Map<string, Sample[]>();
  for (const workload of WORKLOADS) {
    for (const setUp of SET_UPS) results.set(key(workload, setUp), []);
  }
  try {
    for (let round = 1; round <= ROUNDS; round++) {
      // Rotate the order so no set-up always runs first on a cooler machine.
      const order = SET_UPS.map((_, i) => SET_UPS[(i + round - 1) % SET_UPS.length]!);
      for (const workload of WORKLOADS) {
        for (const setUp of order) {
          const sample = await runSetUp(setUp, workload, postgres, dns.address, sink, sinkPort);
          results.get(key(workload, setUp))!.push(sample);
          console.log(
            `round ${round}: ${key(workload, setUp)}: ${sample.rate.toFixed(0)} msg/s ` +
              `(${sample.seconds.toFixed(2)} s; CPU s per 1,000: Herald ` +
              `${sample.heraldCpu.toFixed(2)}, PostgreSQL ${sample.postgresCpu.toFixed(2)})`,
          );
        }
      }
    }
  } finally {
    await sink.stop();
    await dns.close();
    await postgres.stop();
  }
  const raw = median([rawBefore, rawSignRate()]);

  console.log(`\n${MESSAGES} messages per run, ${ROUNDS} rounds, medians:\n`);
  console.log(
    '| workload | set-up | msg/s | of 1 node on SQLite | Herald CPU s / 1,000 | PostgreSQL CPU s / 1,000 |',
  );
  console.log('| --- | --- | ---: | ---: | ---: | ---: |');
  for (const workload of WORKLOADS) {
    const baseline = median(results.get(key(workload, SET_UPS[0]!))!.map((s) => s.rate));
    for (const setUp of SET_UPS) {
      const samples = results.get(key(workload, setUp))!;
      const rate = median(samples.map((s) => s.rate));
      const herald = median(samples.map((s) => s.heraldCpu));
      const server = median(samples.map((s) => s.postgresCpu));
      const ratio = `${((rate / baseline) * 100).toFixed(0)}%`;
      console.log(
        `| ${workload} | ${setUp.name} | ${rate.toFixed(0)} | ${ratio} | ${herald.toFixed(2)} | ${server.toFixed(2)} |`,
      );
    }
  }
  console.log(
    `\nraw RSA-2048 signs/s on one core: ${raw.toFixed(0)} ` +
      `(${(1000 / raw).toFixed(2)} CPU s per 1,000 signatures)`,
  );
}

await main();
