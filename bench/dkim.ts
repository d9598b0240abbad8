/**
 * DKIM signing and verification speed, measured side by side in one run:
 *
 *   npx tsx bench/dkim.ts
 *
 * Single core, 2 KiB and 100 KiB messages, relaxed/relaxed. Herald's signer runs against the raw
 * RSA-2048 and Ed25519 sign rate of Node's crypto, the floor of any signer. It also runs against
 * dkimpy (Debian's /usr/bin/python3, timed inside Python) and mailauth 4, a Node DKIM library.
 * Then batch signing on a worker pool against one core, and verification of 10,000 messages
 * with an in-memory key cache. Every figure is the median of several rounds, and each ratio to
 * the raw rate is the median of the ratios within the rounds. Single-core rates count calls per
 * CPU second of the process, because that is steadier than wall time on a shared machine.
 * Batch rates are per wall-clock second. The load average is printed at the start and the end.
 */
import { execFileSync } from 'node:child_process';
import {
  createPublicKey,
  generateKeyPairSync,
  sign as cryptoSign,
  type KeyObject,
} from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism, cpus } from 'node:os';

import {
  createKeyCache,
  dkimRecordValue,
  sign,
  signMessage,
  verifyMessage,
} from '../src/dkim/index.js';
import { createSigningPool } from '../src/dkim/pool.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const ROUND_MS = Number(process.env.BENCH_ROUND_MS ?? 400);
const VERIFY_COUNT = 10_000;

const require = createRequire(import.meta.url);
const { dkimSign } = require('mailauth/lib/dkim/sign') as {
  dkimSign: (message: Buffer, options: object) => Promise<{ signatures: string }>;
};

/** Builds a message of `size` bytes: typical headers and a text body of 72-column lines. */
function makeMessage(size: number, serial = 0): Buffer {
  const header =
    'From: "Example News" <news@example.com>\r\nTo: subscriber@example.net\r\n' +
    `Subject: Newsletter number ${serial}\r\nDate: Thu, 03 Dec 2026 22:51:20 +0000\r\n` +
    `Message-ID: <${serial}.bench@example.com>\r\nMIME-Version: 1.0\r\n` +
    'Content-Type: text/plain; charset=utf-8\r\nList-Unsubscribe: <https://example.com/u/abc>\r\n' +
    'List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n\r\n';
  const line = 'The quick brown fox jumps over the lazy dog, and the dog does not mind.\r\n';
  const lines = Math.max(1, Math.ceil((size - header.length) / line.length));
  return Buffer.from(header + line.repeat(lines)).subarray(0, size);
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[middle] ?? 0)
    : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2;
}

type Operation = () => unknown;

const SLICE_MS = 25;

/**
 * Runs the operations in turn, each for a slice of `SLICE_MS` milliseconds, until `ms` have
 * passed, and returns each one's calls per CPU second of this process. CPU time rather than wall
 * time, and short alternating slices, keep the load of other programs on the shared machine
 * from falling unevenly on the cases.
 */
async function measureInterleaved(
  operations: Record<string, Operation>,
  ms = ROUND_MS,
): Promise<Map<string, number>> {
  const entries = Object.entries(operations);
  const cpu = new Map<string, number>(entries.map(([label]) => [label, 0]));
  const counts = new Map<string, number>(entries.map(([label]) => [label, 0]));
  for (const [, operation] of entries) await operation();
  const deadline = performance.now() + ms;
  while (performance.now() < deadline) {
    for (const [label, operation] of entries) {
      const start = process.cpuUsage();
      const sliceEnd = performance.now() + SLICE_MS;
      let count = 0;
      while (performance.now() < sliceEnd) {
        const result = operation();
        if (result instanceof Promise) await result;
        count++;
      }
      const used = process.cpuUsage(start);
      cpu.set(label, (cpu.get(label) ?? 0) + used.user + used.system);
      counts.set(label, (counts.get(label) ?? 0) + count);
    }
  }
  const rates = new Map<string, number>();
  for (const [label] of entries)
    rates.set(label, (counts.get(label) ?? 0) / ((cpu.get(label) ?? 1) / 1e6));
  return rates;
}

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
const ed25519 = generateKeyPairSync('ed25519').privateKey;
const rsaPem = rsa.export({ format: 'pem', type: 'pkcs8' }).toString();
const edPem = ed25519.export({ format: 'pem', type: 'pkcs8' }).toString();
const time = new Date('2026-12-03T23:00:00Z');

