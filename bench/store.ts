/**
 * Group commit in the SQLite store: how many messages a second `enqueue` commits durably when
 * concurrent sessions share transactions (the default), against one transaction and one fsync
 * per message (`maxBatch: 1`), measured in alternating rounds.
 *
 *   npx tsx bench/store.ts [messages] [sessions] [rounds]
 *
 * Each session enqueues one 4 KiB message with one recipient, waits for the commit, and
 * enqueues the next, as an SMTP session waits for its 250. The database uses WAL with
 * `synchronous = FULL`, as in production, in a fresh temporary directory per case.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { SqliteStore } from '../src/store/sqlite.js';

const MESSAGES = Number(process.argv[2] ?? 2_000);
const SESSIONS = Number(process.argv[3] ?? 100);
const ROUNDS = Number(process.argv[4] ?? 5);

const body = Buffer.alloc(4096, 'x');

interface CaseResult {
  perSecond: number;
  commits: number;
}

async function runCase(maxBatch: number): Promise<CaseResult> {
  const directory = mkdtempSync(path.join(tmpdir(), 'herald-bench-store-'));
  const store = new SqliteStore({ path: path.join(directory, 'bench.sqlite'), maxBatch });
  await store.migrate();
  let started = 0;
  const session = async () => {
    while (started < MESSAGES) {
      started += 1;
      await store.enqueue({
        body,
        origin: 'inbound',
        originalSender: 'author@origin.test',
        recipients: [
          { recipient: 'someone@bench.test', sender: 'author@origin.test', bounceTo: '' },
        ],
      });
    }
  };
  const start = performance.now();
  await Promise.all(Array.from({ length: SESSIONS }, session));
  const seconds = (performance.now() - start) / 1000;
  const { commits } = store.stats;
  await store.close();
  rmSync(directory, { recursive: true, force: true });
  return { perSecond: MESSAGES / seconds, commits };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

const grouped: CaseResult[] = [];
const single: CaseResult[] = [];
const ratios: number[] = [];
for (let round = 0; round < ROUNDS; round++) {
  const a = await runCase(500);
  const b = await runCase(1);
  grouped.push(a);
  single.push(b);
  ratios.push(a.perSecond / b.perSecond);
  console.log(
    `round ${round + 1}: group commit ${a.perSecond.toFixed(0)}/s in ${a.commits} commits, ` +
      `one commit per message ${b.perSecond.toFixed(0)}/s in ${b.commits} commits`,
  );
}
console.log(`${MESSAGES} messages, ${SESSIONS} sessions, ${ROUNDS} rounds (medians):`);
console.log(`  group commit:           ${median(grouped.map((r) => r.perSecond)).toFixed(0)}/s`);
console.log(`  one commit per message: ${median(single.map((r) => r.perSecond)).toFixed(0)}/s`);
console.log(`  ratio:                  ${median(ratios).toFixed(1)}`);
