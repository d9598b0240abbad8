/**
 * The queue claim, the one statement whose locking differs between the backends. Both pick
 * due entries and lease them in a single UPDATE, so no other worker can take the same rows in
 * between. PostgreSQL adds `FOR UPDATE SKIP LOCKED`, so concurrent nodes skip each other's rows
 * instead of waiting; SQLite has one writer at a time, which gives the same result.
 */
import type { SqlDialect } from './migrations.js';

/** Statuses of entries that still wait for delivery. */
export const PENDING_STATUSES = `('queued', 'deferred')`;

/**
 * Build the claim statement. Its parameters, in this order (named `@owner` and so on for
 * SQLite, `$1` to `$4` for PostgreSQL): owner, lease expiry (ms), now (ms), limit.
 */
export function claimDueSql(dialect: SqlDialect): string {
  const [owner, expires, now, limit] =
    dialect.name === 'postgres'
      ? ['$1', '$2', '$3', '$4']
      : ['@owner', '@expires', '@now', '@limit'];
  const lock = dialect.name === 'postgres' ? 'FOR UPDATE SKIP LOCKED' : '';
  // Without statistics SQLite picks the (status, recipient_domain) index and sorts every
  // pending entry. The due index returns them in order, so LIMIT stops the scan early.
  const index = dialect.name === 'sqlite' ? 'INDEXED BY queue_entries_due' : '';
  return `UPDATE queue_entries SET lease_owner = ${owner}, lease_expires_at = ${expires}
    WHERE id IN (
      SELECT id FROM queue_entries ${index}
      WHERE status IN ${PENDING_STATUSES} AND next_attempt_at <= ${now}
        AND (lease_expires_at IS NULL OR lease_expires_at <= ${now})
      ORDER BY next_attempt_at, id
      LIMIT ${limit}
      ${lock})
    RETURNING *`;
}
