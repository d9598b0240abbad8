/**
 * DKIM signing (RFC 6376 section 5, RFC 8463). One pass over the message computes every
 * requested signature: the body is hashed once per body canonicalization, however many
 * signatures share it. Input is bytes; bare LF line endings become CRLF first, so the message is
 * signed as it will be transmitted. `DkimSigner` takes the message in chunks split anywhere and
 * keeps only the header section and a few bytes of state, so a 50 MB message signs in bounded
 * memory. Problems with the options or the message (no From field, a short key, an unknown
 * algorithm) raise a `DkimSignError` that names them.
 */
import { type KeyObject } from 'node:crypto';

import {
  CrlfNormalizer,
  indexOfHeaderEnd,
  parseHeaderFields,
  toCrlf,
  type HeaderField,
} from '../message/index.js';
import { BodyCanonicalizer, findBareLf, LimitedSink } from './canonicalize.js';
import { Sha256Sink, signData } from './crypto.js';
import { formatSignatureTags, withSignatureValue } from './format.js';
import { groupFields, headerDataView } from './header-hash.js';
import { MIN_RSA_BITS } from './key-record.js';
import { isDomainName, parseCanonicalization } from './signature.js';
import type { Canonicalization, DkimAlgorithm, SignatureOptions, SignOptions } from './types.js';

/**
 * Header fields signed by default when present: the originator, destination and identification
 * fields of RFC 5322 section 3.6, the MIME fields, and the list fields of RFC 2369, RFC 2919 and
 * RFC 8058.
 */
export const DEFAULT_SIGNED_HEADERS: readonly string[] = Object.freeze([
  'from',
  'sender',
  'reply-to',
  'subject',
  'date',
  'message-id',
  'to',
  'cc',
  'in-reply-to',
  'references',
  'mime-version',
  'content-type',
  'content-transfer-encoding',
  'content-id',
  'content-description',
  'content-disposition',
  'resent-date',
  'resent-from',
  'resent-sender',
  'resent-to',
  'resent-cc',
  'resent-message-id',
  'list-id',
  'list-help',
  'list-unsubscribe',
  'list-unsubscribe-post',
  'list-subscribe',
  'list-post',
  'list-owner',
  'list-archive',
  'feedback-id',
]);

/**
 * Header fields signed once more than they occur, so that adding one in transit breaks the
 * signature. RFC 8058 section 4 requires List-Unsubscribe-Post to be signed.
 */
export const DEFAULT_OVERSIGNED_HEADERS: readonly string[] = Object.freeze([
  'from',
  'subject',
  'to',
  'cc',
  'date',
  'reply-to',
  'message-id',
  'content-type',
  'list-unsubscribe',
  'list-unsubscribe-post',
]);

const LF = 0x0a;
const EMPTY = Buffer.alloc(0);

/** The largest header section a signer buffers while it looks for the end of the header. */
export const MAX_HEADER_BYTES = 1024 * 1024;

/**
 * A problem that prevents signing: in the options (`kind: 'options'`, such as a short key) or
 * in the message itself (`kind: 'message'`, such as a missing From field).
 */
export class DkimSignError extends Error {
  constructor(
    message: string,
    readonly kind: 'options' | 'message' = 'options',
  ) {
    super(message);
    this.name = 'DkimSignError';
  }
}

/** A signature's options, checked and completed with defaults. */
interface PreparedSignature {
  domain: string;
  selector: string;
  privateKey: KeyObject;
  algorithm: DkimAlgorithm;
  headerCanonicalization: Canonicalization;
  bodyCanonicalization: Canonicalization;
  headers: readonly string[];
  oversign: readonly string[];
  identity?: string;
  expiresIn?: number;
  bodyLength: boolean;
}

