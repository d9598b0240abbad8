import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';

import { asciiLowercase, createHash, verifyHash } from './hash.js';

describe('createHash', () => {
  // Hashes that postsrsd 1.10 computed with the secret "testsecret" on day JW.
  it.each([
    [['JW', 'example.com', 'user'], 'nN3C'],
    [['JW', 'Example.COM', 'User+x'], 'uV1c'],
    [['JW', 'münchen.de', 'u'], 'DcPl'],
    [['JW', 'MÜNCHEN.de', 'u'], 'qgeO'],
    [['other.com', '=abcd=XY=ex.com=u'], 'YDiH'],
  ])('matches postsrsd for %j', (fields, expected) => {
    expect(createHash('testsecret', fields.join(''), 4, 'base64')).toBe(expected);
  });

  it('equals a truncated HMAC-SHA1 over the lowercased concatenation', () => {
    const digest = createHmac('sha1', 'k').update('ab.example.comuser').digest('base64');
    expect(createHash('k', 'AB.Example.COMUSER', 10, 'base64')).toBe(digest.slice(0, 10));
  });

  it('emits the URL-safe alphabet on request', () => {
    // "Fw//" came from postsrsd for "x y@a.com" on day JW.
    expect(createHash('testsecret', 'JWa.comx y', 4, 'base64')).toBe('Fw//');
    expect(createHash('testsecret', 'JWa.comx y', 4, 'base64url')).toBe('Fw__');
  });
});

describe('verifyHash', () => {
  const fields = 'JWa.comx y';

  it('accepts both alphabets and any case', () => {
    for (const hash of ['Fw//', 'Fw__', 'fw//', 'FW__']) {
      expect(verifyHash(hash, ['testsecret'], fields)).toBe(true);
    }
  });

  it('accepts a hash made by any listed secret', () => {
    expect(verifyHash('Fw//', ['new', 'testsecret'], fields)).toBe(true);
    expect(verifyHash('Fw//', ['new', 'other'], fields)).toBe(false);
  });

  it('rejects a wrong hash or foreign characters', () => {
    expect(verifyHash('Fw/+', ['testsecret'], fields)).toBe(false);
    expect(verifyHash('Fw/\u022f', ['testsecret'], fields)).toBe(false);
    expect(verifyHash('Fw/=', ['testsecret'], fields)).toBe(false);
  });
});

describe('asciiLowercase', () => {
  it('folds A-Z only', () => {
    expect(asciiLowercase('ABC-ÄÖÜ-xyz')).toBe('abc-ÄÖÜ-xyz');
    expect(asciiLowercase('plain')).toBe('plain');
  });
});
