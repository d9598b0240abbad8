import { scryptSync } from 'node:crypto';

import { describe, expect, it } from 'vitest';

import { hashPassword, verifyPassword } from './password.js';

describe('password hashing', () => {
  it('stores the scrypt$N$r$p$salt$hash form', async () => {
    const stored = await hashPassword('correct horse');
    const fields = stored.split('$');
    expect(fields).toHaveLength(6);
    expect(fields.slice(0, 4)).toEqual(['scrypt', '16384', '8', '1']);
    expect(Buffer.from(fields[4]!, 'base64')).toHaveLength(16);
    expect(Buffer.from(fields[5]!, 'base64')).toHaveLength(32);
  });

  it('derives the hash that plain scrypt derives', async () => {
    const stored = await hashPassword('s3cret');
    const [, , , , salt, hash] = stored.split('$');
    const independent = scryptSync('s3cret', Buffer.from(salt!, 'base64'), 32, {
      N: 16384,
      r: 8,
      p: 1,
    });
    expect(independent.toString('base64')).toBe(hash);
  });

  it('accepts the right password and rejects a wrong one', async () => {
    const stored = await hashPassword('s3cret');
    expect(await verifyPassword('s3cret', stored)).toBe(true);
    expect(await verifyPassword('s3cret ', stored)).toBe(false);
    expect(await verifyPassword('', stored)).toBe(false);
  });

  it('uses a fresh salt for every hash', async () => {
    expect(await hashPassword('same')).not.toBe(await hashPassword('same'));
  });

  it('rejects malformed or hostile stored hashes', async () => {
    const salt = Buffer.alloc(16, 1).toString('base64');
    const hash = Buffer.alloc(32, 2).toString('base64');
    for (const stored of [
      '',
      'plain-text-password',
      `bcrypt$16384$8$1$${salt}$${hash}`,
      `scrypt$16384$8$1$${salt}`,
      `scrypt$1000$8$1$${salt}$${hash}`,
      `scrypt$${2 ** 24}$8$1$${salt}$${hash}`,
      `scrypt$16384$8$1$$${hash}`,
    ]) {
      expect(await verifyPassword('x', stored), stored).toBe(false);
    }
  });
});
