/**
 * SRS forward and reverse rewriting in the "guarded" scheme of Mail::SRS, libsrs2, pysrs and
 * postsrsd 1.x:
 *
 *   SRS0=HHHH=TT=domain=local@srs-domain          first hop: hash, day stamp, original address
 *   SRS1=HHHH=host==HHHH=TT=domain=local@srs-domain   an SRS0 address forwarded once more
 *
 * An SRS0 hash covers the stamp, domain and local part. An SRS1 hash covers the first hop's host
 * and the rest of its SRS0 local part. Rewriting an SRS1 address again replaces its hash and
 * keeps its SRS0 part, so addresses never nest. Every verdict is a value: bad input never throws.
 * The constructor throws on invalid options, which are a programming error.
 */
import { createHmac } from 'node:crypto';

import {
  MAX_ADDRESS_OCTETS,
  MAX_LOCAL_PART_OCTETS,
  exceedsOctets,
  isDomain,
  isDotAtom,
  isLocalPart,
  octets,
  parseLocalPart,
  quote,
  sameDomain,
  splitAddress,
} from './address.js';
import { MAX_HASH_LENGTH, createHash, verifyHash, type HashAlphabet } from './hash.js';
import { MAX_FUTURE_DAYS, STAMP_SLOTS, checkStamp, encodeStamp } from './timestamp.js';
import type { SrsTokenStore } from './token-store.js';

/** Separator characters allowed after the SRS0/SRS1 tag; later fields always use `=`. */
export type SrsSeparator = '=' | '+' | '-';

export interface SrsOptions {
  /** Domain of the rewritten addresses. Forwarding needs it, but reversing does not. */
  domain?: string;
  /** Secrets, the first signing and all verifying, so a secret can rotate. At least one. */
  secrets: readonly string[];
  /** Hash characters emitted, 1 to 27. Default 4. */
  hashLength?: number;
  /** Minimum hash characters accepted on reverse. Default `hashLength`. */
  hashMinLength?: number;
  /** Days a rewritten address stays valid. Default 21. */
  maxAgeDays?: number;
  /**
   * Hash alphabet emitted. `base64url` (default) avoids `/`, which some receivers reject in a
   * local part; `base64` matches postsrsd 1.x byte for byte. Reverse accepts both.
   */
  alphabet?: HashAlphabet;
  /** Character after the tag, as postsrsd's `-a`. Default `=`. */
  separator?: SrsSeparator;
  /** Sender domains left alone: an exact name, or `.suffix` for every subdomain of suffix. */
  excludeDomains?: readonly string[];
  /** Rewrite senders in the SRS domain and excluded domains too. Default false. */
  alwaysRewrite?: boolean;
  /** Clock, which tests pin. Default the system clock. */
  now?: () => Date;
  /** Store for database mode, used by `forwardAsync` and `reverseAsync`. */
  tokenStore?: SrsTokenStore;
}

export type ForwardResult =
  | { kind: 'rewritten'; address: string }
  | { kind: 'unchanged'; address: string; reason: 'null-sender' | 'srs-domain' | 'excluded' }
  | { kind: 'error'; reason: 'malformed' | 'too-long'; message: string };

export type ReverseFailure =
  | 'not-srs'
  | 'malformed'
  | 'bad-hash'
  | 'expired'
  | 'future-stamp'
  | 'bad-stamp'
  | 'too-long'
  | 'store-required'
  | 'unknown-token';

export type ReverseResult =
  { ok: true; address: string } | { ok: false; reason: ReverseFailure; message: string };

const TAG_PATTERN = /^srs[01][-+=]/i;
// Database-mode tokens: 16 base32 characters, 80 bits from an HMAC, compared in upper case.
const TOKEN_PATTERN = /^[A-Za-z2-7]{16}$/;
const BASE32_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
const MS_PER_DAY = 86_400_000;

/** A parsed SRS address before its hash and stamp are checked. */
type ParsedSrs =
  | { tag: 'SRS0'; hash: string; stamp: string; host: string; user: string; quoted: boolean }
  | { tag: 'SRS1'; hash: string; host: string; user: string; quoted: boolean }
  | { tag: 'token'; hash: string; stamp: string; token: string };