/** Stand-in for the header data that a DKIM signer signs: about 700 bytes. */
const HEADER_DATA = makeMessage(700);

function heraldOptions(key: KeyObject) {
  return { time, signatures: [{ domain: 'example.com', selector: 'bench', privateKey: key }] };
}

function mailauthOptions(pem: string, algorithm: string) {
  return {
    canonicalization: 'relaxed/relaxed',
    algorithm,
    signTime: time,
    signatureData: [
      {
        signingDomain: 'example.com',
        selector: 'bench',
        privateKey: pem,
        algorithm,
        canonicalization: 'relaxed/relaxed',
      },
    ],
  };
}

/** Medians of the single-core rates and of each rate's ratio to the raw rate of its round. */
interface SingleCore {
  rates: Map<string, number>;
  ratios: Map<string, number>;
}

async function singleCore(): Promise<SingleCore> {
  const rows = new Map<string, number[]>();
  const ratioRows = new Map<string, number[]>();
  const messages = { '2 KiB': makeMessage(2048), '100 KiB': makeMessage(100 * 1024) };
  for (let round = 0; round < ROUNDS; round++) {
    for (const [size, message] of Object.entries(messages)) {
      // mailauth leaves much more garbage for the collector, so it alternates only with itself
      // and its GC pauses do not land in the slices of raw crypto and Herald.
      const rates = await measureInterleaved({
        'crypto RSA-2048 sign': () => cryptoSign('sha256', HEADER_DATA, rsa),
        [`Herald rsa-sha256 ${size}`]: () => signMessage(message, heraldOptions(rsa)),
        // The signature fields alone, as dkimpy's sign() returns them: no copy of the message.
        [`Herald fields only rsa-sha256 ${size}`]: () => sign(message, heraldOptions(rsa)),
        'crypto Ed25519 sign': () => cryptoSign(null, HEADER_DATA.subarray(0, 32), ed25519),
        [`Herald ed25519-sha256 ${size}`]: () => signMessage(message, heraldOptions(ed25519)),
      });
      const mailauth = await measureInterleaved({
        [`mailauth rsa-sha256 ${size}`]: () =>
          dkimSign(message, mailauthOptions(rsaPem, 'rsa-sha256')),
        [`mailauth ed25519-sha256 ${size}`]: () =>
          dkimSign(message, mailauthOptions(edPem, 'ed25519-sha256')),
      });
      const rawRsa = rates.get('crypto RSA-2048 sign') ?? 0;
      const rawEd25519 = rates.get('crypto Ed25519 sign') ?? 0;
      for (const [label, rate] of mailauth) rates.set(label, rate);
      for (const [label, rate] of rates) {
        const key = `${label}|${size}`;
        rows.set(key, [...(rows.get(key) ?? []), rate]);
        // The load on a shared machine drifts between rounds, so each ratio compares rates
        // measured in the same round, and the table gives the median ratio.
        const raw = label.includes('ed25519') ? rawEd25519 : rawRsa;
        ratioRows.set(key, [...(ratioRows.get(key) ?? []), rate / raw]);
      }
    }
  }
  const rates = new Map<string, number>();
  for (const [label, values] of rows) rates.set(label, median(values));
  const ratios = new Map<string, number>();
  for (const [label, values] of ratioRows) ratios.set(label, median(values));
  return { rates, ratios };
}

