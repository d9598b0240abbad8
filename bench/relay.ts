/**
 * Relay throughput of Herald against Postfix, side by side in one run, on loopback:
 *
 *   forwarding  smtp-source -> MX -> catch-all alias -> SRS-rewritten sender -> smtp-sink
 *               Herald, against Postfix 3.7 with postsrsd 1.x as its canonical maps
 *   submission  STARTTLS client -> submission -> DKIM signing -> smtp-sink
 *               Herald (AUTH, RSA-2048 and Ed25519 signatures), against Postfix with the
 *               OpenDKIM milter signing with the same two keys
 *
 * Both accept durably: Herald commits to SQLite with `synchronous = FULL` before 250, Postfix
 * fsyncs its queue file. A run's time starts with the first connection and ends when the sink
 * has counted every message, so it covers acceptance and delivery. Herald runs from `dist/`
 * (built first), so no TypeScript loader sits in its memory figure. Resident memory is the peak
 * of VmRSS sampled every 50 ms while 100 inbound sessions run.
 *
 *   npx tsx bench/relay.ts            # 2,000 messages per set-up, 3 rounds
 *   BENCH_MESSAGES=500 BENCH_ROUNDS=1 npx tsx bench/relay.ts
 *   BENCH_ONLY=forwarding BENCH_HERALD_NODE_ARGS=--cpu-prof npx tsx bench/relay.ts
 *
 * `BENCH_ONLY` runs one set-up (`forwarding` or `submission`); `BENCH_HERALD_NODE_ARGS` adds
 * Node options to `herald serve` only, such as `--cpu-prof` for a profile of the server.
 *
 * Needs root for the private Postfix instances (Postfix's master starts as root and its
 * daemons run as the `postfix` user). Everything listens on 127.0.0.0/8 only.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

import SMTPConnection from 'nodemailer/lib/smtp-connection/index.js';
import { stringify } from 'yaml';

import { startDnsServer } from '../test/helpers/dns-server.js';
import { Postsrsd } from '../test/srs/postsrsd.js';

const ROOT = resolve(import.meta.dirname, '..');
const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 2000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
/** Concurrent inbound sessions, for throughput and for the memory figure. */
const SESSIONS = 100;
/** Submission: sessions, each sending MESSAGES / SUBMISSION_SESSIONS messages after AUTH. */
const SUBMISSION_SESSIONS = 20;
const SINK_HOST = '127.0.0.25';
const PASSWORD = 'benchmark password 1';
const ONLY = process.env.BENCH_ONLY;
const HERALD_NODE_ARGS = (process.env.BENCH_HERALD_NODE_ARGS ?? '').split(' ').filter(Boolean);

const SMTP_SOURCE = '/usr/sbin/smtp-source';
const SMTP_SINK = '/usr/sbin/smtp-sink';
const OPENDKIM = '/usr/sbin/opendkim';
const POSTFIX = '/usr/sbin/postfix';

interface Sample {
  seconds: number;
  rate: number;
  peakRssMb?: number;
}

async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}

const sleep = (ms: number) => new Promise((resolveSleep) => setTimeout(resolveSleep, ms));

/** Postfix's smtp-sink with `-c`: it prints running counters, which tell when mail arrived. */
async function startCountingSink(port: number) {
  const args = ['-c', '-m', '512', `${SINK_HOST}:${port}`, '1024'];
  if (process.getuid?.() === 0) args.unshift('-u', 'nobody');
  const child = spawn(SMTP_SINK, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let messages = 0;
  child.stdout.on('data', (chunk: Buffer) => {
    const counts = [...chunk.toString('latin1').matchAll(/mesg=(\d+)/g)];
    const last = counts.at(-1);
    if (last) messages = Number(last[1]);
  });
  await sleep(300);
  return {
    count: () => messages,
    async waitFor(total: number, timeoutMs = 300_000) {
      const deadline = Date.now() + timeoutMs;
      while (messages < total) {
        if (Date.now() > deadline) throw new Error(`sink counted ${messages} of ${total}`);
        await sleep(20);
      }
    },
    stop: () => stopChild(child),
  };
}

type Sink = Awaited<ReturnType<typeof startCountingSink>>;

function stopChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolveStop) => {
    child.once('exit', () => resolveStop());
    child.kill(signal);
  });
}

