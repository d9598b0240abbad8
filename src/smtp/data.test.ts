import { Readable } from 'node:stream';

import { describe, expect, it } from 'vitest';

import { readMessage, type ContentLimits } from './data.js';

const NO_LIMITS: ContentLimits = { maxMessageSize: 0, maxLineLength: 0, maxHeaderSize: 0 };

function streamOf(chunks: (string | Buffer)[]): Readable {
  return Readable.from(chunks.map((chunk) => Buffer.from(chunk)));
}

/** Splits a message into chunks at every position, to cover CRLF split across chunks. */
function everySplit(text: string): (string | Buffer)[][] {
  const bytes = Buffer.from(text);
  const splits: Buffer[][] = [];
  for (let at = 1; at < bytes.length; at++)
    splits.push([bytes.subarray(0, at), bytes.subarray(at)]);
  return splits;
}

describe('readMessage', () => {
  it('returns the message bytes unchanged', async () => {
    const text = 'Subject: hi\r\n\r\nbody\r\n';
    const verdict = await readMessage(streamOf(['Subject: hi\r\n', '\r\nbody\r\n']), NO_LIMITS);
    expect(verdict).toEqual({ ok: true, message: Buffer.from(text) });
  });

  it('rejects a message over the size limit', async () => {
    const limits = { ...NO_LIMITS, maxMessageSize: 10 };
    const verdict = await readMessage(streamOf(['Subject: x\r\n', '\r\n12345\r\n']), limits);
    expect(verdict).toEqual({ ok: false, violation: 'message-size', size: 21 });
  });

  it('accepts a line of exactly the limit with its CRLF', async () => {
    const limits = { ...NO_LIMITS, maxLineLength: 1000 };
    const line = 'a'.repeat(998);
    const verdict = await readMessage(streamOf([`X: y\r\n\r\n${line}\r\n`]), limits);
    expect(verdict.ok).toBe(true);
  });

  it('rejects a line one octet over the limit', async () => {
    const limits = { ...NO_LIMITS, maxLineLength: 1000 };
    const line = 'a'.repeat(999);
    const verdict = await readMessage(streamOf([`X: y\r\n\r\n${line}\r\n`]), limits);
    expect(verdict.ok).toBe(false);
    expect(verdict.ok ? undefined : verdict.violation).toBe('line-length');
  });

  it('measures lines the same wherever the chunks split', async () => {
    const limits = { ...NO_LIMITS, maxLineLength: 12 };
    // The longest line has 10 octets of text: allowed with its CRLF, whatever the split.
    const text = 'X: abcdefg\r\n\r\nshort\r\n';
    for (const chunks of everySplit(text)) {
      const verdict = await readMessage(streamOf(chunks), limits);
      expect(verdict.ok).toBe(true);
    }
    const tight = { ...NO_LIMITS, maxLineLength: 11 };
    for (const chunks of everySplit(text)) {
      const verdict = await readMessage(streamOf(chunks), tight);
      expect(verdict.ok).toBe(false);
    }
  });

  it('counts only the header section against the header limit', async () => {
    const header = 'Subject: 1234567890\r\n'; // 21 octets
    const limits = { ...NO_LIMITS, maxHeaderSize: 21 };
    const body = 'b'.repeat(500) + '\r\n';
    for (const chunks of everySplit(`${header}\r\n${body}`).slice(0, 40)) {
      const verdict = await readMessage(streamOf(chunks), limits);
      expect(verdict.ok).toBe(true);
    }
  });

  it('rejects a header section over the limit', async () => {
    const limits = { ...NO_LIMITS, maxHeaderSize: 30 };
    const verdict = await readMessage(
      streamOf(['Subject: 1234567890\r\n', 'X-Long: 1234567890\r\n\r\nbody\r\n']),
      limits,
    );
    expect(verdict.ok ? undefined : verdict.violation).toBe('header-size');
  });

  it('counts a header line split with bare LF endings', async () => {
    const limits = { ...NO_LIMITS, maxHeaderSize: 12, maxLineLength: 1000 };
    const verdict = await readMessage(streamOf(['A: 1\nB: 2\n\nbody that is long\n']), limits);
    expect(verdict.ok).toBe(true);
  });
});
