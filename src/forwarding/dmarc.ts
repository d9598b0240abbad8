/**
 * The DMARC policy check on arrival (RFC 7489): find the policy of the RFC5322.From domain, and
 * decide whether a DKIM signature aligned with that domain passed. Forwarding changes the
 * envelope sender to an SRS address, so SPF never aligns at the next hop; only an aligned DKIM
 * signature survives. This module therefore evaluates DKIM alignment and leaves SPF out.
 */
import { getDomain } from 'tldts';

/** The result of one DKIM signature, as the DKIM engine reports it. */
export interface DkimVerdict {
  result: string;
  domain?: string;
}

/** Same contract as `dns.promises.Resolver#resolveTxt`, errors included. */
export type TxtLookup = (name: string) => Promise<string[][]>;

export type DmarcPolicy = 'none' | 'quarantine' | 'reject';

/** The tags of a DMARC record this check uses (RFC 7489 section 6.3). */
export interface DmarcRecord {
  policy: DmarcPolicy;
  subdomainPolicy: DmarcPolicy | undefined;
  dkimAlignment: 'relaxed' | 'strict';
  spfAlignment: 'relaxed' | 'strict';
  percent: number;
}

export interface DmarcEvaluation {
  result: 'pass' | 'fail' | 'none' | 'temperror' | 'permerror';
  /** Lower-cased domain of the From header, when there is exactly one. */
  fromDomain?: string;
  /** The record found, and the domain it was published at (the From domain or its organisation). */
  record?: DmarcRecord;
  policyDomain?: string;
  /** The policy that applies to this From domain: `sp=` when it came from the organisation. */
  policy?: DmarcPolicy;
  /** The `d=` of the passing signature that aligned with From. */
  alignedDomain?: string;
  /** Why the result is what it is, for logs and the Authentication-Results comment. */
  reason: string;
}

/** The organisational domain of a name (RFC 7489 section 3.2), from the Public Suffix List. */
export function organisationalDomain(domain: string): string {
  const name = domain.toLowerCase().replace(/\.$/, '');
  return getDomain(name) ?? name;
}

/** Parses a DMARC TXT record; returns undefined when it is not a valid DMARC1 record. */
export function parseDmarcRecord(text: string): DmarcRecord | undefined {
  const tags = new Map<string, string>();
  for (const part of text.split(';')) {
    const equals = part.indexOf('=');
    if (equals < 0) {
      if (part.trim() !== '') return undefined;
      continue;
    }
    const name = part.slice(0, equals).trim().toLowerCase();
    if (!tags.has(name)) tags.set(name, part.slice(equals + 1).trim());
  }

  // RFC 7489 section 6.3: v=DMARC1 must be the first tag.
  const first = text.trim().split(';')[0] ?? '';
  if (!/^v\s*=\s*DMARC1$/i.test(first.trim())) return undefined;

  const policy = parsePolicy(tags.get('p'));
  if (!policy) return undefined;
  const percent = Number.parseInt(tags.get('pct') ?? '100', 10);
  return {
    policy,
    subdomainPolicy: parsePolicy(tags.get('sp')),
    dkimAlignment: tags.get('adkim')?.toLowerCase() === 's' ? 'strict' : 'relaxed',
    spfAlignment: tags.get('aspf')?.toLowerCase() === 's' ? 'strict' : 'relaxed',
    percent: Number.isInteger(percent) && percent >= 0 && percent <= 100 ? percent : 100,
  };
}

function parsePolicy(value: string | undefined): DmarcPolicy | undefined {
  const lower = value?.toLowerCase();
  return lower === 'none' || lower === 'quarantine' || lower === 'reject' ? lower : undefined;
}

type RecordLookup =
  { kind: 'found'; record: DmarcRecord } | { kind: 'none' } | { kind: 'temperror'; reason: string };

/** Error codes that mean "no such record" in Node's resolver and in Herald's DNS errors. */
const NO_RECORD_CODES = new Set(['ENOTFOUND', 'ENODATA', 'NOTFOUND', 'NODATA']);

/** Queries `_dmarc.NAME` and keeps the records that start with `v=DMARC1`. */
async function queryRecord(name: string, lookupTxt: TxtLookup): Promise<RecordLookup> {
  let answers: string[][];
  try {
    answers = await lookupTxt(`_dmarc.${name}`);
  } catch (error) {
    const code = (error as { code?: unknown } | null)?.code;
    if (typeof code === 'string' && NO_RECORD_CODES.has(code)) return { kind: 'none' };
    return { kind: 'temperror', reason: `DNS lookup of _dmarc.${name} failed (${String(code)})` };
  }

  const candidates = answers.map((strings) => strings.join('')).filter(isDmarcText);
  // RFC 7489 section 6.6.3: anything but exactly one DMARC record counts as no record.
  if (candidates.length !== 1) return { kind: 'none' };
  const record = parseDmarcRecord(candidates[0]!);
  return record ? { kind: 'found', record } : { kind: 'none' };
}

function isDmarcText(text: string): boolean {
  return /^v\s*=\s*DMARC1\s*(;|$)/i.test(text.trim());
}

