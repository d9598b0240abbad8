/**
 * The queue's policy: when deferred deliveries are retried and what a bounce looks like. The
 * queue itself (enqueue, claims, leases) lives in the store.
 */
export {
  buildDsn,
  dsnQueueMessage,
  type DsnAction,
  type DsnOptions,
  type DsnRecipient,
} from './dsn.js';
export {
  DEFAULT_RETRY_SCHEDULE,
  expiresAt,
  isExpired,
  nextRetry,
  retryDelay,
  retryScheduleFromSettings,
  type RetryDecision,
  type RetrySchedule,
} from './retry.js';
