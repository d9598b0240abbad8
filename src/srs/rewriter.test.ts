import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';

import { SrsRewriter, type SrsOptions } from './rewriter.js';
import { MemoryTokenStore } from './token-store.js';

const DAY = 86_400_000;
// 2026-12-03, day slot 310 (JW); postsrsd 1.10 produced the expected addresses on that day.
const TODAY = Date.UTC(2026, 11, 3, 12);

function rewriter(options: Partial<SrsOptions> = {}, at = TODAY) {
  let time = at;
  const srs = new SrsRewriter({
    domain: 'srs.example',
    secrets: ['testsecret'],
    now: () => new Date(time),
    ...options,
  });
  return { srs, setTime: (ms: number) => (time = ms) };
}

function rewritten(srs: SrsRewriter, address: string): string {
  const result = srs.forward(address);
  if (result.kind !== 'rewritten') throw new Error(`not rewritten: ${JSON.stringify(result)}`);
  return result.address;
}

describe('SrsRewriter.forward', () => {
  it('matches postsrsd output in the standard alphabet', () => {
    const { srs } = rewriter({ alphabet: 'base64' });
    expect(rewritten(srs, 'user@example.com')).toBe('SRS0=nN3C=JW=example.com=user@srs.example');
    expect(rewritten(srs, 'SRS0=abcd=XY=ex.com=u@other.com')).toBe(
      'SRS1=YDiH=other.com==abcd=XY=ex.com=u@srs.example',
    );
    expect(rewritten(srs, 'SRS1=abcd=prev.example==efgh=XY=ex.com=u@other.com')).toBe(
      'SRS1=IrB0=prev.example==efgh=XY=ex.com=u@srs.example',
    );
  });

  it('emits the URL-safe alphabet by default', () => {
    // postsrsd wrote "SRS1=q/Rt=..." for this sender.
    const { srs } = rewriter();
    expect(rewritten(srs, 'srs0+abcd=XY=ex.com=u@other.com')).toBe(
      'SRS1=q_Rt=other.com=+abcd=XY=ex.com=u@srs.example',
    );
  });

  it('hashes as HMAC-SHA1 of stamp, domain and local part', () => {
    const { srs } = rewriter({ hashLength: 8, alphabet: 'base64' });
    const expected = createHmac('sha1', 'testsecret')
      .update('jwexample.orgfirst.last')
      .digest('base64')
      .slice(0, 8);
    expect(rewritten(srs, 'First.Last@Example.ORG')).toBe(
      `SRS0=${expected}=JW=Example.ORG=First.Last@srs.example`,
    );
  });

  it('wraps an SRS1 sender without valid fields as SRS0', () => {
    const { srs } = rewriter();
    for (const address of ['SRS1=x@other.example', 'SRS1=h=bad/host=u@other.example']) {
      const result = rewritten(srs, address);
      expect(result).toMatch(/^SRS0=.{4}=JW=other.example=SRS1=/);
      expect(srs.reverse(result)).toEqual({ ok: true, address });
    }
  });

  it('uses the configured separator after the tag', () => {
    const { srs } = rewriter({ separator: '+' });
    expect(rewritten(srs, 'user@example.com')).toMatch(/^SRS0\+nN3C=JW=example.com=user@/);
    expect(rewritten(srs, 'SRS0=abcd=XY=ex.com=u@other.com')).toMatch(
      /^SRS1\+YDiH=other.com==abcd=/,
    );
  });

  it('leaves the null sender alone', () => {
    const { srs } = rewriter();
    expect(srs.forward('')).toEqual({ kind: 'unchanged', address: '', reason: 'null-sender' });
    expect(srs.forward('<>')).toEqual({ kind: 'unchanged', address: '<>', reason: 'null-sender' });
  });

  it('leaves the SRS domain alone unless told to always rewrite', () => {
    expect(rewriter().srs.forward('x@SRS.Example')).toEqual({
      kind: 'unchanged',
      address: 'x@SRS.Example',
      reason: 'srs-domain',
    });
    expect(rewritten(rewriter({ alwaysRewrite: true }).srs, 'x@srs.example')).toMatch(
      /^SRS0=.{4}=JW=srs.example=x@srs.example$/,
    );
  });

  it('leaves exact and suffix exclusions alone', () => {
    const { srs } = rewriter({ excludeDomains: ['Partner.example', '.corp.example'] });
    for (const address of ['a@partner.example', 'a@mx.corp.example', 'a@A.B.CORP.example']) {
      expect(srs.forward(address)).toEqual({ kind: 'unchanged', address, reason: 'excluded' });
    }
    for (const address of ['a@corp.example', 'a@xcorp.example', 'a@sub.partner.example']) {
      expect(srs.forward(address).kind).toBe('rewritten');
    }
    const always = rewriter({ excludeDomains: ['partner.example'], alwaysRewrite: true }).srs;
    expect(always.forward('a@partner.example').kind).toBe('rewritten');
  });

  it('quotes the whole SRS local part for a quoted original', () => {
    const { srs } = rewriter();
    const address = rewritten(srs, '"john smith"@example.com');
    expect(address).toMatch(/^"SRS0=.{4}=JW=example.com=john smith"@srs.example$/);
    expect(srs.reverse(address)).toEqual({ ok: true, address: '"john smith"@example.com' });
  });

  it('drops quotes that a dot-atom does not need', () => {
    const { srs } = rewriter();
    const address = rewritten(srs, '"plain"@example.com');
    expect(address).toMatch(/^SRS0=.{4}=JW=example.com=plain@srs.example$/);
    expect(srs.reverse(address)).toEqual({ ok: true, address: 'plain@example.com' });
  });

  it('reports malformed addresses as values', () => {
    const { srs } = rewriter();
    for (const address of ['noat', '@example.com', 'user@', 'a b@x.com', 'u@a=b.com', 'u@x..y']) {
      expect(srs.forward(address)).toMatchObject({ kind: 'error', reason: 'malformed' });
    }
  });

  it('never emits a local part over 64 octets', () => {
    const { srs } = rewriter();
    // SRS0=HHHH=TT=example.com= is 25 octets, so 39 more fill the 64.
    expect(rewritten(srs, `${'b'.repeat(39)}@example.com`).indexOf('@')).toBe(64);
    expect(srs.forward(`${'b'.repeat(40)}@example.com`)).toMatchObject({
      kind: 'error',
      reason: 'too-long',
    });
    // Octets, not characters: each ü is two.
    expect(srs.forward(`${'ü'.repeat(20)}@example.com`)).toMatchObject({ reason: 'too-long' });
  });

  it('throws when forwarding without a domain', () => {
    const srs = new SrsRewriter({ secrets: ['s'] });
    expect(() => srs.forward('a@b.example')).toThrow(TypeError);
  });
});

