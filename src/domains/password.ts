/**
 * Password hashing for submission credentials, in one place: the CLI and the API hash with
 * `hashPassword`, the submission listener checks AUTH with `verifyPassword`. The stored form is
 * `scrypt$N$r$p$salt$hash` with base64 salt and hash, so the cost can rise later without
 * invalidating hashes already stored.
 */
import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';

/** scrypt cost parameters: N = 2^14, r = 8, p = 1 needs 16 MiB per hash and about 50 ms. */
const DEFAULT_COST = { N: 16_384, r: 8, p: 1 };
const SALT_BYTES = 16;
const HASH_BYTES = 32;
/** Upper bound on N accepted from a stored hash, so a corrupted row cannot exhaust memory. */
const MAX_COST_N = 1 << 20;

function deriveKey(password: string, salt: Buffer, length: number, options: ScryptOptions) {
  // scrypt needs 128 * N * r bytes; Node's default maxmem (32 MiB) is too small past N = 2^15.
  const maxmem = 256 * (options.N ?? DEFAULT_COST.N) * (options.r ?? DEFAULT_COST.r);
  return new Promise<Buffer>((resolve, reject) => {
    scrypt(password.normalize('NFKC'), salt, length, { ...options, maxmem }, (error, key) => {
      if (error) reject(error);
      else resolve(key);
    });
  });
}

/** Hashes a password with a fresh random salt, returning the `scrypt$...` string to store. */
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const hash = await deriveKey(password, salt, HASH_BYTES, DEFAULT_COST);
  const { N, r, p } = DEFAULT_COST;
  return ['scrypt', N, r, p, salt.toString('base64'), hash.toString('base64')].join('$');
}

/**
 * Checks a password against a stored `scrypt$...` hash in constant time. A hash in any other
 * form, or with parameters out of range, never matches: it returns false rather than throwing,
 * so an AUTH attempt against a damaged row fails like a wrong password.
 */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const fields = stored.split('$');
  if (fields.length !== 6 || fields[0] !== 'scrypt') return false;
  const [N, r, p] = fields.slice(1, 4).map((field) => Number.parseInt(field, 10));
  if (!N || !r || !p || N > MAX_COST_N || (N & (N - 1)) !== 0 || r > 32 || p > 16) return false;

  const salt = Buffer.from(fields[4] ?? '', 'base64');
  const expected = Buffer.from(fields[5] ?? '', 'base64');
  if (salt.length === 0 || expected.length === 0) return false;

  const actual = await deriveKey(password, salt, expected.length, { N, r, p });
  return timingSafeEqual(actual, expected);
}
