import { describe, expect, it } from 'vitest';

import { DnsError } from '../dns/index.js';
import { cacheTxtLookup, fromDomains, withNodeErrorCodes } from './authentication.js';

function failing(code: string) {
  return Object.assign(new Error(`lookup failed: ${code}`), { code });
}

describe('withNodeErrorCodes', () => {
  it.each([
    ['NOTFOUND', 'ENOTFOUND'],
    ['NODATA', 'ENODATA'],
    ['SERVFAIL', 'ESERVFAIL'],
    ['TIMEOUT', 'ETIMEOUT'],
  ] as const)('maps %s to %s', async (herald, node) => {
    const lookup = withNodeErrorCodes(() => Promise.reject(new DnsError(herald, 'x.test', 'TXT')));
    await expect(lookup('x.test')).rejects.toMatchObject({ code: node });
  });

  it('passes Node codes through', async () => {
    const lookup = withNodeErrorCodes(() => Promise.reject(failing('ENOTFOUND')));
    await expect(lookup('x.test')).rejects.toMatchObject({ code: 'ENOTFOUND' });
  });
});

describe('cacheTxtLookup', () => {
  it('reuses an answer until it expires', async () => {
    let now = 0;
    let calls = 0;
    const lookup = cacheTxtLookup(
      () => {
        calls++;
        return Promise.resolve([['v=DMARC1; p=none']]);
      },
      { ttlMs: 1000, now: () => now },
    );
    await lookup('_dmarc.a.test');
    await lookup('_DMARC.A.test');
    expect(calls).toBe(1);
    now = 1001;
    await lookup('_dmarc.a.test');
    expect(calls).toBe(2);
  });

  it('remembers that a name has no record', async () => {
    let calls = 0;
    const lookup = cacheTxtLookup(() => {
      calls++;
      return Promise.reject(failing('ENODATA'));
    });
    await expect(lookup('a.test')).rejects.toMatchObject({ code: 'ENODATA' });
    await expect(lookup('a.test')).rejects.toMatchObject({ code: 'ENODATA' });
    expect(calls).toBe(1);
  });

  it('asks again after a temporary failure', async () => {
    let calls = 0;
    const lookup = cacheTxtLookup(() => {
      calls++;
      return Promise.reject(failing('ETIMEOUT'));
    });
    await expect(lookup('a.test')).rejects.toMatchObject({ code: 'ETIMEOUT' });
    await new Promise((resolve) => setImmediate(resolve));
    await expect(lookup('a.test')).rejects.toMatchObject({ code: 'ETIMEOUT' });
    expect(calls).toBe(2);
  });
});

describe('fromDomains', () => {
  it('lists the domain of every From mailbox', () => {
    const message = Buffer.from(
      'From: "A, B" <a@One.test>, c@two.test.\r\nFrom: d@three.test\r\nTo: x@y.test\r\n\r\nbody\r\n',
    );
    expect(fromDomains(message)).toEqual(['one.test', 'two.test', 'three.test']);
  });

  it('returns nothing without a From field', () => {
    expect(fromDomains(Buffer.from('To: x@y.test\r\n\r\nbody\r\n'))).toEqual([]);
  });
});