describe('SrsRewriter.reverse', () => {
  it('reverses SRS0 to the sender and SRS1 to the first hop', () => {
    const { srs } = rewriter();
    expect(srs.reverse(rewritten(srs, 'user@example.com'))).toEqual({
      ok: true,
      address: 'user@example.com',
    });
    const srs1 = rewritten(srs, 'SRS0=abcd=XY=ex.com=u@other.com');
    expect(srs.reverse(srs1)).toEqual({ ok: true, address: 'SRS0=abcd=XY=ex.com=u@other.com' });
  });

  it('compares tag, hash and stamp case-insensitively', () => {
    const { srs } = rewriter({ hashLength: 6 });
    const address = rewritten(srs, 'Mixed@Example.com');
    expect(srs.reverse(address.toLowerCase())).toEqual({ ok: true, address: 'mixed@example.com' });
    expect(srs.reverse(address.toUpperCase())).toEqual({ ok: true, address: 'MIXED@EXAMPLE.COM' });
  });

  it('accepts both hash alphabets', () => {
    const { srs } = rewriter();
    const standard = 'SRS1=q/Rt=other.com=+abcd=XY=ex.com=u@srs.example';
    const urlSafe = 'SRS1=q_Rt=other.com=+abcd=XY=ex.com=u@srs.example';
    expect(srs.reverse(standard)).toEqual({ ok: true, address: 'SRS0+abcd=XY=ex.com=u@other.com' });
    expect(srs.reverse(urlSafe)).toEqual({ ok: true, address: 'SRS0+abcd=XY=ex.com=u@other.com' });
  });

  it('verifies with every secret after rotation', () => {
    const old = rewriter({ secrets: ['old'] }).srs;
    const address = rewritten(old, 'user@example.com');
    expect(rewriter({ secrets: ['new', 'old'] }).srs.reverse(address).ok).toBe(true);
    expect(rewriter({ secrets: ['new'] }).srs.reverse(address)).toMatchObject({
      reason: 'bad-hash',
    });
  });

  it('accepts hashes between the minimum and the emitted length', () => {
    const long = rewritten(rewriter({ hashLength: 8 }).srs, 'user@example.com');
    const short = rewritten(rewriter({ hashLength: 4 }).srs, 'user@example.com');
    const strict = rewriter({ hashLength: 8 }).srs;
    const lenient = rewriter({ hashLength: 8, hashMinLength: 4 }).srs;
    expect(strict.reverse(long).ok).toBe(true);
    expect(strict.reverse(short)).toMatchObject({ ok: false, reason: 'bad-hash' });
    expect(lenient.reverse(short).ok).toBe(true);
  });

  describe('at pinned times', () => {
    const sent = () => rewritten(rewriter().srs, 'user@example.com');

    it.each([
      [0, { ok: true, address: 'user@example.com' }],
      [21, { ok: true, address: 'user@example.com' }],
      [22, { ok: false, reason: 'expired' }],
      [1022, { ok: false, reason: 'expired' }],
      // 1023 days later the stamp repeats as tomorrow's, which reads as a future stamp.
      [1023, { ok: false, reason: 'future-stamp' }],
      [1024, { ok: true, address: 'user@example.com' }],
      [-1, { ok: false, reason: 'future-stamp' }],
    ])('after %i days returns %j', (days, expected) => {
      const address = sent();
      const { srs } = rewriter({}, TODAY + days * DAY);
      expect(srs.reverse(address)).toMatchObject(expected);
    });

    it('accepts addresses from before the stamp wrap', () => {
      const wrapDay = Math.ceil(TODAY / DAY / 1024) * 1024 * DAY; // a day in slot 0
      const { srs, setTime } = rewriter({}, wrapDay - DAY);
      const address = rewritten(srs, 'user@example.com');
      expect(address).toContain('=77=');
      setTime(wrapDay);
      expect(rewritten(srs, 'user@example.com')).toContain('=AA=');
      expect(srs.reverse(address)).toEqual({ ok: true, address: 'user@example.com' });
      setTime(wrapDay + 20 * DAY);
      expect(srs.reverse(address)).toEqual({ ok: true, address: 'user@example.com' });
      setTime(wrapDay + 21 * DAY);
      expect(srs.reverse(address)).toMatchObject({ ok: false, reason: 'expired' });
    });

    it('honours a shorter maximum age', () => {
      const address = sent();
      expect(rewriter({ maxAgeDays: 3 }, TODAY + 3 * DAY).srs.reverse(address).ok).toBe(true);
      expect(rewriter({ maxAgeDays: 3 }, TODAY + 4 * DAY).srs.reverse(address)).toMatchObject({
        reason: 'expired',
      });
    });
  });

  it.each([
    ['user@srs.example', 'not-srs'],
    ['SRSX=abcd=JW=example.com=user@srs.example', 'not-srs'],
    ['', 'not-srs'],
    ['SRS0=nN3C=JW=example.com=user', 'malformed'],
    ['SRS0=nN3C=JW=example.com@srs.example', 'malformed'],
    ['SRS0=nN3C=JW=example.com=@srs.example', 'malformed'],
    ['SRS0==JW=example.com=user@srs.example', 'malformed'],
    ['SRS0=nN3C=JW=exa mple.com=user@srs.example', 'malformed'],
    ['SRS1=abcd=host.example@srs.example', 'malformed'],
    ['"SRS0=nN3C=JW=example.com=user@srs.example', 'malformed'],
    ['SRS0=nN3C=J1=example.com=user@srs.example', 'bad-stamp'],
    ['SRS0=nN3C=JWW=example.com=user@srs.example', 'bad-stamp'],
    ['SRS0=nN3D=JW=example.com=user@srs.example', 'bad-hash'],
    ['SRS0=nN3=JW=example.com=user@srs.example', 'bad-hash'],
    ['SRS0=nN3C=JW=example.com=user2@srs.example', 'bad-hash'],
    [`SRS0=nN3C=JW=example.com=${'u'.repeat(240)}@srs.example`, 'too-long'],
    ['SRS0=nN3C=JW=ABCDEFGHIJKLMNOP@srs.example', 'store-required'],
  ])('rejects %s as %s', (address, reason) => {
    const result = rewriter().srs.reverse(address);
    expect(result).toMatchObject({ ok: false, reason });
    if (!result.ok) expect(result.message.length).toBeGreaterThan(0);
  });

  it('reverses postsrsd output for a quoted local part', () => {
    // postsrsd 1.10 wrote this for "a b"@example.com, quotes mid-address.
    const { srs } = rewriter();
    expect(srs.reverse('SRS0=dZy5=JW=example.com="a b"@srs.example')).toEqual({
      ok: true,
      address: '"a b"@example.com',
    });
  });
});

