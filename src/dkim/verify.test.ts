/**
 * Verification verdicts, especially where RFC 6376 and RFC 8301 say MUST and popular verifiers
 * are lax. The malformed signatures are built by hand here and signed correctly, so each one
 * fails for the rule under test and for nothing else.
 */
import {
  createHash,
  createPublicKey,
  generateKeyPairSync,
  sign as cryptoSign,
  type KeyObject,
} from 'node:crypto';

import { beforeAll, describe, expect, it } from 'vitest';

import { parseHeaderFields, splitMessage } from '../message/index.js';
import { BodyCanonicalizer, LimitedSink } from './canonicalize.js';
import { headerData } from './header-hash.js';
import {
  createKeyCache,
  dkimRecordValue,
  formatAuthenticationResults,
  signMessage,
  verifyMessage,
} from './index.js';

const MESSAGE = Buffer.from(
  'From: Alice <alice@example.com>\r\nTo: bob@example.net\r\nSubject: Test\r\n' +
    'Date: Thu, 03 Dec 2026 22:51:20 +0000\r\n\r\nHello, world.\r\n',
);
const NOW = new Date('2026-12-03T23:00:00Z');
const T = Math.floor(NOW.getTime() / 1000) - 60;

let rsa: KeyObject;
let ed25519: KeyObject;
let records: Record<string, string>;

function lookup(table: Record<string, string | Error>) {
  return (name: string): Promise<string[][]> => {
    const entry = table[name];
    if (entry instanceof Error) return Promise.reject(entry);
    if (entry === undefined)
      return Promise.reject(Object.assign(new Error(`ENOTFOUND ${name}`), { code: 'ENOTFOUND' }));
    return Promise.resolve([[entry]]);
  };
}

function bodyHash(message: Buffer, limit?: number): string {
  const hash = createHash('sha256');
  const canonicalizer = new BodyCanonicalizer('relaxed', new LimitedSink(hash, limit));
  canonicalizer.update(splitMessage(message).body);
  canonicalizer.finish();
  return hash.digest('base64');
}

/**
 * Adds a DKIM-Signature with exactly the tags given (plus bh= and b=), signed correctly with
 * `key` and `digest`, so only the tag under test is wrong.
 */
function signWithTags(
  message: Buffer,
  tags: string,
  key: KeyObject,
  digest: 'sha256' | 'sha1' | 'ed25519' = 'sha256',
): Buffer {
  const limit = /l=([0-9]+)/.exec(tags)?.[1];
  const unsigned = `DKIM-Signature: ${tags}; bh=${bodyHash(message, limit === undefined ? undefined : Number(limit))}; b=`;
  const fields = parseHeaderFields(splitMessage(message).header);
  const hMatch = /h=([^;]+)/.exec(tags);
  const signed = (hMatch?.[1] ?? 'from').split(':').map((name) => name.trim());
  const relaxed = /c=relaxed/.test(tags);
  const data = headerData(
    fields,
    signed,
    relaxed ? 'relaxed' : 'simple',
    Buffer.from(`${unsigned}\r\n`),
  );
  const b =
    digest === 'ed25519'
      ? cryptoSign(null, createHash('sha256').update(data).digest(), key)
      : cryptoSign(digest, data, key);
  return Buffer.concat([Buffer.from(`${unsigned}${b.toString('base64')}\r\n`), message]);
}

async function verdict(message: Buffer, table: Record<string, string | Error> = records) {
  const [result] = await verifyMessage(message, { lookupTxt: lookup(table), now: NOW });
  return result!;
}

beforeAll(() => {
  rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  ed25519 = generateKeyPairSync('ed25519').privateKey;
  records = {
    'rsa._domainkey.example.com': dkimRecordValue(createPublicKey(rsa)),
    'ed._domainkey.example.com': dkimRecordValue(createPublicKey(ed25519)),
  };
});

const BASE = `v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.com; s=rsa; t=${T}; h=from:to:subject`;

