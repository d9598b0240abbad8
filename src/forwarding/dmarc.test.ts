import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { startDnsServer, type DnsServer } from '../../test/helpers/dns-server.js';
import { Resolver } from '../dns/index.js';
import {
  evaluateDmarc,
  failsAfterForwarding,
  formatDmarcResult,
  isAligned,
  organisationalDomain,
  parseDmarcRecord,
} from './dmarc.js';

describe('parseDmarcRecord', () => {
  it('reads the policy tags', () => {
    expect(parseDmarcRecord('v=DMARC1; p=reject; sp=none; adkim=s; aspf=r; pct=50')).toEqual({
      policy: 'reject',
      subdomainPolicy: 'none',
      dkimAlignment: 'strict',
      spfAlignment: 'relaxed',
      percent: 50,
    });
  });

  it('defaults to relaxed alignment and 100 percent', () => {
    expect(parseDmarcRecord('v=DMARC1;p=quarantine')).toMatchObject({
      policy: 'quarantine',
      subdomainPolicy: undefined,
      dkimAlignment: 'relaxed',
      percent: 100,
    });
  });

  it.each([
    ['p=reject; v=DMARC1', 'v= not first'],
    ['v=DMARC1; p=bogus', 'unknown policy'],
    ['v=DMARC1', 'no policy'],
    ['v=spf1 -all', 'not DMARC'],
  ])('rejects %s (%s)', (text) => {
    expect(parseDmarcRecord(text)).toBeUndefined();
  });
});

describe('alignment', () => {
  it.each([
    ['mail.example.com', 'example.com', 'relaxed', true],
    ['example.com', 'news.example.com', 'relaxed', true],
    ['mail.example.com', 'example.com', 'strict', false],
    ['example.com', 'example.com', 'strict', true],
    ['example.co.uk', 'other.co.uk', 'relaxed', false],
    ['a.example.co.uk', 'b.example.co.uk', 'relaxed', true],
    ['evil.test', 'example.com', 'relaxed', false],
  ] as const)('%s with From %s (%s) aligned: %s', (signer, from, mode, expected) => {
    expect(isAligned(signer, from, mode)).toBe(expected);
  });

  it('finds organisational domains from the public suffix list', () => {
    expect(organisationalDomain('a.b.example.co.uk')).toBe('example.co.uk');
    expect(organisationalDomain('News.Example.COM.')).toBe('example.com');
  });
});

describe('evaluateDmarc over DNS', () => {
  let dns: DnsServer;
  let resolver: Resolver;
  const lookup = (name: string) => resolver.resolveTxt(name);

  beforeAll(async () => {
    dns = await startDnsServer({
      records: [
        { name: '_dmarc.strict.test', type: 'TXT', value: 'v=DMARC1; p=reject; adkim=s' },
        { name: '_dmarc.org.test', type: 'TXT', value: 'v=DMARC1; p=none; sp=quarantine' },
        { name: '_dmarc.split.test', type: 'TXT', value: ['v=DMARC1; ', 'p=reject'] },
        { name: '_dmarc.two.test', type: 'TXT', value: 'v=DMARC1; p=reject' },
        { name: '_dmarc.two.test', type: 'TXT', value: 'v=DMARC1; p=none' },
        { name: 'org.test', type: 'A', address: '127.0.0.1' },
      ],
      failures: { '_dmarc.broken.test': 'servfail' },
    });
    resolver = new Resolver({ servers: [dns.address], timeoutMs: 500, tries: 1 });
  });

  afterAll(async () => {
    await dns.close();
  });

  it('passes with an aligned DKIM pass', async () => {
    const evaluation = await evaluateDmarc(
      ['strict.test'],
      [{ result: 'pass', domain: 'strict.test' }],
      lookup,
    );
    expect(evaluation.result).toBe('pass');
    expect(evaluation.alignedDomain).toBe('strict.test');
    expect(failsAfterForwarding(evaluation)).toBe(false);
  });

  it('fails strict alignment for a subdomain signature', async () => {
    const evaluation = await evaluateDmarc(
      ['strict.test'],
      [{ result: 'pass', domain: 'mail.strict.test' }],
      lookup,
    );
    expect(evaluation.result).toBe('fail');
    expect(evaluation.policy).toBe('reject');
    expect(failsAfterForwarding(evaluation)).toBe(true);
  });

  it('ignores a failing signature of the right domain', async () => {
    const evaluation = await evaluateDmarc(
      ['strict.test'],
      [{ result: 'fail', domain: 'strict.test' }],
      lookup,
    );
    expect(evaluation.result).toBe('fail');
  });

  it('returns temperror when an aligned key lookup failed', async () => {
    const evaluation = await evaluateDmarc(
      ['strict.test'],
      [
        { result: 'fail', domain: 'other.test' },
        { result: 'temperror', domain: 'strict.test' },
      ],
      lookup,
    );
    expect(evaluation.result).toBe('temperror');
    expect(failsAfterForwarding(evaluation)).toBe(false);
  });

  it('takes sp= from the organisational domain for a subdomain', async () => {
    const evaluation = await evaluateDmarc(['news.org.test'], [], lookup);
    expect(evaluation.result).toBe('fail');
    expect(evaluation.policyDomain).toBe('org.test');
    expect(evaluation.policy).toBe('quarantine');
    expect(formatDmarcResult(evaluation)).toBe(
      'dmarc=fail (p=QUARANTINE; policy of org.test; no passing DKIM signature aligned with From; ' +
        'SPF not evaluated) header.from=news.org.test',
    );
  });

  it('applies p= at the organisational domain itself', async () => {
    const evaluation = await evaluateDmarc(['org.test'], [], lookup);
    expect(evaluation.policy).toBe('none');
    expect(failsAfterForwarding(evaluation)).toBe(false);
  });

  it('joins a record split into several strings', async () => {
    const evaluation = await evaluateDmarc(['split.test'], [], lookup);
    expect(evaluation.policy).toBe('reject');
  });

  it('treats two DMARC records as none', async () => {
    const evaluation = await evaluateDmarc(['two.test'], [], lookup);
    expect(evaluation.result).toBe('none');
  });

  it('returns none without a record', async () => {
    const evaluation = await evaluateDmarc(['nothing.test'], [], lookup);
    expect(evaluation.result).toBe('none');
  });

  it('returns temperror on SERVFAIL', async () => {
    const evaluation = await evaluateDmarc(['broken.test'], [], lookup);
    expect(evaluation.result).toBe('temperror');
    expect(failsAfterForwarding(evaluation)).toBe(false);
  });

  it('returns permerror for several From domains', async () => {
    const evaluation = await evaluateDmarc(['a.test', 'b.test'], [], lookup);
    expect(evaluation.result).toBe('permerror');
  });
});