describe('SrsRewriter.isSrsAddress', () => {
  it('checks the tag and the domain', () => {
    const { srs } = rewriter();
    expect(srs.isSrsAddress('SRS0=abcd=JW=example.com=u@srs.example')).toBe(true);
    expect(srs.isSrsAddress('srs1+x@SRS.EXAMPLE')).toBe(true);
    expect(srs.isSrsAddress('"SRS0=abcd=JW=example.com=a b"@srs.example')).toBe(true);
    expect(srs.isSrsAddress('SRS0=abcd=JW=example.com=u@other.example')).toBe(false);
    expect(srs.isSrsAddress('SRS2=abcd@srs.example')).toBe(false);
    expect(srs.isSrsAddress('user@srs.example')).toBe(false);
    expect(srs.isSrsAddress('SRS0=abc')).toBe(false);
  });
});

describe('SrsRewriter options', () => {
  it.each([
    [{ secrets: [] }],
    [{ secrets: [''] }],
    [{ hashLength: 0 }],
    [{ hashLength: 28 }],
    [{ hashLength: 4, hashMinLength: 5 }],
    [{ maxAgeDays: -1 }],
    [{ maxAgeDays: 1023 }],
    [{ separator: '/' as '=' }],
    [{ domain: 'bad domain' }],
  ])('rejects %j', (options) => {
    expect(() => rewriter(options)).toThrow(RangeError);
  });
});

