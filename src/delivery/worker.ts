/**
 * The delivery workers: they claim due queue entries under a lease, group them by recipient
 * domain and message, look up the domain's MX hosts, send over pooled connections, and apply
 * the verdict of `decide` to each entry with `store.completeAttempt`.
 *
 * A failed entry, or a deferred one whose queue lifetime is over, gets a DSN (RFC 3464) to its
 * `bounceTo` address unless that is empty (the null sender). The DSN is enqueued before the
 * entry is marked failed, so a crash in between can repeat a DSN but never lose one.
 *
 * The loop wakes when `notify()` is called after an enqueue and otherwise sleeps until
 * `store.nextDueAt()`, checking at least every `maxSleepMs` for entries other nodes enqueued.
 * `stop()` claims nothing more and resolves once the deliveries in flight have finished.
 */
import { randomBytes } from 'node:crypto';

import type { HeraldConfig } from '../config/index.js';
import { DnsError, type MailResolver, type MxHost } from '../dns/index.js';
import { delaySince, messageLogger, type Logger } from '../log/index.js';
import { buildDsn, dsnQueueMessage } from '../queue/dsn.js';
import { retryScheduleFromSettings, type RetrySchedule } from '../queue/retry.js';
import { LeaseLostError } from '../store/index.js';
import type { AttemptOutcome, QueueEntry, Store } from '../store/types.js';
import {
  DeliveryError,
  type ClientOptions,
  type MxTarget,
  type OutboundMessage,
  type StepReport,
  type TlsPolicy,
} from './client.js';
import { decide, decideDnsFailure, decideHostLookupFailure } from './decide.js';
import { ConnectionPool, DestinationLimiter, Semaphore, type PoolOptions } from './pool.js';
import {
  attemptOutcome,
  dsnRecipientsByBounceTo,
  groupTransactions,
  missingBody,
  relayName,
  type EntryResult,
  type Transaction,
} from './transactions.js';

export interface DeliveryWorkerOptions {
  store: Store;
  resolver: MailResolver;
  config: Pick<HeraldConfig, 'hostname' | 'delivery'>;
  logger: Logger;
  /** Lease owner name; unique per process unless given. */
  owner?: string;
  /** Client settings beyond the configuration (a CA for tests, shorter timeouts). */
  client?: Partial<Pick<ClientOptions, 'ca' | 'greetingTimeoutMs' | 'socketTimeoutMs'>>;
  /** Connection reuse settings; the pool's defaults unless given. */
  pool?: Pick<PoolOptions, 'maxIdlePerHost' | 'idleTimeoutMs' | 'maxTransactions'>;
  /** Maximum sleep between two looks at the queue, in milliseconds. */
  maxSleepMs?: number;
  /** Called after every applied outcome, for metrics. */
  onOutcome?: (entry: QueueEntry, outcome: AttemptOutcome) => void;
}

export interface DeliveryWorkers {
  /** Wake the workers: call after an enqueue so new mail goes out at once. */
  notify(): void;
  /** Claim nothing more, finish deliveries in flight, close pooled connections. */
  stop(): Promise<void>;
  /** Resolves when no entry is due and nothing is in flight (tests and benchmarks). */
  idle(): Promise<void>;
  readonly owner: string;
}

/** Addresses tried per MX host, and in total per delivery, so a domain with many MX hosts
 * cannot hold a transaction for long. */
const MAX_ADDRESSES_PER_HOST = 2;
const MAX_TARGETS = 10;
const DEFAULT_MAX_SLEEP_MS = 30_000;
/** Pause after an unexpected failure of the loop (a store error), so it does not spin. */
const FAILURE_PAUSE_MS = 1_000;
const SPIN_PAUSE_MS = 20;
/** Waits between tries for a per-domain slot that other nodes hold, doubling up to the maximum. */
const SHARED_SLOT_INITIAL_BACKOFF_MS = 50;
const SHARED_SLOT_MAX_BACKOFF_MS = 1_000;
/** Transactions in memory at most, as a multiple of `delivery.concurrency`. */
const MAX_WAITING_FACTOR = 10;
/** How long an address that failed to connect is skipped while other addresses remain. */
const UNREACHABLE_MS = 30_000;