/** Rewrites sender addresses into SRS addresses at one domain and reverses them. */
export class SrsRewriter {
  readonly domain: string | undefined;
  readonly hashLength: number;
  readonly hashMinLength: number;
  readonly maxAgeDays: number;
  readonly alphabet: HashAlphabet;
  readonly separator: SrsSeparator;
  readonly alwaysRewrite: boolean;
  private readonly secrets: readonly string[];
  private readonly exactExcludes: ReadonlySet<string>;
  private readonly suffixExcludes: readonly string[];
  // Milliseconds since the epoch. The system clock is read without allocating a Date.
  private readonly now: () => number;
  private readonly tokenStore: SrsTokenStore | undefined;

  constructor(options: SrsOptions) {
    this.domain = options.domain;
    this.secrets = [...options.secrets];
    this.hashLength = options.hashLength ?? 4;
    this.hashMinLength = options.hashMinLength ?? this.hashLength;
    this.maxAgeDays = options.maxAgeDays ?? 21;
    this.alphabet = options.alphabet ?? 'base64url';
    this.separator = options.separator ?? '=';
    this.alwaysRewrite = options.alwaysRewrite ?? false;
    const clock = options.now;
    this.now = clock === undefined ? Date.now : () => clock().getTime();
    this.tokenStore = options.tokenStore;

    const excludes = (options.excludeDomains ?? []).map((domain) => domain.toLowerCase());
    this.exactExcludes = new Set(excludes.filter((domain) => !domain.startsWith('.')));
    this.suffixExcludes = excludes.filter((domain) => domain.startsWith('.'));
    this.validateOptions();
  }

  private validateOptions(): void {
    if (this.domain !== undefined && !isDomain(this.domain)) {
      throw new RangeError(`invalid SRS domain: ${JSON.stringify(this.domain)}`);
    }
    if (this.secrets.length === 0 || this.secrets.some((secret) => secret === '')) {
      throw new RangeError('at least one secret is required, and no secret may be empty');
    }
    if (!isLength(this.hashLength, 1)) {
      throw new RangeError(`hashLength must be 1 to ${MAX_HASH_LENGTH}, got ${this.hashLength}`);
    }
    if (!isLength(this.hashMinLength, 1) || this.hashMinLength > this.hashLength) {
      throw new RangeError(
        `hashMinLength must be 1 to hashLength (${this.hashLength}), got ${this.hashMinLength}`,
      );
    }
    const maxAge = STAMP_SLOTS - MAX_FUTURE_DAYS - 1;
    if (!Number.isInteger(this.maxAgeDays) || this.maxAgeDays < 0 || this.maxAgeDays > maxAge) {
      throw new RangeError(`maxAgeDays must be 0 to ${maxAge}, got ${this.maxAgeDays}`);
    }
    if (!['=', '+', '-'].includes(this.separator)) {
      throw new RangeError(`separator must be one of = + -, got ${JSON.stringify(this.separator)}`);
    }
    if (this.alphabet !== 'base64url' && this.alphabet !== 'base64') {
      throw new RangeError(`alphabet must be base64url or base64, got ${String(this.alphabet)}`);
    }
  }

  /**
   * Returns true when the local part carries an SRS0 or SRS1 tag and, if this rewriter has a
   * domain, the address is in it. Cheap enough for routing; `reverse` does the real checks.
   */
  isSrsAddress(address: string): boolean {
    const at = address.lastIndexOf('@');
    if (at < 0) return false;
    const start = address.startsWith('"') ? 1 : 0;
    if (!TAG_PATTERN.test(address.slice(start, start + 5))) return false;
    return this.domain === undefined || sameDomain(address.slice(at + 1), this.domain);
  }

