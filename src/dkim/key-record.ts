/**
 * DKIM key records (RFC 6376 section 3.6.1, RFC 8463 section 4): the TXT record at
 * `selector._domainkey.domain`. The parser checks `v=`, `k=`, `h=`, `s=`, `t=` and `p=`, builds
 * the public key once, and reports an empty `p=` as a revoked key. RSA keys are accepted as
 * SubjectPublicKeyInfo (what signers publish) or as a bare PKCS#1 RSAPublicKey.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';

import { decodeBase64, parseTagList, printable, removeFws } from './tag-list.js';
import type { DkimReasonCode } from './types.js';

/** The smallest RSA key that may pass verification (RFC 8301 section 3.2). */
export const MIN_RSA_BITS = 1024;

export interface KeyRecord {
  keyType: 'rsa' | 'ed25519';
  /** Undefined for a revoked key (empty `p=`). */
  publicKey?: KeyObject;
  /** The RSA modulus length in bits. */
  bits?: number;
  /** `t=y`: the domain is testing DKIM. */
  testing: boolean;
  /** `t=s`: the `i=` domain must equal `d=` exactly. */
  strictIdentity: boolean;
  /** `h=` hash algorithms, lower case; undefined when absent (all allowed). */
  hashes?: string[];
}

export type KeyRecordResult =
  { ok: true; record: KeyRecord } | { ok: false; code: DkimReasonCode; reason: string };

/** The ASN.1 prefix that turns a raw 32-byte Ed25519 key into SubjectPublicKeyInfo DER. */
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

/** Parses a key record from the TXT strings of one record, joined without separators. */
export function parseKeyRecord(text: string): KeyRecordResult {
  const list = parseTagList(text);
  if (!list.ok)
    return { ok: false, code: 'key_malformed', reason: `malformed key record: ${list.error}` };
  const tags = list.tags;
  // v= is optional but, when present, must be the first tag and exactly DKIM1.
  const version = tags.get('v');
  if (version !== undefined && (version !== 'DKIM1' || [...tags.keys()][0] !== 'v')) {
    return {
      ok: false,
      code: 'key_malformed',
      reason: `key record version v=${printable(version)} is not DKIM1 first`,
    };
  }
  const keyType = (tags.get('k') ?? 'rsa').toLowerCase();
  if (keyType !== 'rsa' && keyType !== 'ed25519') {
    return { ok: false, code: 'key_malformed', reason: `unknown key type k=${printable(keyType)}` };
  }
  const hashes = tags.has('h')
    ? removeFws(tags.get('h') ?? '')
        .toLowerCase()
        .split(':')
    : undefined;
  const services = removeFws(tags.get('s') ?? '*')
    .toLowerCase()
    .split(':');
  if (!services.includes('*') && !services.includes('email')) {
    return {
      ok: false,
      code: 'key_service_mismatch',
      reason: `key record service s=${printable(tags.get('s') ?? '')} excludes email`,
    };
  }
  const flags = removeFws(tags.get('t') ?? '')
    .toLowerCase()
    .split(':');
  const base = {
    keyType,
    testing: flags.includes('y'),
    strictIdentity: flags.includes('s'),
    hashes,
  } as const;
  const p = tags.get('p');
  if (p === undefined)
    return { ok: false, code: 'key_malformed', reason: 'key record has no p= tag' };
  if (removeFws(p) === '') return { ok: true, record: { ...base } };
  const der = decodeBase64(p);
  if (der === undefined)
    return { ok: false, code: 'key_malformed', reason: 'p= is not valid base64' };
  return keyType === 'rsa' ? buildRsaKey(der, base) : buildEd25519Key(der, base);
}

function buildRsaKey(der: Buffer, base: Omit<KeyRecord, 'publicKey' | 'bits'>): KeyRecordResult {
  const publicKey = importKey(der, 'spki') ?? importKey(der, 'pkcs1');
  if (publicKey === undefined || publicKey.asymmetricKeyType !== 'rsa') {
    return { ok: false, code: 'key_malformed', reason: 'p= is not an RSA public key' };
  }
  const bits = publicKey.asymmetricKeyDetails?.modulusLength ?? 0;
  return { ok: true, record: { ...base, publicKey, bits } };
}

function buildEd25519Key(
  der: Buffer,
  base: Omit<KeyRecord, 'publicKey' | 'bits'>,
): KeyRecordResult {
  if (der.length !== 32)
    return { ok: false, code: 'key_malformed', reason: 'an Ed25519 p= must hold 32 bytes' };
  const publicKey = importKey(Buffer.concat([ED25519_SPKI_PREFIX, der]), 'spki');
  if (publicKey === undefined)
    return { ok: false, code: 'key_malformed', reason: 'p= is not an Ed25519 public key' };
  return { ok: true, record: { ...base, publicKey } };
}

function importKey(der: Buffer, type: 'spki' | 'pkcs1'): KeyObject | undefined {
  try {
    return createPublicKey({ key: der, format: 'der', type });
  } catch {
    return undefined;
  }
}

/** Returns the raw 32-byte form of an Ed25519 public key, as `p=` carries it. */
export function rawEd25519PublicKey(publicKey: KeyObject): Buffer {
  const der = publicKey.export({ format: 'der', type: 'spki' });
  return der.subarray(der.length - 32);
}