/** Checks one signature's options; raises `DkimSignError` naming the first problem. */
export function prepareSignature(options: SignatureOptions): PreparedSignature {
  const where = `signature d=${options.domain} s=${options.selector}`;
  if (!isCheckedDomainName(options.domain))
    throw new DkimSignError(`${where}: invalid domain "${options.domain}"`);
  if (!isCheckedDomainName(options.selector))
    throw new DkimSignError(`${where}: invalid selector "${options.selector}"`);
  const algorithm = checkKey(options, where);
  const canonicalization =
    CANONICALIZATION_PAIRS.get(options.canonicalization ?? 'relaxed/relaxed') ??
    parseCanonicalization(options.canonicalization);
  if (canonicalization === undefined) {
    throw new DkimSignError(
      `${where}: unknown canonicalization "${options.canonicalization}"; use simple or relaxed, as header/body`,
    );
  }
  const headers = options.headers ?? DEFAULT_SIGNED_HEADERS;
  if (!headers.some((name) => name.toLowerCase() === 'from')) {
    throw new DkimSignError(
      `${where}: the signed headers must include From (RFC 6376 section 5.4)`,
    );
  }
  if (options.identity !== undefined) checkIdentity(options.identity, options.domain, where);
  if (
    options.expiresIn !== undefined &&
    !(Number.isInteger(options.expiresIn) && options.expiresIn > 0)
  ) {
    throw new DkimSignError(`${where}: expiresIn must be a positive whole number of seconds`);
  }
  return {
    domain: options.domain.toLowerCase(),
    selector: options.selector,
    privateKey: options.privateKey,
    algorithm,
    headerCanonicalization: canonicalization[0],
    bodyCanonicalization: canonicalization[1],
    headers,
    oversign: options.oversign ?? DEFAULT_OVERSIGNED_HEADERS,
    identity: options.identity,
    expiresIn: options.expiresIn,
    bodyLength: options.bodyLength ?? false,
  };
}

/** The four `c=` pairs as written in lower case, parsed once. */
const CANONICALIZATION_PAIRS = new Map<string, [Canonicalization, Canonicalization]>(
  (['simple', 'relaxed'] as const).flatMap((header) =>
    (['simple', 'relaxed'] as const).map(
      (body) =>
        [`${header}/${body}`, [header, body]] as [string, [Canonicalization, Canonicalization]],
    ),
  ),
);

/** Names that passed `isDomainName`, since a signer signs for a few domains many times. */
const VALID_NAMES = new Set<string>();
const MAX_VALID_NAMES = 1024;

function isCheckedDomainName(name: string): boolean {
  if (VALID_NAMES.has(name)) return true;
  if (!isDomainName(name)) return false;
  if (VALID_NAMES.size >= MAX_VALID_NAMES) VALID_NAMES.clear();
  VALID_NAMES.add(name);
  return true;
}

function checkKey(options: SignatureOptions, where: string): DkimAlgorithm {
  const key = options.privateKey as KeyObject | undefined;
  if (key?.type !== 'private')
    throw new DkimSignError(`${where}: privateKey is not a private KeyObject`);
  const keyType = key.asymmetricKeyType;
  const algorithm = options.algorithm ?? (keyType === 'ed25519' ? 'ed25519-sha256' : 'rsa-sha256');
  if (algorithm !== 'rsa-sha256' && algorithm !== 'ed25519-sha256') {
    throw new DkimSignError(
      `${where}: unknown algorithm "${String(algorithm)}"; use rsa-sha256 or ed25519-sha256`,
    );
  }
  const expectedType = algorithm === 'rsa-sha256' ? 'rsa' : 'ed25519';
  if (keyType !== expectedType) {
    throw new DkimSignError(
      `${where}: algorithm ${algorithm} needs an ${expectedType} key, not ${keyType ?? 'unknown'}`,
    );
  }
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  if (keyType === 'rsa' && bits < MIN_RSA_BITS) {
    throw new DkimSignError(
      `${where}: RSA key of ${bits} bits is too short; DKIM needs at least ${MIN_RSA_BITS} (RFC 8301)`,
    );
  }
  return algorithm;
}

function checkIdentity(identity: string, domain: string, where: string): void {
  const at = identity.lastIndexOf('@');
  const identityDomain = identity.slice(at + 1).toLowerCase();
  const lower = domain.toLowerCase();
  if (at === -1 || (identityDomain !== lower && !identityDomain.endsWith(`.${lower}`))) {
    throw new DkimSignError(`${where}: identity "${identity}" is not within ${domain}`);
  }
}

/**
 * Lists the `h=` names: every instance of each signed name present in the message, then one
 * more for each oversigned name, which signs the absence of a further instance.
 */
export function selectSignedHeaders(
  fields: readonly HeaderField[],
  headers: readonly string[],
  oversign: readonly string[],
): string[] {
  return selectFromGroups(groupFields(fields), headers, oversign);
}

