/**
 * The DNS setup checker: looks up every record Herald expects a hosted domain to publish (DKIM
 * keys, MX, SPF, DMARC, and the SRS return-path domain's MX and SPF) and returns precise
 * findings for each, so the CLI (`herald dns check`), the API and the admin pages can say what
 * is wrong and how to fix it, not only pass or fail.
 *
 * It reads DNS through the servers configured in `dns.servers`; it never caches, so a check
 * right after a change sees what those servers return then (their own caches included).
 */
import { checkDkim } from './check-dkim.js';
import { checkDmarc } from './check-dmarc.js';
import { checkSpf, isSpfRecord } from './check-spf.js';
import {
  describeDifference,
  doubledNames,
  lookupFailed,
  lookupTxt,
  missingFinding,
  showTxt,
} from './check-common.js';
import type { CheckLookups } from './check-lookups.js';
import type {
  CheckReport,
  CheckTarget,
  ExpectedRecord,
  Finding,
  RecordCheck,
} from './check-types.js';
import { statusOf } from './check-types.js';
import { DnsError } from './resolver.js';

export { createCheckLookups, type CheckLookups } from './check-lookups.js';
export { checkReadiness, type ReadinessItem, type ReadinessOptions } from './check-readiness.js';
export type * from './check-types.js';

/** Checks every expected record of a domain; lookups run concurrently. */
export async function checkDomain(
  lookups: CheckLookups,
  target: CheckTarget,
): Promise<CheckReport> {
  const sendingAddresses = await sendingAddressesOf(lookups, target);
  const records = await Promise.all(
    target.records.map((expected) =>
      checkRecord(lookups, expected, target.domain, sendingAddresses),
    ),
  );
  if (sendingAddresses.length === 0) {
    records.push(noSendingAddress(target.hostname));
  }
  const ok = records.every((record) => record.status === 'ok' || record.status === 'warning');
  return { domain: target.domain, checkedAt: new Date(), ok, records };
}

/** Checks one expected record, choosing the check by what the record is. */
export function checkRecord(
  lookups: CheckLookups,
  expected: ExpectedRecord,
  domain: string,
  sendingAddresses: string[],
): Promise<RecordCheck> {
  if (expected.type === 'MX') return checkMx(lookups, expected, domain);
  if (expected.type === 'CNAME') return checkCname(lookups, expected);
  if (/\._domainkey\./i.test(expected.name)) return checkDkim(lookups, expected, domain);
  if (/^_dmarc\./i.test(expected.name)) return checkDmarc(lookups, expected, domain);
  if (isSpfRecord([expected.value])) {
    return checkSpf(lookups, expected, domain, sendingAddresses);
  }
  return checkTxtValue(lookups, expected, domain);
}

/** Any other TXT record: it must be published with exactly the expected value. */
async function checkTxtValue(
  lookups: CheckLookups,
  expected: ExpectedRecord,
  domain: string,
): Promise<RecordCheck> {
  const base = {
    kind: 'txt' as const,
    purpose: expected.purpose,
    name: expected.name,
    type: expected.type,
    expected: expected.value,
  };
  const answer = await lookupTxt(lookups, expected.name, domain);
  if (answer.kind === 'failed') {
    const findings = [lookupFailed(expected.name, answer.error)];
    return { ...base, found: [], findings, status: statusOf(findings) };
  }
  const records = answer.kind === 'found' ? answer.records : [];
  const found = records.map(showTxt);
  const values = records.map((record) => record.join(''));
  let findings: Finding[] = [];
  if (values.length === 0) {
    findings = [
      missingFinding(expected.name, 'TXT record', answer.kind === 'missing' ? answer : {}),
    ];
  } else if (!values.includes(expected.value)) {
    findings = [
      {
        code: 'value-differs',
        severity: 'error',
        name: expected.name,
        message: `The TXT record differs from the expected value: ${describeDifference(expected.value, values[0] ?? '')}.`,
        fix: 'Replace the value with the expected one.',
      },
    ];
  }
  return { ...base, found, findings, status: statusOf(findings) };
}

/** The addresses SPF must authorise: the configured ones, else those of the host name. */
export async function sendingAddressesOf(
  lookups: CheckLookups,
  target: CheckTarget,
): Promise<string[]> {
  if (target.sendingAddresses && target.sendingAddresses.length > 0) {
    return target.sendingAddresses;
  }
  try {
    return await lookups.resolveAddresses(target.hostname);
  } catch {
    return [];
  }
}

