/**
 * Interop with Debian's postsrsd 1.10, run on loopback with the same secrets: Herald's forward
 * output in the standard alphabet equals postsrsd's, and each reverses the other's addresses.
 * postsrsd reads the system clock, so Herald uses it too here; pinned-time cases are unit tests.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { SrsRewriter } from '../../src/srs/index.js';
import { Postsrsd } from './postsrsd.js';

const DOMAIN = 'srs.herald.example';
const SECRETS = ['interop secret one', 'an older secret'];

// Each address forwards to an SRS0 or SRS1 address that fits in 64 octets.
const ADDRESSES = [
  // Plain.
  'user@example.com',
  'first.last@example.org',
  'u@mail.sub.example.co.uk',
  "o'brien@example.ie",
  'john..doe@example.com',
  'a-b_c@host-with-dash.example',
  "!#$%&'*/?^_`{|}~@example.net",
  // `+` and `=` in the local part.
  'user+tag@example.com',
  'user+tag+more@example.net',
  'a=b@example.com',
  '=leading@example.com',
  'trailing=@example.com',
  'a==b@example.com',
  // Upper case.
  'USER@EXAMPLE.COM',
  'MixedCase@Example.Org',
  // SRS0 inputs, which become SRS1.
  'SRS0=abcd=XY=ex.com=u@other.example',
  'srs0=AbCd=xy=Ex.Com=U@Other.Example',
  'SRS0+abcd=XY=ex.com=u@other.example',
  'SRS0-abcd=XY=ex.com=u@other.example',
  // SRS1 inputs, whose hash is replaced.
  'SRS1=abcd=prev.example==efgh=XY=ex.com=u@other.example',
  'srs1=ABCD=Prev.Example==efgh=XY=ex.com=u@other.example',
  'SRS1=abcd=prev.example=+efgh=XY=ex.com=u@other.example',
  // IP literals.
  'x@[192.0.2.1]',
  'postmaster@[IPv6:2001:db8::1]',
  // IDN domains, as U-labels (RFC 6531) and A-labels, and a UTF-8 local part.
  'u@münchen.de',
  'u@MÜNCHEN.de',
  'u@xn--mnchen-3ya.de',
  'δοκιμή@παράδειγμα.δοκιμή',
  'jörg@bücher.example',
  // Long local parts, up to the 64-octet limit of the result.
  'a'.repeat(30) + '@example.com',
  'b'.repeat(39) + '@example.com',
  'long.name.with.dots.and+tags+x@example.com',
];

describe('postsrsd interop', () => {
  let postsrsd: Postsrsd;
  let herald: SrsRewriter;

  beforeAll(async () => {
    postsrsd = await Postsrsd.start({ domain: DOMAIN, secrets: SECRETS });
    herald = new SrsRewriter({ domain: DOMAIN, secrets: SECRETS, alphabet: 'base64' });
  });

  afterAll(async () => {
    await postsrsd?.stop();
  });

  it('covers at least 30 addresses', () => {
    expect(ADDRESSES.length).toBeGreaterThanOrEqual(30);
  });

  it.each(ADDRESSES)('forward output equals postsrsd for %s', async (address) => {
    const theirs = await postsrsd.forward(address);
    const ours = herald.forward(address);
    expect(theirs.code).toBe(200);
    expect(ours).toEqual({ kind: 'rewritten', address: theirs.value });
  });

  it.each(ADDRESSES)('Herald reverses postsrsd output for %s', async (address) => {
    const theirs = await postsrsd.forward(address);
    expect(herald.reverse(theirs.value)).toEqual({ ok: true, address: expectedReverse(address) });
  });

  it.each(ADDRESSES)('postsrsd reverses Herald output for %s', async (address) => {
    const ours = herald.forward(address);
    if (ours.kind !== 'rewritten') throw new Error(`not rewritten: ${JSON.stringify(ours)}`);
    const theirs = await postsrsd.reverse(ours.address);
    expect(theirs).toEqual({ code: 200, value: expectedReverse(address) });
  });

  it('both reverse case-folded addresses', async () => {
    const ours = herald.forward('Someone@Example.com');
    if (ours.kind !== 'rewritten') throw new Error('not rewritten');
    for (const folded of [ours.address.toLowerCase(), ours.address.toUpperCase()]) {
      const theirs = await postsrsd.reverse(folded);
      expect(theirs.code).toBe(200);
      expect(herald.reverse(folded).ok).toBe(true);
    }
  });

  it('both reject a tampered hash', async () => {
    const ours = herald.forward('victim@example.com');
    if (ours.kind !== 'rewritten') throw new Error('not rewritten');
    const tampered = ours.address.replace(/^SRS0=(.)/, (_, c: string) =>
      c === 'A' ? 'SRS0=B' : 'SRS0=A',
    );
    expect((await postsrsd.reverse(tampered)).code).toBe(500);
    expect(herald.reverse(tampered)).toMatchObject({ ok: false, reason: 'bad-hash' });
  });

  it('both leave the SRS domain alone', async () => {
    const address = `someone@${DOMAIN}`;
    expect(await postsrsd.forward(address)).toEqual({ code: 200, value: address });
    expect(herald.forward(address)).toEqual({ kind: 'unchanged', address, reason: 'srs-domain' });
  });

  it('both reject a non-SRS address on reverse', async () => {
    expect((await postsrsd.reverse(`plain@${DOMAIN}`)).code).toBe(500);
    expect(herald.reverse(`plain@${DOMAIN}`)).toMatchObject({ ok: false, reason: 'not-srs' });
  });

  it('Herald reverses postsrsd output for a quoted local part', async () => {
    // postsrsd embeds the quotes mid-address; Herald emits a quoted SRS local part instead.
    for (const address of ['"a b"@example.com', '"x\\"y"@example.org']) {
      const theirs = await postsrsd.forward(address);
      expect(herald.reverse(theirs.value)).toEqual({ ok: true, address });
    }
  });

  it('verifies with every secret and signs with the first', async () => {
    const rotated = new SrsRewriter({
      domain: DOMAIN,
      secrets: [SECRETS[1]!],
      alphabet: 'base64',
    });
    const old = rotated.forward('rotation@example.com');
    if (old.kind !== 'rewritten') throw new Error('not rewritten');
    expect(await postsrsd.reverse(old.address)).toEqual({
      code: 200,
      value: 'rotation@example.com',
    });
    const theirs = await postsrsd.forward('rotation@example.com');
    expect(rotated.reverse(theirs.value)).toMatchObject({ ok: false, reason: 'bad-hash' });
    expect(herald.reverse(theirs.value)).toEqual({ ok: true, address: 'rotation@example.com' });
  });
});

describe('postsrsd interop with other settings', () => {
  let postsrsd: Postsrsd;
  let herald: SrsRewriter;
  const excludes = ['excluded.example', '.sub.example'];

  beforeAll(async () => {
    const settings = { domain: 'bounce.example', secrets: ['second'], hashLength: 6 } as const;
    postsrsd = await Postsrsd.start({ ...settings, separator: '+', excludeDomains: excludes });
    herald = new SrsRewriter({
      ...settings,
      separator: '+',
      excludeDomains: excludes,
      alphabet: 'base64',
    });
  });

  afterAll(async () => {
    await postsrsd?.stop();
  });

  it.each([
    'user@example.com',
    'SRS0=abcd=XY=ex.com=u@other.example',
    'SRS1+abcd=prev.example==efgh=XY=ex.com=u@other.example',
    'user@sub.example',
  ])('forward output equals postsrsd for %s', async (address) => {
    const theirs = await postsrsd.forward(address);
    expect(herald.forward(address)).toEqual({ kind: 'rewritten', address: theirs.value });
    expect(herald.reverse(theirs.value)).toEqual({ ok: true, address: expectedReverse(address) });
    expect((await postsrsd.reverse(theirs.value)).value).toBe(expectedReverse(address));
  });

  it.each(['user@excluded.example', 'user@EXCLUDED.example', 'user@a.sub.example'])(
    'both exclude %s',
    async (address) => {
      expect((await postsrsd.forward(address)).code).toBe(500);
      expect(herald.forward(address)).toEqual({ kind: 'unchanged', address, reason: 'excluded' });
    },
  );
});

/** Reversing yields the sender, or for an SRS address the SRS0 address at its first hop. */
function expectedReverse(address: string): string {
  const at = address.lastIndexOf('@');
  const local = address.slice(0, at);
  const tag = local.slice(0, 4).toUpperCase();
  if (tag === 'SRS0') return `SRS0${local.slice(4)}@${address.slice(at + 1)}`;
  if (tag === 'SRS1') {
    // The SRS1 part is dropped: hash, then host, then the rest of the SRS0 local part.
    const rest = local.slice(5);
    const hostStart = rest.indexOf('=') + 1;
    const hostEnd = rest.indexOf('=', hostStart);
    return `SRS0${rest.slice(hostEnd + 1)}@${rest.slice(hostStart, hostEnd)}`;
  }
  return address;
}
