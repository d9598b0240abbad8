/**
 * DKIM verification (RFC 6376 section 6). Each DKIM-Signature field gets its own verdict, as a
 * value: a malformed signature, a missing key or a DNS failure never raises. The key lookup is
 * injected (`lookupTxt`, the contract of `dns.promises.Resolver#resolveTxt`), so this module
 * does no I/O. Strict where the RFCs say MUST: rsa-sha1 and RSA keys under 1024 bits never pass
 * (RFC 8301), From must be signed, `i=` must be within `d=`, an expired `x=` fails.
 */

import {
  parseHeaderFields,
  rawFieldValue,
  splitMessage,
  toCrlf,
  type HeaderField,
} from '../message/index.js';
import { BodyCanonicalizer, LimitedSink } from './canonicalize.js';
import { Sha256Sink, verifyData } from './crypto.js';
import { headerData } from './header-hash.js';
import { MIN_RSA_BITS, parseKeyRecord, type KeyRecord } from './key-record.js';
import { parseSignature, withoutSignatureValue, type ParsedSignature } from './signature.js';
import type { Canonicalization, DkimReasonCode, DkimResult, TxtLookup } from './types.js';

/** How far in the future `t=` may lie before the signature is set aside (clock skew). */
export const MAX_CLOCK_SKEW_SECONDS = 300;

export interface VerifyOptions {
  lookupTxt: TxtLookup;
  /** The verification time, for `x=`; now when absent. */
  now?: Date;
  /** Keeps key records between calls, for batch verification. */
  keyCache?: DkimKeyCache;
  /** Verifies at most this many signatures per message; the rest are `neutral`. 10 when absent. */
  maxSignatures?: number;
}

type KeyLookupResult =
  | { ok: true; record: KeyRecord }
  | { ok: false; result: 'permerror' | 'temperror'; code: DkimReasonCode; reason: string };

/**
 * An in-memory cache of key lookups by DNS name, for verifying many messages: it keeps parsed
 * records and permanent errors, never temporary ones, each for `ttlSeconds`.
 */
export class DkimKeyCache {
  private readonly entries = new Map<
    string,
    { value: Promise<KeyLookupResult>; expires: number }
  >();

  constructor(
    private readonly ttlSeconds = 3600,
    private readonly maxEntries = 10_000,
  ) {}

  get(name: string, load: () => Promise<KeyLookupResult>, nowMs: number): Promise<KeyLookupResult> {
    const entry = this.entries.get(name);
    if (entry !== undefined && entry.expires > nowMs) return entry.value;
    const value = load();
    if (this.entries.size >= this.maxEntries) this.entries.clear();
    this.entries.set(name, { value, expires: nowMs + this.ttlSeconds * 1000 });
    // Temporary failures are not remembered: the next message asks DNS again.
    void value.then((result) => {
      if (!result.ok && result.result === 'temperror') this.entries.delete(name);
    });
    return value;
  }
}

/** Creates a key cache for `verifyMessage`. */
export function createKeyCache(
  options: { ttlSeconds?: number; maxEntries?: number } = {},
): DkimKeyCache {
  return new DkimKeyCache(options.ttlSeconds, options.maxEntries);
}

/** Verifies every DKIM-Signature of `message`; `[{ result: 'none' }]` when it has none. */
export async function verifyMessage(
  message: Buffer,
  options: VerifyOptions,
): Promise<DkimResult[]> {
  const normalized = toCrlf(message);
  const { header, body } = splitMessage(normalized);
  const fields = parseHeaderFields(header);
  const signatureFields = fields.filter((field) => field.key === 'dkim-signature');
  if (signatureFields.length === 0) {
    return [{ result: 'none', code: 'no_signature', reason: 'no DKIM-Signature header field' }];
  }
  const bodyHashes = new BodyHashes(body);
  const max = options.maxSignatures ?? 10;
  return Promise.all(
    signatureFields.map((field, index) =>
      index < max
        ? verifyOne(field, fields, bodyHashes, options)
        : Promise.resolve<DkimResult>({
            result: 'neutral',
            reason: `more than ${max} signatures; not verified`,
          }),
    ),
  );
}

