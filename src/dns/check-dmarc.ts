/**
 * Checks the DMARC record at `_dmarc.DOMAIN` (RFC 7489 section 6.3): one record, `v=DMARC1`
 * first, a valid `p=`, and well-formed optional tags. When the domain has no record but its
 * organisational domain does, receivers apply that one (section 6.6.3), which is reported as
 * information rather than an error.
 */
import { getDomain } from 'tldts';

import { lookupFailed, lookupTxt, missingFinding, showTxt } from './check-common.js';
import type { CheckLookups } from './check-lookups.js';
import type { ExpectedRecord, Finding, RecordCheck } from './check-types.js';
import { statusOf } from './check-types.js';

function isDmarcRecord(record: string[]): boolean {
  return /\bv\s*=\s*DMARC1\b/i.test(record.join(''));
}

export async function checkDmarc(
  lookups: CheckLookups,
  expected: ExpectedRecord,
  domain: string,
): Promise<RecordCheck> {
  const base = {
    kind: 'dmarc' as const,
    purpose: expected.purpose,
    name: expected.name,
    type: expected.type,
    expected: expected.value,
  };
  const answer = await lookupTxt(lookups, expected.name, domain, isDmarcRecord);
  if (answer.kind === 'failed') {
    const findings = [lookupFailed(expected.name, answer.error)];
    return { ...base, found: [], findings, status: statusOf(findings) };
  }
  const records = answer.kind === 'found' ? answer.records.filter(isDmarcRecord) : [];
  if (records.length === 0) {
    const inherited = await inheritedPolicy(lookups, expected.name.replace(/^_dmarc\./i, ''));
    const findings = inherited
      ? [
          {
            code: 'dmarc-inherited' as const,
            severity: 'info' as const,
            name: expected.name,
            message: `No DMARC record at ${expected.name}; receivers apply the policy of ${inherited} (RFC 7489 section 6.6.3).`,
          },
        ]
      : [
          {
            ...missingFinding(
              expected.name,
              'DMARC record',
              answer.kind === 'missing' ? answer : {},
            ),
            fix: `Add the expected TXT record at ${expected.name}; large mailbox providers require a DMARC record from bulk senders.`,
          },
        ];
    const found = answer.kind === 'missing' ? (answer.doubledRecords ?? []).map(showTxt) : [];
    return { ...base, found, findings, status: statusOf(findings) };
  }

  const findings =
    records.length > 1
      ? [
          {
            code: 'several-records' as const,
            severity: 'error' as const,
            name: expected.name,
            message: `${records.length} DMARC records are published; receivers then apply none of them (RFC 7489 section 6.6.3).`,
            fix: 'Keep one v=DMARC1 record and delete the others.',
          },
        ]
      : analyseDmarc(expected.name, (records[0] ?? []).join(''));
  const found = answer.kind === 'found' ? answer.records.map(showTxt) : [];
  return { ...base, found, findings, status: statusOf(findings) };
}

/** The organisational domain's `_dmarc` name when it publishes a record the domain inherits. */
async function inheritedPolicy(lookups: CheckLookups, domain: string): Promise<string | undefined> {
  const organisational = getDomain(domain);
  if (!organisational || organisational === domain) return undefined;
  try {
    const records = await lookups.resolveTxt(`_dmarc.${organisational}`);
    return records.some(isDmarcRecord) ? `_dmarc.${organisational}` : undefined;
  } catch {
    return undefined;
  }
}

const POLICIES = ['none', 'quarantine', 'reject'];

/** Findings for one DMARC record's text. */
export function analyseDmarc(name: string, text: string): Finding[] {
  const malformed = (problem: string): Finding[] => [
    {
      code: 'malformed',
      severity: 'error',
      name,
      message: `The DMARC record is malformed: ${problem}. Receivers ignore a malformed record, as if there were none.`,
      fix: 'Replace the value with the expected one, then adjust p= as you need.',
    },
  ];
  if (text.includes('"')) {
    return [
      {
        code: 'quotes',
        severity: 'error',
        name,
        message: 'The DMARC value contains quote characters (") that were pasted with it.',
        fix: 'Edit the record and remove every " character.',
      },
    ];
  }

  const tags: [string, string][] = [];
  for (const spec of text.split(';')) {
    if (spec.trim() === '') continue;
    const equals = spec.indexOf('=');
    if (equals === -1) return malformed(`"${spec.trim()}" is not a tag=value pair`);
    tags.push([spec.slice(0, equals).trim().toLowerCase(), spec.slice(equals + 1).trim()]);
  }
  const [first] = tags;
  if (!first || first[0] !== 'v' || first[1] !== 'DMARC1') {
    return malformed('it must begin with v=DMARC1');
  }
  const values = new Map(tags);
  const policy = values.get('p');
  if (policy === undefined) return malformed('the p= tag is missing, and it must follow v=DMARC1');
  if (tags[1]?.[0] !== 'p') return malformed('p= must come right after v=DMARC1');
  if (!POLICIES.includes(policy.toLowerCase())) {
    return malformed(`p=${policy} is not one of none, quarantine, reject`);
  }
  const subdomainPolicy = values.get('sp');
  if (subdomainPolicy !== undefined && !POLICIES.includes(subdomainPolicy.toLowerCase())) {
    return malformed(`sp=${subdomainPolicy} is not one of none, quarantine, reject`);
  }
  for (const tag of ['adkim', 'aspf']) {
    const value = values.get(tag);
    if (value !== undefined && !/^[rs]$/i.test(value)) {
      return malformed(`${tag}=${value} must be r (relaxed) or s (strict)`);
    }
  }
  const pct = values.get('pct');
  if (pct !== undefined && !(/^\d{1,3}$/.test(pct) && Number(pct) <= 100)) {
    return malformed(`pct=${pct} must be a whole number from 0 to 100`);
  }
  for (const tag of ['rua', 'ruf']) {
    const value = values.get(tag);
    const bad = value
      ?.split(',')
      .map((uri) => uri.trim())
      .find((uri) => !/^mailto:[^@\s]+@[^@\s]+$/i.test(uri.replace(/!\d+[kmgt]?$/i, '')));
    if (bad !== undefined) return malformed(`${tag}= must list mailto: addresses, not "${bad}"`);
  }

  if (policy.toLowerCase() === 'none') {
    return [
      {
        code: 'dmarc-monitor-only',
        severity: 'info',
        name,
        message:
          'The policy is p=none: receivers report failures but deliver them. That meets the bulk-sender requirement; move to quarantine once reports show every source aligned.',
      },
    ];
  }
  return [];
}
