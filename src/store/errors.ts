/** Errors the store throws for misuse and conflicts; a missing row is `undefined`, not an error. */

/** A unique name (domain, alias, selector, username) is already taken. */
export class StoreConflictError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StoreConflictError';
  }
}

/** A row that the call refers to (a domain id, for example) does not exist. */
export class StoreNotFoundError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StoreNotFoundError';
  }
}

/**
 * The caller no longer holds the lease on a queue entry: it expired and another worker claimed
 * the entry. The caller must drop its result, because the other worker now owns the entry.
 */
export class LeaseLostError extends Error {
  constructor(
    readonly entryId: number,
    readonly owner: string,
  ) {
    super(`lease on queue entry ${entryId} is no longer held by ${owner}`);
    this.name = 'LeaseLostError';
  }
}