export function startDeliveryWorkers(options: DeliveryWorkerOptions): DeliveryWorkers {
  const worker = new DeliveryWorker(options);
  worker.start();
  return {
    notify: () => worker.notify(),
    stop: () => worker.stop(),
    idle: () => worker.idle(),
    owner: worker.owner,
  };
}

class DeliveryWorker {
  readonly owner: string;
  private readonly store: Store;
  private readonly resolver: MailResolver;
  private readonly config: DeliveryWorkerOptions['config'];
  private readonly logger: Logger;
  private readonly schedule: RetrySchedule;
  private readonly pool: ConnectionPool;
  private readonly limiter: DestinationLimiter;
  private readonly slots: Semaphore;
  private readonly requireTls: Set<string>;
  private readonly maxSleepMs: number;

  private running = false;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private notified = false;
  private lastClaimWasDue = false;
  private readonly inFlight = new Map<number, QueueEntry>();
  private readonly transactionsInFlight = new Set<Promise<void>>();
  private waitingForDomain = 0;
  private renewTimer: NodeJS.Timeout | undefined;
  private idleWaiters: Array<() => void> = [];
  private stopWaits = new Set<() => void>();
  /** Addresses that failed to connect, with the time until which they are skipped. */
  private readonly unreachable = new Map<string, number>();

  constructor(private readonly options: DeliveryWorkerOptions) {
    const { config } = options;
    this.store = options.store;
    this.resolver = options.resolver;
    this.config = config;
    this.logger = options.logger;
    this.owner =
      options.owner ?? `${config.hostname}:${process.pid}:${randomBytes(4).toString('hex')}`;
    this.schedule = retryScheduleFromSettings(config.delivery);
    this.pool = new ConnectionPool({
      client: {
        hostname: config.hostname,
        port: config.delivery.port,
        connectTimeoutMs: config.delivery.connectTimeout,
        ...options.client,
      },
      // Every session that may run at once to one host can wait idle for the next message.
      maxIdlePerHost: config.delivery.perDomainConcurrency,
      ...options.pool,
    });
    this.limiter = new DestinationLimiter({
      perDomainConcurrency: config.delivery.perDomainConcurrency,
      perDomainRatePerMinute: config.delivery.perDomainRatePerMinute,
    });
    this.slots = new Semaphore(config.delivery.concurrency);
    this.requireTls = new Set(config.delivery.requireTls.map((domain) => domain.toLowerCase()));
    this.maxSleepMs = options.maxSleepMs ?? DEFAULT_MAX_SLEEP_MS;
  }

  start(): void {
    this.running = true;
    // Renew leases well before they run out, for entries waiting on a slot and in delivery.
    const renewEvery = Math.max(1_000, Math.floor(this.config.delivery.leaseTime / 3));
    this.renewTimer = setInterval(() => void this.renewLeases(), renewEvery);
    this.renewTimer.unref();
    this.loop = this.run();
  }

  notify(): void {
    this.notified = true;
    this.wake?.();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.wake?.();
    for (const release of this.stopWaits) release();
    await this.loop;
    await Promise.all(this.transactionsInFlight);
    clearInterval(this.renewTimer);
    this.pool.closeAll();
    for (const waiter of this.idleWaiters.splice(0)) waiter();
  }

