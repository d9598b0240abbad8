/**
 * The whole-message fast path of `sign` and `signMessage` against the plain path. The fast path
 * skips `toCrlf` and finds bare LFs during the body scan, hashes short bodies in one call and
 * builds the header data in a reused buffer. The plain path is `toCrlf`, then the streaming
 * signer fed in small chunks, and a reference canonicalization written from RFC 6376 over
 * strings. Inputs come from a seeded generator, so a failure can be reproduced.
 */
import { createHash, generateKeyPairSync } from 'node:crypto';

import { describe, expect, it } from 'vitest';

import { splitMessage, toCrlf } from '../message/index.js';
import { BodyCanonicalizer, findBareLf } from './canonicalize.js';
import { Sha256Sink } from './crypto.js';
import { createSigner, sign, signMessage } from './index.js';
import type { Canonicalization, CanonicalizationPair } from './types.js';
import { loadChunk } from './wasm-scan.js';

function createRandom(seed: number): (limit: number) => number {
  let state = seed;
  return (limit) => {
    // xorshift32
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) % limit;
  };
}

const ed25519 = generateKeyPairSync('ed25519').privateKey;
const time = new Date('2026-12-04T01:00:00Z');

function options(canonicalization: CanonicalizationPair) {
  return {
    time,
    signatures: [{ domain: 'example.com', selector: 's', privateKey: ed25519, canonicalization }],
  };
}

/** Signs through the streaming signer in chunks of 1 to 7 bytes: no fast path is taken. */
function signPlain(message: Buffer, canonicalization: CanonicalizationPair): string {
  const signer = createSigner(options(canonicalization));
  const random = createRandom(message.length + 1);
  for (let start = 0; start < message.length;) {
    const size = 1 + random(7);
    signer.update(message.subarray(start, start + size));
    start += size;
  }
  return signer.finish();
}

/**
 * Relaxed and simple body canonicalization straight from RFC 6376 sections 3.4.3 and 3.4.4,
 * over Latin-1 strings, for a body with CRLF line endings.
 */
function referenceBody(method: Canonicalization, body: Buffer): Buffer {
  const lines = body.toString('latin1').split('\r\n');
  const unterminated = lines.pop() ?? '';
  let out = lines.map((line) =>
    method === 'relaxed' ? line.replace(/[ \t]+/g, ' ').replace(/ $/, '') : line,
  );
  if (unterminated !== '')
    out.push(method === 'relaxed' ? unterminated.replace(/[ \t]+/g, ' ') : unterminated);
  while (out.length > 0 && out[out.length - 1] === '') out = out.slice(0, -1);
  if (out.length === 0) return Buffer.from(method === 'simple' ? '\r\n' : '', 'latin1');
  return Buffer.from(out.map((line) => `${line}\r\n`).join(''), 'latin1');
}

function bodyHashTag(fields: string): string {
  const match = /bh=([^;]+);/.exec(fields.replace(/\r\n[ \t]/g, ''));
  return match?.[1] ?? '';
}

const HEADER = 'From: a@example.com\r\nTo: b@example.net\r\nSubject: a test\r\n\r\n';

/** Checks one message on both paths, for relaxed and simple bodies. */
function expectSamePaths(message: Buffer, label: string): void {
  for (const pair of ['relaxed/relaxed', 'simple/simple', 'relaxed/simple'] as const) {
    const fast = sign(message, options(pair));
    expect(fast, `${label} ${pair}`).toBe(signPlain(message, pair));
    const body = splitMessage(toCrlf(message)).body;
    const expected = createHash('sha256')
      .update(referenceBody(pair.endsWith('relaxed') ? 'relaxed' : 'simple', body))
      .digest('base64');
    expect(bodyHashTag(fast), `${label} ${pair} bh=`).toBe(expected);
  }
  const signed = signMessage(message, options('relaxed/relaxed'));
  const fields = sign(message, options('relaxed/relaxed'));
  expect(
    signed.equals(Buffer.concat([Buffer.from(fields, 'latin1'), toCrlf(message)])),
    label,
  ).toBe(true);
}

/** Builds a random body from pieces that exercise every branch of the scans. */
function randomBody(random: (limit: number) => number, pieces: number): string {
  const alphabet = [
    'word',
    ' ',
    '  ',
    '\t',
    ' \t ',
    '\r\n',
    '\r\n',
    '\r',
    '\n',
    ' \n',
    '\t\n',
    '\r\r\n',
    '\x00',
    '\x1f',
    '\xa0',
    'a longer run of ordinary text',
  ];
  let text = '';
  for (let index = 0; index < pieces; index++) text += alphabet[random(alphabet.length)];
  return text;
}

