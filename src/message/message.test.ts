import { describe, expect, it } from 'vitest';

import {
  createMessageId,
  CrlfNormalizer,
  domainOf,
  fieldValue,
  formatDate,
  formatHeaderField,
  formatReceived,
  getHeader,
  getHeaders,
  parseAddressList,
  parseHeaderFields,
  prependHeaderFields,
  splitMessage,
  toCrlf,
  toSmtpLineEndings,
  unfold,
} from './index.js';

describe('line endings', () => {
  it('turns bare LF into CRLF and leaves CRLF and lone CR', () => {
    expect(toCrlf(Buffer.from('a\nb\r\nc\rd\n')).toString()).toBe('a\r\nb\r\nc\rd\r\n');
  });

  it('returns the same buffer when nothing changes', () => {
    const input = Buffer.from('a\r\nb\r\n');
    expect(toCrlf(input)).toBe(input);
  });

  it('turns lone CR into CRLF for SMTP', () => {
    const input = Buffer.from('a\rb\r\nc\nd\r\r\ne\r');
    expect(toSmtpLineEndings(input).toString()).toBe('a\r\nb\r\nc\r\nd\r\n\r\ne\r\n');
  });

  it('keeps CRLF input unchanged for SMTP', () => {
    const input = Buffer.from('a\r\nb\r\n');
    expect(toSmtpLineEndings(input)).toBe(input);
  });

  it('normalizes a stream split at every byte like one buffer', () => {
    const input = Buffer.from('x\r\ny\n\nz\r\r\n\n');
    const whole = toCrlf(input).toString();
    for (let split = 0; split <= input.length; split++) {
      const normalizer = new CrlfNormalizer();
      const output = Buffer.concat([
        normalizer.push(input.subarray(0, split)),
        normalizer.push(input.subarray(split)),
      ]);
      expect(output.toString(), `split at ${split}`).toBe(whole);
    }
  });
});

describe('header fields', () => {
  const message = Buffer.from(
    'From: a@example.com\r\nSubject: one\r\n two\r\n\tthree\r\nX-Name : v\r\nno colon here\r\n' +
      'Subject: second\r\nX-Utf8: voil\xc3\xa0\xc2\xa0\r\n\r\nbody\r\n',
    'latin1',
  );

  it('splits header and body at the blank line', () => {
    const parts = splitMessage(message);
    expect(parts.body.toString()).toBe('body\r\n');
    expect(parts.hasBody).toBe(true);
    expect(splitMessage(Buffer.from('A: b\r\n')).hasBody).toBe(false);
    expect(splitMessage(Buffer.from('\r\nbody')).body.toString()).toBe('body');
  });

  it('keeps every byte of every field', () => {
    const { header } = splitMessage(message);
    const fields = parseHeaderFields(header);
    expect(Buffer.concat(fields.map((field) => field.raw)).equals(header)).toBe(true);
    expect(fields.map((field) => field.key)).toEqual([
      'from',
      'subject',
      'x-name',
      '',
      'subject',
      'x-utf8',
    ]);
  });

  it('unfolds and reads values', () => {
    const fields = parseHeaderFields(splitMessage(message).header);
    expect(getHeader(fields, 'SUBJECT')).toBe('one two\tthree');
    expect(getHeaders(fields, 'subject')).toEqual(['one two\tthree', 'second']);
    expect(getHeader(fields, 'x-name')).toBe('v');
    expect(getHeader(fields, 'missing')).toBeUndefined();
    expect(unfold(Buffer.from('a\r\n b\r\nc')).toString()).toBe('a b\r\nc');
  });

  it('treats 0xA0 as text, not whitespace', () => {
    const fields = parseHeaderFields(splitMessage(message).header);
    const field = fields.find((candidate) => candidate.key === 'x-utf8');
    expect(fieldValue(field!)).toBe('voilà\u00a0');
  });

  it('prepends fields', () => {
    const output = prependHeaderFields(Buffer.from('From: a@b\r\n\r\n'), 'Received: x\r\n');
    expect(output.toString()).toBe('Received: x\r\nFrom: a@b\r\n\r\n');
  });
});

describe('folding', () => {
  it('folds at spaces to 78 columns and unfolds exactly', () => {
    const value = Array.from({ length: 30 }, (_, index) => `word${index}`).join(' ');
    const folded = formatHeaderField('Subject', value);
    for (const line of folded.split('\r\n')) expect(line.length).toBeLessThanOrEqual(78);
    expect(unfold(Buffer.from(folded)).toString()).toBe(`Subject: ${value}\r\n`);
  });

  it('keeps a long word whole and removes line breaks from values', () => {
    const folded = formatHeaderField('X-Long', `${'a'.repeat(100)} b`);
    expect(folded).toBe(`X-Long: ${'a'.repeat(100)}\r\n b\r\n`);
    expect(formatHeaderField('X', 'a\r\nInjected: yes')).toBe('X: a Injected: yes\r\n');
  });
});

describe('addresses', () => {
  it('parses names, quotes, comments and groups', () => {
    expect(
      parseAddressList(
        '"Doe, John" <john@example.com>, jane@example.org (Jane), team: a@x.test, b@y.test;',
      ),
    ).toEqual([
      { address: 'john@example.com', name: 'Doe, John' },
      { address: 'jane@example.org' },
      { address: 'a@x.test' },
      { address: 'b@y.test' },
    ]);
    expect(parseAddressList('Zoë <zoë@exämple.com>')).toEqual([
      { address: 'zoë@exämple.com', name: 'Zoë' },
    ]);
    expect(parseAddressList('<@route.test:user@example.com>')).toEqual([
      { address: 'user@example.com' },
    ]);
    expect(parseAddressList('undisclosed-recipients:;')).toEqual([]);
  });

  it('returns the lower-case domain', () => {
    expect(domainOf('User@Example.COM')).toBe('example.com');
    expect(domainOf('nodomain')).toBeUndefined();
  });
});

describe('added fields', () => {
  it('formats Date, Message-ID and Received', () => {
    const date = new Date('2026-12-03T22:51:20Z');
    expect(formatDate(date)).toBe('Thu, 03 Dec 2026 22:51:20 +0000');
    expect(createMessageId('example.com', date)).toMatch(
      /^<[0-9a-z]+\.[A-Za-z0-9_-]{16}@example\.com>$/,
    );
    expect(createMessageId('example.com')).not.toBe(createMessageId('example.com'));
    expect(
      formatReceived({
        from: 'client.test (192.0.2.1)',
        by: 'mx.example.com',
        with: 'ESMTPS',
        id: 'Q1',
        for: 'a@b.test',
        date,
      }),
    ).toBe(
      'from client.test (192.0.2.1) by mx.example.com with ESMTPS id Q1 for <a@b.test>; Thu, 03 Dec 2026 22:51:20 +0000',
    );
  });
});
