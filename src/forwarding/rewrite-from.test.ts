import { describe, expect, it } from 'vitest';

import { getHeader, getHeaders, parseHeaderFields, splitMessage } from '../message/index.js';
import { encodeDisplayName, rewriteFrom } from './rewrite-from.js';

function fieldsOf(message: Buffer) {
  return parseHeaderFields(splitMessage(message).header);
}

describe('rewriteFrom', () => {
  it('moves the author to Reply-To', () => {
    const input = Buffer.from('From: Ann <ann@origin.test>\r\nSubject: s\r\n\r\nbody\r\n');
    const output = rewriteFrom(input, 'list@club.test')!;
    const fields = fieldsOf(output);
    expect(getHeaders(fields, 'from')).toEqual(['"Ann via club.test" <list@club.test>']);
    expect(getHeader(fields, 'reply-to')).toBe('Ann <ann@origin.test>');
    expect(getHeader(fields, 'subject')).toBe('s');
    expect(splitMessage(output).body.toString()).toBe('body\r\n');
  });

  it('keeps an existing Reply-To', () => {
    const input = Buffer.from(
      'From: ann@origin.test\r\nReply-To: team@origin.test\r\n\r\nbody\r\n',
    );
    const fields = fieldsOf(rewriteFrom(input, 'list@club.test')!);
    expect(getHeaders(fields, 'reply-to')).toEqual(['team@origin.test']);
    expect(getHeader(fields, 'from')).toBe('"ann@origin.test via club.test" <list@club.test>');
  });

  it('returns undefined without a From field', () => {
    expect(
      rewriteFrom(Buffer.from('Subject: s\r\n\r\nbody\r\n'), 'list@club.test'),
    ).toBeUndefined();
  });
});

describe('encodeDisplayName', () => {
  it('quotes ASCII names', () => {
    expect(encodeDisplayName('Ann "A" \\ B')).toBe('"Ann \\"A\\" \\\\ B"');
  });

  it('encodes other names as an RFC 2047 word', () => {
    expect(encodeDisplayName('Zoë')).toBe(`=?UTF-8?B?${Buffer.from('Zoë').toString('base64')}?=`);
  });
});