describe('whole-message fast path', () => {
  const cases: Record<string, string> = {
    'empty body': '',
    'body of only CRLFs': '\r\n\r\n\r\n\r\n',
    'no final CRLF': 'one line\r\nlast line',
    'trailing WSP on the last line only': `${'clean line\r\n'.repeat(60)}last line \t `,
    'trailing WSP before the final CRLF': `${'clean line\r\n'.repeat(60)}last line \t \r\n`,
    'lone CR': `${'text\r'.repeat(100)}end\r`,
    tabs: `${'col\tcol\t\tcol\r\n'.repeat(50)}`,
    'bare LF at the body start': `\n${'line\r\n'.repeat(100)}`,
    'bare LF after a space run': `${'x'.repeat(600)}  \nnext\r\n`,
    'bare LF after a tab': `${'x'.repeat(600)}\t\nnext\r\n`,
    'bare LF in a short body': 'a\nb\r\n',
    'CR LF split by WSP': `${'x'.repeat(600)}\r \n`,
    'whitespace-only lines at the end': `${'text\r\n'.repeat(100)} \r\n\t\r\n  \r\n`,
    // The relaxed scan works in blocks of 16 KiB. These cases put a CRLF, a run or a bare LF
    // across the first block boundary, which is at byte 16384 of the body.
    'CRLF across a block boundary at the end': `${'x'.repeat(16383)}\r\n\r\n`,
    'CRLF across a block boundary': `${'x'.repeat(16383)}\r\nmore\r\n`,
    'run across a block boundary': `${'x'.repeat(16383)}  y\r\n`,
    'trailing run at a block boundary': `${'x'.repeat(16382)}  \r\n\r\n`,
    'bare LF after a block boundary': `${'x'.repeat(16384)}\nz\r\n`,
    'bare LF on a block boundary': `${'x'.repeat(16383)}\ny\r\n`,
  };
  for (const [name, body] of Object.entries(cases)) {
    it(`matches the plain path: ${name}`, () => {
      expectSamePaths(Buffer.from(HEADER + body, 'latin1'), name);
    });
  }

  it('matches the plain path with a bare LF in the header', () => {
    const message = Buffer.from('From: a@example.com\nTo: b@example.net\r\n\r\nbody\r\n', 'latin1');
    expectSamePaths(message, 'bare LF header');
  });

  it('matches the plain path for a header with LF line endings only', () => {
    expectSamePaths(Buffer.from('From: a@example.com\nSubject: x\n\nbody \n', 'latin1'), 'LF');
  });

  it('matches the plain path without a blank line', () => {
    expectSamePaths(Buffer.from('From: a@example.com\r\nSubject: x\r\n', 'latin1'), 'no body');
  });

  it('matches the plain path on seeded random bodies', () => {
    const random = createRandom(20261204);
    for (let round = 0; round < 150; round++) {
      // Up to about 8 KiB: small bodies take the JavaScript scan, larger ones WebAssembly.
      const body = randomBody(random, random(400));
      expectSamePaths(Buffer.from(HEADER + body, 'latin1'), `round ${round}`);
    }
  });

  it('matches the plain path on seeded random bodies over several scan blocks', () => {
    const random = createRandom(16384);
    for (let round = 0; round < 8; round++) {
      const body = Buffer.from(randomBody(random, 4000 + random(4000)), 'latin1');
      expectSamePaths(Buffer.concat([Buffer.from(HEADER), body]), `round ${round}`);
      // The same body without bare LFs, so the fast path runs through every block.
      const crlf = toCrlf(body);
      expect(findBareLf(crlf, crlf.length)).toBe(-1);
      expectSamePaths(Buffer.concat([Buffer.from(HEADER), crlf]), `round ${round} CRLF`);
    }
  });

  it('matches the plain path on a 3 MB body', () => {
    const random = createRandom(3);
    const line = 'The quick brown fox jumps over the lazy dog, and the dog does not mind.\r\n';
    let body = line.repeat(3_000_000 / line.length);
    // A few runs and a tab far into the body, past the 8 KiB of a collected body hash.
    const at = 2_000_000 + random(1000);
    body = `${body.slice(0, at)}  \t ${body.slice(at)}trailing  `;
    expectSamePaths(Buffer.from(HEADER + body, 'latin1'), '3 MB');
  });

  it('falls back for a bare LF deep in a 3 MB body', () => {
    const line = 'The quick brown fox jumps over the lazy dog, and the dog does not mind.\r\n';
    const body = `${line.repeat(3_000_000 / line.length)}bare\nend\r\n`;
    expectSamePaths(Buffer.from(HEADER + body, 'latin1'), '3 MB bare LF');
  });
});

