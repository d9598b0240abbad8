import { generateKeyPairSync } from 'node:crypto';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { startDnsServer, type DnsRecord, type DnsServer } from '../../test/helpers/dns-server.js';
import { dkimRecordValue, generateKeyPair } from '../dkim/index.js';

import { checkDomain, checkReadiness, checkRecord, createCheckLookups } from './check.js';
import type { CheckLookups, ExpectedRecord, FindingCode, RecordCheck } from './check.js';
import { MAX_SPF_LOOKUPS } from './check-spf.js';

const DOMAIN = 'club.example';
const HOST = 'mail.herald.test';
const HERALD_ADDRESS = '127.0.0.1';

let dns: DnsServer;
let lookups: CheckLookups;
let good: string;
let other: string;
let weak: string;
let ed25519: string;

/** Splits a value into 255-octet strings, the way a zone file carries a long TXT record. */
function strings(value: string, size = 255): string[] {
  const parts: string[] = [];
  for (let index = 0; index < value.length; index += size)
    parts.push(value.slice(index, index + size));
  return parts;
}

function dkimName(selector: string): string {
  return `${selector}._domainkey.${DOMAIN}`;
}

function expectedDkim(selector: string, value = good): ExpectedRecord {
  return { purpose: `DKIM key ${selector}`, name: dkimName(selector), type: 'TXT', value };
}

function codes(check: RecordCheck): FindingCode[] {
  return check.findings.map((finding) => finding.code);
}

function check(expected: ExpectedRecord): Promise<RecordCheck> {
  return checkRecord(lookups, expected, DOMAIN, [HERALD_ADDRESS]);
}