  /**
   * Rewrites a sender address for forwarding. The null sender, senders in the SRS domain and
   * excluded domains come back unchanged unless `alwaysRewrite` is set. A result whose local
   * part would exceed 64 octets is an error here; `forwardAsync` stores such senders instead.
   */
  forward(address: string): ForwardResult {
    if (address === '' || address === '<>') {
      return { kind: 'unchanged', address, reason: 'null-sender' };
    }
    const domain = this.requireDomain();
    if (exceedsOctets(address, MAX_ADDRESS_OCTETS)) {
      return tooLong(`the address exceeds ${MAX_ADDRESS_OCTETS} octets: ${address}`);
    }
    const split = splitAddress(address);
    const local = split && parseLocalPart(split.localPart);
    if (split === undefined || local === undefined || !isDomain(split.domain)) {
      return malformed(`not a valid address: ${address}`);
    }
    if (!this.alwaysRewrite) {
      if (sameDomain(split.domain, domain)) {
        return { kind: 'unchanged', address, reason: 'srs-domain' };
      }
      if (this.isExcluded(split.domain)) return { kind: 'unchanged', address, reason: 'excluded' };
    }

    const rewritten = this.compile(split.domain, local.content);
    // A quoted original keeps the whole SRS local part quoted, unless its content is a dot-atom.
    const localPart = local.quoted && !isDotAtom(local.content) ? quote(rewritten) : rewritten;
    if (exceedsOctets(localPart, MAX_LOCAL_PART_OCTETS)) {
      return tooLong(
        `the rewritten local part would be ${octets(localPart)} octets, over the limit of ` +
          `${MAX_LOCAL_PART_OCTETS}: ${address}`,
      );
    }
    const result = `${localPart}@${domain}`;
    if (exceedsOctets(result, MAX_ADDRESS_OCTETS)) {
      return tooLong(`the rewritten address would exceed ${MAX_ADDRESS_OCTETS} octets: ${address}`);
    }
    return { kind: 'rewritten', address: result };
  }

  /**
   * Rewrites like `forward`, but when the local part would be too long and a token store is
   * configured, stores the sender and returns `SRS0=HHHH=TT=TOKEN@domain`, whose hash covers the
   * stamp and the token.
   */
  async forwardAsync(address: string): Promise<ForwardResult> {
    const result = this.forward(address);
    if (result.kind !== 'error' || result.reason !== 'too-long' || this.tokenStore === undefined) {
      return result;
    }
    if (exceedsOctets(address, MAX_ADDRESS_OCTETS)) return result;

    const now = this.now();
    const stamp = encodeStamp(now);
    const token = this.createToken(stamp, address);
    // Kept one day past the maximum age, since the stamp counts whole days.
    const expiresAt = new Date(now + (this.maxAgeDays + 1) * MS_PER_DAY);
    await this.tokenStore.put(token, address, expiresAt);

    const hash = this.sign(stamp + token);
    return {
      kind: 'rewritten',
      address: `SRS0${this.separator}${hash}=${stamp}=${token}@${this.requireDomain()}`,
    };
  }

  /**
   * Reverses an SRS address: SRS0 yields the original sender, SRS1 the SRS0 address at the first
   * hop. Tag, hash and stamp compare case-insensitively. The address's domain is not checked,
   * because the hash already proves that one of the secrets made it.
   */
  reverse(address: string): ReverseResult {
    const parsed = this.parse(address);
    if (!parsed.ok) return parsed;
    if (parsed.srs.tag === 'token') {
      return failure('store-required', `the address needs the token store to reverse: ${address}`);
    }
    return this.verify(parsed.srs, address);
  }

  /** Reverses like `reverse`, and also database-mode addresses through the token store. */
  async reverseAsync(address: string): Promise<ReverseResult> {
    const parsed = this.parse(address);
    if (!parsed.ok) return parsed;
    const srs = parsed.srs;
    if (srs.tag !== 'token' || this.tokenStore === undefined) return this.reverse(address);

    const checked = this.checkStampAndHash(srs.hash, srs.stamp, srs.stamp + srs.token, address);
    if (checked !== undefined) return checked;
    const original = await this.tokenStore.get(srs.token.toUpperCase());
    if (original === undefined) {
      return failure('unknown-token', `the token is not in the store, or expired: ${address}`);
    }
    return { ok: true, address: original };
  }

  /** Builds the SRS local part for a sender, without quoting. */
  private compile(host: string, user: string): string {
    const tag = TAG_PATTERN.test(user) ? user.charAt(3) : '';
    if (tag === '1') {
      const fields = splitFields(user.slice(5), 3);
      // An SRS1 address that lacks its fields or a valid host is not really SRS, so it is
      // wrapped like any other sender and still reverses.
      if (fields !== undefined && isDomain(fields[1])) {
        const [, srsHost, srsUser] = fields;
        return this.compileSrs1(srsHost, srsUser);
      }
    } else if (tag === '0') {
      // The SRS0 part keeps its own separator, which gives the `host==` of an SRS1 address.
      return this.compileSrs1(host, user.slice(4));
    }
    const stamp = encodeStamp(this.now());
    const hash = this.sign(stamp + host + user);
    return `SRS0${this.separator}${hash}=${stamp}=${host}=${user}`;
  }

