/**
 * Checks one published DKIM key record (RFC 6376 section 3.6.1) against the record Herald
 * expects, and names the mistakes people make when they paste a long key into a DNS
 * provider's form: quotes copied with the value, spaces inside the key, a value split into
 * separate records or cut off where it was split, a doubled name, a key that does not belong
 * to Herald's private key, and an RSA key too short to pass (RFC 8301 section 3.2).
 */
import { parseKeyRecord, type KeyRecord } from '../dkim/index.js';

import {
  describeDifference,
  lookupFailed,
  lookupTxt,
  missingFinding,
  showTxt,
} from './check-common.js';
import type { CheckLookups } from './check-lookups.js';
import type { ExpectedRecord, Finding, RecordCheck } from './check-types.js';
import { statusOf } from './check-types.js';

/** The smallest RSA key receivers accept (RFC 8301 section 3.2). */
const MIN_RSA_BITS = 1024;

/** A TXT record that looks like a DKIM key record, even a damaged one. */
function looksLikeKey(record: string[]): boolean {
  const text = record.join('');
  return /\bp\s*=/.test(text) || /^\W*v\s*=\s*DKIM1/i.test(text);
}

export async function checkDkim(
  lookups: CheckLookups,
  expected: ExpectedRecord,
  domain: string,
): Promise<RecordCheck> {
  const base = {
    kind: 'dkim' as const,
    purpose: expected.purpose,
    name: expected.name,
    type: expected.type,
    expected: expected.value,
  };
  const answer = await lookupTxt(lookups, expected.name, domain, looksLikeKey);
  if (answer.kind === 'failed') {
    const findings = [lookupFailed(expected.name, answer.error)];
    return { ...base, found: [], findings, status: statusOf(findings) };
  }
  if (answer.kind === 'missing') {
    const findings = [missingFinding(expected.name, 'DKIM key record', answer)];
    const found = (answer.doubledRecords ?? []).map(showTxt);
    return { ...base, found, findings, status: statusOf(findings) };
  }

  // Every TXT record at a selector name belongs to DKIM: fragments of a split key may not look
  // like key records on their own.
  const findings = answer.records.some(looksLikeKey)
    ? analyseKeyRecords(expected.name, expected.value, answer.records)
    : [missingFinding(expected.name, 'DKIM key record', {})];
  return { ...base, found: answer.records.map(showTxt), findings, status: statusOf(findings) };
}

/** Findings for the key records found at a selector name (at least one). */
export function analyseKeyRecords(name: string, expected: string, records: string[][]): Finding[] {
  if (records.length > 1) return severalRecords(name, expected, records);
  return analyseKeyRecord(name, expected, records[0] ?? []);
}

/**
 * Several TXT records at one selector: either the value was split into separate records
 * (each one a fragment), or several keys were published and a verifier may pick any of them.
 */
function severalRecords(name: string, expected: string, records: string[][]): Finding[] {
  const pieces = records.map((record) => record.join(''));
  const normalisedExpected = withoutSpaces(expected);
  if (permutations(pieces).some((order) => withoutSpaces(order.join('')) === normalisedExpected)) {
    return [
      {
        code: 'split-records',
        severity: 'error',
        name,
        message: `The key was split into ${records.length} separate TXT records. A verifier reads one record, so each fragment is an incomplete key.`,
        fix: 'Delete the fragments and publish one TXT record; if the form limits the length, enter the value as several quoted strings in one record ("…" "…").',
      },
    ];
  }
  return [
    {
      code: 'several-records',
      severity: 'error',
      name,
      message: `${records.length} TXT records are published at this name; a verifier may use any of them (RFC 6376 section 3.6.2.2).`,
      fix: 'Keep only the expected record and delete the others.',
    },
  ];
}

/** Orderings of up to four fragments; more than that is not a paste mistake worth solving. */
function permutations(items: string[]): string[][] {
  if (items.length > 4) return [items];
  if (items.length <= 1) return [items];
  return items.flatMap((item, index) =>
    permutations([...items.slice(0, index), ...items.slice(index + 1)]).map((rest) => [
      item,
      ...rest,
    ]),
  );
}

function withoutSpaces(text: string): string {
  return text.replace(/\s+/g, '');
}

function analyseKeyRecord(name: string, expected: string, strings: string[]): Finding[] {
  const findings: Finding[] = [];
  const text = strings.join('');

  if (text.includes('"')) {
    // `"…" "…"` inside one string is a zone file's split value pasted into a one-string field.
    const zoneForm = /"\s+"/.test(text);
    findings.push({
      code: 'quotes',
      severity: 'error',
      name,
      message: zoneForm
        ? 'The value contains the quoted strings of a zone file ("…" "…"), pasted into a field that takes the value as one string, so the quotes and spaces become part of the key.'
        : 'The value contains quote characters ("). They were pasted with the value; the DNS provider adds its own quotes, so these become part of the key.',
      fix: zoneForm
        ? 'Paste the value without quotes, as one piece (use the "Copy value" button), or enter each string as the provider’s form asks.'
        : 'Edit the record and remove every " character from the value.',
    });
  }
  findings.push(...splitFindings(name, strings));

  const published = parseKeyRecord(text);
  const wanted = parseKeyRecord(expected);
  if (!published.ok) {
    if (findings.some((finding) => finding.code === 'quotes')) return findings;
    findings.push(truncatedOrMalformed(name, expected, text, published.reason));
    return findings;
  }
  findings.push(...keyFindings(name, expected, text, published.record, wanted));
  return findings;
}

