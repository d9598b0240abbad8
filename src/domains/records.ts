/**
 * The DNS records a hosted domain must publish, as `herald domain show` and the API list them.
 * They are one DKIM TXT record per published key, the MX that brings the domain's mail to
 * Herald, SPF and DMARC suggestions, and the records of the SRS domain and the HELO host name.
 */
import { zoneFileRecord } from '../dkim/index.js';
import type { DkimKeyRecord, Domain } from '../store/types.js';

export interface DnsRecordSuggestion {
  /** The record's purpose, in a few words. */
  purpose: string;
  /** Owner name without a trailing dot. */
  name: string;
  type: 'MX' | 'TXT';
  /** The record data as a resolver returns it (the TXT strings joined). */
  value: string;
  /** The record as a line of a BIND zone file. */
  zoneLine: string;
  note?: string;
}

export interface RecordContext {
  /** Herald's host name: the MX target and the HELO name. */
  hostname: string;
  /** The SRS domain used for this domain's forwarded mail. */
  srsDomain: string;
}

export function domainRecords(
  domain: Domain,
  keys: DkimKeyRecord[],
  context: RecordContext,
): DnsRecordSuggestion[] {
  const name = domain.name;
  const host = context.hostname.replace(/\.$/, '');
  const srsDomain = (domain.srsDomain ?? context.srsDomain).replace(/\.$/, '');
  const records: DnsRecordSuggestion[] = [];

  // Retired keys stay published until messages signed with them have been verified.
  for (const key of keys) {
    records.push({
      purpose: `DKIM key ${key.selector} (${key.algorithm}, ${key.status})`,
      name: `${key.selector}._domainkey.${name}`,
      type: 'TXT',
      value: key.publicRecord,
      zoneLine: zoneFileRecord(key.selector, name, key.publicRecord),
    });
  }

  records.push(mx('Mail for the domain reaches Herald', name, host));
  records.push(
    txt('SPF for mail submitted through Herald', name, `v=spf1 a:${host} ~all`, {
      note: 'Merge with an existing SPF record: a name may publish only one (RFC 7208 section 3.2).',
    }),
  );
  records.push(
    txt('DMARC policy', `_dmarc.${name}`, `v=DMARC1; p=none; rua=mailto:postmaster@${name}`, {
      note: 'Start with p=none and move to p=quarantine once reports show every source aligned.',
    }),
  );

  records.push(mx('Bounces to SRS addresses reach Herald', srsDomain, host));
  records.push(txt('SPF for forwarded mail', srsDomain, `v=spf1 a:${host} -all`));
  records.push(
    txt('SPF for the HELO host name', host, 'v=spf1 a -all', {
      note:
        'Bounces and DSNs use the null sender, so receivers check SPF against the HELO name ' +
        '(RFC 7208 section 2.3): the host name needs its own record.',
    }),
  );
  return records;
}

function mx(purpose: string, name: string, host: string): DnsRecordSuggestion {
  return { purpose, name, type: 'MX', value: `10 ${host}`, zoneLine: `${name}. IN MX 10 ${host}.` };
}

function txt(
  purpose: string,
  name: string,
  value: string,
  extra: { note?: string } = {},
): DnsRecordSuggestion {
  return { purpose, name, type: 'TXT', value, zoneLine: `${name}. IN TXT "${value}"`, ...extra };
}