  private compileSrs1(srsHost: string, srsUser: string): string {
    const hash = this.sign(srsHost + srsUser);
    return `SRS1${this.separator}${hash}=${srsHost}=${srsUser}`;
  }

  /** Splits an SRS address into its fields, checking syntax only. */
  private parse(address: string): { ok: true; srs: ParsedSrs } | (ReverseResult & { ok: false }) {
    if (exceedsOctets(address, MAX_ADDRESS_OCTETS)) {
      return failure('too-long', `the address exceeds ${MAX_ADDRESS_OCTETS} octets`);
    }
    const split = splitAddress(address);
    const written = split?.localPart ?? address;
    const quoted = written.startsWith('"');
    const local = parseLocalPart(written) ?? parseRawSrsLocalPart(written);
    if (local === undefined) {
      return TAG_PATTERN.test(written.slice(quoted ? 1 : 0))
        ? failure('malformed', `not a valid address: ${address}`)
        : failure('not-srs', `not an SRS address: ${address}`);
    }
    const content = local.content;
    if (!TAG_PATTERN.test(content)) return failure('not-srs', `not an SRS address: ${address}`);
    if (split === undefined) return failure('malformed', `the address has no domain: ${address}`);

    const rest = content.slice(5);
    if (content.charAt(3) === '1') {
      const fields = splitFields(rest, 3);
      if (fields === undefined || !isDomain(fields[1])) {
        return failure('malformed', `an SRS1 address needs hash, host and SRS0 part: ${address}`);
      }
      const [hash, host, user] = fields;
      return { ok: true, srs: { tag: 'SRS1', hash, host, user, quoted } };
    }

    const fields = splitFields(rest, 4);
    if (fields === undefined) {
      const short = splitFields(rest, 3);
      if (short !== undefined && TOKEN_PATTERN.test(short[2]) && !quoted) {
        const [hash, stamp, token] = short;
        return { ok: true, srs: { tag: 'token', hash, stamp, token } };
      }
      return failure('malformed', `an SRS0 address needs hash, stamp, host and user: ${address}`);
    }
    const [hash, stamp, host, user] = fields;
    if (!isDomain(host)) return failure('malformed', `invalid host in SRS0 address: ${address}`);
    return { ok: true, srs: { tag: 'SRS0', hash, stamp, host, user, quoted } };
  }

  /** Checks the hash (and for SRS0 the stamp) and builds the reversed address. */
  private verify(srs: ParsedSrs & { tag: 'SRS0' | 'SRS1' }, address: string): ReverseResult {
    let user: string;
    if (srs.tag === 'SRS1') {
      const checked = this.checkHash(srs.hash, srs.host + srs.user, address);
      if (checked !== undefined) return checked;
      user = `SRS0${srs.user}`;
    } else {
      const fields = srs.stamp + srs.host + srs.user;
      const checked = this.checkStampAndHash(srs.hash, srs.stamp, fields, address);
      if (checked !== undefined) return checked;
      user = srs.user;
    }

    // A quoted SRS address carries the user as unquoted content. An unquoted one carries it as
    // written, and postsrsd writes a quoted original that way, quotes included.
    let localPart: string;
    if (srs.quoted) {
      localPart = isDotAtom(user) ? user : quote(user);
    } else if (isLocalPart(user)) {
      localPart = user;
    } else {
      return failure('malformed', `the original local part is not valid: ${address}`);
    }
    return { ok: true, address: `${localPart}@${srs.host}` };
  }

