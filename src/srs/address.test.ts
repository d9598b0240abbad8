import { describe, expect, it } from 'vitest';

import { isDomain, isDotAtom, parseLocalPart, quote, splitAddress } from './address.js';

describe('splitAddress', () => {
  it('splits at the last @', () => {
    expect(splitAddress('"a@b"@example.com')).toEqual({
      localPart: '"a@b"',
      domain: 'example.com',
    });
  });

  it('rejects an empty local part or domain', () => {
    expect(splitAddress('@example.com')).toBeUndefined();
    expect(splitAddress('user@')).toBeUndefined();
    expect(splitAddress('user')).toBeUndefined();
  });
});

describe('parseLocalPart', () => {
  it('accepts atoms, dots in any place and UTF-8', () => {
    for (const local of ['user', 'a.b', 'john..doe', '.x', 'jörg', "o'brien", 'a=b+c']) {
      expect(parseLocalPart(local)).toEqual({ content: local, quoted: false });
    }
  });

  it('unquotes quoted strings and quoted pairs', () => {
    expect(parseLocalPart('"a b"')).toEqual({ content: 'a b', quoted: true });
    expect(parseLocalPart('"x\\"y\\\\z"')).toEqual({ content: 'x"y\\z', quoted: true });
    expect(parseLocalPart('"a@b"')).toEqual({ content: 'a@b', quoted: true });
  });

  it('rejects what is neither', () => {
    for (const local of ['a b', 'a"b', '"open', '"bad\\"', '""', 'a@b', 'tab\there', '"\u0001"']) {
      expect(parseLocalPart(local)).toBeUndefined();
    }
  });
});

describe('quote', () => {
  it('escapes quotes and backslashes', () => {
    expect(quote('x"y\\z')).toBe('"x\\"y\\\\z"');
    expect(parseLocalPart(quote('x"y\\z'))?.content).toBe('x"y\\z');
  });
});

describe('isDotAtom', () => {
  it('follows RFC 5322 strictly', () => {
    expect(isDotAtom('a.b')).toBe(true);
    expect(isDotAtom('a..b')).toBe(false);
    expect(isDotAtom('.a')).toBe(false);
    expect(isDotAtom('a b')).toBe(false);
  });
});

describe('isDomain', () => {
  it('accepts host names, U-labels and address literals', () => {
    for (const domain of ['example.com', 'münchen.de', '[192.0.2.1]', '[IPv6:2001:db8::1]']) {
      expect(isDomain(domain)).toBe(true);
    }
  });

  it('rejects separators, spaces and empty labels', () => {
    for (const domain of ['a=b.com', 'a b.com', 'a..com', '.com', '[1.2.3.4', '[a=b]', '']) {
      expect(isDomain(domain)).toBe(false);
    }
  });

  it('rejects a domain over 255 octets', () => {
    expect(isDomain(`${'a'.repeat(60)}.`.repeat(5) + 'com')).toBe(false);
  });
});
