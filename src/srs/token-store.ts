/**
 * Storage for database-mode SRS: a sender whose rewritten local part would exceed 64 octets is
 * stored under a short opaque token, and the token travels in the address instead.
 */

/**
 * Contract for a token store. Tokens are upper-case base32 and unique per sender and day, so
 * `put` with a token already present replaces its entry. A store keeps at most a fixed number of
 * entries: when full it drops expired entries first, then the oldest. `get` never returns an
 * entry whose `expiresAt` has passed.
 */
export interface SrsTokenStore {
  /** Stores the original sender address under a token until `expiresAt`. */
  put(token: string, original: string, expiresAt: Date): Promise<void>;
  /** Looks up a token; resolves to undefined when it is unknown or expired. */
  get(token: string): Promise<string | undefined>;
  /** Deletes expired entries and resolves to how many were deleted. */
  purgeExpired(): Promise<number>;
}

export interface MemoryTokenStoreOptions {
  /** Maximum entries kept; the oldest are dropped past it. Default 100,000. */
  maxEntries?: number;
  /** Clock used for expiry; tests pin it. */
  now?: () => Date;
}

interface Entry {
  original: string;
  expiresAt: number;
}

/** A token store in process memory, for tests and single-process tools. */
export class MemoryTokenStore implements SrsTokenStore {
  readonly maxEntries: number;
  private readonly now: () => Date;
  // A Map iterates in insertion order, so its first key is the oldest entry.
  private readonly entries = new Map<string, Entry>();

  constructor(options: MemoryTokenStoreOptions = {}) {
    this.maxEntries = options.maxEntries ?? 100_000;
    if (!Number.isInteger(this.maxEntries) || this.maxEntries < 1) {
      throw new RangeError(`maxEntries must be a positive integer, got ${this.maxEntries}`);
    }
    this.now = options.now ?? (() => new Date());
  }

  /** Number of entries held, expired ones included until they are purged. */
  get size(): number {
    return this.entries.size;
  }

  put(token: string, original: string, expiresAt: Date): Promise<void> {
    // Re-inserting moves a replaced token to the young end of the order.
    this.entries.delete(token);
    if (this.entries.size >= this.maxEntries) this.purgeExpiredNow();
    while (this.entries.size >= this.maxEntries) {
      const oldest = this.entries.keys().next();
      if (oldest.done === true) break;
      this.entries.delete(oldest.value);
    }
    this.entries.set(token, { original, expiresAt: expiresAt.getTime() });
    return Promise.resolve();
  }

  get(token: string): Promise<string | undefined> {
    const entry = this.entries.get(token);
    if (entry === undefined) return Promise.resolve(undefined);
    if (entry.expiresAt <= this.now().getTime()) {
      this.entries.delete(token);
      return Promise.resolve(undefined);
    }
    return Promise.resolve(entry.original);
  }

  purgeExpired(): Promise<number> {
    return Promise.resolve(this.purgeExpiredNow());
  }

  private purgeExpiredNow(): number {
    const now = this.now().getTime();
    let purged = 0;
    for (const [token, entry] of this.entries) {
      if (entry.expiresAt <= now) {
        this.entries.delete(token);
        purged += 1;
      }
    }
    return purged;
  }
}