/** Scans like `scan` of `wasm-scan.ts`, one byte at a time. */
function referenceScan(bytes: Buffer, start: number, end: number): number {
  for (let index = start; index < end; index++) {
    const byte = bytes[index];
    const next = index + 1 < end ? bytes[index + 1] : undefined;
    if (byte === 0x09) return index;
    if (byte === 0x20 && next !== undefined && next <= 0x20) return index;
    if (next === 0x0a && byte !== 0x0d) return index;
  }
  return -1;
}

function referenceBareLf(bytes: Buffer, start: number, end: number): number {
  for (let index = start; index + 1 < end; index++)
    if (bytes[index + 1] === 0x0a && bytes[index] !== 0x0d) return index;
  return -1;
}

describe('WebAssembly scans', () => {
  it('match a byte-by-byte scan on seeded random input', () => {
    const random = createRandom(99);
    const interesting = [0x09, 0x0a, 0x0d, 0x20, 0x00, 0x1f, 0x21, 0xff];
    for (let round = 0; round < 3000; round++) {
      const length = random(160);
      const density = 1 + random(40);
      const bytes = Buffer.alloc(length, 0x61);
      for (let index = 0; index < length; index++)
        if (random(density) === 0) bytes[index] = interesting[random(interesting.length)] ?? 0;
      const loaded = loadChunk(bytes, length);
      expect(loaded).not.toBeNull();
      if (loaded === null) return;
      const start = length === 0 ? 0 : random(length);
      const end = start + random(length - start + 1);
      const label = `${bytes.toString('hex')} [${start}, ${end})`;
      expect(loaded.scan(start, end), label).toBe(referenceScan(bytes, start, end));
      expect(loaded.findBareLf(start, end), label).toBe(referenceBareLf(bytes, start, end));
    }
  });

  it('find a match in the last bytes of a long chunk', () => {
    for (const tail of ['\t', '  ', ' \r', 'a\n']) {
      const bytes = Buffer.from(`${'a'.repeat(1000)}${tail}`, 'latin1');
      const loaded = loadChunk(bytes, bytes.length);
      expect(loaded?.scan(0, bytes.length), JSON.stringify(tail)).toBe(1000);
    }
  });
});

describe('findBareLf', () => {
  it('finds only LFs without a CR before them', () => {
    expect(findBareLf(Buffer.from('a\r\nb\r\n'), 6)).toBe(-1);
    expect(findBareLf(Buffer.from('a\r\nb\nc'), 6)).toBe(4);
    expect(findBareLf(Buffer.from('a\r\nb\nc'), 4)).toBe(-1);
    // Index 0 has no byte before it here: the caller checks it.
    expect(findBareLf(Buffer.from('\nabc'), 4)).toBe(-1);
  });
});

describe('updateCheckingLineEndings', () => {
  it('reports a bare LF and stops writing', () => {
    const written: Buffer[] = [];
    const canonicalizer = new BodyCanonicalizer('relaxed', {
      update: (data: Buffer) => written.push(Buffer.from(data)),
    });
    expect(canonicalizer.updateCheckingLineEndings(Buffer.from('fine\r\nbad\nline\r\n'))).toBe(
      false,
    );
    canonicalizer.update(Buffer.from('more\r\n'));
    expect(Buffer.concat(written).toString()).not.toContain('more');
  });

  it('accepts a CRLF body', () => {
    const canonicalizer = new BodyCanonicalizer('simple', { update: () => undefined });
    expect(canonicalizer.updateCheckingLineEndings(Buffer.from('a\r\n\r\nb\r\n'))).toBe(true);
  });
});

describe('Sha256Sink', () => {
  it('matches createHash for collected and streamed bodies', () => {
    const random = createRandom(5);
    for (const total of [0, 1, 1000, 8 * 1024, 8 * 1024 + 1, 16 * 1024, 100_000]) {
      const data = Buffer.alloc(total);
      for (let index = 0; index < total; index++) data[index] = random(256);
      const sink = new Sha256Sink();
      for (let start = 0; start < total;) {
        const size = 1 + random(5000);
        sink.update(data.subarray(start, start + size));
        start += size;
      }
      expect(sink.digest().toString('hex'), `${total} bytes`).toBe(
        createHash('sha256').update(data).digest('hex'),
      );
    }
  });

  it('keeps two open sinks apart', () => {
    const first = new Sha256Sink();
    const second = new Sha256Sink();
    first.update(Buffer.from('first'));
    second.update(Buffer.from('second'));
    first.update(Buffer.from(' part'));
    expect(first.digest()).toEqual(createHash('sha256').update('first part').digest());
    expect(second.digest()).toEqual(createHash('sha256').update('second').digest());
  });
});