beforeAll(async () => {
  good = dkimRecordValue((await generateKeyPair({ algorithm: 'rsa', bits: 2048 })).publicKey);
  other = dkimRecordValue((await generateKeyPair({ algorithm: 'rsa', bits: 2048 })).publicKey);
  ed25519 = dkimRecordValue((await generateKeyPair({ algorithm: 'ed25519' })).publicKey);
  weak = dkimRecordValue(generateKeyPairSync('rsa', { modulusLength: 512 }).publicKey);
  const key = good.slice(good.indexOf('p=') + 2);
  const cut = 120;

  const includeChain: DnsRecord[] = Array.from({ length: MAX_SPF_LOOKUPS + 1 }, (_, index) => ({
    name: `chain${index}.spf.test`,
    type: 'TXT',
    value:
      index < MAX_SPF_LOOKUPS
        ? `v=spf1 include:chain${index + 1}.spf.test -all`
        : `v=spf1 ip4:${HERALD_ADDRESS} -all`,
  }));

  const records: DnsRecord[] = [
    { name: HOST, type: 'A', address: HERALD_ADDRESS },
    { name: dkimName('ok'), type: 'TXT', value: strings(good) },
    { name: dkimName('ed'), type: 'TXT', value: ed25519 },
    { name: `${dkimName('doubled')}.${DOMAIN}`, type: 'TXT', value: strings(good) },
    { name: dkimName('mismatch'), type: 'TXT', value: strings(other) },
    { name: dkimName('quoted'), type: 'TXT', value: strings(`"${good}"`) },
    {
      name: dkimName('pasted'),
      type: 'TXT',
      value: strings(`"v=DKIM1; k=rsa; " "p=${key.slice(0, cut)}" "${key.slice(cut)}"`),
    },
    {
      name: dkimName('spaced'),
      type: 'TXT',
      value: strings(
        `v=DKIM1; k=rsa; p=${key.slice(0, 64)} ${key.slice(64, 128)} ${key.slice(128)}`,
      ),
    },
    {
      name: dkimName('badsplit'),
      type: 'TXT',
      value: [
        `v=DKIM1; k=rsa; p=${key.slice(0, cut)} `,
        key.slice(cut, cut + 200),
        key.slice(cut + 200),
      ],
    },
    { name: dkimName('fragments'), type: 'TXT', value: good.slice(0, 200) },
    { name: dkimName('fragments'), type: 'TXT', value: good.slice(200) },
    { name: dkimName('truncated'), type: 'TXT', value: strings(good)[0]! },
    { name: dkimName('weak'), type: 'TXT', value: weak },
    { name: dkimName('testing'), type: 'TXT', value: strings(`${good}; t=y`) },
    { name: dkimName('revoked'), type: 'TXT', value: 'v=DKIM1; k=rsa; p=' },
    { name: dkimName('two'), type: 'TXT', value: strings(good) },
    { name: dkimName('two'), type: 'TXT', value: strings(other) },

    { name: 'spf-ok.test', type: 'TXT', value: `v=spf1 mx a:${HOST} ~all` },
    { name: 'spf-ok.test', type: 'TXT', value: 'google-site-verification=abc' },
    { name: 'spf-include.test', type: 'TXT', value: 'v=spf1 include:chain9.spf.test ~all' },
    { name: 'spf-two.test', type: 'TXT', value: `v=spf1 a:${HOST} ~all` },
    { name: 'spf-two.test', type: 'TXT', value: 'v=spf1 include:_spf.other.test ~all' },
    { name: 'spf-other.test', type: 'TXT', value: 'v=spf1 ip4:192.0.2.0/24 -all' },
    { name: 'spf-long.test', type: 'TXT', value: 'v=spf1 include:chain0.spf.test -all' },
    { name: 'spf-typo.test', type: 'TXT', value: `v=spf1 a:${HOST} inclde:x.test ~all` },
    { name: 'spf-none.test', type: 'TXT', value: 'some other text' },
    { name: 'spf-redirect.test', type: 'TXT', value: 'v=spf1 redirect=spf-ok.test' },
    { name: 'spf-mx.test', type: 'TXT', value: 'v=spf1 mx -all' },
    { name: 'spf-mx.test', type: 'MX', priority: 10, exchange: HOST },
    { name: 'spf-cidr.test', type: 'TXT', value: 'v=spf1 ip4:127.0.0.0/8 ip6:2001:db8::/32 -all' },
    { name: 'spf-soft.test', type: 'TXT', value: 'v=spf1 ip4:192.0.2.1 ~all' },
    ...includeChain,

    {
      name: `_dmarc.${DOMAIN}`,
      type: 'TXT',
      value: `v=DMARC1; p=none; rua=mailto:dmarc@${DOMAIN}`,
    },
    { name: '_dmarc.block.test', type: 'TXT', value: 'v=DMARC1; p=block' },
    { name: '_dmarc.order.test', type: 'TXT', value: 'p=reject; v=DMARC1' },
    { name: '_dmarc.rua.test', type: 'TXT', value: 'v=DMARC1; p=reject; rua=dmarc@rua.test' },
    { name: '_dmarc.reject.test', type: 'TXT', value: 'v=DMARC1; p=reject; adkim=s' },
    { name: '_dmarc.parent.test', type: 'TXT', value: 'v=DMARC1; p=quarantine' },
    { name: 'sub.parent.test', type: 'A', address: '192.0.2.9' },

    { name: `_smtp._tls.${DOMAIN}`, type: 'TXT', value: 'v=TLSRPTv1; rua=mailto:tls@club.example' },
    { name: DOMAIN, type: 'MX', priority: 10, exchange: HOST },
    { name: DOMAIN, type: 'TXT', value: `v=spf1 a:${HOST} ~all` },
    { name: 'mx-other.test', type: 'MX', priority: 10, exchange: 'mx.provider.test' },
    { name: 'mx-null.test', type: 'MX', priority: 0, exchange: '' },
    { name: 'mx-second.test', type: 'MX', priority: 5, exchange: 'mx.provider.test' },
    { name: 'mx-second.test', type: 'MX', priority: 10, exchange: HOST },
    { name: `bounces.${DOMAIN}.${DOMAIN}`, type: 'MX', priority: 10, exchange: HOST },
    { name: 'srs.herald.test', type: 'MX', priority: 10, exchange: HOST },
    { name: 'srs.herald.test', type: 'TXT', value: `v=spf1 a:${HOST} -all` },
    { name: HOST, type: 'TXT', value: 'v=spf1 a -all' },
    { name: `h1._domainkey.${DOMAIN}`, type: 'CNAME', target: `h1.${DOMAIN}.keys.herald.test` },
  ];
  dns = await startDnsServer({ records, failures: { 's1._domainkey.broken.test': 'servfail' } });
  lookups = createCheckLookups({ servers: [dns.address], timeoutMs: 500, tries: 1 });
});

