import { describe, expect, it } from 'vitest';

import type { DkimKeyRecord, Domain } from '../store/types.js';

import { domainRecords } from './records.js';

const domain: Domain = {
  id: 1,
  name: 'club.test',
  srsDomain: null,
  organisationId: null,
  createdAt: new Date(0),
};
const longValue = `v=DKIM1; k=rsa; p=${'A'.repeat(392)}`;
const keys: DkimKeyRecord[] = [
  {
    id: 1,
    domainId: 1,
    selector: 'h20261203r',
    algorithm: 'rsa-sha256',
    privateKeyPath: '/keys/r.pem',
    publicRecord: longValue,
    status: 'active',
    createdAt: new Date(0),
  },
];

describe('domainRecords', () => {
  const records = domainRecords(domain, keys, {
    hostname: 'mx.herald.test',
    srsDomain: 'srs.herald.test',
  });
  const byPurpose = (text: string) => records.find((record) => record.purpose.includes(text))!;

  it('splits DKIM zone lines into 255-octet strings', () => {
    const dkim = byPurpose('DKIM key h20261203r');
    expect(dkim.name).toBe('h20261203r._domainkey.club.test');
    expect(dkim.value).toBe(longValue);
    const strings = [...dkim.zoneLine.matchAll(/"([^"]*)"/g)].map((match) => match[1]!);
    expect(strings.join('')).toBe(longValue);
    expect(strings.every((text) => text.length <= 255)).toBe(true);
  });

  it('points the MX of the domain and of the SRS domain at Herald', () => {
    expect(byPurpose('Mail for the domain').zoneLine).toBe('club.test. IN MX 10 mx.herald.test.');
    expect(byPurpose('Bounces to SRS').zoneLine).toBe('srs.herald.test. IN MX 10 mx.herald.test.');
  });

  it('suggests SPF and DMARC records', () => {
    expect(byPurpose('SPF for mail submitted').value).toBe('v=spf1 a:mx.herald.test ~all');
    expect(byPurpose('DMARC').name).toBe('_dmarc.club.test');
    expect(byPurpose('DMARC').value).toMatch(/^v=DMARC1; p=none/);
  });

  it('says the HELO host name needs its own SPF record', () => {
    const helo = byPurpose('HELO');
    expect(helo.name).toBe('mx.herald.test');
    expect(helo.value).toBe('v=spf1 a -all');
    expect(helo.note).toMatch(/null sender/);
  });

  it('uses the domain own SRS domain when it has one', () => {
    const own = domainRecords({ ...domain, srsDomain: 'srs.club.test' }, [], {
      hostname: 'mx.herald.test',
      srsDomain: 'srs.herald.test',
    });
    expect(own.find((r) => r.purpose.includes('Bounces'))!.name).toBe('srs.club.test');
  });
});