/**
 * Spaces inside `p=` are legal folding whitespace (RFC 6376 section 3.6.1), but they show the
 * value was split or wrapped by hand, and some verifiers reject them. A string boundary inside
 * a tag name or `=` is harmless in DNS, yet a boundary with a space on either side puts that
 * space inside the value.
 */
function splitFindings(name: string, strings: string[]): Finding[] {
  const findings: Finding[] = [];
  for (let index = 0; index + 1 < strings.length; index++) {
    const left = strings[index] ?? '';
    const right = strings[index + 1] ?? '';
    if (/\s$/.test(left) || /^\s/.test(right)) {
      findings.push({
        code: 'split-wrong-place',
        severity: 'warning',
        name,
        message: `The value is split into ${strings.length} strings with a space at the join after string ${index + 1}, so the key gets a space where the strings meet.`,
        fix: 'Split the value without adding spaces: the strings are joined exactly as written.',
      });
      return findings;
    }
  }
  const key = /\bp\s*=([^;]*)/.exec(strings.join(''))?.[1] ?? '';
  if (/\S\s+\S/.test(key.trim())) {
    findings.push({
      code: 'spaces',
      severity: 'warning',
      name,
      message: 'The key (p=) contains spaces; they were probably pasted with a wrapped value.',
      fix: 'Remove the spaces from the p= value.',
    });
  }
  return findings;
}

function truncatedOrMalformed(
  name: string,
  expected: string,
  text: string,
  reason: string,
): Finding {
  const expectedKey = keyOf(expected);
  const publishedKey = keyOf(text);
  if (publishedKey && expectedKey.startsWith(publishedKey) && publishedKey !== expectedKey) {
    return {
      code: 'truncated',
      severity: 'error',
      name,
      message: `The key stops after ${publishedKey.length} of its ${expectedKey.length} characters: part of the value was lost where it was split.`,
      fix: 'Publish the whole expected value; if the form limits the length, enter it as several quoted strings in one record.',
    };
  }
  return {
    code: 'malformed',
    severity: 'error',
    name,
    message: `The record is not a valid DKIM key record: ${reason}.`,
    fix: 'Replace the value with the expected one.',
  };
}

function keyFindings(
  name: string,
  expected: string,
  text: string,
  published: KeyRecord,
  wanted: ReturnType<typeof parseKeyRecord>,
): Finding[] {
  const findings: Finding[] = [];
  if (!published.publicKey) {
    findings.push({
      code: 'revoked',
      severity: 'error',
      name,
      message: 'The record has an empty p=, which revokes the key: signatures with it fail.',
      fix: 'Publish the expected value, or remove this selector if the key is no longer used.',
    });
    return findings;
  }
  if (published.keyType === 'rsa' && (published.bits ?? 0) < MIN_RSA_BITS) {
    findings.push({
      code: 'weak-key',
      severity: 'error',
      name,
      message: `The RSA key has ${published.bits} bits; receivers reject keys under ${MIN_RSA_BITS} bits (RFC 8301 section 3.2).`,
      fix: 'Publish the expected 2048-bit key.',
    });
  }

  const expectedKey = wanted.ok ? wanted.record.publicKey : undefined;
  if (expectedKey && !samePublicKey(expectedKey, published.publicKey)) {
    findings.push({
      code: 'key-mismatch',
      severity: 'error',
      name,
      message: `The published public key does not match the private key Herald signs with for this selector, so every signature fails: ${describeDifference(keyOf(expected), keyOf(text))}.`,
      fix: 'Replace the p= value with the expected one (an old or another service’s key was published).',
    });
    return findings;
  }
  if (published.testing) {
    findings.push({
      code: 'testing',
      severity: 'warning',
      name,
      message: 'The record has t=y (testing): receivers may treat failing signatures as unsigned.',
      fix: 'Remove t=y once signing works.',
    });
  }
  const differences = tagDifferences(expected, text);
  if (differences.length > 0) {
    findings.push({
      code: 'value-differs',
      severity: 'info',
      name,
      message: `The key matches, but other tags differ from Herald's record: ${differences.join('; ')}.`,
    });
  }
  return findings;
}

function samePublicKey(
  left: NonNullable<KeyRecord['publicKey']>,
  right: NonNullable<KeyRecord['publicKey']>,
): boolean {
  const der = (key: typeof left) => key.export({ type: 'spki', format: 'der' });
  return der(left).equals(der(right));
}

/** The `p=` value without whitespace, or '' when there is none. */
function keyOf(record: string): string {
  return withoutSpaces(/\bp\s*=([^;]*)/.exec(record)?.[1] ?? '');
}

/** Tags other than `p=` whose values differ, as `k=rsa expected, h=sha1 found` phrases. */
function tagDifferences(expected: string, published: string): string[] {
  const tags = (record: string) =>
    new Map(
      record
        .split(';')
        .map((spec) => spec.split('='))
        .filter((parts) => parts.length >= 2)
        .map(([tag, ...value]) => [withoutSpaces(tag ?? ''), withoutSpaces(value.join('='))]),
    );
  const want = tags(expected);
  const have = tags(published);
  const differences: string[] = [];
  for (const tag of new Set([...want.keys(), ...have.keys()])) {
    if (tag === 'p' || tag === '') continue;
    const wanted = want.get(tag);
    const found = have.get(tag);
    if (wanted === found) continue;
    if (found === undefined) differences.push(`${tag}=${wanted} is missing`);
    else if (wanted === undefined) differences.push(`${tag}=${found} is extra`);
    else differences.push(`${tag}=${wanted} expected, ${tag}=${found} found`);
  }
  return differences;
}