function selectFromGroups(
  groups: ReadonlyMap<string, readonly HeaderField[]>,
  headers: readonly string[],
  oversign: readonly string[],
): string[] {
  const { names, extra } = nameOrder(headers, oversign);
  const selected: string[] = [];
  for (const name of names) {
    for (let count = groups.get(name)?.length ?? 0; count > 0; count--) selected.push(name);
  }
  for (const name of extra) selected.push(name);
  return selected;
}

interface NameOrder {
  /** The signed names, then the oversigned names not among them; lower case, no duplicates. */
  names: string[];
  /** The oversigned names, lower case, no duplicates. */
  extra: string[];
}

/** The order of the default lists, computed once. Other lists are processed per call. */
let defaultOrder: NameOrder | undefined;

function nameOrder(headers: readonly string[], oversign: readonly string[]): NameOrder {
  const isDefault = headers === DEFAULT_SIGNED_HEADERS && oversign === DEFAULT_OVERSIGNED_HEADERS;
  if (isDefault && defaultOrder !== undefined) return defaultOrder;
  const listed = unique(headers);
  const extra = unique(oversign);
  const order = { names: [...listed, ...extra.filter((name) => !listed.includes(name))], extra };
  if (isDefault) defaultOrder = order;
  return order;
}

function unique(names: readonly string[]): string[] {
  return [...new Set(names.map((name) => name.toLowerCase()))];
}

/** The hash state of one body canonicalization. */
interface BodyHashState {
  hash: Sha256Sink;
  length: LimitedSink;
  canonicalizer: BodyCanonicalizer;
}

/** A signer fed with chunks; `finish` returns the DKIM-Signature fields. */
export class DkimSigner {
  private readonly prepared: PreparedSignature[];
  private readonly time: Date;
  private normalizer: CrlfNormalizer | undefined;
  private readonly bodies = new Map<Canonicalization, BodyHashState>();
  private headerBuffer: Buffer = EMPTY;
  private header: Buffer | undefined;

  constructor(options: SignOptions) {
    if (options.signatures.length === 0) throw new DkimSignError('no signatures requested');
    this.prepared = options.signatures.map(prepareSignature);
    this.time = options.time ?? new Date();
    for (const signature of this.prepared) {
      const method = signature.bodyCanonicalization;
      if (this.bodies.has(method)) continue;
      const hash = new Sha256Sink();
      const length = new LimitedSink(hash);
      this.bodies.set(method, {
        hash,
        length,
        canonicalizer: new BodyCanonicalizer(method, length),
      });
    }
  }

  /** Adds the next chunk of the message. */
  update(chunk: Buffer): void {
    this.normalizer ??= new CrlfNormalizer();
    this.updateNormalized(this.normalizer.push(chunk));
  }

  /** Adds a chunk that already has CRLF line endings throughout. */
  updateNormalized(chunk: Buffer): void {
    if (this.header !== undefined) {
      this.updateBody(chunk);
      return;
    }
    const searchFrom = Math.max(0, this.headerBuffer.length - 3);
    const combined =
      this.headerBuffer.length === 0 ? chunk : Buffer.concat([this.headerBuffer, chunk]);
    const end = indexOfHeaderEnd(combined, searchFrom);
    if (end === -1) {
      if (combined.length > MAX_HEADER_BYTES) {
        throw new DkimSignError(
          `header section exceeds ${MAX_HEADER_BYTES} bytes without a blank line`,
          'message',
        );
      }
      // A copy, because the caller may reuse the chunk's memory after this call returns.
      this.headerBuffer = combined === chunk ? Buffer.from(chunk) : combined;
      return;
    }
    this.header = Buffer.from(combined.subarray(0, end));
    this.headerBuffer = EMPTY;
    this.updateBody(combined.subarray(end + 2));
  }

  /**
   * Adds a whole message whose line endings are not known, checking them in the same pass as
   * the body canonicalization. Returns false when the message has a bare LF or no blank line,
   * and this signer is then unusable: sign `toCrlf(message)` with a new one. The signer keeps a
   * view of `message` until `finish`, so the caller must not change it before then.
   */
  updateWhole(message: Buffer): boolean {
    if (this.header !== undefined || this.headerBuffer.length > 0)
      throw new Error('updateWhole takes the whole message, before any other update');
    const end = indexOfHeaderEnd(message);
    if (end === -1) return false;
    // The header section is short, so `indexOf` per line costs less than a copy into the scan.
    if (message[0] === LF || findBareLf(message, end + 2) !== -1) return false;
    this.header = message.subarray(0, end);
    const body = message.subarray(end + 2);
    for (const state of this.bodies.values())
      if (!state.canonicalizer.updateCheckingLineEndings(body)) return false;
    return true;
  }

