/**
 * The RFCs' own examples: RFC 8463 Appendix A (both signatures reproduced byte for byte in
 * their `b=` and `bh=`, and both verified) and RFC 6376 Appendix A (verified, with its key as
 * published and as a bare PKCS#1 RSAPublicKey).
 */
import { createPublicKey } from 'node:crypto';
import { readFile } from 'node:fs/promises';

import { describe, expect, it } from 'vitest';

import { parseHeaderFields, rawFieldValue, splitMessage } from '../message/index.js';
import { createZoneLookup, parsePrivateKey, parseZoneFile, sign, verifyMessage } from './index.js';

const RFC = new URL('../../test/fixtures/dkim/rfc/', import.meta.url);

async function fixture(name: string): Promise<Buffer> {
  return readFile(new URL(name, RFC));
}

async function rfcLookup(): Promise<(name: string) => Promise<string[][]>> {
  return createZoneLookup(parseZoneFile((await fixture('rfc.zone')).toString()));
}

/**
 * A signature field value as relaxed canonicalization reads it (FWS runs collapsed), with the
 * FWS inside `b=` removed, because a signer may fold the base64 anywhere.
 */
function relaxedValue(value: string): string {
  const collapsed = value
    .replace(/\r\n/g, '')
    .replace(/[ \t]+/g, ' ')
    .trim();
  const b = collapsed.lastIndexOf('b=');
  return collapsed.slice(0, b) + collapsed.slice(b).replace(/ /g, '');
}

function signatureValues(message: Buffer): string[] {
  const fields = parseHeaderFields(splitMessage(message).header);
  return fields
    .filter((field) => field.key === 'dkim-signature')
    .map((field) => rawFieldValue(field).toString());
}

const COMMON = {
  domain: 'football.example.com',
  identity: '@football.example.com',
  headers: ['from', 'to', 'subject', 'date', 'message-id'],
  oversign: ['from', 'subject', 'date'],
};

describe('RFC 8463 Appendix A', () => {
  it('signing reproduces both signatures', async () => {
    const unsigned = await fixture('rfc8463-unsigned.eml');
    const ed25519 = parsePrivateKey(await fixture('rfc8463-ed25519.key'));
    const rsa = parsePrivateKey(await fixture('rfc8463-rsa.key'));
    const fields = sign(unsigned, {
      time: new Date(1528637909 * 1000),
      signatures: [
        { ...COMMON, selector: 'brisbane', privateKey: ed25519 },
        { ...COMMON, selector: 'test', privateKey: rsa },
      ],
    });
    const ours = signatureValues(Buffer.from(`${fields}\r\n`));
    const published = signatureValues(await fixture('rfc8463-signed.eml'));
    expect(ours).toHaveLength(2);
    expect(relaxedValue(ours[0]!)).toBe(relaxedValue(published[0]!));
    expect(relaxedValue(ours[1]!)).toBe(relaxedValue(published[1]!));
  });

  it('both published signatures verify', async () => {
    const results = await verifyMessage(await fixture('rfc8463-signed.eml'), {
      lookupTxt: await rfcLookup(),
      now: new Date(1528637909 * 1000),
    });
    expect(results.map((result) => result.result)).toEqual(['pass', 'pass']);
    expect(results.map((result) => result.algorithm)).toEqual(['ed25519-sha256', 'rsa-sha256']);
    expect(results[0]?.headerB).toBe('/gCrinpc');
  });

  it('a changed body fails both', async () => {
    const tampered = Buffer.from(
      (await fixture('rfc8463-signed.eml')).toString().replace('Joe.', 'Jim.'),
    );
    const results = await verifyMessage(tampered, { lookupTxt: await rfcLookup() });
    expect(results.map((result) => result.code)).toEqual([
      'body_hash_mismatch',
      'body_hash_mismatch',
    ]);
  });
});

describe('RFC 6376 Appendix A', () => {
  it('the example signature verifies', async () => {
    const [result] = await verifyMessage(await fixture('rfc6376-signed.eml'), {
      lookupTxt: await rfcLookup(),
    });
    expect(result?.result).toBe('pass');
    expect(result?.identity).toBe('joe@football.example.com');
    expect(result?.keyBits).toBe(1024);
  });

  it('verifies with the key as bare PKCS#1', async () => {
    const zone = parseZoneFile((await fixture('rfc.zone')).toString());
    const published = zone.records.get('brisbane._domainkey.example.com')?.[0]?.join('') ?? '';
    const spki = Buffer.from(published.replace(/^.*p=/, ''), 'base64');
    const pkcs1 = createPublicKey({ key: spki, format: 'der', type: 'spki' }).export({
      format: 'der',
      type: 'pkcs1',
    });
    expect(pkcs1.length).toBeLessThan(spki.length);
    const lookupTxt = (name: string) =>
      Promise.resolve(
        name === 'brisbane._domainkey.example.com'
          ? [[`v=DKIM1; p=${pkcs1.toString('base64')}`]]
          : [],
      );
    const [result] = await verifyMessage(await fixture('rfc6376-signed.eml'), { lookupTxt });
    expect(result?.result).toBe('pass');
  });
});
