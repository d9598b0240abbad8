/**
 * The retry schedule of deferred deliveries: the wait after each failed attempt grows
 * exponentially from `initialDelay` by `factor` up to `maxDelay`, and a message older than
 * `maxQueueLifetime` expires and bounces. With the defaults (5 minutes, times 2, at most 4
 * hours, 5 days) a message gets 36 attempts, the last one at the end of its lifetime.
 *
 * All durations are milliseconds.
 */

export interface RetrySchedule {
  initialDelay: number;
  factor: number;
  maxDelay: number;
  maxQueueLifetime: number;
}

export const DEFAULT_RETRY_SCHEDULE: RetrySchedule = {
  initialDelay: 5 * 60_000,
  factor: 2,
  maxDelay: 4 * 3_600_000,
  maxQueueLifetime: 5 * 86_400_000,
};

/** Build the schedule from the `delivery` settings (the shape of `HeraldConfig['delivery']`). */
export function retryScheduleFromSettings(delivery: {
  retrySchedule: { initialDelay: number; factor: number; maxDelay: number };
  maxQueueLifetime: number;
}): RetrySchedule {
  const { initialDelay, factor, maxDelay } = delivery.retrySchedule;
  if (!(initialDelay > 0) || !(factor >= 1) || !(maxDelay >= initialDelay)) {
    throw new RangeError(
      `invalid retry schedule: initialDelay ${initialDelay} ms, factor ${factor}, ` +
        `maxDelay ${maxDelay} ms (needs initialDelay > 0, factor >= 1, maxDelay >= initialDelay)`,
    );
  }
  return { initialDelay, factor, maxDelay, maxQueueLifetime: delivery.maxQueueLifetime };
}

/** Compute the wait after the `attempts`-th failed attempt (1 for the first failure). */
export function retryDelay(schedule: RetrySchedule, attempts: number): number {
  const exponent = Math.max(0, attempts - 1);
  // Past about 60 doublings the power overflows to Infinity; the cap applies either way.
  const delay = schedule.initialDelay * schedule.factor ** exponent;
  return Math.min(schedule.maxDelay, Math.round(delay));
}

/** When an entry expires: its creation time plus the queue lifetime. */
export function expiresAt(schedule: RetrySchedule, createdAt: Date): Date {
  return new Date(createdAt.getTime() + schedule.maxQueueLifetime);
}

export function isExpired(schedule: RetrySchedule, createdAt: Date, now: Date = new Date()) {
  return now.getTime() >= expiresAt(schedule, createdAt).getTime();
}

export type RetryDecision =
  /** Try again at `at`. */
  | { kind: 'retry'; at: Date }
  /** The lifetime is over: fail the entry and send a DSN, as for a permanent failure. */
  | { kind: 'expire'; expiredAt: Date };

/**
 * Decide what follows a temporary failure. `attempts` counts the attempts made so far,
 * including the one that just failed. A retry that would fall after the expiry is moved to
 * the expiry itself, so the last attempt happens at the end of the lifetime and not earlier.
 */
export function nextRetry(
  schedule: RetrySchedule,
  entry: { attempts: number; createdAt: Date },
  now: Date = new Date(),
): RetryDecision {
  const expiry = expiresAt(schedule, entry.createdAt);
  if (now.getTime() >= expiry.getTime()) return { kind: 'expire', expiredAt: expiry };
  const at = now.getTime() + retryDelay(schedule, entry.attempts);
  return { kind: 'retry', at: new Date(Math.min(at, expiry.getTime())) };
}