function noSendingAddress(hostname: string): RecordCheck {
  const findings: Finding[] = [
    {
      code: 'no-address',
      severity: 'error',
      name: hostname,
      message: `Herald's host name ${hostname} has no A or AAAA record, so MX records pointing at it lead nowhere and SPF cannot be checked against Herald's addresses.`,
      fix: `Publish an A (and AAAA, if Herald has IPv6) record for ${hostname} with the server's public address.`,
    },
  ];
  return {
    kind: 'mx',
    purpose: 'Address of the Herald host',
    name: hostname,
    type: 'MX',
    expected: 'an A or AAAA record',
    found: [],
    findings,
    status: statusOf(findings),
  };
}

/** The MX records at the name must include Herald's host (RFC 5321 section 5.1). */
async function checkMx(
  lookups: CheckLookups,
  expected: ExpectedRecord,
  domain: string,
): Promise<RecordCheck> {
  const base = {
    kind: 'mx' as const,
    purpose: expected.purpose,
    name: expected.name,
    type: expected.type,
    expected: expected.value,
  };
  const wantedHost = (expected.value.split(/\s+/)[1] ?? '').toLowerCase().replace(/\.$/, '');
  const result = await mxHosts(lookups, expected.name);
  if (result instanceof DnsError) {
    const findings = [mxError(expected.name, result)];
    return { ...base, found: [], findings, status: statusOf(findings) };
  }
  if (result.length === 0) {
    const doubled = await findDoubledMx(lookups, expected.name, domain);
    const findings = [missingFinding(expected.name, 'MX record', { doubledName: doubled })];
    return { ...base, found: [], findings, status: statusOf(findings) };
  }

  const found = result.map((host) => `${host.priority} ${host.exchange}`);
  const findings: Finding[] = [];
  const ours = result.filter((host) => host.exchange === wantedHost);
  if (ours.length === 0) {
    findings.push({
      code: 'value-differs',
      severity: 'error',
      name: expected.name,
      message: `The MX records point at ${result.map((host) => host.exchange).join(', ')}, not at Herald (${wantedHost}), so mail for ${expected.name} does not reach Herald.`,
      fix: `Add an MX record "${expected.value}" and remove the old ones once mail flows.`,
    });
  } else if (result.some((host) => host.priority < (ours[0]?.priority ?? 0))) {
    findings.push({
      code: 'value-differs',
      severity: 'warning',
      name: expected.name,
      message: `Another MX host has a lower preference value than Herald, so senders try it first.`,
      fix: 'Give Herald the lowest preference value, or remove the other MX records.',
    });
  }
  return { ...base, found, findings, status: statusOf(findings) };
}

type MxAnswer = { exchange: string; priority: number }[] | DnsError;

async function mxHosts(lookups: CheckLookups, name: string): Promise<MxAnswer> {
  try {
    const hosts = await lookups.resolveMx(name);
    return hosts.filter((host) => !host.implicit);
  } catch (error) {
    if (!(error instanceof DnsError)) throw error;
    if (error.code === 'NOTFOUND' || error.code === 'NODATA') return [];
    return error;
  }
}

async function findDoubledMx(
  lookups: CheckLookups,
  name: string,
  domain: string,
): Promise<string | undefined> {
  for (const doubled of doubledNames(name, domain)) {
    const hosts = await mxHosts(lookups, doubled);
    if (!(hosts instanceof DnsError) && hosts.length > 0) return doubled;
  }
  return undefined;
}

function mxError(name: string, error: DnsError): Finding {
  if (error.code === 'NULL_MX') {
    return {
      code: 'null-mx',
      severity: 'error',
      name,
      message: `${name} publishes a null MX ("0 ."), which says it accepts no mail at all (RFC 7505).`,
      fix: 'Replace the null MX with the expected MX record.',
    };
  }
  return lookupFailed(name, error);
}

/** A delegated DKIM selector: the client's name must be a CNAME to the provider's zone. */
async function checkCname(lookups: CheckLookups, expected: ExpectedRecord): Promise<RecordCheck> {
  const base = {
    kind: 'cname' as const,
    purpose: expected.purpose,
    name: expected.name,
    type: expected.type,
    expected: expected.value,
  };
  const wanted = expected.value.toLowerCase().replace(/\.$/, '');
  let targets: string[];
  try {
    targets = await lookups.resolveCname(expected.name);
  } catch (error) {
    if (!(error instanceof DnsError)) throw error;
    const findings = error.permanent
      ? [missingFinding(expected.name, 'CNAME record', {})]
      : [lookupFailed(expected.name, error)];
    return { ...base, found: [], findings, status: statusOf(findings) };
  }
  const findings: Finding[] = targets.includes(wanted)
    ? []
    : [
        {
          code: 'cname-differs',
          severity: 'error',
          name: expected.name,
          message: `The CNAME points at ${targets.join(', ')}, not at ${wanted}.`,
          fix: `Change the CNAME target to ${wanted}.`,
        },
      ];
  return { ...base, found: targets, findings, status: statusOf(findings) };
}
