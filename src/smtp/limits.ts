/**
 * Per-client limits that smtp-server does not enforce itself: concurrent connections per
 * client address, and a rate of commands per client address over a sliding minute. The state
 * is in process memory, so with several nodes each node counts on its own.
 */

/** Counts open connections per client address. */
export class ConnectionLimiter {
  private readonly open = new Map<string, number>();

  constructor(readonly maxPerClient: number) {}

  /** Registers a connection; returns false, registering nothing, when the client is at the limit. */
  acquire(client: string): boolean {
    const count = this.open.get(client) ?? 0;
    if (this.maxPerClient > 0 && count >= this.maxPerClient) return false;
    this.open.set(client, count + 1);
    return true;
  }

  release(client: string): void {
    const count = this.open.get(client) ?? 0;
    if (count <= 1) this.open.delete(client);
    else this.open.set(client, count - 1);
  }

  count(client: string): number {
    return this.open.get(client) ?? 0;
  }
}

/**
 * A token bucket per key: `limit` events per `windowMs`, refilled continuously, so a client
 * may burst up to `limit` and then proceeds at the average rate. At most `maxKeys` buckets are
 * kept; past that the least recently created bucket is dropped, which only forgives a client.
 */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; updatedAt: number }>();

  constructor(
    readonly limit: number,
    readonly windowMs: number,
    private readonly now: () => number = Date.now,
    private readonly maxKeys = 100_000,
  ) {}

  /** Takes one token for `key`; returns false when the bucket is empty (the event is over the rate). */
  take(key: string): boolean {
    if (this.limit <= 0) return true;
    const now = this.now();
    const bucket = this.buckets.get(key);
    if (!bucket) {
      this.insert(key, { tokens: this.limit - 1, updatedAt: now });
      return true;
    }

    const refill = ((now - bucket.updatedAt) * this.limit) / this.windowMs;
    bucket.tokens = Math.min(this.limit, bucket.tokens + refill);
    bucket.updatedAt = now;
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }

  private insert(key: string, bucket: { tokens: number; updatedAt: number }): void {
    while (this.buckets.size >= this.maxKeys) {
      const oldest = this.buckets.keys().next();
      if (oldest.done === true) break;
      this.buckets.delete(oldest.value);
    }
    this.buckets.set(key, bucket);
  }
}

/**
 * Bytes of DATA held in memory over every session of the listeners that share it. A reading
 * session reserves each chunk before keeping it and releases its whole reservation when the
 * message is done, so the total stays at or below `maxBytes`.
 * NOTE: the reservation ends when the final dot is read, so a message that is being checked,
 * signed or stored after that no longer counts.
 */
export class DataBudget {
  private used = 0;

  constructor(readonly maxBytes: number) {}

  /** Reserves `bytes`, or returns false and reserves nothing when that would pass the maximum. */
  reserve(bytes: number): boolean {
    if (this.maxBytes > 0 && this.used + bytes > this.maxBytes) return false;
    this.used += bytes;
    return true;
  }

  release(bytes: number): void {
    this.used = Math.max(0, this.used - bytes);
  }

  /** Checks whether `bytes` more would fit, reserving nothing. */
  fits(bytes: number): boolean {
    return this.maxBytes <= 0 || this.used + bytes <= this.maxBytes;
  }

  get inFlight(): number {
    return this.used;
  }
}

/**
 * Counts events per key over a fixed window that starts at the key's first event, such as
 * failed AUTH attempts per client address. Keys past `maxKeys` push out the oldest, which
 * only forgives a key.
 */
export class FailureCounter {
  private readonly counts = new Map<string, { count: number; since: number }>();

  constructor(
    readonly limit: number,
    readonly windowMs: number,
    private readonly now: () => number = Date.now,
    private readonly maxKeys = 100_000,
  ) {}

  /** Records one event for `key` and returns the number of events in its current window. */
  add(key: string): number {
    const entry = this.current(key);
    if (entry) {
      entry.count += 1;
      return entry.count;
    }
    while (this.counts.size >= this.maxKeys) {
      const oldest = this.counts.keys().next();
      if (oldest.done === true) break;
      this.counts.delete(oldest.value);
    }
    this.counts.set(key, { count: 1, since: this.now() });
    return 1;
  }

  /** Checks whether `key` has reached the limit in its current window. */
  blocked(key: string): boolean {
    const entry = this.current(key);
    return entry !== undefined && entry.count >= this.limit;
  }

  private current(key: string): { count: number; since: number } | undefined {
    const entry = this.counts.get(key);
    if (entry && this.now() - entry.since >= this.windowMs) {
      this.counts.delete(key);
      return undefined;
    }
    return entry;
  }
}