describe('verifyMessage', () => {
  it('passes a correct hand-built signature', async () => {
    const result = await verdict(signWithTags(MESSAGE, BASE, rsa));
    expect(result.result).toBe('pass');
    expect(result.keyBits).toBe(2048);
  });

  it('returns none without a signature', async () => {
    const results = await verifyMessage(MESSAGE, { lookupTxt: lookup(records) });
    expect(results).toEqual([
      { result: 'none', code: 'no_signature', reason: 'no DKIM-Signature header field' },
    ]);
  });

  it('rejects rsa-sha1 even when the signature is correct', async () => {
    const message = signWithTags(MESSAGE, BASE.replace('rsa-sha256', 'rsa-sha1'), rsa, 'sha1');
    const result = await verdict(message);
    expect(result.result).toBe('permerror');
    expect(result.code).toBe('algorithm_insecure');
  });

  it('rejects an RSA key under 1024 bits', async () => {
    const small = generateKeyPairSync('rsa', { modulusLength: 768 }).privateKey;
    const table = {
      ...records,
      'small._domainkey.example.com': dkimRecordValue(createPublicKey(small)),
    };
    const result = await verdict(
      signWithTags(MESSAGE, BASE.replace('s=rsa', 's=small'), small),
      table,
    );
    expect(result.result).toBe('permerror');
    expect(result.code).toBe('key_too_short');
  });

  it('requires From in h=', async () => {
    const result = await verdict(signWithTags(MESSAGE, BASE.replace('h=from:to', 'h=to'), rsa));
    expect(result.result).toBe('permerror');
    expect(result.code).toBe('from_not_signed');
  });

  it('requires i= within d=', async () => {
    const result = await verdict(signWithTags(MESSAGE, `${BASE}; i=joe@example.org`, rsa));
    expect(result.result).toBe('permerror');
    expect(result.code).toBe('identity_mismatch');
  });

  it('accepts i= in a subdomain of d=', async () => {
    const result = await verdict(signWithTags(MESSAGE, `${BASE}; i=joe@mail.example.com`, rsa));
    expect(result.result).toBe('pass');
    expect(result.identity).toBe('joe@mail.example.com');
  });

  it('fails an expired signature', async () => {
    const result = await verdict(signWithTags(MESSAGE, `${BASE}; x=${T + 30}`, rsa));
    expect(result.result).toBe('fail');
    expect(result.code).toBe('signature_expired');
  });

  it('passes before x=', async () => {
    const result = await verdict(signWithTags(MESSAGE, `${BASE}; x=${T + 3600}`, rsa));
    expect(result.result).toBe('pass');
  });

  it('rejects x= not after t=', async () => {
    const result = await verdict(signWithTags(MESSAGE, `${BASE}; x=${T}`, rsa));
    expect(result.result).toBe('permerror');
    expect(result.code).toBe('timestamp_invalid');
  });

  it('is neutral on a t= far in the future', async () => {
    const result = await verdict(
      signWithTags(MESSAGE, BASE.replace(`t=${T}`, `t=${T + 86400}`), rsa),
    );
    expect(result.result).toBe('neutral');
    expect(result.code).toBe('timestamp_future');
  });

  it('fails a revoked key', async () => {
    const table = { 'rsa._domainkey.example.com': 'v=DKIM1; k=rsa; p=' };
    const result = await verdict(signWithTags(MESSAGE, BASE, rsa), table);
    expect(result.result).toBe('fail');
    expect(result.code).toBe('key_revoked');
  });

  it('treats a malformed tag list as permerror', async () => {
    for (const tags of [`${BASE}; a=rsa-sha256`, `${BASE}; 1x=y`, `${BASE}; z`]) {
      const result = await verdict(signWithTags(MESSAGE, tags, rsa));
      expect(result.result, tags).toBe('permerror');
      expect(result.code, tags).toBe('signature_malformed');
    }
  });

  it('rejects v= other than 1', async () => {
    const result = await verdict(signWithTags(MESSAGE, BASE.replace('v=1', 'v=2'), rsa));
    expect(result.code).toBe('version_unsupported');
  });

  it('rejects an unknown algorithm', async () => {
    const result = await verdict(
      signWithTags(MESSAGE, BASE.replace('rsa-sha256', 'rsa-sha512'), rsa),
    );
    expect(result.result).toBe('permerror');
    expect(result.code).toBe('algorithm_unknown');
  });

  it('rejects a key type that does not match a=', async () => {
    const table = { 'rsa._domainkey.example.com': records['ed._domainkey.example.com']! };
    const result = await verdict(signWithTags(MESSAGE, BASE, rsa), table);
    expect(result.code).toBe('key_type_mismatch');
  });

  it('honours key h= and s=', async () => {
    const value = records['rsa._domainkey.example.com']!;
    const sha1Only = await verdict(signWithTags(MESSAGE, BASE, rsa), {
      'rsa._domainkey.example.com': value.replace('k=rsa;', 'k=rsa; h=sha1;'),
    });
    expect(sha1Only.code).toBe('key_hash_unsupported');
    const otherService = await verdict(signWithTags(MESSAGE, BASE, rsa), {
      'rsa._domainkey.example.com': value.replace('k=rsa;', 'k=rsa; s=other;'),
    });
    expect(otherService.code).toBe('key_service_mismatch');
  });

  it('honours t=s and reports t=y', async () => {
    const value = records['rsa._domainkey.example.com']!;
    const strict = await verdict(signWithTags(MESSAGE, `${BASE}; i=@mail.example.com`, rsa), {
      'rsa._domainkey.example.com': value.replace('k=rsa;', 'k=rsa; t=s;'),
    });
    expect(strict.code).toBe('key_strict_identity');
    const testing = await verdict(signWithTags(MESSAGE, BASE, rsa), {
      'rsa._domainkey.example.com': value.replace('k=rsa;', 'k=rsa; t=y;'),
    });
    expect(testing.result).toBe('pass');
    expect(testing.testing).toBe(true);
  });

  it('rejects a key record with v= not first', async () => {
    const value = records['rsa._domainkey.example.com']!.replace(
      'v=DKIM1; k=rsa;',
      'k=rsa; v=DKIM1;',
    );
    const result = await verdict(signWithTags(MESSAGE, BASE, rsa), {
      'rsa._domainkey.example.com': value,
    });
    expect(result.result).toBe('permerror');
    expect(result.code).toBe('key_malformed');
  });

  it('maps DNS errors to permerror and temperror', async () => {
    const message = signWithTags(MESSAGE, BASE, rsa);
    const cases: [string, string, string][] = [
      ['ENOTFOUND', 'permerror', 'key_not_found'],
      ['ENODATA', 'permerror', 'key_not_found'],
      ['ETIMEOUT', 'temperror', 'key_lookup_failed'],
      ['ESERVFAIL', 'temperror', 'key_lookup_failed'],
      ['ECONNREFUSED', 'temperror', 'key_lookup_failed'],
    ];
    for (const [code, expected, reason] of cases) {
      const error = Object.assign(new Error(code), { code });
      const result = await verdict(message, { 'rsa._domainkey.example.com': error });
      expect(result.result, code).toBe(expected);
      expect(result.code, code).toBe(reason);
    }
  });

  it('reports an l= that leaves content unsigned', async () => {
    const message = signWithTags(MESSAGE, `${BASE}; l=5`, rsa);
    const extended = Buffer.concat([message, Buffer.from('Appended by someone else.\r\n')]);
    const result = await verdict(extended);
    expect(result.result).toBe('pass');
    expect(result.code).toBe('body_length_partial');
    expect(result.unsignedBodyBytes).toBeGreaterThan(20);
  });

  it('passes Ed25519', async () => {
    const tags = BASE.replace('rsa-sha256', 'ed25519-sha256').replace('s=rsa', 's=ed');
    const result = await verdict(signWithTags(MESSAGE, tags, ed25519, 'ed25519'));
    expect(result.result).toBe('pass');
    expect(result.algorithm).toBe('ed25519-sha256');
  });

  it('detects tampering with the right reason', async () => {
    const signed = signMessage(MESSAGE, {
      time: NOW,
      signatures: [{ domain: 'example.com', selector: 'rsa', privateKey: rsa }],
    });
    const body = Buffer.from(signed.toString().replace('Hello', 'Jello'));
    const header = Buffer.from(signed.toString().replace('Subject: Test', 'Subject: Best'));
    const added = Buffer.from(
      signed.toString().replace('Subject: Test\r\n', 'Subject: Test\r\nSubject: Added\r\n'),
    );
    expect((await verdict(body)).code).toBe('body_hash_mismatch');
    expect((await verdict(header)).code).toBe('signature_mismatch');
    expect((await verdict(added)).code).toBe('signature_mismatch');
  });

  it('uses the key cache across messages', async () => {
    let lookups = 0;
    const counting = (name: string) => {
      lookups++;
      return lookup(records)(name);
    };
    const keyCache = createKeyCache();
    const signed = signMessage(MESSAGE, {
      signatures: [{ domain: 'example.com', selector: 'rsa', privateKey: rsa }],
    });
    for (let index = 0; index < 5; index++) {
      const [result] = await verifyMessage(signed, { lookupTxt: counting, keyCache });
      expect(result?.result).toBe('pass');
    }
    expect(lookups).toBe(1);
  });

  it('never throws on a hostile signature field', async () => {
    const hostile = [
      'DKIM-Signature:',
      'DKIM-Signature: ;;;',
      'DKIM-Signature: b=\xff\xfe; v=1',
      'DKIM-Signature: ==',
    ];
    for (const field of hostile) {
      const results = await verifyMessage(
        Buffer.concat([Buffer.from(`${field}\r\n`, 'latin1'), MESSAGE]),
        {
          lookupTxt: lookup(records),
        },
      );
      expect(results[0]?.result, field).toBe('permerror');
    }
  });
});

describe('formatAuthenticationResults', () => {
  it('renders one resinfo per signature', () => {
    const value = formatAuthenticationResults('mx.example.net', [
      {
        result: 'pass',
        domain: 'example.com',
        selector: 's1',
        identity: '@example.com',
        algorithm: 'rsa-sha256',
        headerB: 'abcd+/12',
        keyBits: 2048,
      },
      {
        result: 'fail',
        code: 'body_hash_mismatch',
        reason: 'body hash does not match bh=',
        domain: 'example.org',
        selector: 's2',
      },
    ]);
    expect(value).toBe(
      'mx.example.net; dkim=pass (2048-bit key) header.d=example.com header.i=@example.com header.s=s1 ' +
        'header.a=rsa-sha256 header.b=abcd+/12; dkim=fail reason="body hash does not match bh=" ' +
        'header.d=example.org header.s=s2',
    );
  });

  it('renders none and extra resinfo', () => {
    const value = formatAuthenticationResults(
      'mx.example.net',
      [{ result: 'none' }],
      ['spf=pass smtp.mailfrom=example.com'],
    );
    expect(value).toBe('mx.example.net; dkim=none; spf=pass smtp.mailfrom=example.com');
  });
});