afterAll(async () => {
  await dns?.close();
});

describe('DKIM key check', () => {
  it('accepts a correct record split into strings', async () => {
    const result = await check(expectedDkim('ok'));
    expect(result.findings).toEqual([]);
    expect(result.status).toBe('ok');
  });

  it('accepts a correct Ed25519 record', async () => {
    const result = await check(expectedDkim('ed', ed25519));
    expect(result.status).toBe('ok');
  });

  it('reports a missing record', async () => {
    const result = await check(expectedDkim('absent'));
    expect(codes(result)).toEqual(['missing']);
    expect(result.status).toBe('error');
  });

  it('finds a record under a doubled name', async () => {
    const result = await check(expectedDkim('doubled'));
    expect(codes(result)).toEqual(['doubled-name']);
    expect(result.findings[0]!.message).toContain(`doubled._domainkey.${DOMAIN}.${DOMAIN}`);
    expect(result.findings[0]!.fix).toContain('"doubled._domainkey"');
  });

  it('reports a key of another private key', async () => {
    const result = await check(expectedDkim('mismatch'));
    expect(codes(result)).toEqual(['key-mismatch']);
    expect(result.findings[0]!.message).toMatch(/differ from character \d+/);
  });

  it('reports quotes pasted into the value', async () => {
    const result = await check(expectedDkim('quoted'));
    expect(codes(result)).toEqual(['quotes']);
  });

  it('reports quoted strings pasted as one value', async () => {
    const result = await check(expectedDkim('pasted'));
    expect(codes(result)).toContain('quotes');
    expect(result.findings[0]!.message).toContain('the quoted strings of a zone file');
    expect(result.status).toBe('error');
  });

  it('reports spaces inside the key', async () => {
    const result = await check(expectedDkim('spaced'));
    expect(codes(result)).toEqual(['spaces']);
    expect(result.status).toBe('warning');
  });

  it('reports strings split with a space', async () => {
    const result = await check(expectedDkim('badsplit'));
    expect(codes(result)).toEqual(['split-wrong-place']);
    expect(result.findings[0]!.message).toContain('after string 1');
  });

  it('reports a value split into separate records', async () => {
    const result = await check(expectedDkim('fragments'));
    expect(codes(result)).toEqual(['split-records']);
    expect(result.found).toHaveLength(2);
  });

  it('reports a key cut off at a string boundary', async () => {
    const result = await check(expectedDkim('truncated'));
    expect(codes(result)).toEqual(['truncated']);
    const keyLength = good.length - good.indexOf('p=') - 2;
    expect(result.findings[0]!.message).toContain(`of its ${keyLength} characters`);
  });

  it('reports an RSA key under 1024 bits', async () => {
    const result = await check(expectedDkim('weak', weak));
    expect(codes(result)).toEqual(['weak-key']);
    expect(result.findings[0]!.message).toContain('512 bits');
  });

  it('warns about testing mode', async () => {
    const result = await check(expectedDkim('testing'));
    expect(codes(result)).toEqual(['testing', 'value-differs']);
    expect(result.findings[1]!.message).toContain('t=y is extra');
  });

  it('reports a revoked key', async () => {
    const result = await check(expectedDkim('revoked'));
    expect(codes(result)).toEqual(['revoked']);
  });

  it('reports two different keys at one selector', async () => {
    const result = await check(expectedDkim('two'));
    expect(codes(result)).toEqual(['several-records']);
  });

  it('reports a failed lookup as unknown', async () => {
    const result = await checkRecord(
      lookups,
      { purpose: 'DKIM', name: 's1._domainkey.broken.test', type: 'TXT', value: good },
      'broken.test',
      [],
    );
    expect(codes(result)).toEqual(['lookup-failed']);
    expect(result.status).toBe('unknown');
  });
});