  idle(): Promise<void> {
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private async run(): Promise<void> {
    while (this.running) {
      try {
        await this.step();
      } catch (error) {
        this.logger.error({ err: error }, 'delivery loop failed; retrying in a second');
        await this.sleep(FAILURE_PAUSE_MS);
      }
    }
  }

  /** Claims what there is room for and starts it, or sleeps until something is due. */
  private async step(): Promise<void> {
    // Transactions that wait for their domain's turn do not count against the room, so a slow
    // domain cannot stop the claiming of mail for others. A cap bounds how many may wait.
    const { concurrency } = this.config.delivery;
    const active = this.transactionsInFlight.size - this.waitingForDomain;
    const room = Math.min(
      concurrency * 2 - active,
      concurrency * MAX_WAITING_FACTOR - this.transactionsInFlight.size,
    );
    if (room <= 0) {
      await this.waitForProgress();
      return;
    }

    this.notified = false;
    const entries = await this.store.claimDue({
      owner: this.owner,
      limit: room * 4,
      leaseMs: this.config.delivery.leaseTime,
    });
    if (entries.length > 0) {
      this.lastClaimWasDue = false;
      this.dispatch(entries);
      return;
    }
    if (this.transactionsInFlight.size > 0) {
      await this.waitForProgress();
      return;
    }

    const wait = await this.sleepTime();
    // An entry enqueued since the claim is due now, or notify() came meanwhile: claim again,
    // but pause briefly when that happens twice in a row, so a clock skew cannot spin the loop.
    const dueNow = wait === 0;
    const again = this.notified || dueNow;
    const spinning = dueNow && this.lastClaimWasDue;
    this.lastClaimWasDue = dueNow;
    if (again && !spinning) return;
    for (const waiter of this.idleWaiters.splice(0)) waiter();
    await this.sleep(spinning ? SPIN_PAUSE_MS : wait);
  }

  private async sleepTime(): Promise<number> {
    const due = await this.store.nextDueAt();
    if (!due) return this.maxSleepMs;
    // nextDueAt counts a leased entry as due when its lease runs out, so an entry due now
    // was enqueued after the claim (or its lease just expired) and can be claimed at once.
    return Math.min(Math.max(0, due.getTime() - Date.now()), this.maxSleepMs);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wake = () => {
        this.wake = undefined;
        done();
      };
    });
  }

  /** Waits until a transaction finishes or the worker is notified or stopped. */
  private async waitForProgress(): Promise<void> {
    const wakeUp = new Promise<void>((resolve) => {
      this.wake = () => {
        this.wake = undefined;
        resolve();
      };
    });
    await Promise.race([wakeUp, ...this.transactionsInFlight]);
  }

  private dispatch(entries: QueueEntry[]): void {
    for (const entry of entries) this.inFlight.set(entry.id, entry);
    const transactions = groupTransactions(entries);
    const bodies = new BodyReads(this.store, transactions);
    const lookups = new Map<string, Promise<MxHost[] | DnsError>>();
    // One address lookup per MX host serves every transaction of this claim, as the MX lookup
    // does per domain. Without it a campaign costs one DNS query per message.
    const addresses = new AddressLookups(this.resolver);

    for (const transaction of transactions) {
      if (!lookups.has(transaction.domain)) {
        lookups.set(transaction.domain, handled(this.lookupMx(transaction.domain)));
      }
      const running = this.runTransaction(
        transaction,
        bodies,
        lookups.get(transaction.domain)!,
        addresses,
      ).finally(() => {
        bodies.release(transaction.messageId);
        this.transactionsInFlight.delete(running);
        for (const entry of transaction.entries) this.inFlight.delete(entry.id);
        this.wake?.();
      });
      this.transactionsInFlight.add(running);
    }
  }

  private lookupMx(domain: string): Promise<MxHost[] | DnsError> {
    return this.resolver.resolveMx(domain).catch((error: unknown) => {
      if (error instanceof DnsError) return error;
      throw error;
    });
  }

  private async runTransaction(
    transaction: Transaction,
    bodies: BodyReads,
    mxPromise: Promise<MxHost[] | DnsError>,
    addresses: AddressLookups,
  ): Promise<void> {
    // The domain's turn comes first, so transactions queued for a busy or rate-limited domain
    // do not hold global slots that other domains could use.
    this.waitingForDomain++;
    const releaseDomain = await this.limiter.acquire(transaction.domain).finally(() => {
      this.waitingForDomain--;
    });
    let releaseSlot: (() => void) | undefined;
    let releaseShared: (() => Promise<void>) | undefined;
    try {
      const shared = await this.acquireSharedSlot(transaction.domain);
      if (shared === null) return;
      releaseShared = shared;
      await this.waitForRate(transaction.domain);
      releaseSlot = await this.slots.acquire();
      const body = await bodies.read(transaction.messageId);
      const results = body
        ? await this.deliver(transaction, body, await mxPromise, addresses)
        : transaction.entries.map((entry) => missingBody(entry));
      await this.applyResults(transaction, results, body);
    } catch (error) {
      // A store failure: the leases run out and another attempt picks the entries up again.
      this.logger.error(
        { err: error, queueId: transaction.messageId, domain: transaction.domain },
        'delivery attempt failed before its outcome was recorded; ' +
          'the entries are retried when their lease expires',
      );
    } finally {
      releaseSlot?.();
      releaseDomain();
      await releaseShared?.().catch((error: unknown) => {
        // The slot frees itself when this node's database session ends.
        this.logger.warn(
          { err: error, domain: transaction.domain },
          'releasing a shared slot failed',
        );
      });
    }
  }

  /**
   * Takes one of the per-domain delivery slots that every node shares, when the store
   * coordinates several nodes (PostgreSQL). Returns undefined when the store has no shared
   * slots, and null when the worker stopped while waiting: the entries then stay leased and are
   * delivered after their lease expires.
   */
  private async acquireSharedSlot(
    domain: string,
  ): Promise<(() => Promise<void>) | undefined | null> {
    if (!this.store.tryAcquireDestinationSlot) return undefined;
    let backoffMs = SHARED_SLOT_INITIAL_BACKOFF_MS;
    while (this.running) {
      const release = await this.store.tryAcquireDestinationSlot(
        domain,
        this.config.delivery.perDomainConcurrency,
      );
      if (release) return release;
      await this.sleepUnlessStopped(backoffMs);
      backoffMs = Math.min(backoffMs * 2, SHARED_SLOT_MAX_BACKOFF_MS);
    }
    return null;
  }

  private async waitForRate(domain: string): Promise<void> {
    const rate = this.config.delivery.perDomainRatePerMinute;
    // With several nodes the schedule of message starts lives in the store, shared by all.
    const wait =
      this.store.reserveDestinationStart && rate > 0
        ? await this.store.reserveDestinationStart(domain, rate)
        : this.limiter.reserveStart(domain);
    if (wait <= 0 || !this.running) return;
    await this.sleepUnlessStopped(wait);
  }

  /** Sleeps for `ms`, or less when the workers stop meanwhile. */
  private async sleepUnlessStopped(ms: number): Promise<void> {
    await new Promise<void>((resolve) => {
      const release = (): void => {
        clearTimeout(timer);
        this.stopWaits.delete(release);
        resolve();
      };
      const timer = setTimeout(release, ms);
      this.stopWaits.add(release);
    });
  }

  /** Tries the MX hosts in order until every recipient has a final verdict. */
  private async deliver(
    transaction: Transaction,
    body: Buffer,
    mx: MxHost[] | DnsError,
    addresses: AddressLookups,
  ): Promise<EntryResult[]> {
    if (mx instanceof DnsError) {
      const verdict = decideDnsFailure(mx);
      const report: StepReport = { stage: 'connect', reply: mx.message };
      return transaction.entries.map((entry) => ({ entry, verdict, report }));
    }

    const resolved = await this.resolveTargets(mx, transaction.messageId, addresses);
    if (resolved.length === 0) {
      const verdict = decideHostLookupFailure(true);
      const names = mx.map((host) => host.exchange).join(', ');
      const report: StepReport = {
        stage: 'connect',
        reply: `no address found for MX host ${names}`,
      };
      return transaction.entries.map((entry) => ({ entry, verdict, report }));
    }

    const policy: TlsPolicy = this.requireTls.has(transaction.domain)
      ? 'required'
      : 'opportunistic';
    const targets = this.skipUnreachable(resolved);
    const results: EntryResult[] = [];
    let pending = transaction.entries;
    for (let index = 0; index < targets.length && pending.length > 0; index++) {
      const target = targets[index]!;
      const lastMx = index === targets.length - 1;
      const reports = await this.attempt(target, policy, transaction.sender, pending, body);
      this.noteReachability(target, reports);
      const next: QueueEntry[] = [];
      for (const entry of pending) {
        const report = reports.get(entry.recipient) ?? { stage: 'data', reply: 'no report' };
        const verdict = decide({ ...report, lastMx });
        if (verdict.action === 'next-mx') {
          this.messageLog(entry).info(
            { relay: relayName(target), dsn: verdict.dsn, status: 'next-mx', reply: report.reply },
            `trying the next MX host after ${report.stage}`,
          );
          next.push(entry);
        } else {
          results.push({ entry, verdict, report, target });
        }
      }
      pending = next;
    }
    return results;
  }

  /**
   * Leaves out addresses that refused or timed out a connection in the last
   * `UNREACHABLE_MS`, so a burst to a domain whose first MX is down does not wait for that
   * host once per message. When every address is marked, all are tried: one may be back.
   */
  private skipUnreachable(targets: MxTarget[]): MxTarget[] {
    const now = Date.now();
    const reachable = targets.filter((target) => {
      const until = this.unreachable.get(relayName(target));
      return until === undefined || until <= now;
    });
    return reachable.length > 0 ? reachable : targets;
  }

  private noteReachability(target: MxTarget, reports: Map<string, StepReport>): void {
    const failedToConnect = [...reports.values()].every(
      (report) => report.stage === 'connect' && report.code === undefined,
    );
    if (failedToConnect) this.unreachable.set(relayName(target), Date.now() + UNREACHABLE_MS);
    else this.unreachable.delete(relayName(target));
  }

  /** One session's try at the pending recipients; failures become reports, never throws. */
  private async attempt(
    target: MxTarget,
    policy: TlsPolicy,
    sender: string,
    entries: QueueEntry[],
    body: Buffer,
  ): Promise<Map<string, StepReport>> {
    const message = { from: sender, to: entries.map((entry) => entry.recipient), body };
    const first = await this.sendOnce(target, policy, message);
    // A pooled session the host closed while it sat idle fails before any reply. The failure
    // belongs to the stale session, not to the host, so a fresh session gets one more try.
    if (first.reused && first.lostSession) {
      return (await this.sendOnce(target, policy, message)).reports;
    }
    return first.reports;
  }

  private async sendOnce(
    target: MxTarget,
    policy: TlsPolicy,
    message: OutboundMessage,
  ): Promise<{ reports: Map<string, StepReport>; reused: boolean; lostSession: boolean }> {
    let connection;
    try {
      connection = await this.pool.acquire(target, policy);
    } catch (error) {
      if (!(error instanceof DeliveryError)) throw error;
      const reports = new Map<string, StepReport>(
        message.to.map((recipient) => [recipient, error]),
      );
      return { reports, reused: false, lostSession: false };
    }
    const reused = connection.transactions > 0;
    try {
      const reports = await connection.send(message);
      const noReply = [...reports.values()].every((report) => report.code === undefined);
      return { reports, reused, lostSession: noReply && !connection.usable };
    } finally {
      this.pool.release(connection, policy);
    }
  }

  /** Resolves the MX hosts to addresses, in order, within the per-host and total limits. */
  private async resolveTargets(
    hosts: MxHost[],
    queueId: string,
    addresses: AddressLookups,
  ): Promise<MxTarget[]> {
    const lookups = await Promise.allSettled(hosts.map((host) => addresses.resolve(host.exchange)));
    const targets: MxTarget[] = [];
    lookups.forEach((lookup, index) => {
      const host = hosts[index]!.exchange;
      if (lookup.status === 'rejected') {
        messageLogger(this.logger, queueId).warn(
          { relay: host, status: 'next-mx', err: lookup.reason as unknown },
          `address lookup of MX host ${host} failed`,
        );
        return;
      }
      for (const address of lookup.value.slice(0, MAX_ADDRESSES_PER_HOST)) {
        targets.push({ host, address });
      }
    });
    return targets.slice(0, MAX_TARGETS);
  }

  /** Sends the DSNs the results call for, then records every result in the store. */
  private async applyResults(
    transaction: Transaction,
    results: EntryResult[],
    body: Buffer | undefined,
  ): Promise<void> {
    const now = new Date();
    const outcomes = results.map((result) => ({
      result,
      outcome: attemptOutcome(result, this.schedule, now),
    }));

    const failed = outcomes.filter(({ outcome }) => outcome.status === 'failed');
    await this.sendDsns(transaction, failed, body ?? Buffer.alloc(0), now);

    // Issued together, so the store's group commit covers the whole transaction with one fsync.
    const applied = await Promise.allSettled(
      outcomes.map(({ result, outcome }) =>
        this.store.completeAttempt(result.entry.id, this.owner, outcome),
      ),
    );
    let storeError: Error | undefined;
    applied.forEach((settled, index) => {
      const { result, outcome } = outcomes[index]!;
      if (settled.status === 'fulfilled') {
        this.logOutcome(result, outcome, now);
        this.options.onOutcome?.(result.entry, outcome);
      } else if (settled.reason instanceof LeaseLostError) {
        this.messageLog(result.entry).warn(
          { status: 'lease-lost' },
          'lease expired during delivery; another worker owns the entry now',
        );
      } else {
        storeError ??=
          settled.reason instanceof Error ? settled.reason : new Error(String(settled.reason));
      }
    });
    if (storeError !== undefined) throw storeError;
  }

  private async sendDsns(
    transaction: Transaction,
    failed: Array<{ result: EntryResult; outcome: AttemptOutcome }>,
    original: Buffer,
    now: Date,
  ): Promise<void> {
    const byBounceTo = dsnRecipientsByBounceTo(failed, now);
    const createdAt = transaction.entries[0]!.createdAt;
    for (const [bounceTo, recipients] of byBounceTo) {
      const dsn = buildDsn({
        hostname: this.config.hostname,
        to: bounceTo,
        queueId: transaction.messageId,
        arrivalDate: createdAt,
        recipients,
        original,
        now,
      });
      const { messageId } = await this.store.enqueue(dsnQueueMessage(dsn, bounceTo));
      messageLogger(this.logger, transaction.messageId).info(
        { from: '', to: bounceTo, status: 'bounce-queued', dsnQueueId: messageId },
        `sender non-delivery notification: ${messageId}`,
      );
      this.notify();
    }
  }

  private logOutcome(result: EntryResult, outcome: AttemptOutcome, now: Date): void {
    const status =
      outcome.status === 'delivered'
        ? 'sent'
        : outcome.status === 'deferred'
          ? 'deferred'
          : 'bounced';
    const fields = {
      relay: outcome.mx ?? 'none',
      delay: delaySince(result.entry.createdAt, now),
      dsn: outcome.dsn,
      status,
      reply: outcome.reply,
      attempt: result.entry.attempts + 1,
    };
    const log = this.messageLog(result.entry);
    if (outcome.status === 'delivered') log.info(fields, `delivered: ${outcome.reply}`);
    else log.warn(fields, `${status}: ${outcome.reply}`);
  }

  private messageLog(entry: QueueEntry) {
    return messageLogger(this.logger, entry.messageId, { from: entry.sender, to: entry.recipient });
  }

  private async renewLeases(): Promise<void> {
    if (this.inFlight.size === 0) return;
    try {
      await this.store.renewLease(
        [...this.inFlight.keys()],
        this.owner,
        this.config.delivery.leaseTime,
      );
    } catch (error) {
      this.logger.warn({ err: error }, 'renewing delivery leases failed');
    }
  }
}

