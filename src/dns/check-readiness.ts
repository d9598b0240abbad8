/**
 * The readiness card: a domain's standing against the requirements that large mailbox providers
 * such as Gmail and Yahoo publish for bulk senders. They ask for SPF and DKIM that pass, DMARC
 * published with DKIM aligned to the From domain, one-click unsubscribe (RFC 8058), TLS for
 * transmission, and forward-confirmed reverse DNS for each sending address.
 *
 * SPF, DKIM and DMARC come from a setup check; reverse DNS is looked up here.
 */
import type { CheckLookups } from './check-lookups.js';
import type { CheckReport, RecordCheck } from './check-types.js';
import { DnsError } from './resolver.js';

export interface ReadinessItem {
  requirement: 'spf' | 'dkim' | 'dmarc' | 'unsubscribe' | 'tls' | 'reverse-dns';
  title: string;
  status: 'met' | 'not-met' | 'unknown';
  detail: string;
}

export interface ReadinessOptions {
  /** Addresses Herald sends from. */
  sendingAddresses: string[];
  /** True when campaign messages carry List-Unsubscribe and List-Unsubscribe-Post. */
  oneClickUnsubscribe: boolean;
  /** True when delivery uses STARTTLS whenever the receiving server offers it. */
  outboundTls: boolean;
}

export async function checkReadiness(
  lookups: CheckLookups,
  report: CheckReport,
  options: ReadinessOptions,
): Promise<ReadinessItem[]> {
  const spf = report.records.filter(
    (record) => record.kind === 'spf' && record.name === report.domain,
  );
  const dkim = report.records.filter((record) => record.kind === 'dkim');
  const dmarc = report.records.filter((record) => record.kind === 'dmarc');

  return [
    fromRecords('spf', 'SPF authorises the sending addresses', spf),
    {
      requirement: 'dkim',
      title: 'DKIM signatures aligned with the From domain',
      ...dkimStatus(dkim, report.domain),
    },
    fromRecords('dmarc', 'A DMARC policy is published', dmarc),
    {
      requirement: 'unsubscribe',
      title: 'One-click unsubscribe (RFC 8058)',
      status: options.oneClickUnsubscribe ? 'met' : 'not-met',
      detail: options.oneClickUnsubscribe
        ? 'Campaign messages carry List-Unsubscribe with an HTTPS link and List-Unsubscribe-Post, both signed.'
        : 'Campaign messages do not carry List-Unsubscribe-Post.',
    },
    {
      requirement: 'tls',
      title: 'TLS for transmission',
      status: options.outboundTls ? 'met' : 'not-met',
      detail: options.outboundTls
        ? 'Herald uses STARTTLS whenever the receiving server offers it.'
        : 'Delivery does not use TLS.',
    },
    await reverseDns(lookups, options.sendingAddresses),
  ];
}

function fromRecords(
  requirement: 'spf' | 'dmarc',
  title: string,
  records: RecordCheck[],
): ReadinessItem {
  const failing = records.filter((record) => record.status === 'error');
  const unknown = records.some((record) => record.status === 'unknown');
  if (records.length === 0) {
    return { requirement, title, status: 'not-met', detail: 'Herald has no record to check.' };
  }
  if (unknown) {
    return { requirement, title, status: 'unknown', detail: 'A DNS lookup failed; check again.' };
  }
  if (failing.length > 0) {
    const first = failing[0]?.findings.find((finding) => finding.severity === 'error');
    return { requirement, title, status: 'not-met', detail: first?.message ?? 'See the findings.' };
  }
  return {
    requirement,
    title,
    status: 'met',
    detail: `${records[0]?.name} is published and valid.`,
  };
}

/** Herald signs with `d=` the From domain itself, so a published active key is aligned. */
function dkimStatus(
  records: RecordCheck[],
  domain: string,
): Omit<ReadinessItem, 'requirement' | 'title'> {
  const good = records.filter((record) => record.status === 'ok' || record.status === 'warning');
  if (good.length > 0) {
    return {
      status: 'met',
      detail: `Herald signs with d=${domain}; ${good.map((record) => record.name).join(', ')} verify.`,
    };
  }
  if (records.some((record) => record.status === 'unknown')) {
    return { status: 'unknown', detail: 'A DNS lookup failed; check again.' };
  }
  return {
    status: 'not-met',
    detail: 'No DKIM key of the domain is published correctly, so signatures fail.',
  };
}

/**
 * Forward-confirmed reverse DNS: each address has a PTR name whose A or AAAA records include
 * the address again.
 */
async function reverseDns(lookups: CheckLookups, addresses: string[]): Promise<ReadinessItem> {
  const item = {
    requirement: 'reverse-dns' as const,
    title: 'Forward-confirmed reverse DNS for the sending addresses',
  };
  if (addresses.length === 0) {
    return { ...item, status: 'not-met', detail: 'The Herald host name has no address.' };
  }
  const problems: string[] = [];
  for (const address of addresses) {
    try {
      const names = await lookups.reverse(address);
      const confirmed = await confirmsAny(lookups, names, address);
      if (!confirmed) {
        problems.push(
          `${address} has PTR ${names.join(', ') || '(none)'}, which does not resolve back to it`,
        );
      }
    } catch (error) {
      if (error instanceof DnsError && !error.permanent) {
        return { ...item, status: 'unknown', detail: `The PTR lookup of ${address} failed.` };
      }
      problems.push(`${address} has no PTR record`);
    }
  }
  if (problems.length > 0) {
    return {
      ...item,
      status: 'not-met',
      detail: `${problems.join('; ')}. Ask the owner of the address (the hosting provider) to set the PTR to Herald's host name.`,
    };
  }
  return {
    ...item,
    status: 'met',
    detail: `${addresses.join(', ')}: PTR and forward records agree.`,
  };
}

async function confirmsAny(
  lookups: CheckLookups,
  names: string[],
  address: string,
): Promise<boolean> {
  for (const name of names) {
    try {
      if ((await lookups.resolveAddresses(name)).includes(address)) return true;
    } catch {
      // A PTR name that does not resolve confirms nothing; try the next one.
    }
  }
  return false;
}
