/**
 * Parsing and checking DKIM-Signature field values (RFC 6376 section 3.5). Every MUST of the
 * RFC is enforced here, before any DNS lookup or cryptography: `v=1`, a known and secure `a=`
 * (rsa-sha1 is rejected, RFC 8301 section 3.1), `From` in `h=` (section 5.4), `i=` within `d=`,
 * `x=` after `t=`. A bad signature comes back as an error value with a reason code.
 */
import { decodeBase64, parseTagList, printable, removeFws } from './tag-list.js';
import type { Canonicalization, DkimAlgorithm, DkimReasonCode } from './types.js';

/** A DKIM-Signature that passed every syntax check. */
export interface ParsedSignature {
  algorithm: DkimAlgorithm;
  headerCanonicalization: Canonicalization;
  bodyCanonicalization: Canonicalization;
  /** `d=`, lower case. */
  domain: string;
  /** `s=` as written (selectors are compared case-insensitively by DNS). */
  selector: string;
  /** `h=` names in lower case, in signing order. */
  signedHeaders: string[];
  bodyHash: Buffer;
  signature: Buffer;
  /** `b=` with FWS removed, as the signer wrote it. */
  signatureText: string;
  /** `i=`, or `@` followed by `d=` when absent (the default of section 3.5). */
  identity: string;
  timestamp?: number;
  expiration?: number;
  bodyLength?: number;
}

export type SignatureParseResult =
  | { ok: true; signature: ParsedSignature }
  | { ok: false; code: DkimReasonCode; reason: string; partial: Partial<ParsedSignature> };

const REQUIRED_TAGS = ['v', 'a', 'b', 'bh', 'd', 'h', 's'];

/** Parses a DKIM-Signature value given as Latin-1 text (the raw bytes after the colon). */
export function parseSignature(value: string): SignatureParseResult {
  const list = parseTagList(value);
  if (!list.ok) return fail('signature_malformed', `malformed tag list: ${list.error}`, {});
  const tags = list.tags;
  const partial: Partial<ParsedSignature> = {
    domain: tags.get('d')?.toLowerCase(),
    selector: tags.get('s'),
    signatureText: removeFws(tags.get('b') ?? ''),
  };
  for (const name of REQUIRED_TAGS) {
    if (!tags.has(name))
      return fail('signature_malformed', `required tag "${name}=" missing`, partial);
  }
  if (tags.get('v') !== '1') {
    return fail(
      'version_unsupported',
      `unsupported version v=${printable(tags.get('v') ?? '')}`,
      partial,
    );
  }
  const algorithm = parseAlgorithm(tags.get('a') ?? '');
  if (typeof algorithm !== 'string' || !isSupported(algorithm)) {
    return algorithm === 'rsa-sha1'
      ? fail('algorithm_insecure', 'rsa-sha1 is not accepted (RFC 8301)', partial)
      : fail('algorithm_unknown', `unknown algorithm a=${printable(tags.get('a') ?? '')}`, partial);
  }
  return checkRest(tags, algorithm, partial);
}

function checkRest(
  tags: Map<string, string>,
  algorithm: DkimAlgorithm,
  partial: Partial<ParsedSignature>,
): SignatureParseResult {
  const canonicalization = parseCanonicalization(tags.get('c'));
  if (canonicalization === undefined) {
    return fail(
      'canonicalization_unknown',
      `unknown canonicalization c=${printable(tags.get('c') ?? '')}`,
      partial,
    );
  }
  const domain = tags.get('d') ?? '';
  if (!isDomainName(domain))
    return fail('signature_malformed', `invalid domain d=${printable(domain)}`, partial);
  const selector = tags.get('s') ?? '';
  if (!isSelector(selector))
    return fail('signature_malformed', `invalid selector s=${printable(selector)}`, partial);
  const signedHeaders = removeFws(tags.get('h') ?? '')
    .toLowerCase()
    .split(':');
  if (signedHeaders.some((name) => !/^[\x21-\x39\x3b-\x7e]+$/.test(name))) {
    return fail('signature_malformed', 'invalid header field name in h=', partial);
  }
  if (!signedHeaders.includes('from'))
    return fail('from_not_signed', 'From is not in h= (RFC 6376 section 5.4)', partial);
  const query = tags.get('q');
  if (
    query !== undefined &&
    !removeFws(query)
      .split(':')
      .some((method) => method.toLowerCase() === 'dns/txt')
  ) {
    return fail('query_method_unknown', `unsupported query method q=${printable(query)}`, partial);
  }
  const bodyHash = decodeBase64(tags.get('bh') ?? '');
  if (bodyHash === undefined || bodyHash.length !== 32)
    return fail('signature_malformed', 'bh= is not a base64 SHA-256 hash', partial);
  const signature = decodeBase64(tags.get('b') ?? '');
  if (signature === undefined || signature.length === 0)
    return fail('signature_malformed', 'b= is not valid base64', partial);
  const lowerDomain = domain.toLowerCase();
  const identity = tags.get('i') ?? `@${lowerDomain}`;
  const identityProblem = checkIdentity(identity, lowerDomain);
  if (identityProblem !== undefined) return fail('identity_mismatch', identityProblem, partial);
  const numbers = parseNumbers(tags);
  if (typeof numbers === 'string') return fail('timestamp_invalid', numbers, partial);
  return {
    ok: true,
    signature: {
      algorithm,
      headerCanonicalization: canonicalization[0],
      bodyCanonicalization: canonicalization[1],
      domain: lowerDomain,
      selector,
      signedHeaders,
      bodyHash,
      signature,
      signatureText: removeFws(tags.get('b') ?? ''),
      identity,
      ...numbers,
    },
  };
}

