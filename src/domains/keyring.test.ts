import { createPublicKey, sign, verify } from 'node:crypto';
import { mkdtempSync, rmSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { dkimRecordValue, generateKeyPair, writePrivateKey } from '../dkim/index.js';
import { SqliteStore } from '../store/sqlite.js';

import { DkimKeyring } from './keyring.js';
import * as service from './service.js';

let dataDir: string;
let context: service.ServiceContext;

beforeEach(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'herald-keyring-'));
  const store = new SqliteStore({ path: ':memory:' });
  await store.migrate();
  context = { store, dataDir };
});

afterEach(async () => {
  await context.store.close();
  rmSync(dataDir, { recursive: true, force: true });
});

describe('DkimKeyring', () => {
  it('loads the active keys of each domain, RSA first', async () => {
    const { keys } = await service.addDomain(context, 'club.test');
    const { keyring, errors } = await DkimKeyring.load(context.store);
    expect(errors).toEqual([]);

    const signatures = keyring.signaturesFor('CLUB.test');
    expect(signatures.map((s) => s.selector)).toEqual(keys.map((k) => k.selector));
    expect(signatures.map((s) => s.algorithm)).toEqual(['rsa-sha256', 'ed25519-sha256']);
    expect(signatures.every((s) => s.domain === 'club.test')).toBe(true);
    expect(keyring.signaturesFor('other.test')).toEqual([]);
  });

  it('holds keys that sign for the published record', async () => {
    const { keys } = await service.addDomain(context, 'club.test');
    const { keyring } = await DkimKeyring.load(context.store);
    const ed25519 = keyring.signaturesFor('club.test')[1]!;
    const data = Buffer.from('signed data');
    const signature = sign(null, data, ed25519.privateKey);
    // The record carries the raw key (RFC 8463 section 4); SPKI adds a fixed 12-octet prefix.
    const raw = Buffer.from(/p=([^;]+)/.exec(keys[1]!.publicRecord)![1]!, 'base64');
    const spkiPrefix = Buffer.from('302a300506032b6570032100', 'hex');
    const publicKey = createPublicKey({
      key: Buffer.concat([spkiPrefix, raw]),
      format: 'der',
      type: 'spki',
    });
    expect(verify(null, data, publicKey, signature)).toBe(true);
  });

  it('leaves retired keys out', async () => {
    const { keys } = await service.addDomain(context, 'club.test');
    await context.store.setDkimKeyStatus(keys[0]!.id, 'retired');
    const { keyring } = await DkimKeyring.load(context.store);
    expect(keyring.signaturesFor('club.test').map((s) => s.algorithm)).toEqual(['ed25519-sha256']);
  });

  it('reloads only when the key rows change', async () => {
    const { keyring } = await DkimKeyring.load(context.store);
    expect(await keyring.reloadIfChanged()).toEqual({ reloaded: false, errors: [] });

    await service.addDomain(context, 'club.test');
    expect((await keyring.reloadIfChanged()).reloaded).toBe(true);
    expect(keyring.domains()).toEqual(['club.test']);
    expect((await keyring.reloadIfChanged()).reloaded).toBe(false);

    await service.removeDomain(context, 'club.test');
    expect((await keyring.reloadIfChanged()).reloaded).toBe(true);
    expect(keyring.signaturesFor('club.test')).toEqual([]);
  });

  it('loads stored keys whose files are gone', async () => {
    const { keys } = await service.addDomain(context, 'club.test');
    for (const key of keys) unlinkSync(key.privateKeyPath);
    const { keyring, errors } = await DkimKeyring.load(context.store);
    expect(errors).toEqual([]);
    expect(keyring.signaturesFor('club.test').map((s) => s.selector)).toEqual(
      keys.map((k) => k.selector),
    );
  });

  it('reads the file of a key stored without PEM', async () => {
    const domain = await context.store.addDomain('old.test');
    const pair = await generateKeyPair({ algorithm: 'ed25519' });
    const privateKeyPath = join(dataDir, 'old.pem');
    await writePrivateKey(privateKeyPath, pair.privateKey);
    await context.store.addDkimKey({
      domainId: domain.id,
      selector: 'old',
      algorithm: 'ed25519-sha256',
      privateKeyPath,
      privateKeyPem: null,
      publicRecord: dkimRecordValue(pair.publicKey),
      status: 'active',
    });

    const { keyring, errors } = await DkimKeyring.load(context.store);
    expect(errors).toEqual([]);
    const [loaded] = keyring.signaturesFor('old.test');
    const derived = createPublicKey(loaded!.privateKey).export({ format: 'der', type: 'spki' });
    expect(derived).toEqual(pair.publicKey.export({ format: 'der', type: 'spki' }));
  });

  it('reports a key neither the store nor a file has', async () => {
    const { keys } = await service.addDomain(context, 'club.test');
    const domain = await context.store.getDomain('club.test');
    const missingPath = join(dataDir, 'keys', 'club.test', 'lost.pem');
    await context.store.addDkimKey({
      domainId: domain!.id,
      selector: 'lost',
      algorithm: 'rsa-sha256',
      privateKeyPath: missingPath,
      privateKeyPem: null,
      publicRecord: 'v=DKIM1; k=rsa; p=AAAA',
      status: 'active',
    });

    const { keyring, errors } = await DkimKeyring.load(context.store);
    expect(errors.map((e) => e.selector)).toEqual(['lost']);
    expect(errors[0]!.path).toBe(missingPath);
    expect((errors[0]!.error as NodeJS.ErrnoException).code).toBe('ENOENT');
    expect(keyring.signaturesFor('club.test').map((s) => s.selector)).toEqual(
      keys.map((k) => k.selector),
    );
  });
});