describe('SPF check', () => {
  const spf = (name: string, value = `v=spf1 a:${HOST} ~all`): ExpectedRecord => ({
    purpose: 'SPF',
    name,
    type: 'TXT',
    value,
  });

  it('accepts a record covering Herald', async () => {
    const result = await check(spf('spf-ok.test'));
    expect(result.findings).toEqual([]);
  });

  it('follows includes to find Herald', async () => {
    const result = await check(spf('spf-include.test'));
    expect(result.findings).toEqual([]);
  });

  it('reports a missing record', async () => {
    const result = await check(spf('spf-none.test'));
    expect(codes(result)).toEqual(['missing']);
  });

  it('reports several SPF records', async () => {
    const result = await check(spf('spf-two.test'));
    expect(codes(result)).toEqual(['several-records']);
  });

  it('reports a record not covering Herald', async () => {
    const result = await check(spf('spf-other.test'));
    expect(codes(result)).toEqual(['spf-not-covering']);
    expect(result.findings[0]!.message).toContain(`${HERALD_ADDRESS}: the result for it is fail`);
  });

  it.each(['spf-redirect.test', 'spf-mx.test', 'spf-cidr.test'])(
    'accepts Herald covered at %s',
    async (name) => {
      const result = await check(spf(name));
      expect(result.findings).toEqual([]);
    },
  );

  it('reports a softfail as not covering', async () => {
    const result = await check(spf('spf-soft.test'));
    expect(codes(result)).toEqual(['spf-not-covering']);
    expect(result.findings[0]!.message).toContain('the result for it is softfail');
  });

  it('reports more than 10 lookups', async () => {
    const result = await check(spf('spf-long.test'));
    expect(codes(result)).toContain('spf-too-many-lookups');
    expect(result.findings[0]!.message).toContain(`takes ${MAX_SPF_LOOKUPS + 1} DNS lookups`);
  });

  it('reports an unknown mechanism', async () => {
    const result = await check(spf('spf-typo.test'));
    expect(codes(result)).toEqual(['malformed']);
    expect(result.findings[0]!.message).toContain('"inclde" is not an SPF mechanism');
  });
});

describe('DMARC check', () => {
  const dmarc = (domain: string): ExpectedRecord => ({
    purpose: 'DMARC',
    name: `_dmarc.${domain}`,
    type: 'TXT',
    value: `v=DMARC1; p=none; rua=mailto:postmaster@${domain}`,
  });

  it('accepts p=none with a note', async () => {
    const result = await check(dmarc(DOMAIN));
    expect(codes(result)).toEqual(['dmarc-monitor-only']);
    expect(result.status).toBe('ok');
  });

  it('accepts p=reject without findings', async () => {
    const result = await check(dmarc('reject.test'));
    expect(result.findings).toEqual([]);
  });

  it('reports a missing record', async () => {
    const result = await check(dmarc('nothing.test'));
    expect(codes(result)).toEqual(['missing']);
  });

  it('notes a policy inherited from the organisational domain', async () => {
    const result = await check(dmarc('sub.parent.test'));
    expect(codes(result)).toEqual(['dmarc-inherited']);
    expect(result.status).toBe('ok');
  });

  it.each([
    ['block.test', 'p=block is not one of none, quarantine, reject'],
    ['order.test', 'it must begin with v=DMARC1'],
    ['rua.test', 'rua= must list mailto: addresses'],
  ])('reports a malformed record at %s', async (domain, problem) => {
    const result = await check(dmarc(domain));
    expect(codes(result)).toEqual(['malformed']);
    expect(result.findings[0]!.message).toContain(problem);
  });
});

