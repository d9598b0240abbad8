/**
 * The two signature algorithms over the header data. rsa-sha256 is RSASSA-PKCS1-v1_5 with
 * SHA-256 (RFC 6376 section 3.3.1). ed25519-sha256 signs the SHA-256 digest of the data with
 * PureEd25519 (RFC 8463 section 3), so the data is hashed first and the digest is signed.
 */
import { createHash, sign, verify, type KeyObject } from 'node:crypto';

import type { DkimAlgorithm } from './types.js';

export function signData(algorithm: DkimAlgorithm, data: Buffer, privateKey: KeyObject): Buffer {
  if (algorithm === 'rsa-sha256') return sign('sha256', data, privateKey);
  return sign(null, createHash('sha256').update(data).digest(), privateKey);
}

export function verifyData(
  algorithm: DkimAlgorithm,
  data: Buffer,
  signature: Buffer,
  publicKey: KeyObject,
): boolean {
  try {
    if (algorithm === 'rsa-sha256') return verify('sha256', data, publicKey, signature);
    return verify(null, createHash('sha256').update(data).digest(), publicKey, signature);
  } catch {
    // A signature of the wrong length for the key makes OpenSSL raise instead of returning false.
    return false;
  }
}
