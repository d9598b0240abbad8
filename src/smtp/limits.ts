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
