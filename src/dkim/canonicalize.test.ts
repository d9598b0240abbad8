import { createHash } from 'node:crypto';

import { describe, expect, it } from 'vitest';

import { BodyCanonicalizer, canonicalizeHeader, LimitedSink } from './canonicalize.js';
import type { Canonicalization } from './types.js';

/** Collects the canonical bytes. */
class Collector {
  parts: Buffer[] = [];
  update(data: Buffer): void {
    this.parts.push(Buffer.from(data));
  }
  get bytes(): Buffer {
    return Buffer.concat(this.parts);
  }
}

function canonicalize(method: Canonicalization, chunks: Buffer[]): Buffer {
  const collector = new Collector();
  const canonicalizer = new BodyCanonicalizer(method, collector);
  for (const chunk of chunks) canonicalizer.update(chunk);
  canonicalizer.finish();
  return collector.bytes;
}

/**
 * A reference written straight from RFC 6376 sections 3.4.3 and 3.4.4 over Latin-1 strings,
 * line by line, to check the streaming byte version against.
 */
function reference(method: Canonicalization, body: Buffer): Buffer {
  const text = body.toString('latin1');
  const lines = text.split('\r\n');
  const terminated = lines.pop() ?? '';
  let out = lines.map((line) => (method === 'relaxed' ? relaxLine(line) : line));
  // A final line without CRLF is still a line; step b adds its CRLF.
  if (terminated !== '')
    out.push(method === 'relaxed' ? terminated.replace(/[ \t]+/g, ' ') : terminated);
  while (out.length > 0 && out[out.length - 1] === '') out = out.slice(0, -1);
  if (out.length === 0) return Buffer.from(method === 'simple' ? '\r\n' : '', 'latin1');
  return Buffer.from(out.map((line) => `${line}\r\n`).join(''), 'latin1');
}

function relaxLine(line: string): string {
  return line.replace(/[ \t]+/g, ' ').replace(/ $/, '');
}

const CASES: Record<string, string> = {
  empty: '',
  'one CRLF': '\r\n',
  'only blank lines': '\r\n\r\n\r\n',
  'rfc 6376 3.4.5 body': ' C \r\nD \t E\r\n\r\n\r\n',
  'no final CRLF': 'abc',
  'trailing WSP without CRLF': 'abc \t ',
  'whitespace-only lines at end': 'a\r\n \r\n\t\r\n',
  'leading WSP': '   x\r\n\ty\r\n',
  'bare CR': 'a\rb \r c\r',
  'nbsp bytes are not WSP': 'a\xa0\r\n\xc2\xa0 \r\n',
  'long runs': `${' '.repeat(300)}x${'\t'.repeat(300)}\r\n`,
};