  private updateBody(chunk: Buffer): void {
    for (const state of this.bodies.values()) state.canonicalizer.update(chunk);
  }

  /** Completes the body hashes and returns the DKIM-Signature fields, each ending in CRLF. */
  finish(): string {
    // A message without a blank line is all header and has an empty body.
    const header = this.header ?? this.headerBuffer;
    const fields = parseHeaderFields(header);
    const groups = groupFields(fields);
    if (!groups.has('from')) {
      throw new DkimSignError(
        'the message has no From header field, which DKIM must sign',
        'message',
      );
    }
    const digests = new Map<Canonicalization, { digest: Buffer; length: number }>();
    for (const [method, state] of this.bodies) {
      state.canonicalizer.finish();
      digests.set(method, { digest: state.hash.digest(), length: state.length.total });
    }
    const timestamp = Math.floor(this.time.getTime() / 1000);
    let output = '';
    for (const signature of this.prepared) {
      const body = digests.get(signature.bodyCanonicalization);
      if (body === undefined) throw new Error('body hash missing for a prepared canonicalization');
      output += signOne(signature, fields, groups, body, timestamp);
    }
    return output;
  }
}

function signOne(
  signature: PreparedSignature,
  fields: readonly HeaderField[],
  groups: ReadonlyMap<string, readonly HeaderField[]>,
  body: { digest: Buffer; length: number },
  timestamp: number,
): string {
  const signedHeaders = selectFromGroups(groups, signature.headers, signature.oversign);
  const tags = {
    algorithm: signature.algorithm,
    canonicalization: `${signature.headerCanonicalization}/${signature.bodyCanonicalization}`,
    domain: signature.domain,
    identity: signature.identity,
    selector: signature.selector,
    timestamp,
    expiration: signature.expiresIn === undefined ? undefined : timestamp + signature.expiresIn,
    bodyLength: signature.bodyLength ? body.length : undefined,
    signedHeaders,
    bodyHash: body.digest.toString('base64'),
  };
  const tagLines = formatSignatureTags(tags);
  const unsigned = withSignatureValue(tagLines, '');
  const method = signature.headerCanonicalization;
  const data = headerDataView(fields, signedHeaders, method, unsigned, groups);
  const value = signData(signature.algorithm, data, signature.privateKey).toString('base64');
  return withSignatureValue(tagLines, value);
}

/** Returns the DKIM-Signature fields for `message`, each ending in CRLF. */
export function sign(message: Buffer, options: SignOptions): string {
  return signWhole(message, options).fields;
}

/** Returns `message` with CRLF line endings and its DKIM-Signature fields on top. */
export function signMessage(message: Buffer, options: SignOptions): Buffer {
  const { fields, normalized } = signWhole(message, options);
  // The fields are Latin-1 text, one byte per character.
  const output = Buffer.allocUnsafe(fields.length + normalized.length);
  output.write(fields, 0, 'latin1');
  normalized.copy(output, fields.length);
  return output;
}

/**
 * Signs a message held whole. Most messages already have CRLF line endings, so the body scan
 * checks that on the way, and only a message with a bare LF is converted and signed again.
 */
function signWhole(message: Buffer, options: SignOptions): { fields: string; normalized: Buffer } {
  const signer = new DkimSigner(options);
  if (signer.updateWhole(message)) return { fields: signer.finish(), normalized: message };
  const normalized = toCrlf(message);
  const retry = new DkimSigner(options);
  retry.updateNormalized(normalized);
  return { fields: retry.finish(), normalized };
}

/** Creates a signer that takes the message in chunks. */
export function createSigner(options: SignOptions): DkimSigner {
  return new DkimSigner(options);
}

/** Signs a streamed message and returns the DKIM-Signature fields, each ending in CRLF. */
export async function signStream(
  chunks: AsyncIterable<Buffer | Uint8Array>,
  options: SignOptions,
): Promise<string> {
  const signer = new DkimSigner(options);
  for await (const chunk of chunks)
    signer.update(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk));
  return signer.finish();
}
