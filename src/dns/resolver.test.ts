import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDnsServer, type DnsServer } from '../../test/helpers/dns-server.js';
import { DnsError, Resolver } from './resolver.js';

const zone = `
$ORIGIN example.test.
$TTL 60
@          IN MX 20 mx2
@          IN MX 10 mx1
mx1        IN A 127.0.0.11
mx2        IN A 127.0.0.12
           IN AAAA ::1
bare.test. IN A 127.0.0.13
nullmx.test. IN MX 0 .
txt        IN TXT "v=spf1 " "-all"
alias      IN CNAME mx1
slow.test. IN MX 10 mx1.example.test.
broken.test. IN MX 10 mx1.example.test.
`;

let dns: DnsServer;
let resolver: Resolver;

beforeAll(async () => {
  dns = await startDnsServer({ records: zone });
  dns.fail('slow.test', 'timeout');
  dns.fail('broken.test', 'servfail');
  resolver = new Resolver({ servers: [dns.address], timeoutMs: 200, tries: 1 });
});

afterAll(async () => {
  await dns.close();
});

async function dnsErrorOf(promise: Promise<unknown>): Promise<DnsError> {
  const error: unknown = await promise.then(
    () => undefined,
    (reason: unknown) => reason,
  );
  expect(error).toBeInstanceOf(DnsError);
  return error as DnsError;
}

describe('Resolver.resolveMx', () => {
  it('orders hosts by preference', async () => {
    const hosts = await resolver.resolveMx('example.test');
    expect(hosts).toEqual([
      { exchange: 'mx1.example.test', priority: 10, implicit: false },
      { exchange: 'mx2.example.test', priority: 20, implicit: false },
    ]);
  });

  it('falls back to the domain without MX', async () => {
    const hosts = await resolver.resolveMx('bare.test');
    expect(hosts).toEqual([{ exchange: 'bare.test', priority: 0, implicit: true }]);
  });

  it('reports a null MX as permanent', async () => {
    const error = await dnsErrorOf(resolver.resolveMx('nullmx.test'));
    expect(error.code).toBe('NULL_MX');
    expect(error.permanent).toBe(true);
  });

  it('reports an unknown domain as permanent', async () => {
    const error = await dnsErrorOf(resolver.resolveMx('nowhere.test'));
    expect(error.code).toBe('NOTFOUND');
    expect(error.permanent).toBe(true);
  });

  it('reports a name without MX or address as NODATA', async () => {
    // txt.example.test exists (it has a TXT record) but has neither MX nor A/AAAA.
    const error = await dnsErrorOf(resolver.resolveMx('txt.example.test'));
    expect(error.code).toBe('NODATA');
  });

  it('maps SERVFAIL to a temporary error', async () => {
    const error = await dnsErrorOf(resolver.resolveMx('broken.test'));
    expect(error.code).toBe('SERVFAIL');
    expect(error.permanent).toBe(false);
  });

  it('maps a silent server to TIMEOUT', async () => {
    const started = Date.now();
    const error = await dnsErrorOf(resolver.resolveMx('slow.test'));
    expect(error.code).toBe('TIMEOUT');
    expect(error.permanent).toBe(false);
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});

describe('Resolver.resolveAddresses', () => {
  it('returns IPv4 then IPv6 addresses', async () => {
    expect(await resolver.resolveAddresses('mx2.example.test')).toEqual(['127.0.0.12', '::1']);
  });

  it('follows a CNAME', async () => {
    expect(await resolver.resolveAddresses('alias.example.test')).toEqual(['127.0.0.11']);
  });

  it('passes IP literals through', async () => {
    expect(await resolver.resolveAddresses('127.0.0.5')).toEqual(['127.0.0.5']);
  });
});

describe('Resolver.resolveTxt', () => {
  it('keeps the strings of a record apart', async () => {
    expect(await resolver.resolveTxt('txt.example.test')).toEqual([['v=spf1 ', '-all']]);
  });

  it('reports a missing name as NOTFOUND', async () => {
    const error = await dnsErrorOf(resolver.resolveTxt('missing.example.test'));
    expect(error.code).toBe('NOTFOUND');
  });
});
