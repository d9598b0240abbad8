/**
 * SRS rewrite rates side by side in one run: Herald's forward and reverse in process, the raw
 * HMAC-SHA1 rate of Node's crypto over input of the same size, and postsrsd 1.x answering the
 * same addresses over its tcp_table protocol on loopback (one connection per table, one request
 * in flight, as Postfix queries it).
 *
 *   npx tsx bench/srs.ts [--rounds 21] [--ms 100] [--lookups 2000] [--postsrsd-rounds 7]
 *
 * Each in-process round measures the three in-process cases for a short window each, in turn,
 * so machine noise hits them alike; the table reports the median rate and the median of the
 * per-round ratios. The postsrsd rounds follow, so its second process does not disturb them.
 */
import { createHmac } from 'node:crypto';
import { parseArgs } from 'node:util';

import { SrsRewriter } from '../src/srs/index.js';
import { Postsrsd } from '../test/srs/postsrsd.js';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '21' },
    ms: { type: 'string', default: '100' },
    lookups: { type: 'string', default: '2000' },
    'postsrsd-rounds': { type: 'string', default: '7' },
  },
});
const ROUNDS = Number(values.rounds);
const POSTSRSD_ROUNDS = Number(values['postsrsd-rounds']);
const WINDOW_MS = Number(values.ms);
const LOOKUPS = Number(values.lookups);

const DOMAIN = 'srs.bench.example';
const SECRET = 'benchmark secret';

/** 256 senders of typical shape: a name, sometimes a tag, a few hundred domains. */
function senders(): string[] {
  const names = ['info', 'newsletter', 'j.smith', 'anna+lists', 'bounce-4711', 'Support'];
  const hosts = ['example.com', 'mail.example.org', 'club.example', 'lists.example.net'];
  return Array.from({ length: 256 }, (_, i) => {
    const name = names[i % names.length]!;
    const host = hosts[(i >> 3) % hosts.length]!;
    return `${name}${i}@${i % 5 === 0 ? `sub${i}.` : ''}${host}`;
  });
}

/**
 * Runs `operation` for `WINDOW_MS` of wall time and returns operations per second of CPU time
 * used by this process. CPU time leaves out the time other processes on a busy machine take
 * from this one, which would otherwise land unevenly on the cases compared.
 */
function rate(operation: (i: number) => unknown): number {
  let count = 0;
  const cpuStart = process.cpuUsage();
  const end = process.hrtime.bigint() + BigInt(WINDOW_MS) * 1_000_000n;
  while (process.hrtime.bigint() < end) {
    for (let j = 0; j < 256; j++) operation(count + j);
    count += 256;
  }
  const cpu = process.cpuUsage(cpuStart);
  return count / ((cpu.user + cpu.system) / 1e6);
}

/** Sends `LOOKUPS` requests one after another and returns lookups per second. */
async function lookupRate(lookup: (address: string) => Promise<unknown>, inputs: string[]) {
  const start = process.hrtime.bigint();
  for (let i = 0; i < LOOKUPS; i++) await lookup(inputs[i % inputs.length]!);
  return LOOKUPS / (Number(process.hrtime.bigint() - start) / 1e9);
}

function median(samples: number[]): number {
  const sorted = [...samples].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

async function main(): Promise<void> {
  const inputs = senders();
  const herald = new SrsRewriter({ domain: DOMAIN, secrets: [SECRET], alphabet: 'base64' });
  const forwarded = inputs.map((address) => {
    const result = herald.forward(address);
    if (result.kind !== 'rewritten') throw new Error(`not rewritten: ${address}`);
    return result.address;
  });
  // The raw HMAC hashes what an SRS0 hash covers: the stamp, the domain and the local part.
  const hmacInputs = inputs.map((address) => `jw${address.replace('@', '').toLowerCase()}`);

  const postsrsd = await Postsrsd.start({ domain: DOMAIN, secrets: [SECRET] });
  try {
    const theirs = await postsrsd.forward(inputs[0]!);
    if (theirs.value !== forwarded[0]) {
      throw new Error(`postsrsd and Herald disagree: ${theirs.value} ${forwarded[0]}`);
    }
    const samples: Record<string, number[]> = {
      hmac: [],
      forward: [],
      reverse: [],
      postsrsdForward: [],
      postsrsdReverse: [],
      forwardRatio: [],
      reverseRatio: [],
    };
    for (let round = 0; round < ROUNDS; round++) {
      const hmac = rate((i) =>
        createHmac('sha1', SECRET)
          .update(hmacInputs[i & 255]!)
          .digest(),
      );
      const forward = rate((i) => herald.forward(inputs[i & 255]!));
      const reverse = rate((i) => herald.reverse(forwarded[i & 255]!));
      samples.hmac!.push(hmac);
      samples.forward!.push(forward);
      samples.reverse!.push(reverse);
      samples.forwardRatio!.push(forward / hmac);
      samples.reverseRatio!.push(reverse / hmac);
    }
    for (let round = 0; round < POSTSRSD_ROUNDS; round++) {
      samples.postsrsdForward!.push(await lookupRate((a) => postsrsd.forward(a), inputs));
      samples.postsrsdReverse!.push(await lookupRate((a) => postsrsd.reverse(a), forwarded));
    }

    const hmacRate = median(samples.hmac!);
    const row = (name: string, key: string, ratioKey?: string) => {
      const perSecond = median(samples[key]!);
      const ratio = ratioKey === undefined ? perSecond / hmacRate : median(samples[ratioKey]!);
      return `| ${name} | ${Math.round(perSecond).toLocaleString('en-US')} | ${(ratio * 100).toFixed(1)}% |`;
    };
    console.log(
      `Node ${process.version}, ${ROUNDS} rounds of ${WINDOW_MS} ms windows, ` +
        `${POSTSRSD_ROUNDS} postsrsd rounds of ${LOOKUPS} sequential lookups\n`,
    );
    console.log('In-process rates are per CPU second, postsrsd rates per wall-clock second.\n');
    console.log('| case | per second (median) | of raw HMAC-SHA1 |');
    console.log('| --- | ---: | ---: |');
    console.log(row('raw HMAC-SHA1 (node:crypto)', 'hmac'));
    console.log(row('Herald forward, in process', 'forward', 'forwardRatio'));
    console.log(row('Herald reverse, in process', 'reverse', 'reverseRatio'));
    console.log(row('postsrsd 1.10 forward, tcp_table on loopback', 'postsrsdForward'));
    console.log(row('postsrsd 1.10 reverse, tcp_table on loopback', 'postsrsdReverse'));
  } finally {
    await postsrsd.stop();
  }
}

await main();
