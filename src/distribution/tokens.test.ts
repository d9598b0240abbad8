import { randomBytes } from 'node:crypto';

import { describe, expect, it } from 'vitest';

import {
  makeToken,
  matchReturnAddress,
  unsubscribeMailto,
  verifyToken,
  verpAddress,
} from './tokens.js';

const secret = randomBytes(32);

describe('recipient tokens', () => {
  it('round-trips and survives lower-casing', () => {
    const token = makeToken(secret, 'unsubscribe', { campaignId: 12, subscriberId: 987654 });
    expect(token).toMatch(/^c\.l62u\.[0-9a-f]{20}$/);
    expect(verifyToken(secret, 'unsubscribe', token.toUpperCase())).toEqual({
      campaignId: 12,
      subscriberId: 987654,
    });
  });

  it('rejects a changed id, a changed MAC, another purpose and another secret', () => {
    const token = makeToken(secret, 'unsubscribe', { campaignId: 12, subscriberId: 34 });
    const [campaign, , mac] = token.split('.');
    expect(verifyToken(secret, 'unsubscribe', `${campaign}.z.${mac}`)).toBeUndefined();
    expect(
      verifyToken(secret, 'unsubscribe', token.slice(0, -1) + (token.endsWith('0') ? '1' : '0')),
    ).toBeUndefined();
    expect(verifyToken(secret, 'bounce', token)).toBeUndefined();
    expect(verifyToken(randomBytes(32), 'unsubscribe', token)).toBeUndefined();
    expect(verifyToken(secret, 'unsubscribe', 'garbage')).toBeUndefined();
  });

  it('matches VERP and unsubscribe addresses', () => {
    const ref = { campaignId: 5, subscriberId: 77 };
    const verp = verpAddress(secret, ref, 'example.org');
    expect(verp).toMatch(/^bounces\+5\.25\.[0-9a-f]{20}@example\.org$/);
    expect(verp.split('@')[0]!.length).toBeLessThanOrEqual(64);
    expect(matchReturnAddress(secret, verp.toUpperCase())).toEqual({
      kind: 'bounce',
      ref,
      domain: 'example.org',
    });
    expect(matchReturnAddress(secret, unsubscribeMailto(secret, ref, 'example.org'))).toEqual({
      kind: 'unsubscribe',
      ref,
      domain: 'example.org',
    });
    expect(matchReturnAddress(secret, 'bounces+5.25.0123456789abcdef0123@example.org')).toEqual({
      kind: 'forged',
      purpose: 'bounce',
      domain: 'example.org',
    });
    expect(matchReturnAddress(secret, 'someone+tag@example.org')).toEqual({ kind: 'none' });
  });
});
