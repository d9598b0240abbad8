import { describe, expect, it } from 'vitest';

import { generateKeyPairSync } from 'node:crypto';

import { dkimRecordValue, signMessage, verifyMessage } from '../dkim/index.js';
import { DnsError } from '../dns/index.js';
import { getHeaders, parseHeaderFields, splitMessage } from '../message/index.js';
import {
  authservIdOf,
  cacheTxtLookup,
  fromDomains,
  removeOwnAuthenticationResults,
  withNodeErrorCodes,
} from './authentication.js';

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

describe('authservIdOf', () => {
  it.each([
    ['mx.herald.test; dkim=pass', 'mx.herald.test'],
    [' (comment (nested)) MX.Herald.Test 1; none', 'MX.Herald.Test'],
    ['\r\n\tmx.herald.test;\r\n\tspf=pass', 'mx.herald.test'],
    ['"mx.herald.test"; none', 'mx.herald.test'],
    ['', undefined],
  ])('reads %j', (value, expected) => {
    expect(authservIdOf(value)).toBe(expected);
  });
});

describe('removeOwnAuthenticationResults', () => {
  const privateKey = generateKeyPairSync('ed25519').privateKey;
  const original = Buffer.from(
    'Authentication-Results: MX.HERALD.TEST.;\r\n\tdkim=pass header.d=bank.test\r\n' +
      'Authentication-Results: upstream.test; spf=pass smtp.mailfrom=author.test\r\n' +
      'From: Author <author@author.test>\r\nSubject: hi\r\n' +
      'Authentication-Results: (forged) mx.herald.test; dmarc=pass\r\n' +
      '\r\nBody with Authentication-Results: mx.herald.test; in it.\r\n',
  );
  const signed = signMessage(original, {
    signatures: [{ domain: 'author.test', selector: 's1', privateKey }],
  });
  const cleaned = removeOwnAuthenticationResults(signed, 'mx.herald.test');
  const values = getHeaders(
    parseHeaderFields(splitMessage(cleaned).header),
    'authentication-results',
  );

  it('removes every field of its own id, in any case', () => {
    expect(values.some((value) => /herald/i.test(value))).toBe(false);
  });

  it('keeps the fields of other ids and the body', () => {
    expect(values).toHaveLength(1);
    expect(values[0]).toContain('upstream.test');
    expect(splitMessage(cleaned).body.toString()).toContain('mx.herald.test; in it');
  });

  it('leaves the author signature valid', async () => {
    const record = dkimRecordValue(privateKey);
    const results = await verifyMessage(cleaned, {
      lookupTxt: (name) =>
        name === 's1._domainkey.author.test'
          ? Promise.resolve([[record]])
          : Promise.reject(Object.assign(new Error('no record'), { code: 'ENOTFOUND' })),
    });
    expect(results.map((result) => result.result)).toEqual(['pass']);
  });

  it('returns the message unchanged without such fields', () => {
    const plain = Buffer.from('From: a@b.test\r\n\r\nbody\r\n');
    expect(removeOwnAuthenticationResults(plain, 'mx.herald.test')).toBe(plain);
  });
});