describe('MX check', () => {
  const mx = (name: string): ExpectedRecord => ({
    purpose: 'MX',
    name,
    type: 'MX',
    value: `10 ${HOST}`,
  });

  it('accepts an MX pointing at Herald', async () => {
    const result = await check(mx(DOMAIN));
    expect(result.findings).toEqual([]);
    expect(result.found).toEqual([`10 ${HOST}`]);
  });

  it('reports an MX pointing elsewhere', async () => {
    const result = await check(mx('mx-other.test'));
    expect(codes(result)).toEqual(['value-differs']);
    expect(result.findings[0]!.message).toContain('mx.provider.test');
  });

  it('warns when another host is preferred', async () => {
    const result = await check(mx('mx-second.test'));
    expect(codes(result)).toEqual(['value-differs']);
    expect(result.status).toBe('warning');
  });

  it('reports a null MX', async () => {
    const result = await check(mx('mx-null.test'));
    expect(codes(result)).toEqual(['null-mx']);
  });

  it('finds an MX under a doubled name', async () => {
    const result = await check(mx(`bounces.${DOMAIN}`));
    expect(codes(result)).toEqual(['doubled-name']);
  });

  it('checks a delegated selector CNAME', async () => {
    const target = `h1.${DOMAIN}.keys.herald.test`;
    const name = `h1._domainkey.${DOMAIN}`;
    const right = await check({ purpose: 'CNAME', name, type: 'CNAME', value: target });
    expect(right.findings).toEqual([]);
    const wrong = await check({ purpose: 'CNAME', name, type: 'CNAME', value: 'elsewhere.test' });
    expect(codes(wrong)).toEqual(['cname-differs']);
  });
});

describe('other TXT records', () => {
  it('compares the value exactly', async () => {
    const expected = (value: string): ExpectedRecord => ({
      purpose: 'TLS reporting',
      name: `_smtp._tls.${DOMAIN}`,
      type: 'TXT',
      value,
    });
    const right = await check(expected('v=TLSRPTv1; rua=mailto:tls@club.example'));
    expect(right.findings).toEqual([]);
    const wrong = await check(expected('v=TLSRPTv1; rua=mailto:reports@club.example'));
    expect(codes(wrong)).toEqual(['value-differs']);
    const missing = await check({ ...expected('v=TLSRPTv1'), name: `_smtp._tls.other.test` });
    expect(codes(missing)).toEqual(['missing']);
  });
});

describe('whole domain check', () => {
  it('passes a correctly published domain', async () => {
    const report = await checkDomain(lookups, {
      domain: DOMAIN,
      hostname: HOST,
      records: [
        expectedDkim('ok'),
        { purpose: 'MX', name: DOMAIN, type: 'MX', value: `10 ${HOST}` },
        { purpose: 'SPF', name: DOMAIN, type: 'TXT', value: `v=spf1 a:${HOST} ~all` },
        {
          purpose: 'DMARC',
          name: `_dmarc.${DOMAIN}`,
          type: 'TXT',
          value: 'v=DMARC1; p=none',
        },
        { purpose: 'SRS MX', name: 'srs.herald.test', type: 'MX', value: `10 ${HOST}` },
        {
          purpose: 'SRS SPF',
          name: 'srs.herald.test',
          type: 'TXT',
          value: `v=spf1 a:${HOST} -all`,
        },
        { purpose: 'HELO SPF', name: HOST, type: 'TXT', value: 'v=spf1 a -all' },
      ],
    });
    expect(report.records.map((record) => [record.name, record.status])).toEqual([
      [dkimName('ok'), 'ok'],
      [DOMAIN, 'ok'],
      [DOMAIN, 'ok'],
      [`_dmarc.${DOMAIN}`, 'ok'],
      ['srs.herald.test', 'ok'],
      ['srs.herald.test', 'ok'],
      [HOST, 'ok'],
    ]);
    expect(report.ok).toBe(true);

    const card = await checkReadiness(lookups, report, {
      sendingAddresses: [HERALD_ADDRESS],
      oneClickUnsubscribe: true,
      outboundTls: true,
    });
    const status = Object.fromEntries(card.map((item) => [item.requirement, item.status]));
    expect(status).toEqual({
      spf: 'met',
      dkim: 'met',
      dmarc: 'met',
      unsubscribe: 'met',
      tls: 'met',
      // The test server serves no PTR records, so reverse DNS cannot be confirmed.
      'reverse-dns': 'not-met',
    });
  });

  it('reports a host name without address', async () => {
    const report = await checkDomain(lookups, {
      domain: DOMAIN,
      hostname: 'nowhere.herald.test',
      records: [expectedDkim('ok')],
    });
    expect(report.ok).toBe(false);
    expect(report.records.at(-1)!.findings[0]!.code).toBe('no-address');
  });
});