  private checkStampAndHash(
    hash: string,
    stamp: string,
    concatenatedFields: string,
    address: string,
  ): ReverseResult | undefined {
    const stampVerdict = checkStamp(stamp, this.now(), this.maxAgeDays);
    if (!stampVerdict.ok && stampVerdict.reason === 'bad-stamp') {
      return failure('bad-stamp', `the time stamp ${JSON.stringify(stamp)} is not base32`);
    }
    // The hash is checked before the age, so a forged address reads as forged, not as old.
    const hashFailure = this.checkHash(hash, concatenatedFields, address);
    if (hashFailure !== undefined) return hashFailure;
    if (stampVerdict.ok) return undefined;
    if (stampVerdict.reason === 'future-stamp') {
      return failure('future-stamp', `the time stamp ${stamp} is from a future day: ${address}`);
    }
    return failure(
      'expired',
      `the address is ${stampVerdict.ageDays ?? '?'} days old, over the maximum of ` +
        `${this.maxAgeDays}: ${address}`,
    );
  }

  private checkHash(
    hash: string,
    concatenatedFields: string,
    address: string,
  ): ReverseResult | undefined {
    if (hash.length < this.hashMinLength || hash.length > MAX_HASH_LENGTH) {
      return failure(
        'bad-hash',
        `the hash has ${hash.length} characters, outside ${this.hashMinLength} to ` +
          `${MAX_HASH_LENGTH}: ${address}`,
      );
    }
    if (!verifyHash(hash, this.secrets, concatenatedFields)) {
      return failure('bad-hash', `the hash does not match: ${address}`);
    }
    return undefined;
  }

  private sign(concatenatedFields: string): string {
    return createHash(this.secrets[0]!, concatenatedFields, this.hashLength, this.alphabet);
  }

  /** Derives the token from the sender and day, so repeated forwards reuse one entry. */
  private createToken(stamp: string, original: string): string {
    const digest = createHmac('sha1', this.secrets[0]!)
      .update(`herald-srs-token\0${stamp}\0${original}`, 'utf8')
      .digest();
    let bits = 0;
    let value = 0;
    let token = '';
    for (const byte of digest.subarray(0, 10)) {
      value = (value << 8) | byte;
      bits += 8;
      while (bits >= 5) {
        bits -= 5;
        token += BASE32_ALPHABET.charAt((value >> bits) & 31);
      }
    }
    return token;
  }

  private isExcluded(domain: string): boolean {
    if (this.exactExcludes.size === 0 && this.suffixExcludes.length === 0) return false;
    const lower = domain.toLowerCase();
    if (this.exactExcludes.has(lower)) return true;
    return this.suffixExcludes.some((suffix) => lower.endsWith(suffix));
  }

  private requireDomain(): string {
    if (this.domain === undefined) {
      throw new TypeError('SrsRewriter needs a domain to forward addresses');
    }
    return this.domain;
  }
}

/**
 * Accepts the unquoted SRS local part that postsrsd 1.x emits for a quoted original, such as
 * `SRS0=HHHH=TT=example.com="a b"`: not valid RFC 5321 syntax, but its bounces may be in flight.
 * The user field is checked once the hash has matched.
 */
function parseRawSrsLocalPart(written: string) {
  if (!TAG_PATTERN.test(written) || !/^[\x20-\x7e\u0080-\u{10FFFF}]+$/u.test(written)) {
    return undefined;
  }
  return { content: written, quoted: false };
}

function isLength(value: number, min: number): boolean {
  return Number.isInteger(value) && value >= min && value <= MAX_HASH_LENGTH;
}

/**
 * Splits at the first `count - 1` `=` signs; the last field keeps any further ones. Returns
 * undefined when a field is empty, as libsrs2 rejects such addresses.
 */
function splitFields(text: string, count: 3): [string, string, string] | undefined;
function splitFields(text: string, count: 4): [string, string, string, string] | undefined;
function splitFields(text: string, count: number): string[] | undefined {
  const fields: string[] = [];
  let start = 0;
  for (let i = 1; i < count; i++) {
    const end = text.indexOf('=', start);
    if (end < 0) return undefined;
    fields.push(text.slice(start, end));
    start = end + 1;
  }
  fields.push(text.slice(start));
  return fields.every((field) => field !== '') ? fields : undefined;
}

function failure(reason: ReverseFailure, message: string): ReverseResult & { ok: false } {
  return { ok: false, reason, message };
}

function malformed(message: string): ForwardResult {
  return { kind: 'error', reason: 'malformed', message };
}

function tooLong(message: string): ForwardResult {
  return { kind: 'error', reason: 'too-long', message };
}
