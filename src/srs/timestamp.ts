/**
 * The SRS day stamp: days since the Unix epoch modulo 1024, written as two base32 characters
 * (RFC 4648 alphabet, upper case). Mail::SRS, libsrs2 and postsrsd 1.x share this encoding.
 */

const BASE32_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
const MS_PER_DAY = 86_400_000;

/** Number of distinct stamps: two base32 characters hold 10 bits, so stamps repeat every 1024 days. */
export const STAMP_SLOTS = 1024;

/**
 * How many days ahead of the local clock a stamp may be and still read as "from the future"
 * rather than as very old. Stamps repeat every 1024 days, so tomorrow's stamp is also the stamp
 * of 1023 days ago. One day covers clock skew between nodes around midnight.
 */
export const MAX_FUTURE_DAYS = 1;

/** Returns the day slot (0 to 1023) that contains an instant, a Date or milliseconds. */
export function daySlot(now: Date | number): number {
  const days = Math.floor((typeof now === 'number' ? now : now.getTime()) / MS_PER_DAY);
  return ((days % STAMP_SLOTS) + STAMP_SLOTS) % STAMP_SLOTS;
}

/** Encodes the stamp for the day that contains `now`. */
export function encodeStamp(now: Date | number): string {
  const slot = daySlot(now);
  return BASE32_ALPHABET.charAt(slot >> 5) + BASE32_ALPHABET.charAt(slot & 31);
}

/** Decodes a stamp case-insensitively, or returns undefined for a character outside base32. */
export function decodeStamp(stamp: string): number | undefined {
  let slot = 0;
  for (let i = 0; i < stamp.length; i++) {
    const value = base32Value(stamp.charCodeAt(i));
    if (value < 0) return undefined;
    slot = (slot << 5) | value;
  }
  return slot;
}

/** Returns the value of one base32 character in either case, or -1. */
function base32Value(code: number): number {
  const upper = code & ~0x20;
  if (upper >= 0x41 && upper <= 0x5a) return upper - 0x41;
  if (code >= 0x32 && code <= 0x37) return code - 0x32 + 26;
  return -1;
}

/** Outcome of checking a stamp against the clock. */
export type StampVerdict =
  | { ok: true; ageDays: number }
  | { ok: false; reason: 'bad-stamp' | 'expired' | 'future-stamp'; ageDays?: number };

/**
 * Checks a stamp against the clock. The age is taken modulo 1024, so a stamp written before the
 * slot counter wrapped to zero still reads as recent. Ages up to `maxAgeDays` pass, a stamp one
 * day ahead is reported as `future-stamp`, and everything else is `expired`.
 */
export function checkStamp(stamp: string, now: Date | number, maxAgeDays: number): StampVerdict {
  if (stamp.length !== 2) return { ok: false, reason: 'bad-stamp' };
  const then = decodeStamp(stamp);
  if (then === undefined) return { ok: false, reason: 'bad-stamp' };

  const ageDays = (daySlot(now) - then + STAMP_SLOTS) % STAMP_SLOTS;
  if (ageDays <= maxAgeDays) return { ok: true, ageDays };
  if (ageDays >= STAMP_SLOTS - MAX_FUTURE_DAYS) return { ok: false, reason: 'future-stamp' };
  return { ok: false, reason: 'expired', ageDays };
}