describe('database mode', () => {
  const longSender = `${'x'.repeat(60)}@example.com`;

  function withStore(maxEntries = 10) {
    let time = TODAY;
    const now = () => new Date(time);
    const store = new MemoryTokenStore({ maxEntries, now });
    const srs = new SrsRewriter({ domain: 'srs.example', secrets: ['s'], now, tokenStore: store });
    return { srs, store, setTime: (ms: number) => (time = ms) };
  }

  it('stores a sender too long to encode and reverses its token', async () => {
    const { srs, store } = withStore();
    expect(srs.forward(longSender)).toMatchObject({ kind: 'error', reason: 'too-long' });
    const result = await srs.forwardAsync(longSender);
    if (result.kind !== 'rewritten') throw new Error('not rewritten');
    expect(result.address).toMatch(/^SRS0=.{4}=JW=[A-Z2-7]{16}@srs.example$/);
    expect(store.size).toBe(1);
    expect(await srs.reverseAsync(result.address)).toEqual({ ok: true, address: longSender });
    expect(await srs.reverseAsync(result.address.toLowerCase())).toEqual({
      ok: true,
      address: longSender,
    });
    expect(srs.reverse(result.address)).toMatchObject({ ok: false, reason: 'store-required' });
  });

  it('reuses one token per sender and day', async () => {
    const { srs, store } = withStore();
    const first = await srs.forwardAsync(longSender);
    const second = await srs.forwardAsync(longSender);
    expect(second).toEqual(first);
    expect(store.size).toBe(1);
  });

  it('rejects a token with a forged hash or an unknown token', async () => {
    const { srs } = withStore();
    const result = await srs.forwardAsync(longSender);
    if (result.kind !== 'rewritten') throw new Error('not rewritten');
    const forged = result.address.replace(/^SRS0=.{4}/, 'SRS0=AAAA');
    expect(await srs.reverseAsync(forged)).toMatchObject({ ok: false, reason: 'bad-hash' });
    const other = new SrsRewriter({
      domain: 'srs.example',
      secrets: ['s'],
      now: () => new Date(TODAY),
      tokenStore: new MemoryTokenStore(),
    });
    expect(await other.reverseAsync(result.address)).toMatchObject({
      ok: false,
      reason: 'unknown-token',
    });
  });

  it('expires tokens with their stamp', async () => {
    const { srs, setTime } = withStore();
    const result = await srs.forwardAsync(longSender);
    if (result.kind !== 'rewritten') throw new Error('not rewritten');
    setTime(TODAY + 21 * DAY);
    expect((await srs.reverseAsync(result.address)).ok).toBe(true);
    setTime(TODAY + 22 * DAY);
    expect(await srs.reverseAsync(result.address)).toMatchObject({ reason: 'expired' });
  });

  it('passes short senders and plain SRS through', async () => {
    const { srs, store } = withStore();
    const result = await srs.forwardAsync('short@example.com');
    expect(result).toEqual(srs.forward('short@example.com'));
    if (result.kind !== 'rewritten') throw new Error('not rewritten');
    expect(await srs.reverseAsync(result.address)).toEqual(srs.reverse(result.address));
    expect(store.size).toBe(0);
  });

  it('keeps too-long as the verdict without a store', async () => {
    const { srs } = rewriter();
    expect(await srs.forwardAsync(longSender)).toMatchObject({ reason: 'too-long' });
  });
});

