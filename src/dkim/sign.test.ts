import { createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';

import { beforeAll, describe, expect, it } from 'vitest';

import { parseHeaderFields } from '../message/index.js';
import {
  createSigner,
  DkimSignError,
  dkimRecordValue,
  parseSignature,
  sign,
  signMessage,
  signStream,
  verifyMessage,
} from './index.js';
import { selectSignedHeaders } from './sign.js';

const MESSAGE = Buffer.from(
  'From: Alice <alice@example.com>\r\nTo: bob@example.net\r\nSubject: Hello\r\n' +
    'Date: Thu, 03 Dec 2026 22:51:20 +0000\r\nMessage-ID: <1@example.com>\r\n' +
    'List-Unsubscribe: <https://example.com/u>\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n' +
    'X-Mailer: test\r\n\r\nBody  text \r\n\r\n',
);
const TIME = new Date('2026-12-03T23:00:00Z');

let rsa: KeyObject;
let ed25519: KeyObject;
let lookupTxt: (name: string) => Promise<string[][]>;

beforeAll(() => {
  rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  ed25519 = generateKeyPairSync('ed25519').privateKey;
  const records: Record<string, string> = {
    'rsa._domainkey.example.com': dkimRecordValue(createPublicKey(rsa)),
    'ed._domainkey.example.com': dkimRecordValue(createPublicKey(ed25519)),
  };
  lookupTxt = (name) => {
    const value = records[name];
    return value === undefined
      ? Promise.reject(Object.assign(new Error('ENOTFOUND'), { code: 'ENOTFOUND' }))
      : Promise.resolve([[value]]);
  };
});

function signatureTags(fields: string): Map<string, string> {
  const value = fields.slice(fields.indexOf(':') + 1);
  const parsed = parseSignature(value.replace(/\r\n$/, ''));
  if (!parsed.ok) throw new Error(parsed.reason);
  const tags = new Map<string, string>();
  for (const part of value.replace(/\r\n[ \t]/g, ' ').split(';')) {
    const [name, ...rest] = part.split('=');
    if (name !== undefined && rest.length > 0) tags.set(name.trim(), rest.join('=').trim());
  }
  return tags;
}

describe('signing', () => {
  it('signs RSA and Ed25519 in one pass with one body hash', async () => {
    const signed = signMessage(MESSAGE, {
      time: TIME,
      signatures: [
        { domain: 'example.com', selector: 'rsa', privateKey: rsa },
        { domain: 'example.com', selector: 'ed', privateKey: ed25519 },
      ],
    });
    const results = await verifyMessage(signed, { lookupTxt, now: TIME });
    expect(results.map((result) => result.result)).toEqual(['pass', 'pass']);
    expect(results.map((result) => result.algorithm)).toEqual(['rsa-sha256', 'ed25519-sha256']);
  });

  it('writes t= always and no l= or x= unless asked', () => {
    const tags = signatureTags(
      sign(MESSAGE, {
        time: TIME,
        signatures: [{ domain: 'example.com', selector: 'rsa', privateKey: rsa }],
      }),
    );
    expect(tags.get('t')).toBe(String(TIME.getTime() / 1000));
    expect(tags.has('l')).toBe(false);
    expect(tags.has('x')).toBe(false);
    expect(tags.get('c')).toBe('relaxed/relaxed');
  });

  it('writes x=, l= and i= when asked', async () => {
    const fields = sign(MESSAGE, {
      time: TIME,
      signatures: [
        {
          domain: 'example.com',
          selector: 'rsa',
          privateKey: rsa,
          expiresIn: 3600,
          bodyLength: true,
          identity: 'news@mail.example.com',
        },
      ],
    });
    const tags = signatureTags(fields);
    expect(tags.get('x')).toBe(String(TIME.getTime() / 1000 + 3600));
    expect(tags.get('l')).toBe(String('Body text\r\n'.length));
    expect(tags.get('i')).toBe('news@mail.example.com');
    const [result] = await verifyMessage(Buffer.concat([Buffer.from(fields), MESSAGE]), {
      lookupTxt,
      now: TIME,
    });
    expect(result?.result).toBe('pass');
  });

  it('folds lines at 78 columns', () => {
    const fields = sign(MESSAGE, {
      time: TIME,
      signatures: [{ domain: 'example.com', selector: 'rsa', privateKey: rsa }],
    });
    const lines = fields.split('\r\n').filter((line) => line !== '');
    expect(lines.length).toBeGreaterThan(4);
    for (const line of lines) expect(line.length, line).toBeLessThanOrEqual(78);
  });

  it('oversigns the default headers', () => {
    const tags = signatureTags(
      sign(MESSAGE, {
        time: TIME,
        signatures: [{ domain: 'example.com', selector: 'rsa', privateKey: rsa }],
      }),
    );
    const names = (tags.get('h') ?? '').split(':').map((name) => name.trim());
    const count = (name: string) => names.filter((entry) => entry === name).length;
    expect(count('from')).toBe(2);
    expect(count('subject')).toBe(2);
    expect(count('list-unsubscribe')).toBe(2);
    expect(count('list-unsubscribe-post')).toBe(2);
    expect(count('cc')).toBe(1);
    expect(count('x-mailer')).toBe(0);
  });

  it('a header added later breaks an oversigned signature', async () => {
    const signed = signMessage(MESSAGE, {
      time: TIME,
      signatures: [{ domain: 'example.com', selector: 'rsa', privateKey: rsa }],
    });
    const added = Buffer.concat([Buffer.from('Cc: intruder@example.org\r\n'), signed]);
    const [result] = await verifyMessage(added, { lookupTxt, now: TIME });
    expect(result?.code).toBe('signature_mismatch');
  });

  it('selects duplicate headers from the bottom up', () => {
    const fields = parseHeaderFields(
      Buffer.from('From: a@example.com\r\nTo: one@x\r\nTo: two@x\r\n'),
    );
    expect(selectSignedHeaders(fields, ['from', 'to'], ['to'])).toEqual(['from', 'to', 'to', 'to']);
    expect(selectSignedHeaders(fields, ['From', 'TO'], [])).toEqual(['from', 'to', 'to']);
  });

  it('signs a bare-LF message as CRLF', () => {
    const bareLf = Buffer.from(MESSAGE.toString().replace(/\r\n/g, '\n'));
    const signed = signMessage(bareLf, {
      time: TIME,
      signatures: [{ domain: 'example.com', selector: 'rsa', privateKey: rsa }],
    });
    expect(signed.toString()).not.toMatch(/[^\r]\n/);
    const crlf = signMessage(MESSAGE, {
      time: TIME,
      signatures: [{ domain: 'example.com', selector: 'rsa', privateKey: rsa }],
    });
    expect(signed.equals(crlf)).toBe(true);
  });

  it('streamed chunks split at every byte sign like one buffer', () => {
    const options = {
      time: TIME,
      signatures: [{ domain: 'example.com', selector: 'ed', privateKey: ed25519 }],
    };
    const message = Buffer.from(
      MESSAGE.toString().replace(/\r\n/g, '\n').replace('Body', 'Body\r\n\t \r\n'),
    );
    const whole = sign(message, options);
    for (let split = 0; split <= message.length; split++) {
      const signer = createSigner(options);
      signer.update(message.subarray(0, split));
      signer.update(message.subarray(split));
      expect(signer.finish(), `split at ${split}`).toBe(whole);
    }
  });

  it('copies header chunks the caller reuses', () => {
    const options = {
      time: TIME,
      signatures: [{ domain: 'example.com', selector: 'ed', privateKey: ed25519 }],
    };
    const whole = sign(MESSAGE, options);
    const signer = createSigner(options);
    const scratch = Buffer.alloc(16);
    for (let start = 0; start < MESSAGE.length; start += scratch.length) {
      const length = MESSAGE.copy(scratch, 0, start, start + scratch.length);
      signer.update(scratch.subarray(0, length));
      scratch.fill(0x78);
    }
    expect(signer.finish()).toBe(whole);
  });

  it('signStream signs a 50 MB message in bounded memory', async () => {
    const options = {
      time: TIME,
      signatures: [{ domain: 'example.com', selector: 'ed', privateKey: ed25519 }],
    };
    const line = Buffer.from(
      'Fifty megabytes of body, one line at a time, with  runs and tabs\t. \r\n',
    );
    const block = Buffer.concat(Array.from({ length: 1000 }, () => line));
    const blocks = Math.ceil((50 * 1024 * 1024) / block.length);
    async function* generate() {
      await Promise.resolve();
      yield Buffer.from('From: big@example.com\r\nSubject: big\r\n\r\n');
      for (let index = 0; index < blocks; index++) yield block;
    }
    const before = process.memoryUsage();
    const fields = await signStream(generate(), options);
    const after = process.memoryUsage();
    expect(fields).toMatch(/^DKIM-Signature: /);
    // The message is 50 MB; a signer that buffered it would grow by at least that much.
    expect(after.rss + after.arrayBuffers - before.rss - before.arrayBuffers).toBeLessThan(
      40 * 1024 * 1024,
    );
  });

  it('raises clear errors', () => {
    const small = generateKeyPairSync('rsa', { modulusLength: 768 }).privateKey;
    const cases: [() => unknown, RegExp][] = [
      [
        () =>
          sign(Buffer.from('To: x@example.com\r\n\r\nbody\r\n'), {
            signatures: [{ domain: 'example.com', selector: 'rsa', privateKey: rsa }],
          }),
        /no From header field/,
      ],
      [
        () =>
          sign(MESSAGE, {
            signatures: [{ domain: 'example.com', selector: 's', privateKey: small }],
          }),
        /768 bits is too short/,
      ],
      [
        () =>
          sign(MESSAGE, {
            signatures: [
              {
                domain: 'example.com',
                selector: 's',
                privateKey: rsa,
                algorithm: 'rsa-sha1' as 'rsa-sha256',
              },
            ],
          }),
        /unknown algorithm "rsa-sha1"/,
      ],
      [
        () =>
          sign(MESSAGE, {
            signatures: [
              {
                domain: 'example.com',
                selector: 's',
                privateKey: rsa,
                algorithm: 'ed25519-sha256',
              },
            ],
          }),
        /needs an ed25519 key/,
      ],
      [
        () =>
          sign(MESSAGE, {
            signatures: [
              { domain: 'example.com', selector: 's', privateKey: createPublicKey(rsa) },
            ],
          }),
        /not a private KeyObject/,
      ],
      [
        () =>
          sign(MESSAGE, {
            signatures: [
              { domain: 'example.com', selector: 's', privateKey: rsa, headers: ['to'] },
            ],
          }),
        /must include From/,
      ],
      [
        () =>
          sign(MESSAGE, {
            signatures: [
              { domain: 'example.com', selector: 's', privateKey: rsa, identity: 'a@example.org' },
            ],
          }),
        /not within example.com/,
      ],
      [() => sign(MESSAGE, { signatures: [] }), /no signatures/],
    ];
    for (const [run, pattern] of cases) {
      expect(run).toThrow(DkimSignError);
      expect(run).toThrow(pattern);
    }
  });
});
