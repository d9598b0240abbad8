/**
 * The authentication check a message gets when it arrives for an alias: verify its DKIM
 * signatures, evaluate the DMARC policy of its From domain on them, and render the
 * `Authentication-Results` header field (RFC 8601) that records both.
 */
import {
  formatAuthenticationResults,
  verifyMessage,
  type DkimKeyCache,
  type DkimResult,
} from '../dkim/index.js';
import {
  domainOf,
  formatHeaderField,
  getHeaders,
  parseAddressList,
  parseHeaderFields,
  rawFieldValue,
  splitMessage,
} from '../message/index.js';
import { evaluateDmarc, formatDmarcResult, type DmarcEvaluation, type TxtLookup } from './dmarc.js';

export interface ArrivalCheck {
  dkim: DkimResult[];
  dmarc: DmarcEvaluation;
  /** The domains of the From header's mailboxes, lower-cased. */
  fromDomains: string[];
  /** A complete `Authentication-Results: ...` field, folded, ending in CRLF. */
  headerField: string;
}

/** A resolver error code of Herald's DNS module, and the Node code the DKIM engine expects. */
const NODE_CODES: Record<string, string> = {
  NOTFOUND: 'ENOTFOUND',
  NODATA: 'ENODATA',
  SERVFAIL: 'ESERVFAIL',
  TIMEOUT: 'ETIMEOUT',
  FAILED: 'ECONNREFUSED',
};

/**
 * Wraps a TXT lookup so its errors carry Node's codes (`ENOTFOUND`, `ETIMEOUT`...), which is
 * the contract of `dns.promises.Resolver#resolveTxt` that the DKIM engine relies on. Herald's
 * resolver reports `NOTFOUND`, `TIMEOUT` and so on; errors with Node's codes pass unchanged.
 */
export function withNodeErrorCodes(lookup: TxtLookup): TxtLookup {
  return async (name) => {
    try {
      return await lookup(name);
    } catch (error) {
      const code = (error as { code?: unknown } | null)?.code;
      const mapped = typeof code === 'string' ? NODE_CODES[code] : undefined;
      if (mapped === undefined) throw error;
      throw Object.assign(new Error((error as Error).message), { code: mapped });
    }
  };
}

/** Error codes that mean the name has no TXT record: a result worth caching like records. */
const NO_RECORD = new Set(['ENOTFOUND', 'ENODATA']);

/**
 * Wraps a TXT lookup (with Node's error codes) in an in-memory cache. Records and "no record"
 * errors are kept for `ttlMs`, and temporary failures are not kept at all. At most `maxEntries` names are kept;
 * past that the oldest goes first. DNS TTLs are not known through this interface, so the
 * cache time is a fixed, short setting.
 */
export function cacheTxtLookup(
  lookup: TxtLookup,
  options: { ttlMs?: number; maxEntries?: number; now?: () => number } = {},
): TxtLookup {
  const ttlMs = options.ttlMs ?? 60_000;
  const maxEntries = options.maxEntries ?? 10_000;
  const now = options.now ?? Date.now;
  const entries = new Map<string, { value: Promise<string[][]>; expires: number }>();

  return (name) => {
    const key = name.toLowerCase();
    const cached = entries.get(key);
    if (cached && cached.expires > now()) return cached.value;
    entries.delete(key);

    const value = lookup(name);
    if (entries.size >= maxEntries) {
      const oldest = entries.keys().next();
      if (oldest.done !== true) entries.delete(oldest.value);
    }
    entries.set(key, { value, expires: now() + ttlMs });
    value.catch((error: unknown) => {
      const code = (error as { code?: unknown } | null)?.code;
      if (typeof code !== 'string' || !NO_RECORD.has(code)) entries.delete(key);
    });
    return value;
  };
}

/** Collects the domains of the mailboxes in every From field of a CRLF message. */
export function fromDomains(message: Buffer): string[] {
  const fields = parseHeaderFields(splitMessage(message).header);
  const domains: string[] = [];
  for (const value of getHeaders(fields, 'from')) {
    for (const mailbox of parseAddressList(value)) {
      const domain = domainOf(mailbox.address);
      if (domain !== undefined) domains.push(domain.replace(/\.$/, ''));
    }
  }
  return domains;
}

/**
 * Verifies DKIM and evaluates DMARC for a CRLF message. DNS failures become `temperror`
 * verdicts, never exceptions, so a broken resolver cannot stop mail from being received.
 */
export async function checkArrival(
  message: Buffer,
  options: {
    /** TXT lookup with Node's or Herald's DNS error codes; DMARC records are looked up here. */
    lookupTxt: TxtLookup;
    authservId: string;
    /** DKIM key cache shared across messages, so a busy sender's key is not fetched each time. */
    keyCache?: DkimKeyCache;
  },
): Promise<ArrivalCheck> {
  const lookupTxt = withNodeErrorCodes(options.lookupTxt);
  const dkim = await verifyMessage(message, { lookupTxt, keyCache: options.keyCache });
  const domains = fromDomains(message);
  const dmarc = await evaluateDmarc(domains, dkim, lookupTxt);

  const value = formatAuthenticationResults(options.authservId, dkim, [formatDmarcResult(dmarc)]);
  return {
    dkim,
    dmarc,
    fromDomains: domains,
    headerField: formatHeaderField('Authentication-Results', value),
  };
}

/**
 * Reads the authserv-id of an `Authentication-Results` value (RFC 8601 section 2.2): the first
 * token or quoted string, after any comments and whitespace. Returns undefined when it is missing.
 */
export function authservIdOf(value: string): string | undefined {
  let index = 0;
  let depth = 0;
  while (index < value.length) {
    const char = value[index]!;
    if (char === '(') depth++;
    else if (char === ')' && depth > 0) depth--;
    else if (depth === 0 && !/[ \t\r\n]/.test(char)) break;
    index++;
  }
  const rest = value.slice(index);
  if (rest.startsWith('"')) {
    const quoted = /^"((?:[^"\\]|\\.)*)"/.exec(rest);
    return quoted ? quoted[1]!.replace(/\\(.)/g, '$1') : undefined;
  }
  const token = /^[^ \t\r\n;()]+/.exec(rest);
  return token ? token[0] : undefined;
}

/**
 * Removes the `Authentication-Results` fields that carry `authservId`, compared without case
 * and without a final dot. RFC 8601 section 5 has a receiver drop such fields before it adds its
 * own, since only it may write them. Fields of other ids stay, and every other byte of the
 * message is kept, so signatures over the rest still verify.
 */
export function removeOwnAuthenticationResults(message: Buffer, authservId: string): Buffer {
  const own = authservId.toLowerCase().replace(/\.$/, '');
  const { header } = splitMessage(message);
  const fields = parseHeaderFields(header);
  const forged = fields.filter((field) => {
    if (field.key !== 'authentication-results') return false;
    const id = authservIdOf(rawFieldValue(field).toString('latin1'));
    return id !== undefined && id.toLowerCase().replace(/\.$/, '') === own;
  });
  if (forged.length === 0) return message;
  const keptFields = fields.filter((field) => !forged.includes(field)).map((field) => field.raw);
  return Buffer.concat([...keptFields, message.subarray(header.length)]);
}
