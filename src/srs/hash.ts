/**
 * The SRS hash: HMAC-SHA1 keyed with a secret over the ASCII-lowercased fields, concatenated
 * without separators, base64-encoded and truncated. This is the construction of Mail::SRS and
 * libsrs2, so hashes match postsrsd 1.x byte for byte in the standard alphabet.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

/** Characters in the unpadded base64 text of a 20-octet SHA-1 digest. */
export const MAX_HASH_LENGTH = 27;

export type HashAlphabet = 'base64url' | 'base64';

/**
 * Lowercases A-Z only. libsrs2 folds with C `tolower` in the C locale, which leaves octets
 * above 0x7f alone, so `MÜNCHEN` hashes as `mÜnchen`, not as `münchen`.
 */
export function asciiLowercase(text: string): string {
  // eslint-disable-next-line no-control-regex
  if (/^[\x00-\x40\x5b-\x7f]*$/.test(text)) return text;
  return text.replace(/[A-Z]+/g, (run) => run.toLowerCase());
}

/** Computes the full 20-octet digest over the fields, each lowercased in ASCII. */
export function hashDigest(secret: string, fields: readonly string[]): Buffer {
  const hmac = createHmac('sha1', secret);
  for (const field of fields) hmac.update(asciiLowercase(field), 'utf8');
  return hmac.digest();
}

/** Computes the hash text that goes into an address. */
export function createHash(
  secret: string,
  fields: readonly string[],
  length: number,
  alphabet: HashAlphabet,
): string {
  return hashDigest(secret, fields).toString(alphabet).slice(0, length);
}

/**
 * Folds a received hash to the form it is compared in: the URL-safe characters mapped to the
 * standard ones, then lowercased, because receivers may fold the case of a local part.
 */
function foldHash(hash: string): string {
  return hash.replace(/-/g, '+').replace(/_/g, '/').toLowerCase();
}

/**
 * Checks a received hash against every secret. The whole received hash must match a prefix of
 * the digest; the comparison is case-insensitive, accepts both base64 alphabets and runs in
 * constant time for a given length. The caller checks the length bounds first.
 */
export function verifyHash(hash: string, secrets: readonly string[], fields: readonly string[]) {
  if (!/^[A-Za-z0-9+/_-]+$/.test(hash)) return false;
  const received = Buffer.from(foldHash(hash), 'latin1');
  let matched = false;
  for (const secret of secrets) {
    const expected = hashDigest(secret, fields).toString('base64').slice(0, hash.length);
    const folded = Buffer.from(expected.toLowerCase(), 'latin1');
    // Every secret is tried, so the time does not reveal which one matched.
    if (folded.length === received.length && timingSafeEqual(folded, received)) matched = true;
  }
  return matched;
}
