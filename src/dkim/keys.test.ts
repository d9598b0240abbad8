import { execFile } from 'node:child_process';
import { mkdtemp, readFile, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { describe, expect, it } from 'vitest';

import {
  createZoneLookup,
  dkimRecordValue,
  generateKeyPair,
  parseKeyRecord,
  parsePrivateKey,
  parseZoneFile,
  readPrivateKey,
  splitTxtValue,
  writePrivateKey,
  zoneFileRecord,
} from './index.js';

const run = promisify(execFile);

describe('keys', () => {
  it('generates RSA 2048 by default and Ed25519', async () => {
    const rsa = await generateKeyPair({ algorithm: 'rsa' });
    expect(rsa.privateKey.asymmetricKeyDetails?.modulusLength).toBe(2048);
    const ed = await generateKeyPair({ algorithm: 'ed25519' });
    expect(ed.privateKey.asymmetricKeyType).toBe('ed25519');
    await expect(generateKeyPair({ algorithm: 'rsa', bits: 512 })).rejects.toThrow(
      /invalid RSA key size 512/,
    );
  });

  it('writes PEM with mode 0600 and never overwrites', async () => {
    const directory = await mkdtemp(join(tmpdir(), 'herald-keys-'));
    const path = join(directory, 'k.pem');
    const { privateKey } = await generateKeyPair({ algorithm: 'ed25519' });
    const previous = process.umask(0);
    try {
      await writePrivateKey(path, privateKey);
    } finally {
      process.umask(previous);
    }
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect(await readFile(path, 'utf8')).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    await expect(writePrivateKey(path, privateKey)).rejects.toThrow(/EEXIST/);
    const again = await readPrivateKey(path);
    expect(again.export({ format: 'pem', type: 'pkcs8' })).toBe(
      privateKey.export({ format: 'pem', type: 'pkcs8' }),
    );
  });

  it('reads what opendkim-genkey writes', async () => {
    const directory = await mkdtemp(join(tmpdir(), 'herald-genkey-'));
    await run('/usr/sbin/opendkim-genkey', [
      '-b',
      '1024',
      '-d',
      'example.com',
      '-s',
      'gen',
      '-D',
      directory,
    ]);
    const key = await readPrivateKey(join(directory, 'gen.private'));
    expect(key.asymmetricKeyDetails?.modulusLength).toBe(1024);
    // The record opendkim-genkey printed contains the same public key that Herald derives.
    const zone = parseZoneFile(await readFile(join(directory, 'gen.txt'), 'utf8'), 'example.com');
    const published = zone.records.get('gen._domainkey.example.com')?.[0]?.join('') ?? '';
    expect(published.replace(/^.*p=/, '')).toBe(dkimRecordValue(key).replace(/^.*p=/, ''));
    expect(zone.errors).toEqual([]);
  });

  it('reads PKCS#1 PEM and a bare Ed25519 seed', async () => {
    const { privateKey } = await generateKeyPair({ algorithm: 'rsa', bits: 1024 });
    const pkcs1 = privateKey.export({ format: 'pem', type: 'pkcs1' }).toString();
    expect(pkcs1).toMatch(/BEGIN RSA PRIVATE KEY/);
    expect(parsePrivateKey(pkcs1).asymmetricKeyType).toBe('rsa');
    const seed = parsePrivateKey('nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=');
    // RFC 8032 section 7.1, test 1: this seed has the public key 11qYAYKx...
    expect(dkimRecordValue(seed)).toBe(
      'v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=',
    );
  });

  it('names the problem with an unreadable key', async () => {
    expect(() => parsePrivateKey('hello')).toThrow(/not a PEM private key/);
    expect(() =>
      parsePrivateKey('-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n'),
    ).toThrow(/not a valid private key/);
    const directory = await mkdtemp(join(tmpdir(), 'herald-keys-'));
    await expect(readPrivateKey(join(directory, 'missing.pem'))).rejects.toThrow(
      /cannot read key file .*missing.pem: ENOENT/,
    );
    await writeFile(join(directory, 'bad.pem'), 'garbage');
    await expect(readPrivateKey(join(directory, 'bad.pem'))).rejects.toThrow(
      /bad.pem: not a PEM private key/,
    );
  });
});

describe('DNS records', () => {
  it('renders the record value', async () => {
    const { publicKey } = await generateKeyPair({ algorithm: 'rsa', bits: 2048 });
    const value = dkimRecordValue(publicKey);
    expect(value).toMatch(/^v=DKIM1; k=rsa; p=MIIBIjANBg[A-Za-z0-9+/=]+$/);
    const parsed = parseKeyRecord(value);
    expect(parsed.ok).toBe(true);
    expect(parsed.ok ? parsed.record.bits : 0).toBe(2048);
  });

  it('splits strings the way opendkim-genkey does', async () => {
    const { publicKey } = await generateKeyPair({ algorithm: 'rsa', bits: 4096 });
    const strings = splitTxtValue(dkimRecordValue(publicKey));
    expect(strings[0]).toBe('v=DKIM1; k=rsa; ');
    expect(strings[1]).toMatch(/^p=/);
    expect(strings[1]).toHaveLength(252);
    expect(strings[2]).toHaveLength(250);
    for (const piece of strings) expect(Buffer.byteLength(piece)).toBeLessThanOrEqual(255);
    expect(strings.join('')).toBe(dkimRecordValue(publicKey));
  });

  it('writes a zone line that reads back', async () => {
    const { publicKey } = await generateKeyPair({ algorithm: 'rsa', bits: 2048 });
    const value = dkimRecordValue(publicKey);
    const line = zoneFileRecord('s1', 'example.com', value);
    expect(line).toMatch(
      /^s1\._domainkey\.example\.com\.\tIN\tTXT\t\( "v=DKIM1; k=rsa; "\n\t {2}"p=/,
    );
    const lookup = createZoneLookup(parseZoneFile(line));
    const records = await lookup('s1._domainkey.example.com');
    expect(records).toHaveLength(1);
    expect(records[0]!.join('')).toBe(value);
  });
});

describe('zone file reader', () => {
  const zone = [
    '$TTL 3600',
    '$ORIGIN example.org.',
    '@ IN SOA ns.example.org. admin.example.org. ( 1 3600 600 86400 300 )',
    'a._domainkey 300 IN TXT "v=DKIM1; " "p=AAAA"   ; two strings',
    '             IN TXT "second record"',
    'b._domainkey.other.test. TXT ( "quoted \\"part\\"" ; comment inside',
    '    "\\065\\066" )',
    'mx IN MX 10 mail.example.org.',
    '$ORIGIN sub.example.org.',
    'c._domainkey IN 60 TXT "c"',
  ].join('\n');

  it('reads TXT records in every form', () => {
    const parsed = parseZoneFile(zone);
    expect(parsed.errors).toEqual([]);
    expect(parsed.records.get('a._domainkey.example.org')).toEqual([
      ['v=DKIM1; ', 'p=AAAA'],
      ['second record'],
    ]);
    expect(parsed.records.get('b._domainkey.other.test')).toEqual([['quoted "part"', 'AB']]);
    expect(parsed.records.get('c._domainkey.sub.example.org')).toEqual([['c']]);
    expect(parsed.records.has('mx.example.org')).toBe(false);
  });

  it('looks up with the resolver error contract', async () => {
    const lookup = createZoneLookup(parseZoneFile(zone));
    await expect(lookup('A._DOMAINKEY.example.org.')).resolves.toHaveLength(2);
    await expect(lookup('missing.example.org')).rejects.toMatchObject({ code: 'ENOTFOUND' });
  });
});
