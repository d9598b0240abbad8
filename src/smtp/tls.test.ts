import { X509Certificate, createPrivateKey } from 'node:crypto';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadTlsMaterial } from './tls.js';

let dataDir: string;

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'herald-tls-'));
});

afterAll(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

describe('loadTlsMaterial', () => {
  it('generates a self-signed pair at first start', async () => {
    const material = await loadTlsMaterial({ cert: null, key: null }, dataDir, 'mx.herald.test');
    expect(material.source).toBe('generated');
    expect(material.keyPath).toBe(join(dataDir, 'tls', 'key.pem'));

    const certificate = new X509Certificate(material.cert);
    expect(certificate.subject).toBe('CN=mx.herald.test');
    expect(certificate.subjectAltName).toBe('DNS:mx.herald.test');
    expect(certificate.checkPrivateKey(createPrivateKey(material.key))).toBe(true);
    expect((await stat(material.keyPath)).mode & 0o777).toBe(0o600);
  });

  it('reuses the generated pair on the next start', async () => {
    const first = await loadTlsMaterial({}, dataDir, 'mx.herald.test');
    const second = await loadTlsMaterial({}, dataDir, 'mx.herald.test');
    expect(second.source).toBe('generated-earlier');
    expect(second.cert.equals(first.cert)).toBe(true);
  });

  it('reads configured files', async () => {
    const generated = await loadTlsMaterial({}, dataDir, 'mx.herald.test');
    const configured = await loadTlsMaterial(
      { cert: generated.certPath, key: generated.keyPath },
      join(dataDir, 'unused'),
      'other.test',
    );
    expect(configured.source).toBe('configured');
    expect(configured.key.equals(generated.key)).toBe(true);
  });

  it('rejects a certificate without a key', async () => {
    await expect(loadTlsMaterial({ cert: '/nonexistent.pem' }, dataDir, 'x.test')).rejects.toThrow(
      /tls\.cert and tls\.key must be set together/,
    );
  });
});
