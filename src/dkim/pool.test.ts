import { generateKeyPairSync } from 'node:crypto';

import { afterAll, describe, expect, it } from 'vitest';

import { createSigningPool } from './pool.js';
import { signMessage } from './sign.js';

const pool = createSigningPool({ size: 2 });
afterAll(() => pool.close());

const TIME = new Date('2026-12-03T23:00:00Z');
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
const ed25519 = generateKeyPairSync('ed25519').privateKey;

function message(index: number): Buffer {
  return Buffer.from(
    `From: a@example.com\r\nTo: user${index}@example.net\r\nSubject: n${index}\r\n\r\nBody ${index}\r\n`,
  );
}

describe('signing pool', () => {
  it('signs exactly as the library does', async () => {
    const options = {
      time: TIME,
      signatures: [
        { domain: 'example.com', selector: 'rsa', privateKey: rsa },
        { domain: 'example.com', selector: 'ed', privateKey: ed25519 },
      ],
    };
    const signed = await pool.sign(message(1), options);
    expect(signed.equals(signMessage(message(1), options))).toBe(true);
  });

  it('signs a batch in order', async () => {
    const options = {
      time: TIME,
      signatures: [{ domain: 'example.com', selector: 'ed', privateKey: ed25519 }],
    };
    const messages = Array.from({ length: 25 }, (_, index) => message(index));
    const signed = await pool.signBatch(messages, options);
    expect(signed).toHaveLength(25);
    for (const [index, entry] of signed.entries())
      expect(entry.equals(signMessage(messages[index]!, options))).toBe(true);
  });

  it('rejects with the signing error', async () => {
    const options = {
      signatures: [{ domain: 'example.com', selector: 'ed', privateKey: ed25519 }],
    };
    await expect(
      pool.sign(Buffer.from('To: x@example.net\r\n\r\nno from\r\n'), options),
    ).rejects.toThrow(/no From header field/);
  });
});