async function verifyOne(
  field: HeaderField,
  fields: readonly HeaderField[],
  bodies: BodyHashes,
  options: VerifyOptions,
): Promise<DkimResult> {
  const parsed = parseSignature(rawFieldValue(field).toString('latin1'));
  if (!parsed.ok) {
    return {
      ...describe(parsed.partial),
      result: 'permerror',
      code: parsed.code,
      reason: parsed.reason,
    };
  }
  const signature = parsed.signature;
  const base = describe(signature);
  const nowSeconds = Math.floor((options.now ?? new Date()).getTime() / 1000);
  const timeProblem = checkTimes(signature, nowSeconds);
  if (timeProblem !== undefined) return { ...base, ...timeProblem };
  const key = await lookupKey(signature, options);
  if (!key.ok) return { ...base, result: key.result, code: key.code, reason: key.reason };
  const record = key.record;
  const withKey: DkimResult = { ...base, keyBits: record.bits };
  if (record.testing) withKey.testing = true;
  const keyProblem = checkKey(signature, record);
  if (keyProblem !== undefined) return { ...withKey, ...keyProblem };
  const body = bodies.get(signature.bodyCanonicalization, signature.bodyLength);
  if (!body.digest.equals(signature.bodyHash)) {
    return {
      ...withKey,
      result: 'fail',
      code: 'body_hash_mismatch',
      reason: 'body hash does not match bh=',
    };
  }
  const data = headerData(
    fields,
    signature.signedHeaders,
    signature.headerCanonicalization,
    withoutSignatureValue(field.raw),
  );
  if (
    record.publicKey === undefined ||
    !verifyData(signature.algorithm, data, signature.signature, record.publicKey)
  ) {
    return {
      ...withKey,
      result: 'fail',
      code: 'signature_mismatch',
      reason: 'signature does not verify',
    };
  }
  return passResult(withKey, signature, body.total);
}

function passResult(result: DkimResult, signature: ParsedSignature, total: number): DkimResult {
  if (signature.bodyLength === undefined) return { ...result, result: 'pass' };
  const unsigned = Math.max(0, total - signature.bodyLength);
  const passed: DkimResult = {
    ...result,
    result: 'pass',
    bodyLength: signature.bodyLength,
    unsignedBodyBytes: unsigned,
  };
  if (unsigned > 0) {
    passed.code = 'body_length_partial';
    passed.reason = `l=${signature.bodyLength} leaves ${unsigned} body bytes unsigned`;
  }
  return passed;
}

function describe(signature: Partial<ParsedSignature>): DkimResult {
  const result: DkimResult = { result: 'permerror' };
  if (signature.domain !== undefined) result.domain = signature.domain;
  if (signature.selector !== undefined) result.selector = signature.selector;
  if (signature.algorithm !== undefined) result.algorithm = signature.algorithm;
  if (signature.identity !== undefined) result.identity = signature.identity;
  if (signature.signatureText !== undefined && signature.signatureText !== '') {
    result.headerB = signature.signatureText.slice(0, 8);
  }
  return result;
}

function checkTimes(signature: ParsedSignature, now: number): Partial<DkimResult> | undefined {
  if (signature.expiration !== undefined && signature.expiration < now) {
    return {
      result: 'fail',
      code: 'signature_expired',
      reason: `signature expired at x=${signature.expiration}`,
    };
  }
  if (signature.timestamp !== undefined && signature.timestamp > now + MAX_CLOCK_SKEW_SECONDS) {
    return {
      result: 'neutral',
      code: 'timestamp_future',
      reason: `t=${signature.timestamp} is in the future`,
    };
  }
  return undefined;
}