/**
 * Finds the policy for a From domain: the domain's own record, else its organisational
 * domain's record (RFC 7489 section 6.6.3), whose `sp=` then applies when present.
 */
export async function findPolicy(
  fromDomain: string,
  lookupTxt: TxtLookup,
): Promise<
  | { kind: 'found'; record: DmarcRecord; policyDomain: string; policy: DmarcPolicy }
  | { kind: 'none' }
  | { kind: 'temperror'; reason: string }
> {
  const own = await queryRecord(fromDomain, lookupTxt);
  if (own.kind === 'found') {
    return { ...own, policyDomain: fromDomain, policy: own.record.policy };
  }
  if (own.kind === 'temperror') return own;

  const organisation = organisationalDomain(fromDomain);
  if (organisation === fromDomain) return { kind: 'none' };
  const inherited = await queryRecord(organisation, lookupTxt);
  if (inherited.kind !== 'found') return inherited;
  const policy = inherited.record.subdomainPolicy ?? inherited.record.policy;
  return { ...inherited, policyDomain: organisation, policy };
}

/** True when a signing domain aligns with the From domain in the given mode (section 3.1.1). */
export function isAligned(signingDomain: string, fromDomain: string, mode: 'relaxed' | 'strict') {
  const signer = signingDomain.toLowerCase().replace(/\.$/, '');
  const author = fromDomain.toLowerCase();
  if (mode === 'strict') return signer === author;
  return organisationalDomain(signer) === organisationalDomain(author);
}

/**
 * Evaluates DMARC for a message from its From domains and its DKIM verdicts. `fromDomains`
 * holds the domain of every mailbox in the From header field; RFC 7489 section 6.6.1 leaves a
 * header with several different domains to local policy, and Herald reports it as permerror.
 */
export async function evaluateDmarc(
  fromDomains: readonly string[],
  dkim: readonly DkimVerdict[],
  lookupTxt: TxtLookup,
): Promise<DmarcEvaluation> {
  const distinct = [...new Set(fromDomains.map((domain) => domain.toLowerCase()))];
  if (distinct.length === 0) return { result: 'permerror', reason: 'no From domain' };
  if (distinct.length > 1) {
    return { result: 'permerror', reason: `From has several domains: ${distinct.join(', ')}` };
  }
  const fromDomain = distinct[0]!;

  const found = await findPolicy(fromDomain, lookupTxt);
  if (found.kind === 'none') return { result: 'none', fromDomain, reason: 'no DMARC record' };
  if (found.kind === 'temperror') return { result: 'temperror', fromDomain, reason: found.reason };

  const { record, policyDomain, policy } = found;
  const aligned = dkim.find(
    (verdict) =>
      verdict.result === 'pass' &&
      verdict.domain !== undefined &&
      isAligned(verdict.domain, fromDomain, record.dkimAlignment),
  );
  const base = { fromDomain, record, policyDomain, policy };
  if (aligned) {
    return {
      ...base,
      result: 'pass',
      alignedDomain: aligned.domain!.toLowerCase(),
      reason: `DKIM signature of ${aligned.domain} aligned`,
    };
  }
  // A key lookup that failed for now might have produced the aligned pass, so the outcome is
  // unknown rather than a failure, and no alias policy rejects a message for a DNS fault.
  const unknown = dkim.find(
    (verdict) =>
      verdict.result === 'temperror' &&
      verdict.domain !== undefined &&
      isAligned(verdict.domain, fromDomain, record.dkimAlignment),
  );
  if (unknown) {
    return {
      ...base,
      result: 'temperror',
      reason: `the DKIM key of ${unknown.domain} could not be fetched`,
    };
  }
  return { ...base, result: 'fail', reason: 'no passing DKIM signature aligned with From' };
}

/**
 * True when a forwarded copy would fail DMARC at the destination and the author's domain asks
 * receivers to act on that (quarantine or reject): the case the alias's DMARC policy decides.
 */
export function failsAfterForwarding(evaluation: DmarcEvaluation): boolean {
  return (
    evaluation.result === 'fail' && evaluation.policy !== undefined && evaluation.policy !== 'none'
  );
}

/**
 * Renders the `dmarc=` method of an Authentication-Results header (RFC 7489 section 11.2),
 * with the policy and the fact that SPF was not part of the evaluation in the comment.
 */
export function formatDmarcResult(evaluation: DmarcEvaluation): string {
  const comment: string[] = [];
  if (evaluation.policy) comment.push(`p=${evaluation.policy.toUpperCase()}`);
  if (evaluation.policyDomain && evaluation.policyDomain !== evaluation.fromDomain) {
    comment.push(`policy of ${evaluation.policyDomain}`);
  }
  comment.push(
    evaluation.result === 'pass' ? evaluation.reason : `${evaluation.reason}; SPF not evaluated`,
  );
  const from = evaluation.fromDomain ? ` header.from=${evaluation.fromDomain}` : '';
  return `dmarc=${evaluation.result} (${comment.join('; ')})${from}`;
}
