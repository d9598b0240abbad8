import { createPrivateKey, createPublicKey } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { SqliteStore } from '../store/sqlite.js';

import { ConflictError, InvalidInputError, NotFoundError } from './names.js';
import { verifyPassword } from './password.js';
import * as service from './service.js';

let dataDir: string;
let context: service.ServiceContext;

beforeEach(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'herald-domains-'));
  const store = new SqliteStore({ path: ':memory:' });
  await store.migrate();
  context = { store, dataDir, now: () => new Date('2026-12-03T12:00:00Z') };
});

afterEach(async () => {
  await context.store.close();
  rmSync(dataDir, { recursive: true, force: true });
});

/** The `p=` value of a DKIM record, computed from the private key independently. */
function publicKeyOf(pemPath: string): string {
  const publicKey = createPublicKey(createPrivateKey(readFileSync(pemPath)));
  return publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
}

describe('addDomain', () => {
  it('generates an RSA-2048 and an Ed25519 key under dated selectors', async () => {
    const { domain, keys } = await service.addDomain(context, 'Club.Test.');
    expect(domain.name).toBe('club.test');
    expect(keys.map((key) => key.selector)).toEqual(['h20261203r', 'h20261203e']);
    expect(keys.map((key) => key.algorithm)).toEqual(['rsa-sha256', 'ed25519-sha256']);
    expect(keys.every((key) => key.status === 'active')).toBe(true);

    const rsa = createPrivateKey(readFileSync(keys[0]!.privateKeyPath));
    expect(rsa.asymmetricKeyType).toBe('rsa');
    expect(rsa.asymmetricKeyDetails?.modulusLength).toBe(2048);
    const ed25519 = createPrivateKey(readFileSync(keys[1]!.privateKeyPath));
    expect(ed25519.asymmetricKeyType).toBe('ed25519');
  });

  it('writes the key files 0600 under dataDir/keys/DOMAIN', async () => {
    const { keys } = await service.addDomain(context, 'club.test');
    for (const key of keys) {
      expect(key.privateKeyPath.startsWith(join(dataDir, 'keys', 'club.test'))).toBe(true);
      expect(statSync(key.privateKeyPath).mode & 0o777).toBe(0o600);
    }
  });

  it('publishes records whose key matches the private key', async () => {
    const { keys } = await service.addDomain(context, 'club.test');
    const [rsa, ed25519] = keys;
    expect(rsa!.publicRecord).toMatch(/^v=DKIM1; k=rsa; p=/);
    expect(rsa!.publicRecord).toContain(`p=${publicKeyOf(rsa!.privateKeyPath)}`);
    // RFC 8463 section 4: the Ed25519 record carries the raw 32-octet key, not SPKI.
    const spki = Buffer.from(publicKeyOf(ed25519!.privateKeyPath), 'base64');
    expect(ed25519!.publicRecord).toContain(`p=${spki.subarray(-32).toString('base64')}`);
  });

  it('rejects a domain that exists and an invalid name', async () => {
    await service.addDomain(context, 'club.test');
    await expect(service.addDomain(context, 'CLUB.test')).rejects.toBeInstanceOf(ConflictError);
    for (const name of ['', 'localhost', 'bad_name.test', '-x.test', 'a..test']) {
      await expect(service.addDomain(context, name), name).rejects.toBeInstanceOf(
        InvalidInputError,
      );
    }
  });

  it('stores a per-domain SRS domain', async () => {
    const { domain } = await service.addDomain(context, 'club.test', {
      srsDomain: 'SRS.Club.Test',
    });
    expect(domain.srsDomain).toBe('srs.club.test');
  });
});

describe('removeDomain', () => {
  it('removes the domain and its key files', async () => {
    const { keys } = await service.addDomain(context, 'club.test');
    await service.removeDomain(context, 'club.test');
    expect(await service.listDomains(context)).toEqual([]);
    expect(existsSync(keys[0]!.privateKeyPath)).toBe(false);
    await expect(service.removeDomain(context, 'club.test')).rejects.toBeInstanceOf(NotFoundError);
  });
});