function fail(
  code: DkimReasonCode,
  reason: string,
  partial: Partial<ParsedSignature>,
): SignatureParseResult {
  return { ok: false, code, reason, partial };
}

function parseAlgorithm(value: string): string {
  return value.toLowerCase();
}

function isSupported(algorithm: string): algorithm is DkimAlgorithm {
  return algorithm === 'rsa-sha256' || algorithm === 'ed25519-sha256';
}

/** Parses `c=`; a lone header canonicalization implies `simple` for the body (section 3.5). */
export function parseCanonicalization(
  value: string | undefined,
): [Canonicalization, Canonicalization] | undefined {
  if (value === undefined) return ['simple', 'simple'];
  const [header, body = 'simple', extra] = value.toLowerCase().split('/');
  if (extra !== undefined || !isCanonicalization(header) || !isCanonicalization(body))
    return undefined;
  return [header, body];
}

function isCanonicalization(value: string | undefined): value is Canonicalization {
  return value === 'simple' || value === 'relaxed';
}

/** A DNS name of LDH labels (A-labels for IDNs), 1 to 63 characters each, up to 253 in all. */
export function isDomainName(value: string): boolean {
  if (value.length === 0 || value.length > 253) return false;
  return value
    .split('.')
    .every((label) => /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/.test(label));
}

/** A selector is one or more dot-separated labels (section 3.1). */
function isSelector(value: string): boolean {
  return isDomainName(value);
}

/** Checks `i=`: `[local-part] "@" domain`, where the domain is `d=` or a subdomain of it. */
function checkIdentity(identity: string, domain: string): string | undefined {
  const at = identity.lastIndexOf('@');
  if (at === -1) return `i=${printable(identity)} has no "@"`;
  const identityDomain = identity.slice(at + 1).toLowerCase();
  if (identityDomain !== domain && !identityDomain.endsWith(`.${domain}`)) {
    return `i= domain ${printable(identityDomain)} is not within d=${domain}`;
  }
  return undefined;
}

function parseNumbers(
  tags: Map<string, string>,
): Pick<ParsedSignature, 'timestamp' | 'expiration' | 'bodyLength'> | string {
  const result: Pick<ParsedSignature, 'timestamp' | 'expiration' | 'bodyLength'> = {};
  for (const [tag, field] of [
    ['t', 'timestamp'],
    ['x', 'expiration'],
    ['l', 'bodyLength'],
  ] as const) {
    const text = tags.get(tag);
    if (text === undefined) continue;
    // RFC 6376 allows up to 12 digits for t= and x= and 76 for l=; a safe integer is enough.
    if (!/^[0-9]{1,15}$/.test(text)) return `${tag}= is not a decimal number: ${printable(text)}`;
    result[field] = Number(text);
  }
  if (
    result.timestamp !== undefined &&
    result.expiration !== undefined &&
    result.expiration <= result.timestamp
  ) {
    return `x=${result.expiration} is not after t=${result.timestamp}`;
  }
  return result;
}

/**
 * Returns the DKIM-Signature field with the value of its `b=` tag removed, as the header hash
 * needs it (section 3.7). Everything else, folding included, stays byte for byte.
 */
export function withoutSignatureValue(raw: Buffer): Buffer {
  const text = raw.toString('latin1');
  const colon = text.indexOf(':');
  let tagStart = colon + 1;
  while (tagStart <= text.length) {
    const semicolon = text.indexOf(';', tagStart);
    const tagEnd = semicolon === -1 ? text.length : semicolon;
    const equals = text.indexOf('=', tagStart);
    if (
      equals !== -1 &&
      equals < tagEnd &&
      text.slice(tagStart, equals).replace(/[ \t\r\n]/g, '') === 'b'
    ) {
      const valueEnd = semicolon === -1 ? trailingCrlfStart(text) : tagEnd;
      return Buffer.from(text.slice(0, equals + 1) + text.slice(valueEnd), 'latin1');
    }
    if (semicolon === -1) break;
    tagStart = semicolon + 1;
  }
  return raw;
}

function trailingCrlfStart(text: string): number {
  return text.endsWith('\r\n') ? text.length - 2 : text.length;
}
