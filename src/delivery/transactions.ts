/**
 * The units of delivery work and their results: claimed entries grouped into SMTP
 * transactions, the store outcome of each entry's verdict, and the DSN recipients of the
 * entries that failed.
 */
import type { DsnRecipient } from '../queue/dsn.js';
import { nextRetry, type RetrySchedule } from '../queue/retry.js';
import type { AttemptOutcome, QueueEntry } from '../store/types.js';
import type { MxTarget, StepReport } from './client.js';
import type { Verdict } from './decide.js';

/** Recipients per transaction: 50, Postfix 3.7's default `smtp_destination_recipient_limit`. */
const MAX_RECIPIENTS_PER_TRANSACTION = 50;

/** One SMTP transaction's worth of work: one message, one sender, recipients of one domain. */
export interface Transaction {
  domain: string;
  messageId: string;
  sender: string;
  entries: QueueEntry[];
}

/** The final word on one entry of a transaction. */
export interface EntryResult {
  entry: QueueEntry;
  verdict: Verdict;
  report?: StepReport;
  target?: MxTarget;
}

/**
 * Groups claimed entries into transactions: by recipient domain, then by message and sender,
 * at most `MAX_RECIPIENTS_PER_TRANSACTION` distinct recipients each.
 */
export function groupTransactions(entries: QueueEntry[]): Transaction[] {
  const groups = new Map<string, Transaction[]>();
  for (const entry of entries) {
    const key = `${entry.recipientDomain}\u0000${entry.messageId}\u0000${entry.sender}`;
    const list = groups.get(key) ?? [];
    let transaction = list.find(
      (candidate) =>
        candidate.entries.length < MAX_RECIPIENTS_PER_TRANSACTION &&
        !candidate.entries.some((other) => other.recipient === entry.recipient),
    );
    if (!transaction) {
      transaction = {
        domain: entry.recipientDomain,
        messageId: entry.messageId,
        sender: entry.sender,
        entries: [],
      };
      list.push(transaction);
      groups.set(key, list);
    }
    transaction.entries.push(entry);
  }
  return [...groups.values()].flat();
}

/**
 * Turns an entry's verdict into the outcome the store records: deferred entries get their next
 * attempt time from the retry schedule, or fail once their queue lifetime is over.
 */
export function attemptOutcome(
  result: EntryResult,
  schedule: RetrySchedule,
  now: Date,
): AttemptOutcome {
  const { entry, verdict, report, target } = result;
  const mx = target ? relayName(target) : null;
  const reply = report?.reply ?? verdict.dsn;
  if (verdict.action === 'deliver') return { status: 'delivered', reply, mx, dsn: verdict.dsn };
  if (verdict.action === 'bounce') return { status: 'failed', reply, mx, dsn: verdict.dsn };

  const retry = nextRetry(
    schedule,
    { attempts: entry.attempts + 1, createdAt: entry.createdAt },
    now,
  );
  if (retry.kind === 'retry') {
    return { status: 'deferred', reply, mx, dsn: verdict.dsn, nextAttemptAt: retry.at };
  }
  // The DSN of an expired message reports the transient status of its last attempt.
  return {
    status: 'failed',
    reply: `message expired in the queue; last reply: ${reply}`,
    mx,
    dsn: verdict.dsn,
  };
}

/**
 * Collects the DSN recipients of failed entries by the address the DSN goes to, leaving out
 * entries whose `bounceTo` is empty (the null sender gets no DSN).
 */
export function dsnRecipientsByBounceTo(
  failed: Array<{ result: EntryResult; outcome: AttemptOutcome }>,
  now: Date,
): Map<string, DsnRecipient[]> {
  const byBounceTo = new Map<string, DsnRecipient[]>();
  for (const { result, outcome } of failed) {
    const bounceTo = result.entry.bounceTo;
    if (bounceTo === '') continue;
    const recipients = byBounceTo.get(bounceTo) ?? [];
    recipients.push({
      recipient: result.entry.recipient,
      action: 'failed',
      status: outcome.dsn,
      remoteMta: result.target?.host ?? null,
      diagnostic: outcome.reply,
      lastAttemptAt: now,
    });
    byBounceTo.set(bounceTo, recipients);
  }
  return byBounceTo;
}

/** Formats the relay as logs and queue events show it: `mx.example.net[192.0.2.1]`. */
export function relayName(target: MxTarget): string {
  return `${target.host}[${target.address}]`;
}

export function missingBody(entry: QueueEntry): EntryResult {
  // The message was deleted while its entry was claimed; nothing can be sent or returned.
  return {
    entry,
    verdict: { action: 'bounce', dsn: '5.3.0' },
    report: { stage: 'connect', reply: 'message body not found in the store' },
  };
}
