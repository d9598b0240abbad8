/**
 * Lookups shared by the record checks: TXT and MX answers classified as found, missing or
 * failed, and the search for a record that a DNS provider's form published under a doubled
 * name (`s1._domainkey.club.example.club.example`), which happens when the full name is typed
 * into a field that appends the zone itself.
 */
import { getDomain } from 'tldts';

import type { CheckLookups } from './check-lookups.js';
import type { Finding } from './check-types.js';
import { DnsError } from './resolver.js';

export type TxtAnswer =
  | { kind: 'found'; records: string[][] }
  | { kind: 'missing'; doubledName?: string; doubledRecords?: string[][] }
  | { kind: 'failed'; error: DnsError };

/** Names where a record meant for `name` lands when a provider appends its zone once more. */
export function doubledNames(name: string, domain: string): string[] {
  const zones = new Set([domain, getDomain(name) ?? domain]);
  return [...zones].map((zone) => `${name}.${zone}`);
}

/** Looks up the TXT records at `name`; when there are none, looks under the doubled names. */
export async function lookupTxt(
  lookups: CheckLookups,
  name: string,
  domain: string,
  accept: (record: string[]) => boolean = () => true,
): Promise<TxtAnswer> {
  const answer = await tryTxt(lookups, name);
  if (answer instanceof DnsError) {
    if (!answer.permanent) return { kind: 'failed', error: answer };
  } else if (answer.some(accept)) {
    return { kind: 'found', records: answer };
  }

  for (const doubled of doubledNames(name, domain)) {
    const records = await tryTxt(lookups, doubled);
    if (!(records instanceof DnsError) && records.some(accept)) {
      return { kind: 'missing', doubledName: doubled, doubledRecords: records.filter(accept) };
    }
  }
  if (answer instanceof DnsError) return { kind: 'missing' };
  return { kind: 'found', records: answer };
}

async function tryTxt(lookups: CheckLookups, name: string): Promise<string[][] | DnsError> {
  try {
    return await lookups.resolveTxt(name);
  } catch (error) {
    if (error instanceof DnsError) return error;
    throw error;
  }
}

/** A finding for a lookup that failed for a temporary reason, so the record cannot be judged yet. */
export function lookupFailed(name: string, error: DnsError): Finding {
  return {
    code: 'lookup-failed',
    severity: 'error',
    name,
    message: `The lookup failed (${error.code === 'TIMEOUT' ? 'timed out' : 'server failure'}), so the record could not be checked.`,
    fix: 'Check again in a few minutes; if it keeps failing, ask the DNS provider why its servers do not answer.',
  };
}

/** The finding for a record that is absent, or present only under a doubled name. */
export function missingFinding(
  name: string,
  what: string,
  answer: { doubledName?: string },
): Finding {
  if (answer.doubledName) {
    return {
      code: 'doubled-name',
      severity: 'error',
      name,
      message: `The ${what} is published as ${answer.doubledName}, not ${name}: the domain was typed into a name field that adds it again.`,
      fix: `Rename the record so that the name field holds only the part before the domain (for example "${relativeName(name)}").`,
    };
  }
  return {
    code: 'missing',
    severity: 'error',
    name,
    message: `No ${what} is published at ${name}.`,
    fix: `Add the expected record at ${name}.`,
  };
}

/** The part of `name` before its registrable domain, as DNS providers' name fields expect. */
export function relativeName(name: string): string {
  const zone = getDomain(name);
  if (!zone || zone === name) return '@';
  return name.slice(0, -(zone.length + 1));
}

/** TXT strings as a zone file would show them, for the `found` column of a report. */
export function showTxt(record: string[]): string {
  return record.map((part) => JSON.stringify(part)).join(' ');
}

/** Describes where two values first differ, with a little context on each side. */
export function describeDifference(expected: string, found: string): string {
  let index = 0;
  while (index < expected.length && index < found.length && expected[index] === found[index]) {
    index++;
  }
  if (index === expected.length && index === found.length) return 'the values are equal';
  const excerpt = (text: string) => {
    const start = Math.max(0, index - 8);
    const piece = text.slice(start, index + 12);
    return `${start > 0 ? '…' : ''}${piece}${index + 12 < text.length ? '…' : ''}`;
  };
  if (index === found.length) {
    return `the published value stops after ${found.length} of ${expected.length} characters`;
  }
  if (index === expected.length) {
    return `the published value has ${found.length - expected.length} extra characters at the end: "${found.slice(index, index + 20)}"`;
  }
  return `they differ from character ${index + 1}: expected "${excerpt(expected)}", found "${excerpt(found)}"`;
}