const DKIMPY_BENCH = `
import base64, json, sys, time, dkim
request = json.load(sys.stdin)
out = {}
def make(size):
    header = ('From: "Example News" <news@example.com>\\r\\nTo: subscriber@example.net\\r\\n'
        'Subject: Newsletter number 0\\r\\nDate: Thu, 03 Dec 2026 22:51:20 +0000\\r\\n'
        'Message-ID: <0.bench@example.com>\\r\\nMIME-Version: 1.0\\r\\n'
        'Content-Type: text/plain; charset=utf-8\\r\\nList-Unsubscribe: <https://example.com/u/abc>\\r\\n'
        'List-Unsubscribe-Post: List-Unsubscribe=One-Click\\r\\n\\r\\n')
    line = 'The quick brown fox jumps over the lazy dog, and the dog does not mind.\\r\\n'
    return (header + line * (size // len(line) + 1)).encode()[:size]
for size_label, size in (('2 KiB', 2048), ('100 KiB', 102400)):
    message = make(size)
    for algorithm, key in (('rsa-sha256', request['rsa']), ('ed25519-sha256', request['ed25519'])):
        rates = []
        for _ in range(request['rounds']):
            count, start = 0, time.perf_counter()
            while time.perf_counter() - start < request['seconds']:
                dkim.sign(message, b'bench', b'example.com', key.encode(), canonicalize=(b'relaxed', b'relaxed'),
                          signature_algorithm=algorithm.encode())
                count += 1
            rates.append(count / (time.perf_counter() - start))
        rates.sort()
        out['dkimpy %s %s' % (algorithm, size_label)] = rates[len(rates) // 2]
json.dump(out, sys.stdout)
`;

function dkimpy(): Map<string, number> {
  const edDer = ed25519.export({ format: 'der', type: 'pkcs8' });
  const request = {
    rounds: ROUNDS,
    seconds: ROUND_MS / 1000,
    rsa: rsa.export({ format: 'pem', type: 'pkcs1' }).toString(),
    ed25519: edDer.subarray(edDer.length - 32).toString('base64'),
  };
  const output = execFileSync('/usr/bin/python3', ['-c', DKIMPY_BENCH], {
    input: JSON.stringify(request),
  });
  return new Map(Object.entries(JSON.parse(output.toString()) as Record<string, number>));
}

async function poolRates(): Promise<{ single: number; pooled: number; size: number }> {
  const size = Math.min(2, availableParallelism());
  const pool = createSigningPool({ size });
  const batch = Array.from({ length: 400 }, (_, index) => makeMessage(2048, index));
  const options = heraldOptions(rsa);
  await pool.signBatch(batch.slice(0, 20), options);
  const singles: number[] = [];
  const pooled: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    let start = performance.now();
    for (const message of batch) signMessage(message, options);
    singles.push(batch.length / ((performance.now() - start) / 1000));
    start = performance.now();
    await pool.signBatch(batch, options);
    pooled.push(batch.length / ((performance.now() - start) / 1000));
  }
  await pool.close();
  return { single: median(singles), pooled: median(pooled), size };
}

async function verifyRates(): Promise<{ cached: number; uncached: number }> {
  const pool = createSigningPool({ size: availableParallelism() });
  const messages = Array.from({ length: VERIFY_COUNT }, (_, index) => makeMessage(2048, index));
  const signed = await pool.signBatch(messages, heraldOptions(rsa));
  await pool.close();
  const record = dkimRecordValue(createPublicKey(rsa));
  const lookupTxt = () => Promise.resolve([[record]]);
  const run = async (withCache: boolean) => {
    const keyCache = withCache ? createKeyCache() : undefined;
    const start = performance.now();
    for (const message of signed) {
      const [result] = await verifyMessage(message, { lookupTxt, keyCache, now: time });
      if (result?.result !== 'pass')
        throw new Error(`verification failed: ${JSON.stringify(result)}`);
    }
    return signed.length / ((performance.now() - start) / 1000);
  };
  const cached: number[] = [];
  const uncached: number[] = [];
  for (let round = 0; round < 3; round++) {
    cached.push(await run(true));
    uncached.push(await run(false));
  }
  return { cached: median(cached), uncached: median(uncached) };
}