describe('random input', () => {
  // A fixed seed keeps failures reproducible; mulberry32 is a small, well-known generator.
  function random(seed: number) {
    let state = seed >>> 0;
    const next = () => {
      state = (state + 0x6d2b79f5) >>> 0;
      let t = state;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
    const int = (n: number) => Math.floor(next() * n);
    const pick = (chars: string) => [...chars][int([...chars].length)]!;
    const text = (chars: string, min: number, max: number) =>
      Array.from({ length: min + int(max - min + 1) }, () => pick(chars)).join('');
    return { int, pick, text };
  }

  const ATEXT = "abcXYZ0189!#$%&'*+-/=?^_`{|}~é日";
  const ANY = ATEXT + ' ."\\@<>()[]:;,\t\u0000=SRS01srs';

  it('reverse never throws on arbitrary input', () => {
    const { srs } = rewriter();
    const rng = random(1);
    for (let i = 0; i < 5000; i++) {
      const prefix = ['', 'SRS0=', 'srs1+', '"SRS0=', 'SRS0=nN3C=JW='][rng.int(5)]!;
      const input = prefix + rng.text(ANY, 0, 60);
      const result = srs.reverse(input);
      expect(typeof result.ok).toBe('boolean');
      if (!result.ok) expect(result.message).not.toBe('');
    }
  });

  it('forward never throws on arbitrary input', () => {
    const { srs } = rewriter();
    const rng = random(2);
    for (let i = 0; i < 5000; i++) {
      expect(['rewritten', 'unchanged', 'error']).toContain(srs.forward(rng.text(ANY, 0, 60)).kind);
    }
  });

  // An SRS0 sender becomes SRS1, which reverses to the same SRS0 address, so it is included.
  it('forward then reverse returns any valid address', () => {
    const rng = random(3);
    const { srs } = rewriter({ hashLength: 4 + rng.int(4) });
    const label = () => rng.text('abcdefghijXYZ0189-ü', 1, 8).replace(/^-|-$/g, 'a');
    let checked = 0;
    for (let i = 0; i < 3000; i++) {
      const local =
        rng.int(4) === 0
          ? `"${rng.text('ab c"\\@.,:é', 1, 12).replace(/["\\]/g, '\\$&')} "`
          : (rng.int(6) === 0 ? 'SRS0=' : '') + rng.text(ATEXT + '.', 1, 20);
      const domain =
        rng.int(5) === 0
          ? `[192.0.2.${rng.int(256)}]`
          : Array.from({ length: 1 + rng.int(3) }, label).join('.');
      const address = `${local}@${domain}`;
      const forwarded = srs.forward(address);
      if (forwarded.kind === 'error' && forwarded.reason === 'too-long') continue;
      expect(forwarded.kind, address).toBe('rewritten');
      if (forwarded.kind !== 'rewritten') continue;
      expect(srs.reverse(forwarded.address), address).toEqual({ ok: true, address });
      // Forwarding the SRS0 address again yields SRS1, which reverses to the SRS0 address.
      const again = srs.forward(forwarded.address.replace(/@srs\.example$/, '@hop.example'));
      if (again.kind === 'rewritten' && /^"?SRS0/.test(forwarded.address)) {
        expect(srs.reverse(again.address), address).toEqual({
          ok: true,
          address: forwarded.address.replace(/@srs\.example$/, '@hop.example'),
        });
      }
      checked += 1;
    }
    expect(checked).toBeGreaterThan(2000);
  });
});
