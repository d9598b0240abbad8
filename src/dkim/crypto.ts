/**
 * The two signature algorithms over the header data. rsa-sha256 is RSASSA-PKCS1-v1_5 with
 * SHA-256 (RFC 6376 section 3.3.1). ed25519-sha256 signs the SHA-256 digest of the data with
 * PureEd25519 (RFC 8463 section 3), so the data is hashed first and the digest is signed.
 */
import * as crypto from 'node:crypto';
import { createHash, sign, verify, type Hash, type KeyObject } from 'node:crypto';

import type { DkimAlgorithm } from './types.js';

/** The one-call `crypto.hash` of Node 20.12 and later, which skips building a `Hash` object. */
const oneShotHash = (
  crypto as { hash?: (algorithm: string, data: Buffer, encoding: 'buffer') => Buffer }
).hash;

/** Returns the SHA-256 digest of `data`. */
export function sha256(data: Buffer): Buffer {
  if (oneShotHash !== undefined) return oneShotHash('sha256', data, 'buffer');
  return createHash('sha256').update(data).digest();
}

/**
 * Bodies up to this many canonical bytes are collected and hashed in one `crypto.hash` call.
 * It is below the 16 KiB block of the relaxed scan, so a long body streams from its first block.
 */
const COLLECT_LIMIT = 8 * 1024;
/**
 * Collection buffers free for reuse. A sink takes one on its first write and returns it at
 * `digest`.
 */
const freeBuffers: Buffer[] = [];
const MAX_FREE_BUFFERS = 4;

/**
 * A SHA-256 sink for canonical body bytes. Each `Hash` object has a native handle that costs
 * garbage collection about 2 us on top of the hashing (an estimate from a loop of `createHash`
 * calls on the 2-core development machine), which is more than hashing a 2 KiB body takes. So
 * a short body is copied into a reused buffer and hashed at `digest` in one call, and a body
 * longer than `COLLECT_LIMIT` streams into a `Hash`.
 */
export class Sha256Sink {
  private hash: Hash | undefined;
  private collected: Buffer | undefined;
  private length = 0;

  update(data: Buffer): void {
    if (this.hash !== undefined) {
      this.hash.update(data);
      return;
    }
    if (oneShotHash === undefined || this.length + data.length > COLLECT_LIMIT) {
      this.hash = createHash('sha256');
      if (this.collected !== undefined) {
        this.hash.update(this.collected.subarray(0, this.length));
        this.release();
      }
      this.hash.update(data);
      return;
    }
    this.collected ??= freeBuffers.pop() ?? Buffer.allocUnsafeSlow(COLLECT_LIMIT);
    this.length += data.copy(this.collected, this.length);
  }

  /** Returns the digest. Call it once. */
  digest(): Buffer {
    if (this.hash !== undefined) return this.hash.digest();
    const digest = sha256(this.collected?.subarray(0, this.length) ?? Buffer.alloc(0));
    this.release();
    return digest;
  }

  private release(): void {
    if (this.collected !== undefined && freeBuffers.length < MAX_FREE_BUFFERS)
      freeBuffers.push(this.collected);
    this.collected = undefined;
    this.length = 0;
  }
}

export function signData(algorithm: DkimAlgorithm, data: Buffer, privateKey: KeyObject): Buffer {
  if (algorithm === 'rsa-sha256') return sign('sha256', data, privateKey);
  return sign(null, sha256(data), privateKey);
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
