import { describe, expect, it } from 'vitest';

import {
  DEFAULT_RETRY_SCHEDULE,
  isExpired,
  nextRetry,
  retryDelay,
  retryScheduleFromSettings,
} from './retry.js';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

describe('retryDelay', () => {
  it.each([
    [1, 5 * MINUTE],
    [2, 10 * MINUTE],
    [3, 20 * MINUTE],
    [6, 160 * MINUTE],
    [7, 4 * HOUR],
    [30, 4 * HOUR],
    [5000, 4 * HOUR],
  ])('attempt %i waits %i ms', (attempts, delay) => {
    expect(retryDelay(DEFAULT_RETRY_SCHEDULE, attempts)).toBe(delay);
  });
});

describe('nextRetry', () => {
  it('walks the default schedule to expiry', () => {
    const createdAt = new Date(0);
    let now = createdAt;
    let attempts = 1;
    const waits: number[] = [];
    for (;;) {
      const decision = nextRetry(DEFAULT_RETRY_SCHEDULE, { attempts, createdAt }, now);
      if (decision.kind === 'expire') {
        expect(decision.expiredAt.getTime()).toBe(5 * DAY);
        break;
      }
      waits.push(decision.at.getTime() - now.getTime());
      now = decision.at;
      attempts += 1;
      expect(attempts).toBeLessThan(100);
    }
    // 5+10+20+40+80+160 minutes, then 28 waits of 4 hours, then a last shorter wait.
    expect(waits.slice(0, 7)).toEqual([5, 10, 20, 40, 80, 160, 240].map((m) => m * MINUTE));
    expect(waits.length).toBe(35);
    expect(attempts).toBe(36);
    expect(now.getTime()).toBe(5 * DAY);
    expect(waits.reduce((a, b) => a + b, 0)).toBe(5 * DAY);
  });

  it('moves a late retry to the expiry', () => {
    const createdAt = new Date(0);
    const now = new Date(5 * DAY - HOUR);
    const decision = nextRetry(DEFAULT_RETRY_SCHEDULE, { attempts: 30, createdAt }, now);
    expect(decision).toEqual({ kind: 'retry', at: new Date(5 * DAY) });
  });

  it('expires at the end of the lifetime', () => {
    const createdAt = new Date(1000);
    expect(isExpired(DEFAULT_RETRY_SCHEDULE, createdAt, new Date(1000 + 5 * DAY - 1))).toBe(false);
    expect(isExpired(DEFAULT_RETRY_SCHEDULE, createdAt, new Date(1000 + 5 * DAY))).toBe(true);
  });
});

describe('retryScheduleFromSettings', () => {
  it('takes the delivery settings', () => {
    const schedule = retryScheduleFromSettings({
      retrySchedule: { initialDelay: 1000, factor: 3, maxDelay: 9000 },
      maxQueueLifetime: HOUR,
    });
    expect([1, 2, 3, 4].map((n) => retryDelay(schedule, n))).toEqual([1000, 3000, 9000, 9000]);
  });

  it('rejects a cap below the first wait', () => {
    expect(() =>
      retryScheduleFromSettings({
        retrySchedule: { initialDelay: 5000, factor: 2, maxDelay: 1000 },
        maxQueueLifetime: HOUR,
      }),
    ).toThrow(/maxDelay/);
  });
});
