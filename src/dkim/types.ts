/** Types shared by Herald's DKIM signer and verifier. */
import type { KeyObject } from 'node:crypto';

/** Signing algorithms Herald produces and accepts (RFC 6376, RFC 8463; rsa-sha1 is refused). */
export type DkimAlgorithm = 'rsa-sha256' | 'ed25519-sha256';

/** A header or body canonicalization (RFC 6376 section 3.4). */
export type Canonicalization = 'simple' | 'relaxed';

/** The `c=` pair, header then body. */
export type CanonicalizationPair = `${Canonicalization}/${Canonicalization}`;

/** The verdict of one signature, as RFC 8601 section 2.7.1 names it. */
export type DkimVerdict = 'pass' | 'fail' | 'neutral' | 'temperror' | 'permerror' | 'none';

/**
 * Why a signature got its verdict. Codes are stable for scripts and logs; the `reason` text
 * beside them is for people.
 */
export type DkimReasonCode =
  | 'no_signature'
  | 'signature_malformed'
  | 'version_unsupported'
  | 'algorithm_unknown'
  | 'algorithm_insecure'
  | 'canonicalization_unknown'
  | 'query_method_unknown'
  | 'from_not_signed'
  | 'identity_mismatch'
  | 'timestamp_invalid'
  | 'timestamp_future'
  | 'signature_expired'
  | 'key_not_found'
  | 'key_lookup_failed'
  | 'key_malformed'
  | 'key_revoked'
  | 'key_type_mismatch'
  | 'key_hash_unsupported'
  | 'key_service_mismatch'
  | 'key_strict_identity'
  | 'key_too_short'
  | 'body_hash_mismatch'
  | 'signature_mismatch'
  | 'body_length_partial';

/** The outcome for one DKIM-Signature field, or for a message without any. */
export interface DkimResult {
  result: DkimVerdict;
  /** The reason code; absent on a plain pass. */
  code?: DkimReasonCode;
  /** The reason in words, for logs and the `reason=` of Authentication-Results. */
  reason?: string;
  /** `d=` of the signature. */
  domain?: string;
  /** `s=` of the signature. */
  selector?: string;
  /** `a=` of the signature as written. */
  algorithm?: string;
  /** `i=` of the signature, or `@` followed by `d=` when the signature has none. */
  identity?: string;
  /** The first 8 characters of `b=`, which tell signatures apart (RFC 6008). */
  headerB?: string;
  /** The public key size in bits, for RSA keys. */
  keyBits?: number;
  /** True when the key record has `t=y`: the domain is testing DKIM (RFC 6376 section 3.6.1). */
  testing?: boolean;
  /** The `l=` of the signature, when it has one. */
  bodyLength?: number;
  /** Body bytes after the `l=` limit, which the signature does not cover. */
  unsignedBodyBytes?: number;
}

/** One signature to add to a message. */
export interface SignatureOptions {
  /** The signing domain, `d=`. */
  domain: string;
  /** The selector, `s=`; the key is published at `selector._domainkey.domain`. */
  selector: string;
  /** The private key, parsed once by the caller (`readPrivateKey` or `createPrivateKey`). */
  privateKey: KeyObject;
  /** Inferred from the key type when absent. */
  algorithm?: DkimAlgorithm;
  /** `relaxed/relaxed` when absent. */
  canonicalization?: CanonicalizationPair;
  /** Header fields to sign; `DEFAULT_SIGNED_HEADERS` when absent. Names are case-insensitive. */
  headers?: readonly string[];
  /**
   * Header fields signed once more than they occur, so a copy added in transit breaks the
   * signature (RFC 6376 section 8.15); `DEFAULT_OVERSIGNED_HEADERS` when absent, `[]` for none.
   */
  oversign?: readonly string[];
  /** The agent or user identifier, `i=`; must be within `domain`. */
  identity?: string;
  /** Seconds from the signing time until the signature expires (`x=`). */
  expiresIn?: number;
  /** Adds `l=` with the canonical body length; off by default (RFC 6376 section 8.2). */
  bodyLength?: boolean;
}

/** Options for one signing pass. */
export interface SignOptions {
  signatures: readonly SignatureOptions[];
  /** The signing time for `t=`; now when absent. */
  time?: Date;
}

/**
 * A DNS TXT lookup with the contract of `dns.promises.Resolver#resolveTxt`: it resolves to the
 * records, each an array of character-strings, and rejects with `code` `ENOTFOUND` or `ENODATA`
 * when there is no record, or `ETIMEOUT`, `ESERVFAIL`, `ECONNREFUSED` when DNS failed.
 */
export type TxtLookup = (name: string) => Promise<string[][]>;
