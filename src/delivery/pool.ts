/**
 * Connection reuse and per-destination limits for delivery.
 *
 * `ConnectionPool` keeps sessions to MX hosts open between messages, so a burst to one
 * destination pays one TCP and TLS set-up, not one per message. An idle session is closed
 * after `idleTimeoutMs`, and a session is retired after `maxTransactions` transactions, so no
 * session lives forever.
 *
 * `DestinationLimiter` bounds concurrent deliveries and the rate of message starts per
 * recipient domain, so Herald never floods one receiver.
 */
import {
  openConnection,
  type ClientConnection,
  type ClientOptions,
  type MxTarget,
  type TlsPolicy,
} from './client.js';

export interface PoolOptions {
  /** Connection settings shared by every session; the TLS policy is chosen per acquire. */
  client: Omit<ClientOptions, 'tls'>;
  /** Idle sessions kept per host and TLS policy. */
  maxIdlePerHost?: number;
  idleTimeoutMs?: number;
  maxTransactions?: number;
}

const DEFAULT_MAX_IDLE_PER_HOST = 4;
const DEFAULT_IDLE_TIMEOUT_MS = 10_000;
const DEFAULT_MAX_TRANSACTIONS = 100;

interface IdleSession {
  connection: ClientConnection;
  timer: NodeJS.Timeout;
}

export class ConnectionPool {
  private readonly idle = new Map<string, IdleSession[]>();
  private readonly maxIdlePerHost: number;
  private readonly idleTimeoutMs: number;
  private readonly maxTransactions: number;
  private closed = false;
  /** Sessions opened since the pool was created, for tests and metrics. */
  opened = 0;

  constructor(private readonly options: PoolOptions) {
    this.maxIdlePerHost = options.maxIdlePerHost ?? DEFAULT_MAX_IDLE_PER_HOST;
    this.idleTimeoutMs = options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
    this.maxTransactions = options.maxTransactions ?? DEFAULT_MAX_TRANSACTIONS;
  }

  /** Returns an idle session to `target` under `policy`, or opens one (throws DeliveryError). */
  async acquire(target: MxTarget, policy: TlsPolicy): Promise<ClientConnection> {
    const key = poolKey(target, policy);
    const sessions = this.idle.get(key) ?? [];
    while (sessions.length > 0) {
      const session = sessions.pop()!;
      clearTimeout(session.timer);
      if (session.connection.usable) return session.connection;
      session.connection.close();
    }
    const connection = await openConnection(target, { ...this.options.client, tls: policy });
    this.opened++;
    return connection;
  }

  /** Takes a session back after a transaction; keeps it for reuse when it is still good. */
  release(connection: ClientConnection, policy: TlsPolicy): void {
    const key = poolKey(connection.target, policy);
    const sessions = this.idle.get(key) ?? [];
    const reusable =
      !this.closed &&
      connection.usable &&
      connection.transactions < this.maxTransactions &&
      sessions.length < this.maxIdlePerHost;
    if (!reusable) {
      connection.close();
      return;
    }
    const timer = setTimeout(() => this.expire(key, connection), this.idleTimeoutMs);
    timer.unref();
    sessions.push({ connection, timer });
    this.idle.set(key, sessions);
  }

  /** Closes every idle session; sessions in use close when they are released. */
  closeAll(): void {
    this.closed = true;
    for (const sessions of this.idle.values()) {
      for (const session of sessions) {
        clearTimeout(session.timer);
        session.connection.close();
      }
    }
    this.idle.clear();
  }

  get idleCount(): number {
    let count = 0;
    for (const sessions of this.idle.values()) count += sessions.length;
    return count;
  }

  private expire(key: string, connection: ClientConnection): void {
    const sessions = this.idle.get(key);
    if (!sessions) return;
    const index = sessions.findIndex((session) => session.connection === connection);
    if (index >= 0) sessions.splice(index, 1);
    if (sessions.length === 0) this.idle.delete(key);
    connection.close();
  }
}

function poolKey(target: MxTarget, policy: TlsPolicy): string {
  return `${target.host}|${target.address}|${policy}`;
}

/** A counting semaphore whose waiters are served in arrival order. */
export class Semaphore {
  private active = 0;
  private readonly waiters: Array<() => void> = [];

  constructor(private readonly limit: number) {}

  async acquire(): Promise<() => void> {
    if (this.active >= this.limit) {
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    } else {
      this.active++;
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiters.shift();
      // The slot passes straight to the next waiter, so `active` stays the same.
      if (next) next();
      else this.active--;
    };
  }

  get inUse(): number {
    return this.active;
  }
}

export interface LimiterOptions {
  perDomainConcurrency: number;
  /** Message starts per minute to one domain; 0 means no limit. */
  perDomainRatePerMinute: number;
  now?: () => number;
}

export class DestinationLimiter {
  private readonly semaphores = new Map<string, Semaphore>();
  private readonly nextStart = new Map<string, number>();
  private readonly now: () => number;

  constructor(private readonly options: LimiterOptions) {
    this.now = options.now ?? Date.now;
  }

  /** Waits for a free delivery slot to `domain`; call the returned function when done. */
  acquire(domain: string): Promise<() => void> {
    let semaphore = this.semaphores.get(domain);
    if (!semaphore) {
      semaphore = new Semaphore(this.options.perDomainConcurrency);
      this.semaphores.set(domain, semaphore);
    }
    return semaphore.acquire();
  }

  /**
   * Reserves the next start time for a message to `domain` under the rate limit and returns
   * how many milliseconds the caller must wait before starting it (0 when it may start now).
   * Starts are spaced evenly: a rate of 60 per minute allows one start per second.
   */
  reserveStart(domain: string): number {
    const rate = this.options.perDomainRatePerMinute;
    if (rate <= 0) return 0;
    const interval = 60_000 / rate;
    const now = this.now();
    const start = Math.max(now, this.nextStart.get(domain) ?? now);
    this.nextStart.set(domain, start + interval);
    return start - now;
  }

  /** Gives back a reservation that was not used, so the next caller need not wait for it. */
  cancelStart(domain: string): void {
    const rate = this.options.perDomainRatePerMinute;
    const next = this.nextStart.get(domain);
    if (rate > 0 && next !== undefined) this.nextStart.set(domain, next - 60_000 / rate);
  }
}