/**
 * Message bodies for the transactions of one claim. A body is read when the first of its
 * transactions has a delivery slot, not when the claim is dispatched, so transactions that
 * wait for a slot hold no body. It is dropped once its last transaction has finished.
 */
class BodyReads {
  private readonly reads = new Map<string, Promise<Buffer | undefined>>();
  /** Unfinished transactions per message id. */
  private readonly users = new Map<string, number>();

  constructor(
    private readonly store: Store,
    transactions: readonly Transaction[],
  ) {
    for (const { messageId } of transactions) {
      this.users.set(messageId, (this.users.get(messageId) ?? 0) + 1);
    }
  }

  read(messageId: string): Promise<Buffer | undefined> {
    let read = this.reads.get(messageId);
    if (read === undefined) {
      read = handled(this.store.getMessageBody(messageId));
      this.reads.set(messageId, read);
    }
    return read;
  }

  /** Records that one transaction of the message has finished. */
  release(messageId: string): void {
    const left = (this.users.get(messageId) ?? 1) - 1;
    if (left > 0) {
      this.users.set(messageId, left);
      return;
    }
    this.users.delete(messageId);
    this.reads.delete(messageId);
  }
}

/**
 * Address lookups shared by the transactions of one claim. The first request for a host starts
 * the query, and later ones get the same promise, its rejection included.
 */
class AddressLookups {
  private readonly pending = new Map<string, Promise<string[]>>();

  constructor(private readonly resolver: MailResolver) {}

  resolve(host: string): Promise<string[]> {
    let lookup = this.pending.get(host);
    if (lookup === undefined) {
      lookup = handled(this.resolver.resolveAddresses(host));
      this.pending.set(host, lookup);
    }
    return lookup;
  }
}

/**
 * Marks a shared promise as handled, so a rejection that comes while its transactions still
 * wait for a slot is not an unhandled rejection (which ends a Node process). Each transaction
 * awaits the returned promise and sees the rejection itself.
 */
function handled<T>(promise: Promise<T>): Promise<T> {
  promise.catch(() => undefined);
  return promise;
}
