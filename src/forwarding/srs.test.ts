import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { SrsRewriter } from '../srs/index.js';
import { openStore } from '../store/index.js';
import type { Store } from '../store/types.js';
import { reverseRecipient, rewriteSender, SrsRouting, StoreTokenStore } from './srs.js';

const SECRETS = ['forwarding-test-secret'];
const DAY = 86_400_000;
let store: Store;
let now = new Date('2026-12-03T12:00:00Z');

beforeAll(async () => {
  store = await openStore({ url: ':memory:' });
});

afterAll(async () => {
  await store.close();
});

function routing(): SrsRouting {
  return new SrsRouting({
    domain: 'srs.herald.test',
    secrets: SECRETS,
    now: () => now,
    tokenStore: new StoreTokenStore(store, 1000, () => now),
  });
}

const SRS_DOMAINS = new Set(['srs.herald.test', 'srs.club.test']);

describe('rewriteSender', () => {
  it('keeps the null sender', async () => {
    expect(await rewriteSender(routing(), '', { recipient: 'a@dest.test' })).toEqual({
      ok: true,
      sender: '',
      rewritten: false,
    });
  });

  it('rewrites into the global SRS domain', async () => {
    const result = await rewriteSender(routing(), 'author@origin.test', {
      recipient: 'a@dest.test',
    });
    expect(result.ok).toBe(true);
    const sender = result.ok ? result.sender : '';
    expect(sender).toMatch(/^SRS0=[\w-]{4}=[A-Z2-7]{2}=origin\.test=author@srs\.herald\.test$/);
  });

  it('rewrites into the SRS domain of the forwarding domain', async () => {
    const result = await rewriteSender(routing(), 'author@origin.test', {
      recipient: 'a@dest.test',
      srsDomain: 'srs.club.test',
    });
    expect(result.ok).toBe(true);
    expect(result.ok ? result.sender : '').toMatch(/^SRS0=.*@srs\.club\.test$/);
  });

  it('stores a token for a sender too long for SRS', async () => {
    const long = `${'x'.repeat(60)}@origin.test`;
    const source = routing();
    const result = await rewriteSender(source, long, { recipient: 'a@dest.test' });
    expect(result.ok).toBe(true);
    const sender = result.ok ? result.sender : '';
    expect(sender.length).toBeLessThan(64);
    expect(await reverseRecipient(source, sender, SRS_DOMAINS)).toEqual({
      kind: 'reversed',
      original: long,
    });
  });

  it('reports an error without a token store', async () => {
    const plain = new SrsRewriter({ domain: 'srs.herald.test', secrets: SECRETS });
    const result = await rewriteSender(plain, `${'x'.repeat(60)}@origin.test`, {
      recipient: 'a@d.test',
    });
    expect(result).toMatchObject({ ok: false, reason: 'too-long' });
  });
});

describe('reverseRecipient', () => {
  it('reverses its own addresses at both SRS domains', async () => {
    const source = routing();
    for (const srsDomain of [null, 'srs.club.test']) {
      const rewrite = await rewriteSender(source, 'author@origin.test', {
        recipient: 'x@d.test',
        srsDomain,
      });
      const address = rewrite.ok ? rewrite.sender : '';
      expect(await reverseRecipient(source, address, SRS_DOMAINS)).toEqual({
        kind: 'reversed',
        original: 'author@origin.test',
      });
    }
  });

  it('ignores addresses outside the SRS domains', async () => {
    const source = routing();
    const rewrite = await rewriteSender(source, 'author@origin.test', { recipient: 'x@d.test' });
    const address = (rewrite.ok ? rewrite.sender : '').replace(
      '@srs.herald.test',
      '@elsewhere.test',
    );
    expect(await reverseRecipient(source, address, SRS_DOMAINS)).toEqual({ kind: 'not-srs' });
    expect(await reverseRecipient(source, 'postmaster@srs.herald.test', SRS_DOMAINS)).toEqual({
      kind: 'not-srs',
    });
  });

  it('rejects a forged hash', async () => {
    const forged = 'SRS0=AAAA=XX=origin.test=author@srs.herald.test';
    const check = await reverseRecipient(routing(), forged, SRS_DOMAINS);
    expect(check.kind).toBe('invalid');
    expect(check.kind === 'invalid' ? check.reason : '').toMatch(/bad-hash|bad-stamp/);
  });

  it('rejects an expired address', async () => {
    const source = routing();
    const rewrite = await rewriteSender(source, 'author@origin.test', { recipient: 'x@d.test' });
    const address = rewrite.ok ? rewrite.sender : '';
    const saved = now;
    now = new Date(saved.getTime() + 22 * DAY);
    try {
      const check = await reverseRecipient(source, address, SRS_DOMAINS);
      expect(check).toMatchObject({ kind: 'invalid', reason: 'expired' });
    } finally {
      now = saved;
    }
  });

  it('rejects a malformed SRS address', async () => {
    const check = await reverseRecipient(routing(), 'SRS0=broken@srs.herald.test', SRS_DOMAINS);
    expect(check).toMatchObject({ kind: 'invalid', reason: 'malformed' });
  });
});