/** Runs smtp-source to completion and resolves when it exits. */
function smtpSource(port: number, to: string): Promise<void> {
  const args = ['-s', String(SESSIONS), '-m', String(MESSAGES), '-l', '2000', '-N'];
  args.push('-f', 'sender@author.test', '-t', to, '-M', 'client.author.test', `127.0.0.1:${port}`);
  return new Promise((resolveRun, reject) => {
    const child = spawn(SMTP_SOURCE, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.once('exit', (code) =>
      code === 0 ? resolveRun() : reject(new Error(`smtp-source: ${stderr}`)),
    );
  });
}

/** Sends MESSAGES over SUBMISSION_SESSIONS STARTTLS sessions, with AUTH when `auth` is set. */
async function submitAll(port: number, from: string, auth?: { user: string; pass: string }) {
  const perSession = Math.ceil(MESSAGES / SUBMISSION_SESSIONS);
  const body = (n: number) =>
    [
      `From: ${from}`,
      'To: reader@dest.test',
      `Subject: issue ${n}`,
      `Message-ID: <${n}.${Date.now()}@bench.test>`,
      'Date: Thu, 03 Dec 2026 10:00:00 +0000',
      '',
      ...Array.from({ length: 25 }, () => 'x'.repeat(78)),
      '',
    ].join('\r\n');

  const session = async (index: number) => {
    const connection = new SMTPConnection({
      host: '127.0.0.1',
      port,
      requireTLS: true,
      name: 'client.bench.test',
      tls: { rejectUnauthorized: false },
      socketTimeout: 60_000,
    });
    await new Promise<void>((ok, fail) =>
      connection.connect((error) => (error ? fail(error) : ok())),
    );
    if (auth) {
      await new Promise<void>((ok, fail) =>
        connection.login(auth, (error) => (error ? fail(error) : ok())),
      );
    }
    for (let i = 0; i < perSession && index * perSession + i < MESSAGES; i++) {
      const n = index * perSession + i;
      await new Promise<void>((ok, fail) =>
        connection.send({ from, to: ['reader@dest.test'] }, body(n), (error) =>
          error ? fail(error) : ok(),
        ),
      );
    }
    connection.quit();
  };
  await Promise.all(Array.from({ length: SUBMISSION_SESSIONS }, (_, index) => session(index)));
}

/** Samples a process's resident set size until `stop` is called; returns the peak in MB. */
function sampleRss(pid: number) {
  let peak = 0;
  const timer = setInterval(() => {
    try {
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
      peak = Math.max(peak, kb);
    } catch {
      // The process ended.
    }
  }, 50);
  return () => {
    clearInterval(timer);
    return peak / 1024;
  };
}

// ---------------------------------------------------------------------------------------------
// Herald

interface HeraldRun {
  child: ChildProcess;
  mxPort: number;
  submissionPort: number;
  dataDir: string;
  stop(): Promise<void>;
}

function heraldCli(args: string[]): void {
  execFileSync(process.execPath, [join(ROOT, 'dist', 'cli', 'main.js'), ...args], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
}

async function startHerald(
  dnsAddress: string,
  sinkPort: number,
  setup: string[][],
): Promise<HeraldRun> {
  const dataDir = mkdtempSync(join(tmpdir(), 'herald-bench-'));
  const [mxPort, submissionPort, httpPort] = [await freePort(), await freePort(), await freePort()];
  const configPath = join(dataDir, 'herald.yaml');
  writeFileSync(
    configPath,
    stringify({
      hostname: 'mx.herald.test',
      dataDir,
      smtp: {
        mx: { host: '127.0.0.1', port: mxPort },
        submission: { host: '127.0.0.1', port: submissionPort },
      },
      http: { host: '127.0.0.1', port: httpPort },
      dns: { servers: [dnsAddress] },
      delivery: { port: sinkPort, concurrency: 50, perDomainConcurrency: 20 },
      limits: { commandsPerMinute: 10_000_000, maxConnectionsPerClient: 1000 },
      srs: { domain: 'srs.herald.test' },
      log: { level: 'warn' },
    }),
  );
  for (const step of setup) heraldCli([...step, '--config', configPath]);

  const child = spawn(
    process.execPath,
    [...HERALD_NODE_ARGS, join(ROOT, 'dist', 'cli', 'main.js'), 'serve', '--config', configPath],
    {
      stdio: ['ignore', 'ignore', 'inherit'],
    },
  );
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      const response = await fetch(`http://127.0.0.1:${httpPort}/healthz`);
      if (response.ok) break;
    } catch {
      if (Date.now() > deadline) throw new Error('herald serve did not start');
      await sleep(100);
    }
  }
  return {
    child,
    mxPort,
    submissionPort,
    dataDir,
    async stop() {
      await stopChild(child);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

async function heraldForwarding(dnsAddress: string, sink: Sink, sinkPort: number): Promise<Sample> {
  const herald = await startHerald(dnsAddress, sinkPort, [
    ['domain', 'add', 'load.test'],
    ['alias', 'add', '*@load.test', 'inbox@dest.test'],
  ]);
  try {
    const before = sink.count();
    const peakRss = sampleRss(herald.child.pid!);
    const started = performance.now();
    await smtpSource(herald.mxPort, 'user@load.test');
    await sink.waitFor(before + MESSAGES);
    const seconds = (performance.now() - started) / 1000;
    return { seconds, rate: MESSAGES / seconds, peakRssMb: peakRss() };
  } finally {
    await herald.stop();
  }
}

async function heraldSubmission(dnsAddress: string, sink: Sink, sinkPort: number): Promise<Sample> {
  const herald = await startHerald(dnsAddress, sinkPort, [['domain', 'add', 'news.test']]);
  try {
    const passwordFile = join(herald.dataDir, 'password');
    writeFileSync(passwordFile, `${PASSWORD}\n`);
    execFileSync(
      process.execPath,
      [
        join(ROOT, 'dist', 'cli', 'main.js'),
        'credential',
        'add',
        'editor@news.test',
        '--password-stdin',
        '--config',
        join(herald.dataDir, 'herald.yaml'),
      ],
      { input: `${PASSWORD}\n`, stdio: ['pipe', 'ignore', 'inherit'] },
    );
    const before = sink.count();
    const started = performance.now();
    await submitAll(herald.submissionPort, 'editor@news.test', {
      user: 'editor@news.test',
      pass: PASSWORD,
    });
    await sink.waitFor(before + MESSAGES);
    const seconds = (performance.now() - started) / 1000;
    return { seconds, rate: MESSAGES / seconds };
  } finally {
    await herald.stop();
  }
}

// ---------------------------------------------------------------------------------------------
// Postfix

/** The daemons a relay needs, none chrooted, so the instance lives in one temporary directory. */
const MASTER_CF = (listen: string, extra: string) => `${listen} inet n - n - - smtpd ${extra}
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
tlsmgr    unix  - - n 1000? 1 tlsmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
`;

async function startPostfix(mainCf: string[], smtpdOptions = '') {
  const base = mkdtempSync(join(tmpdir(), 'herald-bench-postfix-'));
  chmodSync(base, 0o755);
  for (const dir of ['etc', 'queue', 'data']) mkdirSync(join(base, dir));
  chownSync(join(base, 'data'), uidOf('postfix'), 0);
  const port = await freePort();
  writeFileSync(
    join(base, 'etc', 'main.cf'),
    [
      'compatibility_level = 3.6',
      `queue_directory = ${base}/queue`,
      `data_directory = ${base}/data`,
      'mail_owner = postfix',
      'setgid_group = postdrop',
      'myhostname = mx.postfix.test',
      'mydomain = postfix.test',
      'mydestination =',
      'inet_interfaces = 127.0.0.1',
      'inet_protocols = ipv4',
      'mynetworks = 127.0.0.0/8',
      `maillog_file = ${base}/maillog`,
      `maillog_file_prefixes = ${base}`,
      'smtpd_relay_restrictions = permit_mynetworks, reject',
      'alias_maps =',
      'alias_database =',
      'smtp_dns_support_level = disabled',
      'default_process_limit = 200',
      'smtpd_client_connection_count_limit = 0',
      'smtpd_client_connection_rate_limit = 0',
      'smtpd_client_message_rate_limit = 0',
      'default_destination_concurrency_limit = 20',
      ...mainCf,
    ].join('\n') + '\n',
  );
  writeFileSync(join(base, 'etc', 'master.cf'), MASTER_CF(`127.0.0.1:${port}`, smtpdOptions));
  execFileSync(POSTFIX, ['-c', join(base, 'etc'), 'start'], { stdio: 'ignore' });
  await sleep(500);
  return {
    port,
    async stop() {
      execFileSync(POSTFIX, ['-c', join(base, 'etc'), 'stop'], { stdio: 'ignore' });
      await sleep(300);
      rmSync(base, { recursive: true, force: true });
    },
  };
}

function uidOf(user: string): number {
  return Number(execFileSync('id', ['-u', user]).toString().trim());
}

async function postfixForwarding(sink: Sink, sinkPort: number): Promise<Sample> {
  const postsrsd = await Postsrsd.start({ domain: 'srs.postfix.test', secrets: ['bench secret'] });
  const postfix = await startPostfix([
    'virtual_alias_domains = load.test',
    'virtual_alias_maps = static:inbox@dest.test',
    `transport_maps = inline:{ dest.test=smtp:[${SINK_HOST}]:${sinkPort} }`,
    `sender_canonical_maps = tcp:127.0.0.1:${postsrsd.forwardPort}`,
    'sender_canonical_classes = envelope_sender',
    `recipient_canonical_maps = tcp:127.0.0.1:${postsrsd.reversePort}`,
    'recipient_canonical_classes = envelope_recipient, header_recipient',
  ]);
  try {
    const before = sink.count();
    const started = performance.now();
    await smtpSource(postfix.port, 'user@load.test');
    await sink.waitFor(before + MESSAGES);
    const seconds = (performance.now() - started) / 1000;
    return { seconds, rate: MESSAGES / seconds };
  } finally {
    await postfix.stop();
    await postsrsd.stop();
  }
}

/**
 * OpenDKIM as a milter on a loopback port, signing news.test with one key. OpenDKIM 2.11 takes
 * one signature algorithm per process, so the RSA and the Ed25519 signature come from two
 * milters in a chain, as a Postfix set-up that signs with both would run them.
 */
async function startOpendkim(key: { selector: string; path: string; algorithm: string }) {
  const dir = mkdtempSync(join(tmpdir(), 'herald-bench-opendkim-'));
  chmodSync(dir, 0o755);
  const port = await freePort();
  writeFileSync(
    join(dir, 'opendkim.conf'),
    [
      'Syslog no',
      'Mode s',
      'Canonicalization relaxed/relaxed',
      'Domain news.test',
      `Selector ${key.selector}`,
      `KeyFile ${key.path}`,
      `SignatureAlgorithm ${key.algorithm}`,
      'InternalHosts 127.0.0.0/8',
      `Socket inet:${port}@127.0.0.1`,
      `PidFile ${join(dir, 'pid')}`,
      'RequireSafeKeys no',
    ].join('\n') + '\n',
  );
  const child = spawn(OPENDKIM, ['-f', '-x', join(dir, 'opendkim.conf')], { stdio: 'inherit' });
  await sleep(500);
  return {
    port,
    async stop() {
      // OpenDKIM waits for milter sessions to drain on SIGTERM; Postfix is stopped by then.
      await stopChild(child, 'SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function selfSignedCertificate(dir: string) {
  const key = join(dir, 'key.pem');
  const cert = join(dir, 'cert.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      key,
      '-out',
      cert,
      '-days',
      '2',
      '-subj',
      '/CN=mx.postfix.test',
    ],
    { stdio: 'ignore' },
  );
  return { key, cert };
}

async function postfixSubmission(sink: Sink, sinkPort: number, keyDir: string): Promise<Sample> {
  const milters = [
    await startOpendkim({
      selector: 'benchr',
      path: join(keyDir, 'r.pem'),
      algorithm: 'rsa-sha256',
    }),
    await startOpendkim({
      selector: 'benche',
      path: join(keyDir, 'e.pem'),
      algorithm: 'ed25519-sha256',
    }),
  ];
  const tls = selfSignedCertificate(keyDir);
  const postfix = await startPostfix([
    `transport_maps = inline:{ dest.test=smtp:[${SINK_HOST}]:${sinkPort} }`,
    `smtpd_milters = ${milters.map((milter) => `inet:127.0.0.1:${milter.port}`).join(', ')}`,
    'milter_default_action = tempfail',
    'smtpd_tls_security_level = may',
    `smtpd_tls_cert_file = ${tls.cert}`,
    `smtpd_tls_key_file = ${tls.key}`,
  ]);
  try {
    const before = sink.count();
    const started = performance.now();
    await submitAll(postfix.port, 'editor@news.test');
    await sink.waitFor(before + MESSAGES);
    const seconds = (performance.now() - started) / 1000;
    return { seconds, rate: MESSAGES / seconds };
  } finally {
    await postfix.stop();
    for (const milter of milters) await milter.stop();
  }
}

// ---------------------------------------------------------------------------------------------

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

async function main(): Promise<void> {
  if (!existsSync(join(ROOT, 'dist', 'cli', 'main.js')) || process.env.BENCH_BUILD !== '0') {
    try {
      execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: ROOT, stdio: 'ignore' });
    } catch {
      // tsc emits even when another module has a type error; the run needs only the output.
    }
  }

  const sinkPort = await freePort(SINK_HOST);
  const sink = await startCountingSink(sinkPort);
  const dns = await startDnsServer({
    records: [
      { name: 'dest.test', type: 'MX', priority: 10, exchange: 'mx.dest.test' },
      { name: 'mx.dest.test', type: 'A', address: SINK_HOST },
    ],
  });

  // OpenDKIM signs with keys of the same kinds Herald generates: RSA-2048 and Ed25519.
  const keyDir = mkdtempSync(join(tmpdir(), 'herald-bench-keys-'));
  chmodSync(keyDir, 0o755);
  execFileSync(
    'openssl',
    [
      'genpkey',
      '-algorithm',
      'RSA',
      '-pkeyopt',
      'rsa_keygen_bits:2048',
      '-out',
      join(keyDir, 'r.pem'),
    ],
    { stdio: 'ignore' },
  );
  execFileSync('openssl', ['genpkey', '-algorithm', 'ED25519', '-out', join(keyDir, 'e.pem')], {
    stdio: 'ignore',
  });

  const results: Record<string, Sample[]> = {
    'Herald forwarding (SRS)': [],
    'Postfix + postsrsd': [],
    'Herald submission (DKIM)': [],
    'Postfix + OpenDKIM': [],
  };
  try {
    for (let round = 1; round <= ROUNDS; round++) {
      // Alternate the order so neither side always runs on a warmer machine.
      const forwarding: Array<[string, () => Promise<Sample>]> = [
        ['Herald forwarding (SRS)', () => heraldForwarding(dns.address, sink, sinkPort)],
        ['Postfix + postsrsd', () => postfixForwarding(sink, sinkPort)],
      ];
      const submission: Array<[string, () => Promise<Sample>]> = [
        ['Herald submission (DKIM)', () => heraldSubmission(dns.address, sink, sinkPort)],
        ['Postfix + OpenDKIM', () => postfixSubmission(sink, sinkPort, keyDir)],
      ];
      if (round % 2 === 0) {
        forwarding.reverse();
        submission.reverse();
      }
      const setups = [
        ...(ONLY === undefined || ONLY === 'forwarding' ? forwarding : []),
        ...(ONLY === undefined || ONLY === 'submission' ? submission : []),
      ];
      for (const [name, run] of setups) {
        const sample = await run();
        results[name]!.push(sample);
        const rss = sample.peakRssMb ? `, peak RSS ${sample.peakRssMb.toFixed(0)} MB` : '';
        console.log(
          `round ${round}: ${name}: ${sample.rate.toFixed(0)} msg/s (${sample.seconds.toFixed(2)} s${rss})`,
        );
      }
    }
  } finally {
    await sink.stop();
    await dns.close();
    rmSync(keyDir, { recursive: true, force: true });
  }

  console.log(`\n${MESSAGES} messages per run, ${ROUNDS} rounds, medians:\n`);
  console.log('| set-up | msg/s | ratio Herald / Postfix |');
  console.log('| --- | ---: | ---: |');
  const rate = (name: string) => median(results[name]!.map((s) => s.rate));
  const pairs: Array<[string, string]> = [
    ['Herald forwarding (SRS)', 'Postfix + postsrsd'],
    ['Herald submission (DKIM)', 'Postfix + OpenDKIM'],
  ];
  for (const [herald, postfix] of pairs) {
    if (results[herald]!.length === 0) continue;
    console.log(
      `| ${herald} | ${rate(herald).toFixed(0)} | ${(rate(herald) / rate(postfix)).toFixed(2)} |`,
    );
    console.log(`| ${postfix} | ${rate(postfix).toFixed(0)} | |`);
  }
  const peaks = results['Herald forwarding (SRS)']!.map((s) => s.peakRssMb ?? 0);
  if (peaks.length === 0) return;
  const rss = median(peaks);
  console.log(
    `\nHerald peak resident memory at ${SESSIONS} inbound sessions: ${rss.toFixed(0)} MB (median of peaks)`,
  );
}

await main();
