/**
 * Herald's DKIM engine: signing (RFC 6376, RFC 8463 Ed25519, RFC 8301 key sizes), verification
 * with per-signature verdicts, keys and their DNS records, and Authentication-Results. A pure
 * library: bytes in, bytes out, and the only I/O is a DNS lookup function the caller passes in
 * (plus the key-file helpers, which touch only the path they are given).
 *
 * Signing:
 *   signMessage(message, { signatures: [{ domain, selector, privateKey }] }) -> Buffer
 *     returns the message with CRLF line endings and the DKIM-Signature fields on top.
 *   sign(message, options) -> string: only the DKIM-Signature fields, each ending in CRLF.
 *   createSigner(options): update(chunk) ... finish() -> string, for messages streamed in chunks.
 *   signStream(asyncIterable, options) -> Promise<string>: the same over an async iterable.
 *   createSigningPool({ size }) (from './pool.js'): worker threads for bulk signing.
 *
 * Verification:
 *   verifyMessage(message, { lookupTxt, now?, keyCache? }) -> Promise<DkimResult[]>
 *     one result per DKIM-Signature, never throwing; `lookupTxt` is a resolveTxt-style lookup.
 *   createKeyCache(): an in-memory key cache for batches.
 *   formatAuthenticationResults(authservId, results, extra?) -> RFC 8601 field value.
 *
 * Keys and records:
 *   generateKeyPair, writePrivateKey (mode 0600), readPrivateKey, parsePrivateKey,
 *   dkimRecordValue, zoneFileRecord, parseZoneFile, createZoneLookup.
 */
export {
  DEFAULT_OVERSIGNED_HEADERS,
  DEFAULT_SIGNED_HEADERS,
  DkimSignError,
  DkimSigner,
  createSigner,
  sign,
  signMessage,
  signStream,
} from './sign.js';
export { DkimKeyCache, createKeyCache, verifyMessage, type VerifyOptions } from './verify.js';
export { formatAuthenticationResults } from './results.js';
export {
  DEFAULT_RSA_BITS,
  dkimRecordValue,
  generateKeyPair,
  parsePrivateKey,
  readPrivateKey,
  splitTxtValue,
  writePrivateKey,
  zoneFileRecord,
  type KeyPair,
} from './keys.js';
export { createZoneLookup, parseZoneFile, type ZoneFile } from './zone.js';
export { parseKeyRecord, type KeyRecord } from './key-record.js';
export { parseSignature, type ParsedSignature } from './signature.js';
export { parseTagList } from './tag-list.js';
export { createSigningPool, type SigningPool } from './pool.js';
export type {
  Canonicalization,
  CanonicalizationPair,
  DkimAlgorithm,
  DkimReasonCode,
  DkimResult,
  DkimVerdict,
  SignOptions,
  SignatureOptions,
  TxtLookup,
} from './types.js';