function format(rate: number): string {
  return rate >= 100 ? Math.round(rate).toString() : rate.toFixed(1);
}

function percent(ratio: number): string {
  return `${(ratio * 100).toFixed(0)}%`;
}

function loadAverage(): string {
  try {
    return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  } catch {
    return 'unknown';
  }
}

const cpu = cpus()[0]?.model ?? 'unknown CPU';
console.log(
  `# DKIM benchmark: ${ROUNDS} rounds of ${ROUND_MS} ms, Node ${process.version}, ${cpus().length} x ${cpu}`,
);
console.log(`# load average at start: ${loadAverage()}\n`);
const single = await singleCore();
const python = dkimpy();
console.log('| signer, one core | 2 KiB msg/s | vs raw | 100 KiB msg/s | vs raw |');
console.log('| --- | ---: | ---: | ---: | ---: |');
for (const algorithm of ['rsa-sha256', 'ed25519-sha256']) {
  const rawLabel = algorithm === 'rsa-sha256' ? 'crypto RSA-2048 sign' : 'crypto Ed25519 sign';
  const rawSmall = single.rates.get(`${rawLabel}|2 KiB`) ?? 0;
  const rawLarge = single.rates.get(`${rawLabel}|100 KiB`) ?? 0;
  console.log(
    `| Node ${rawLabel} (raw, 700 bytes) | ${format(rawSmall)} | 100% | ${format(rawLarge)} | 100% |`,
  );
  for (const signer of ['Herald', 'Herald fields only', 'mailauth', 'dkimpy']) {
    if (signer === 'Herald fields only' && algorithm !== 'rsa-sha256') continue;
    let small: string;
    let large: string;
    if (signer === 'dkimpy') {
      // dkimpy runs in its own process after the others, so its ratio uses the median raw rate.
      const smallRate = python.get(`dkimpy ${algorithm} 2 KiB`) ?? 0;
      const largeRate = python.get(`dkimpy ${algorithm} 100 KiB`) ?? 0;
      small = `${format(smallRate)} | ${percent(smallRate / rawSmall)}`;
      large = `${format(largeRate)} | ${percent(largeRate / rawLarge)}`;
    } else {
      const smallKey = `${signer} ${algorithm} 2 KiB|2 KiB`;
      const largeKey = `${signer} ${algorithm} 100 KiB|100 KiB`;
      small = `${format(single.rates.get(smallKey) ?? 0)} | ${percent(single.ratios.get(smallKey) ?? 0)}`;
      large = `${format(single.rates.get(largeKey) ?? 0)} | ${percent(single.ratios.get(largeKey) ?? 0)}`;
    }
    console.log(`| ${signer} ${algorithm} | ${small} | ${large} |`);
  }
}
const pool = await poolRates();
console.log(`\n| batch of 400 x 2 KiB, rsa-sha256 | msg/s |\n| --- | ---: |`);
console.log(`| one core (signMessage loop) | ${format(pool.single)} |`);
console.log(
  `| pool of ${pool.size} workers (signBatch) | ${format(pool.pooled)} (${(pool.pooled / pool.single).toFixed(2)}x) |`,
);
const verify = await verifyRates();
console.log(`\n| verify ${VERIFY_COUNT} x 2 KiB, rsa-sha256, one core | msg/s |\n| --- | ---: |`);
console.log(
  `| with key cache | ${format(verify.cached)} (${(verify.cached / pool.single).toFixed(2)}x one-core signing) |`,
);
console.log(`| without key cache (key parsed per message) | ${format(verify.uncached)} |`);
console.log(`\n# load average at end: ${loadAverage()}`);