describe('body canonicalization', () => {
  for (const method of ['simple', 'relaxed'] as const) {
    for (const [name, text] of Object.entries(CASES)) {
      it(`${method}: ${name} matches the reference`, () => {
        const body = Buffer.from(text, 'latin1');
        expect(canonicalize(method, [body]).toString('latin1')).toBe(
          reference(method, body).toString('latin1'),
        );
      });
    }
  }

  it('relaxed example of RFC 6376 section 3.4.5', () => {
    expect(canonicalize('relaxed', [Buffer.from(' C \r\nD \t E\r\n\r\n\r\n')]).toString()).toBe(
      ' C\r\nD E\r\n',
    );
    expect(canonicalize('simple', [Buffer.from(' C \r\nD \t E\r\n\r\n\r\n')]).toString()).toBe(
      ' C \r\nD \t E\r\n',
    );
  });

  it('empty body hashes as the RFC says', () => {
    const simple = createHash('sha256').update(canonicalize('simple', [])).digest('base64');
    const relaxed = createHash('sha256').update(canonicalize('relaxed', [])).digest('base64');
    expect(simple).toBe('frcCV1k9oG9oKj3dpUqdJg1PxRT2RSN/XKdLCPjaYaY=');
    expect(relaxed).toBe('47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=');
  });

  it('two chunks split at every byte match one buffer', () => {
    const body = Buffer.from(
      'a  b\t\r\n \r\nc \r\r\n\r\n d\t \r\n\r\n  \r\nend  \r\n\r\n',
      'latin1',
    );
    for (const method of ['simple', 'relaxed'] as const) {
      const whole = canonicalize(method, [body]).toString('latin1');
      for (let split = 0; split <= body.length; split++) {
        const parts = [body.subarray(0, split), body.subarray(split)];
        expect(canonicalize(method, parts).toString('latin1'), `${method} split at ${split}`).toBe(
          whole,
        );
      }
    }
  });

  it('one-byte chunks match one buffer', () => {
    const body = Buffer.from(' x  \r\n\t\t\r\n\r\ny \r\n \r\n\r\n', 'latin1');
    for (const method of ['simple', 'relaxed'] as const) {
      const bytes = [...body].map((byte) => Buffer.from([byte]));
      expect(canonicalize(method, bytes)).toEqual(canonicalize(method, [body]));
    }
  });

  it('large random bodies match the reference', () => {
    // Chunks of 512 bytes and more take the WebAssembly scan; smaller ones the JavaScript loop.
    let seed = 777;
    const random = (limit: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % limit;
    };
    const alphabet = [' ', '\t', '\r\n', 'word', 'x', '\r', '\xa0', '  ', 'longer words here'];
    for (let round = 0; round < 200; round++) {
      let text = '';
      const length = 100 + random(900);
      for (let index = 0; index < length; index++) text += alphabet[random(alphabet.length)];
      const body = Buffer.from(text, 'latin1');
      const split = random(body.length);
      for (const method of ['simple', 'relaxed'] as const) {
        const expected = reference(method, body).toString('latin1');
        expect(canonicalize(method, [body]).toString('latin1'), `round ${round}`).toBe(expected);
        const parts = [body.subarray(0, split), body.subarray(split)];
        expect(canonicalize(method, parts).toString('latin1'), `round ${round} split`).toBe(
          expected,
        );
      }
    }
  });

  it('random bodies in random chunks match the reference', () => {
    let seed = 12345;
    const random = (limit: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % limit;
    };
    const alphabet = [' ', '\t', '\r\n', '\r\n', 'a', 'b', '\r', '\xa0', '  '];
    for (let round = 0; round < 300; round++) {
      let text = '';
      const length = random(60);
      for (let index = 0; index < length; index++) text += alphabet[random(alphabet.length)];
      const body = Buffer.from(text, 'latin1');
      const chunks: Buffer[] = [];
      for (let start = 0; start < body.length;) {
        const size = 1 + random(8);
        chunks.push(body.subarray(start, start + size));
        start += size;
      }
      for (const method of ['simple', 'relaxed'] as const) {
        expect(canonicalize(method, chunks).toString('latin1'), JSON.stringify(text)).toBe(
          reference(method, body).toString('latin1'),
        );
      }
    }
  });
});

describe('header canonicalization', () => {
  it('relaxed lowercases, unfolds and collapses WSP', () => {
    const raw = Buffer.from('SubJect :  A \t folded\r\n\t value  \r\n');
    expect(canonicalizeHeader(raw, 'relaxed').toString()).toBe('subject:A folded value\r\n');
  });

  it('relaxed keeps 0xA0 bytes', () => {
    const raw = Buffer.from('Subject: voil\xc3\xa0 \xc2\xa0\r\n', 'latin1');
    expect(canonicalizeHeader(raw, 'relaxed').toString('latin1')).toBe(
      'subject:voil\xc3\xa0 \xc2\xa0\r\n',
    );
  });

  it('simple keeps the field as it is', () => {
    const raw = Buffer.from('SubJect :  A \r\n\tB\r\n');
    expect(canonicalizeHeader(raw, 'simple')).toEqual(raw);
  });

  it('relaxed of an empty value', () => {
    expect(canonicalizeHeader(Buffer.from('Cc:\t \r\n'), 'relaxed').toString()).toBe('cc:\r\n');
  });
});

describe('LimitedSink', () => {
  it('forwards the first bytes and counts all', () => {
    const collector = new Collector();
    const sink = new LimitedSink(collector, 5);
    sink.update(Buffer.from('abc'));
    sink.update(Buffer.from('defg'));
    sink.update(Buffer.from('h'));
    expect(collector.bytes.toString()).toBe('abcde');
    expect(sink.total).toBe(8);
  });
});
