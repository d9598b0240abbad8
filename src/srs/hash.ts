/**
 * The SRS hash: HMAC-SHA1 keyed with a secret over the ASCII-lowercased fields, concatenated
 * without separators, base64-encoded and truncated. This is the construction of Mail::SRS and
 * libsrs2, so hashes match postsrsd 1.x byte for byte in the standard alphabet.
 */
import { createHmac } from 'node:crypto';

/** Characters in the unpadded base64 text of a 20-octet SHA-1 digest. */
export const MAX_HASH_LENGTH = 27;

export type HashAlphabet = 'base64url' | 'base64';

/**
 * Lowercases A-Z only. libsrs2 folds with C `tolower` in the C locale, which leaves octets
 * above 0x7f alone, so `MÜNCHEN` hashes as `mÜnchen`, not as `münchen`.
 */
export function asciiLowercase(text: string): string {
  // For pure ASCII the native lowercasing is the same and much faster than a replace.
  // eslint-disable-next-line no-control-regex
  if (/^[\x00-\x7f]*$/.test(text)) return text.toLowerCase();
  return text.replace(/[A-Z]+/g, (run) => run.toLowerCase());
}

/**
 * Computes the hash text that goes into an address from the fields already concatenated, which
 * spares the forward path an array and a Buffer per address.
 */
export function createHash(
  secret: string,
  concatenatedFields: string,
  length: number,
  alphabet: HashAlphabet,
): string {
  const hmac = createHmac('sha1', secret).update(asciiLowercase(concatenatedFields), 'utf8');
  return hmac.digest(alphabet).slice(0, length);
}

/**
 * Folds one hash character for comparison: the URL-safe `-` and `_` to the standard `+` and
 * `/`, and upper case to lower, because receivers may fold the case of a local part.
 */
function foldHashChar(code: number): number {
  if (code >= 0x41 && code <= 0x5a) return code | 0x20;
  if (code === 0x2d) return 0x2b;
  if (code === 0x5f) return 0x2f;
  return code;
}

/**
 * Checks a received hash against every secret. The whole received hash must match a prefix of
 * the digest; the comparison is case-insensitive and accepts both base64 alphabets. It visits
 * every character and every secret without an early exit, so its time depends only on the
 * hash length and the number of secrets. The caller checks the length bounds first.
 */
export function verifyHash(hash: string, secrets: readonly string[], concatenatedFields: string) {
  if (!/^[A-Za-z0-9+/_-]+$/.test(hash) || hash.length > MAX_HASH_LENGTH) return false;
  const data = asciiLowercase(concatenatedFields);
  let matched = 0;
  for (const secret of secrets) {
    const expected = createHmac('sha1', secret).update(data, 'utf8').digest('base64');
    let difference = 0;
    for (let i = 0; i < hash.length; i++) {
      difference |= foldHashChar(hash.charCodeAt(i)) ^ foldHashChar(expected.charCodeAt(i));
    }
    matched |= difference === 0 ? 1 : 0;
  }
  return matched === 1;
}
