import { describe, expect, it } from 'vitest';

import { ConnectionLimiter, RateLimiter } from './limits.js';

describe('ConnectionLimiter', () => {
  it('refuses the connection past the limit', () => {
    const limiter = new ConnectionLimiter(2);
    expect(limiter.acquire('192.0.2.1')).toBe(true);
    expect(limiter.acquire('192.0.2.1')).toBe(true);
    expect(limiter.acquire('192.0.2.1')).toBe(false);
    expect(limiter.acquire('192.0.2.2')).toBe(true);
    expect(limiter.count('192.0.2.1')).toBe(2);
  });

  it('frees a slot on release', () => {
    const limiter = new ConnectionLimiter(1);
    expect(limiter.acquire('a')).toBe(true);
    limiter.release('a');
    expect(limiter.count('a')).toBe(0);
    expect(limiter.acquire('a')).toBe(true);
  });
});

describe('RateLimiter', () => {
  it('allows a burst of the limit, then the average rate', () => {
    let now = 0;
    const limiter = new RateLimiter(3, 60_000, () => now);
    expect([limiter.take('k'), limiter.take('k'), limiter.take('k')]).toEqual([true, true, true]);
    expect(limiter.take('k')).toBe(false);
    // One token comes back every 20 seconds at 3 per minute.
    now = 19_999;
    expect(limiter.take('k')).toBe(false);
    // 40 seconds after the burst two tokens are back; the refused take cost nothing.
    now = 40_000;
    expect(limiter.take('k')).toBe(true);
    expect(limiter.take('k')).toBe(true);
    expect(limiter.take('k')).toBe(false);
  });

  it('keeps keys apart', () => {
    const limiter = new RateLimiter(1, 1000, () => 0);
    expect(limiter.take('a')).toBe(true);
    expect(limiter.take('b')).toBe(true);
    expect(limiter.take('a')).toBe(false);
  });

  it('forgets the oldest key past its capacity', () => {
    const limiter = new RateLimiter(1, 1000, () => 0, 2);
    limiter.take('a');
    limiter.take('b');
    limiter.take('c');
    expect(limiter.take('a')).toBe(true);
  });
});
