/**
 * The authentication check a message gets when it arrives for an alias: verify its DKIM
 * signatures, evaluate the DMARC policy of its From domain on them, and render the
 * `Authentication-Results` header field (RFC 8601) that records both.
 */
import { formatAuthenticationResults, verifyMessage, type DkimResult } from '../dkim/index.js';
import {
  domainOf,
  formatHeaderField,
  getHeaders,
  parseAddressList,
  parseHeaderFields,
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

/** The domains of the mailboxes in every From field of a CRLF message. */
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
  options: { lookupTxt: TxtLookup; authservId: string },
): Promise<ArrivalCheck> {
  const lookupTxt = withNodeErrorCodes(options.lookupTxt);
  const dkim = await verifyMessage(message, { lookupTxt });
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