function checkKey(signature: ParsedSignature, record: KeyRecord): Partial<DkimResult> | undefined {
  if (record.publicKey === undefined)
    return { result: 'fail', code: 'key_revoked', reason: 'key revoked (empty p=)' };
  const expectedType = signature.algorithm === 'rsa-sha256' ? 'rsa' : 'ed25519';
  if (record.keyType !== expectedType) {
    return {
      result: 'permerror',
      code: 'key_type_mismatch',
      reason: `k=${record.keyType} does not match a=${signature.algorithm}`,
    };
  }
  if (record.hashes !== undefined && !record.hashes.includes('sha256')) {
    return {
      result: 'permerror',
      code: 'key_hash_unsupported',
      reason: 'key record h= excludes sha256',
    };
  }
  if (record.keyType === 'rsa' && (record.bits ?? 0) < MIN_RSA_BITS) {
    return {
      result: 'permerror',
      code: 'key_too_short',
      reason: `RSA key of ${record.bits ?? 0} bits is under ${MIN_RSA_BITS} (RFC 8301)`,
    };
  }
  if (record.strictIdentity) {
    const identityDomain = signature.identity
      .slice(signature.identity.lastIndexOf('@') + 1)
      .toLowerCase();
    if (identityDomain !== signature.domain) {
      return {
        result: 'permerror',
        code: 'key_strict_identity',
        reason: 'key has t=s but the i= domain differs from d=',
      };
    }
  }
  return undefined;
}

/** Maps resolver error codes to verdicts: no record is permanent, a failed query is temporary. */
const PERMANENT_DNS_CODES = new Set(['ENOTFOUND', 'ENODATA', 'NXDOMAIN', 'ENONAME']);

async function lookupKey(
  signature: ParsedSignature,
  options: VerifyOptions,
): Promise<KeyLookupResult> {
  const name = `${signature.selector}._domainkey.${signature.domain}`.toLowerCase();
  const load = () => fetchKey(name, options.lookupTxt);
  if (options.keyCache === undefined) return load();
  return options.keyCache.get(name, load, Date.now());
}

async function fetchKey(name: string, lookupTxt: TxtLookup): Promise<KeyLookupResult> {
  let records: string[][];
  try {
    records = await lookupTxt(name);
  } catch (error) {
    const code = (error as { code?: unknown } | null)?.code;
    if (typeof code === 'string' && PERMANENT_DNS_CODES.has(code)) {
      return {
        ok: false,
        result: 'permerror',
        code: 'key_not_found',
        reason: `no key record at ${name}`,
      };
    }
    const detail =
      typeof code === 'string' ? code : error instanceof Error ? error.message : 'unknown error';
    return {
      ok: false,
      result: 'temperror',
      code: 'key_lookup_failed',
      reason: `key lookup for ${name} failed: ${detail}`,
    };
  }
  if (records.length === 0) {
    return {
      ok: false,
      result: 'permerror',
      code: 'key_not_found',
      reason: `no key record at ${name}`,
    };
  }
  // Several records: use the first that parses, and report the first error if none does.
  let firstError: KeyLookupResult | undefined;
  for (const strings of records) {
    const parsed = parseKeyRecord(strings.join(''));
    if (parsed.ok) return { ok: true, record: parsed.record };
    firstError ??= { ok: false, result: 'permerror', code: parsed.code, reason: parsed.reason };
  }
  return (
    firstError ?? {
      ok: false,
      result: 'permerror',
      code: 'key_malformed',
      reason: 'no usable key record',
    }
  );
}

/** Body hashes of one message, computed on demand once per canonicalization and `l=`. */
class BodyHashes {
  private readonly cache = new Map<string, { digest: Buffer; total: number }>();

  constructor(private readonly body: Buffer) {}

  get(method: Canonicalization, limit: number | undefined): { digest: Buffer; total: number } {
    const key = `${method}/${limit ?? ''}`;
    let entry = this.cache.get(key);
    if (entry === undefined) {
      const hash = new Sha256Sink();
      const sink = new LimitedSink(hash, limit);
      const canonicalizer = new BodyCanonicalizer(method, sink);
      canonicalizer.update(this.body);
      canonicalizer.finish();
      entry = { digest: hash.digest(), total: sink.total };
      this.cache.set(key, entry);
    }
    return entry;
  }
}
