import { describe, expect, it } from 'vitest';
import { DEFAULT_RETRY_SCHEDULE } from '../queue/retry.js';
import type { QueueEntry } from '../store/types.js';
import { attemptOutcome, dsnRecipientsByBounceTo, groupTransactions } from './transactions.js';

const created = new Date('2026-12-01T10:00:00Z');

function entry(id: number, recipient: string, overrides: Partial<QueueEntry> = {}): QueueEntry {
  return {
    id,
    messageId: 'm1',
    recipient,
    recipientDomain: recipient.split('@')[1]!,
    sender: 's@a.test',
    bounceTo: 's@a.test',
    origin: 'inbound',
    status: 'queued',
    attempts: 0,
    createdAt: created,
    nextAttemptAt: created,
    lastReply: null,
    campaignId: null,
    subscriberId: null,
    ...overrides,
  };
}

const target = { host: 'mx.x.test', address: '127.0.0.11' };
const report = { stage: 'rcpt' as const, code: 451, enhanced: '4.2.0', reply: '451 4.2.0 Busy' };

describe('groupTransactions', () => {
  it('splits by domain, message and sender', () => {
    const groups = groupTransactions([
      entry(1, 'a@x.test'),
      entry(2, 'b@x.test'),
      entry(3, 'c@y.test'),
      entry(4, 'd@x.test', { messageId: 'm2' }),
      entry(5, 'e@x.test', { sender: 'other@a.test' }),
      entry(6, 'a@x.test'),
    ]);
    expect(groups.map((group) => group.entries.map((e) => e.id))).toEqual([
      [1, 2],
      [6],
      [3],
      [4],
      [5],
    ]);
  });

  it('caps recipients per transaction at 50', () => {
    const entries = Array.from({ length: 120 }, (_, i) => entry(i, `r${i}@x.test`));
    expect(groupTransactions(entries).map((group) => group.entries.length)).toEqual([50, 50, 20]);
  });
});

describe('attemptOutcome', () => {
  const now = new Date(created.getTime() + 60_000);

  it('records a delivery with its relay', () => {
    const outcome = attemptOutcome(
      {
        entry: entry(1, 'a@x.test'),
        verdict: { action: 'deliver', dsn: '2.0.0' },
        report: { ...report, code: 250, reply: '250 Ok' },
        target,
      },
      DEFAULT_RETRY_SCHEDULE,
      now,
    );
    expect(outcome).toEqual({
      status: 'delivered',
      reply: '250 Ok',
      mx: 'mx.x.test[127.0.0.11]',
      dsn: '2.0.0',
    });
  });

  it('schedules a deferral by the retry schedule', () => {
    const outcome = attemptOutcome(
      {
        entry: entry(1, 'a@x.test', { attempts: 2 }),
        verdict: { action: 'defer', dsn: '4.2.0' },
        report,
        target,
      },
      DEFAULT_RETRY_SCHEDULE,
      now,
    );
    expect(outcome.status).toBe('deferred');
    // The third failure waits 5 minutes times 2 squared.
    expect(outcome.nextAttemptAt?.getTime()).toBe(now.getTime() + 20 * 60_000);
    expect(outcome.dsn).toBe('4.2.0');
  });

  it('fails a deferral past the queue lifetime', () => {
    const late = new Date(created.getTime() + DEFAULT_RETRY_SCHEDULE.maxQueueLifetime);
    const outcome = attemptOutcome(
      {
        entry: entry(1, 'a@x.test', { attempts: 30 }),
        verdict: { action: 'defer', dsn: '4.2.0' },
        report,
      },
      DEFAULT_RETRY_SCHEDULE,
      late,
    );
    expect(outcome.status).toBe('failed');
    expect(outcome.dsn).toBe('4.2.0');
    expect(outcome.mx).toBeNull();
    expect(outcome.reply).toBe('message expired in the queue; last reply: 451 4.2.0 Busy');
  });
});

describe('dsnRecipientsByBounceTo', () => {
  it('groups by bounce address and skips the null sender', () => {
    const now = new Date();
    const failed = [
      {
        result: {
          entry: entry(1, 'a@x.test'),
          verdict: { action: 'bounce' as const, dsn: '5.1.1' },
          target,
        },
        outcome: { status: 'failed' as const, reply: '550 5.1.1 Unknown', mx: 'mx', dsn: '5.1.1' },
      },
      {
        result: {
          entry: entry(2, 'b@x.test', { bounceTo: '' }),
          verdict: { action: 'bounce' as const, dsn: '5.1.1' },
        },
        outcome: { status: 'failed' as const, reply: 'r', mx: null, dsn: '5.1.1' },
      },
      {
        result: {
          entry: entry(3, 'c@x.test'),
          verdict: { action: 'bounce' as const, dsn: '5.2.2' },
        },
        outcome: { status: 'failed' as const, reply: 'full', mx: null, dsn: '5.2.2' },
      },
    ];
    const grouped = dsnRecipientsByBounceTo(failed, now);
    expect([...grouped.keys()]).toEqual(['s@a.test']);
    expect(grouped.get('s@a.test')).toEqual([
      {
        recipient: 'a@x.test',
        action: 'failed',
        status: '5.1.1',
        remoteMta: 'mx.x.test',
        diagnostic: '550 5.1.1 Unknown',
        lastAttemptAt: now,
      },
      {
        recipient: 'c@x.test',
        action: 'failed',
        status: '5.2.2',
        remoteMta: null,
        diagnostic: 'full',
        lastAttemptAt: now,
      },
    ]);
  });
});
