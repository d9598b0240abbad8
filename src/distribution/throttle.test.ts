import { describe, expect, it } from 'vitest';

import { computeProgress, formatProgressBar, RateMeter } from './progress.js';
import { DomainThrottle, rampedRate, TokenBucket } from './throttle.js';

describe('TokenBucket', () => {
  it('allows one second of burst, then spaces tokens by the rate', () => {
    const bucket = new TokenBucket(120, 0); // two per second
    expect(bucket.take(0)).toBe(0);
    expect(bucket.take(0)).toBe(0);
    expect(bucket.take(0)).toBe(500);
    expect(bucket.take(500)).toBe(0);
    expect(bucket.take(500)).toBe(500);
  });

  it('never waits without a rate', () => {
    const bucket = new TokenBucket(0, 0);
    for (let i = 0; i < 1000; i++) expect(bucket.take(0)).toBe(0);
  });
});

describe('DomainThrottle', () => {
  it('ramps a domain from its start rate to its maximum', () => {
    const rule = { domain: 'big.example', startPerMinute: 60, maxPerMinute: 600, rampMinutes: 10 };
    expect(rampedRate(rule, 0)).toBe(60);
    expect(rampedRate(rule, 5 * 60_000)).toBe(330);
    expect(rampedRate(rule, 20 * 60_000)).toBe(600);
  });

  it('picks the most specific rule and leaves other domains alone', () => {
    const throttle = new DomainThrottle(
      [
        { domain: '*.example', maxPerMinute: 60 },
        { domain: 'mail.example', maxPerMinute: 6000 },
      ],
      0,
    );
    expect(throttle.take('a.example', 0)).toBe(0);
    expect(throttle.take('b.example', 0)).toBe(1000); // shares the *.example bucket
    for (let i = 0; i < 100; i++) expect(throttle.take('mail.example', 0)).toBe(0);
    expect(throttle.take('other.test', 0)).toBe(0);
  });
});

describe('progress', () => {
  it('counts sent, remaining and the ETA', () => {
    const progress = computeProgress(
      {
        queued: 10,
        delivered: 70,
        deferred: 5,
        bounced: 3,
        complained: 1,
        unsubscribed: 1,
        suppressed: 10,
      },
      200,
      10,
    );
    expect(progress).toMatchObject({ sent: 90, remaining: 100, etaSeconds: 10 });
    expect(formatProgressBar(progress, 10)).toBe(
      '[#####.....] 50% 100/200 10.0/s ETA 10s delivered 70 deferred 5 bounced 3',
    );
  });

  it('measures the rate over its window', () => {
    const meter = new RateMeter(10_000);
    for (let t = 0; t <= 10_000; t += 1000) meter.add(5, t);
    expect(meter.perSecond(10_000)).toBeCloseTo(5.5, 5);
    expect(meter.perSecond(100_000)).toBe(0);
  });

  it('keeps one entry per second however many samples come', () => {
    const meter = new RateMeter(10_000);
    for (let t = 0; t < 20_000; t++) meter.add(1, t);
    // 1,000 a millisecond apart is 1,000 a second; the window contains the last ten seconds.
    expect(meter.perSecond(20_000)).toBeCloseTo(1000, 0);
    expect((meter as unknown as { seconds: unknown[] }).seconds.length).toBeLessThanOrEqual(11);
  });
});
