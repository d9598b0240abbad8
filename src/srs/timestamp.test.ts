import { describe, expect, it } from 'vitest';

import { checkStamp, decodeStamp, encodeStamp } from './timestamp.js';

const DAY = 86_400_000;
const atDay = (day: number) => new Date(day * DAY + 13 * 3_600_000);

describe('encodeStamp', () => {
  it('encodes the epoch day as AA', () => {
    expect(encodeStamp(new Date(0))).toBe('AA');
  });

  it('encodes day 1023 as 77 and wraps at 1024', () => {
    expect(encodeStamp(atDay(1023))).toBe('77');
    expect(encodeStamp(atDay(1024))).toBe('AA');
  });

  it('matches the stamp postsrsd wrote on 2026-12-03', () => {
    // 20790 days since the epoch, slot 310 = 9 * 32 + 22, written J W.
    expect(encodeStamp(new Date('2026-12-03T23:59:59Z'))).toBe('JW');
    expect(encodeStamp(new Date('2026-12-03T00:00:00Z'))).toBe('JW');
    expect(encodeStamp(new Date('2026-12-04T00:00:00Z'))).toBe('JX');
  });
});

describe('decodeStamp', () => {
  it('decodes case-insensitively', () => {
    expect(decodeStamp('JW')).toBe(310);
    expect(decodeStamp('jw')).toBe(310);
  });

  it('rejects characters outside base32', () => {
    expect(decodeStamp('J1')).toBeUndefined();
    expect(decodeStamp('J=')).toBeUndefined();
  });
});

describe('checkStamp', () => {
  const today = 20790;
  const stampOf = (day: number) => encodeStamp(atDay(day));

  it.each([0, 1, 21])('accepts an age of %i days', (age) => {
    expect(checkStamp(stampOf(today - age), atDay(today), 21)).toEqual({ ok: true, ageDays: age });
  });

  it('rejects an age of 22 days as expired', () => {
    expect(checkStamp(stampOf(today - 22), atDay(today), 21)).toEqual({
      ok: false,
      reason: 'expired',
      ageDays: 22,
    });
  });

  it('rejects an age of 1022 days as expired', () => {
    expect(checkStamp(stampOf(today - 1022), atDay(today), 21)).toMatchObject({
      reason: 'expired',
    });
  });

  it('rejects tomorrow and 1023 days ago alike as future', () => {
    // Stamps repeat every 1024 days, so these two are the same stamp.
    expect(stampOf(today + 1)).toBe(stampOf(today - 1023));
    expect(checkStamp(stampOf(today + 1), atDay(today), 21)).toEqual({
      ok: false,
      reason: 'future-stamp',
    });
  });

  it('accepts stamps across the wrap from 1023 to 0', () => {
    const wrapDay = 20 * 1024; // slot 0
    expect(stampOf(wrapDay)).toBe('AA');
    expect(checkStamp('77', atDay(wrapDay), 21)).toEqual({ ok: true, ageDays: 1 });
    expect(checkStamp(stampOf(wrapDay - 21), atDay(wrapDay + 0), 21)).toEqual({
      ok: true,
      ageDays: 21,
    });
    expect(checkStamp(stampOf(wrapDay - 5), atDay(wrapDay + 3), 21)).toEqual({
      ok: true,
      ageDays: 8,
    });
    expect(checkStamp(stampOf(wrapDay - 20), atDay(wrapDay + 2), 21)).toMatchObject({
      reason: 'expired',
    });
  });

  it('rejects bad characters and lengths as bad-stamp', () => {
    for (const stamp of ['J1', 'J', 'JWX', '', '==', 'é7']) {
      expect(checkStamp(stamp, atDay(today), 21)).toEqual({ ok: false, reason: 'bad-stamp' });
    }
  });
});