describe('aliases', () => {
  beforeEach(async () => {
    await service.addDomain(context, 'club.test');
  });

  it('adds, lists and removes an alias with several targets', async () => {
    const alias = await service.addAlias(context, {
      address: 'Info@Club.test',
      targets: ['a@dest.test', 'B@Dest.Test', 'a@dest.test'],
    });
    expect(alias.localPart).toBe('info');
    expect(alias.targets).toEqual(['a@dest.test', 'B@dest.test']);
    expect(alias.enabled).toBe(true);
    expect(alias.dmarcPolicy).toBe('rewrite-from');

    expect((await service.listAliases(context, 'club.test')).map((a) => a.localPart)).toEqual([
      'info',
    ]);
    await service.removeAlias(context, 'info@club.test');
    expect(await service.listAliases(context, 'club.test')).toEqual([]);
    await expect(service.removeAlias(context, 'info@club.test')).rejects.toBeInstanceOf(
      NotFoundError,
    );
  });

  it('accepts a catch-all, a disabled alias and a DMARC policy', async () => {
    const all = await service.addAlias(context, { address: '*@club.test', targets: ['x@d.test'] });
    expect(all.localPart).toBe('*');
    const off = await service.addAlias(context, {
      address: 'old@club.test',
      targets: ['x@d.test'],
      enabled: false,
      dmarcPolicy: 'reject',
    });
    expect(off.enabled).toBe(false);
    expect(off.dmarcPolicy).toBe('reject');
  });

  it('replaces an alias only when asked', async () => {
    await service.addAlias(context, { address: 'info@club.test', targets: ['a@d.test'] });
    await expect(
      service.addAlias(context, { address: 'info@club.test', targets: ['b@d.test'] }),
    ).rejects.toBeInstanceOf(ConflictError);
    const replaced = await service.addAlias(context, {
      address: 'info@club.test',
      targets: ['b@d.test'],
      replace: true,
    });
    expect(replaced.targets).toEqual(['b@d.test']);
  });

  it('rejects bad input', async () => {
    const cases: service.AliasInput[] = [
      { address: 'info@club.test', targets: [] },
      { address: 'info@club.test', targets: ['not-an-address'] },
      { address: 'in fo@club.test', targets: ['a@d.test'] },
      { address: 'info', targets: ['a@d.test'] },
      { address: 'info@club.test', targets: ['a@d.test'], dmarcPolicy: 'drop' as never },
    ];
    for (const input of cases) {
      await expect(service.addAlias(context, input), JSON.stringify(input)).rejects.toBeInstanceOf(
        InvalidInputError,
      );
    }
    await expect(
      service.addAlias(context, { address: 'info@other.test', targets: ['a@d.test'] }),
    ).rejects.toBeInstanceOf(NotFoundError);
  });
});

describe('credentials', () => {
  beforeEach(async () => {
    await service.addDomain(context, 'club.test');
  });

  it('stores a scrypt hash that verifies, and never returns it', async () => {
    const created = await service.addCredential(context, {
      username: 'editor@club.test',
      password: 'long enough password',
    });
    expect(created).not.toHaveProperty('passwordHash');
    expect(created.domain).toBe('club.test');

    const stored = await context.store.getCredential('editor@club.test');
    expect(stored!.passwordHash).toMatch(/^scrypt\$/);
    expect(await verifyPassword('long enough password', stored!.passwordHash)).toBe(true);

    const listed = await service.listCredentials(context, 'club.test');
    expect(listed.map((c) => c.username)).toEqual(['editor@club.test']);
    expect(listed[0]).not.toHaveProperty('passwordHash');
  });

  it('takes the domain from the option when the username is not an address', async () => {
    const created = await service.addCredential(context, {
      username: 'editor',
      password: 'long enough password',
      domain: 'club.test',
    });
    expect(created.domain).toBe('club.test');
    await expect(
      service.addCredential(context, { username: 'other', password: 'long enough password' }),
    ).rejects.toBeInstanceOf(InvalidInputError);
  });

  it('rejects short passwords, duplicates and unknown domains', async () => {
    await expect(
      service.addCredential(context, { username: 'a@club.test', password: 'short' }),
    ).rejects.toBeInstanceOf(InvalidInputError);
    await service.addCredential(context, { username: 'a@club.test', password: 'long enough 1' });
    await expect(
      service.addCredential(context, { username: 'a@club.test', password: 'long enough 2' }),
    ).rejects.toBeInstanceOf(ConflictError);
    await expect(
      service.addCredential(context, { username: 'a@nowhere.test', password: 'long enough 3' }),
    ).rejects.toBeInstanceOf(NotFoundError);
  });

  it('removes a credential', async () => {
    await service.addCredential(context, { username: 'a@club.test', password: 'long enough 1' });
    await service.removeCredential(context, 'a@club.test');
    expect(await context.store.getCredential('a@club.test')).toBeUndefined();
    await expect(service.removeCredential(context, 'a@club.test')).rejects.toBeInstanceOf(
      NotFoundError,
    );
  });
});
