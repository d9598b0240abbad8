/**
 * DKIM keys shared through the database: two nodes on one store with data directories of their
 * own, so the second node has none of the first node's key files. On SQLite and on PostgreSQL,
 * the second node's keyring signs with keys the first one created (domain add and rotation),
 * and dkimpy (Debian's python3) verifies the signatures against the published records. The
 * REST API, the admin domain page and `herald domain show --json` show no private key.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';

import { startDnsServer, type DnsServer } from '../../test/helpers/dns-server.js';
import { startPostgres, type PostgresCluster } from '../../test/helpers/postgres.js';
import { signMessage } from '../dkim/index.js';
import { createCheckLookups } from '../dns/check.js';
import { buildHttpApp } from '../http/app.js';
import { Metrics } from '../http/metrics.js';
import { openStore } from '../store/index.js';
import type { DkimKeyRecord, Store } from '../store/types.js';

import type { ManagementContext } from './context.js';
import { DkimKeyring } from './keyring.js';
import { advanceRotation, startRotation } from './rotation.js';
import * as service from './service.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** Debian's python3 has dkimpy; a python3 earlier on PATH may not. */
const PYTHON = '/usr/bin/python3';
const DOMAIN = 'club.test';

/**
 * Verifies every DKIM-Signature of the message on stdin (JSON: base64 message and a zone of
 * TXT values by name) and prints one boolean per signature. dkimpy raises on some failures,
 * such as a body hash mismatch, and those count as false. Lookups never leave the zone.
 */
const DKIMPY_VERIFY = `
import base64, json, sys
import dkim
request = json.load(sys.stdin)
zone = {name.lower(): value.encode() for name, value in request['zone'].items()}
def dnsfunc(name, timeout=5):
    if isinstance(name, bytes):
        name = name.decode()
    return zone.get(name.lower().rstrip('.'))
message = base64.b64decode(request['message'])
verifier = dkim.DKIM(message)
count = sum(1 for name, _ in verifier.headers if name.lower() == b'dkim-signature')
def verified(index):
    try:
        return bool(verifier.verify(idx=index, dnsfunc=dnsfunc))
    except dkim.ValidationError:
        return False
print(json.dumps([verified(index) for index in range(count)]))
`;

function dkimpyVerify(message: Buffer, keys: DkimKeyRecord[]): Promise<boolean[]> {
  const zone = Object.fromEntries(
    keys.map((key) => [`${key.selector}._domainkey.${DOMAIN}`, key.publicRecord]),
  );
  return new Promise((resolve, reject) => {
    const child = execFile(
      PYTHON,
      ['-c', DKIMPY_VERIFY],
      { timeout: 20_000 },
      (error, stdout, stderr) => {
        if (error) reject(new Error(`dkimpy failed: ${stderr || error.message}`));
        else resolve(JSON.parse(stdout) as boolean[]);
      },
    );
    child.stdin!.end(JSON.stringify({ message: message.toString('base64'), zone }));
  });
}

function testMessage(): Buffer {
  return Buffer.from(
    [
      `From: Club <news@${DOMAIN}>`,
      'To: member@example.net',
      'Subject: Signed on the other node',
      'Date: Fri, 04 Dec 2026 10:00:00 +0000',
      `Message-ID: <shared-keys@${DOMAIN}>`,
      '',
      'The key of this signature came from the database.',
      '',
    ].join('\r\n'),
  );
}

/** Signs the test message with every key the keyring holds for the domain. */
function signWith(keyring: DkimKeyring): Buffer {
  return signMessage(testMessage(), { signatures: keyring.signaturesFor(DOMAIN) });
}

interface Backend {
  name: string;
  /** URL of a fresh empty database. */
  createUrl(): Promise<string>;
}

let cluster: PostgresCluster | undefined;
let dns: DnsServer;

beforeAll(async () => {
  cluster = await startPostgres();
  dns = await startDnsServer({ records: [] });
});

afterAll(async () => {
  await dns?.close();
  await cluster?.stop();
});

const scratch = mkdtempSync(join(tmpdir(), 'herald-shared-keys-'));
let counter = 0;
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const BACKENDS: Backend[] = [
  {
    name: 'sqlite',
    createUrl: () => Promise.resolve(`sqlite:${join(scratch, `shared-${++counter}.sqlite`)}`),
  },
  { name: 'postgres', createUrl: () => cluster!.createDatabase() },
];

describe.each(BACKENDS)('keys shared on $name', (backend) => {
  let nodeA: ManagementContext;
  let nodeB: ManagementContext;

  beforeEach(async () => {
    const url = await backend.createUrl();
    const open = async (name: string): Promise<ManagementContext> => ({
      store: await openStore({ url }),
      dataDir: mkdtempSync(join(scratch, `${name}-`)),
      hostname: `${name}.herald.test`,
      srsDomain: 'srs.herald.test',
    });
    nodeA = await open('node-a');
    nodeB = await open('node-b');
    dns.set([]);
  });

  afterEach(async () => {
    await nodeA.store.close();
    await nodeB.store.close();
  });

  /** Removes a node's data directory, as if it were on another machine. */
  function forgetFilesOf(node: ManagementContext): void {
    rmSync(node.dataDir, { recursive: true, force: true });
  }

  it('signs on a node without the key files', async () => {
    const { keys } = await service.addDomain(nodeA, DOMAIN);
    forgetFilesOf(nodeA);
    const { keyring, errors } = await DkimKeyring.load(nodeB.store);
    expect(errors).toEqual([]);
    expect(readdirSync(nodeB.dataDir)).toEqual([]);
    expect(keyring.signaturesFor(DOMAIN).map((key) => key.selector)).toEqual(
      keys.map((key) => key.selector),
    );

    const signed = signWith(keyring);
    for (const key of keys) expect(signed.toString('latin1')).toContain(`s=${key.selector};`);
    expect(await dkimpyVerify(signed, keys)).toEqual([true, true]);
    // The same check fails on a changed body, so a pass above is dkimpy's verdict.
    const changed = Buffer.from(
      signed.toString('latin1').replace('database', 'DATABASE'),
      'latin1',
    );
    expect(await dkimpyVerify(changed, keys)).toEqual([false, false]);
  });

  it('signs with rotated keys on another node', async () => {
    const { keys: original } = await service.addDomain(nodeA, DOMAIN);
    const { keyring } = await DkimKeyring.load(nodeB.store);
    const started = await startRotation(nodeA, DOMAIN);
    forgetFilesOf(nodeA);
    const pending = started.pending.map((entry) => entry.key);
    expect((await keyring.reloadIfChanged()).reloaded).toBe(false);

    dns.set(
      [...original, ...pending].map((key) => ({
        name: `${key.selector}._domainkey.${DOMAIN}`,
        type: 'TXT' as const,
        value: key.publicRecord.match(/.{1,255}/g)!,
      })),
    );
    // Node B switches signing, as its rotation watcher would, with no key directory of its own.
    const lookups = createCheckLookups({ servers: [dns.address], timeoutMs: 500, tries: 1 });
    const switched = await advanceRotation(nodeB, lookups, DOMAIN);
    expect(switched.stage).toBe('grace');

    const { reloaded, errors } = await keyring.reloadIfChanged();
    expect(reloaded).toBe(true);
    expect(errors).toEqual([]);
    expect(keyring.signaturesFor(DOMAIN).map((key) => key.selector)).toEqual(
      pending.map((key) => key.selector),
    );
    expect(await dkimpyVerify(signWith(keyring), pending)).toEqual([true, true]);
  });
});

describe('key listings', () => {
  let context: ManagementContext;
  let store: Store;

  beforeEach(async () => {
    const dataDir = mkdtempSync(join(scratch, 'listing-'));
    store = await openStore({ url: `sqlite:${join(dataDir, 'herald.sqlite')}` });
    context = { store, dataDir, hostname: 'mx.herald.test', srsDomain: 'srs.herald.test' };
  });

  afterEach(async () => {
    await store.close();
  });

  /** Collects the base64 lines of every PEM stored for the domain, which no output may carry. */
  async function storedKeyLines(): Promise<string[]> {
    const domain = await store.getDomain(DOMAIN);
    const lines: string[] = [];
    for (const key of await store.listDkimKeys(domain!.id)) {
      const pem = await store.getDkimPrivateKey(key.id);
      expect(pem).toContain('PRIVATE KEY');
      lines.push(...pem!.split('\n').filter((line) => line.length > 0 && !line.startsWith('-')));
    }
    return lines;
  }

  it('REST API returns no private key', async () => {
    const token = 'shared-keys-token';
    const app = buildHttpApp({ context, metrics: new Metrics(), tokens: [token] });
    try {
      await app.ready();
      const headers = { authorization: `Bearer ${token}` };
      const added = await app.inject({
        method: 'POST',
        url: '/api/domains',
        headers,
        payload: { name: DOMAIN },
      });
      expect(added.statusCode).toBe(201);
      const details = await app.inject({ method: 'GET', url: `/api/domains/${DOMAIN}`, headers });
      expect(details.statusCode).toBe(200);
      expect(details.json<{ keys: unknown[] }>().keys).toHaveLength(2);

      for (const body of [added.body, details.body]) {
        expect(body).not.toContain('PRIVATE KEY');
        for (const line of await storedKeyLines()) expect(body).not.toContain(line);
      }
    } finally {
      await app.close();
    }
  });

  it('admin domain page shows no private key', async () => {
    const token = 'shared-keys-admin-token';
    const lookups = createCheckLookups({ servers: [dns.address], timeoutMs: 500, tries: 1 });
    const app = buildHttpApp({
      context,
      metrics: new Metrics(),
      tokens: [token],
      admin: { context, lookups, tokens: [token], secureCookies: false },
    });
    try {
      await app.ready();
      await service.addDomain(context, DOMAIN);
      const login = await app.inject({
        method: 'POST',
        url: '/admin/login',
        payload: { username: 'admin', password: token, next: '/admin/domains' },
      });
      expect(login.statusCode).toBe(303);
      const cookie = String(login.headers['set-cookie']).split(';')[0]!;
      const page = await app.inject({ url: `/admin/domains/${DOMAIN}`, headers: { cookie } });
      expect(page.statusCode).toBe(200);
      expect(page.body).toContain('DKIM keys and rotation');

      expect(page.body).not.toContain('PRIVATE KEY');
      for (const line of await storedKeyLines()) expect(page.body).not.toContain(line);
    } finally {
      await app.close();
    }
  });

  it('domain show --json prints no private key', async () => {
    const config = join(context.dataDir, 'herald.yaml');
    writeFileSync(
      config,
      stringify({
        hostname: 'mx.herald.test',
        dataDir: context.dataDir,
        srs: { domain: 'srs.herald.test' },
      }),
    );
    const added = await herald(['domain', 'add', DOMAIN, '--json', '--config', config]);
    expect(added.status).toBe(0);
    const details = await herald(['domain', 'show', DOMAIN, '--json', '--config', config]);
    expect(details.status).toBe(0);
    expect((JSON.parse(details.stdout) as { keys: unknown[] }).keys).toHaveLength(2);

    for (const output of [added.stdout, details.stdout]) {
      expect(output).not.toContain('PRIVATE KEY');
      for (const line of await storedKeyLines()) expect(output).not.toContain(line);
    }
  });
});

function herald(args: string[]): Promise<{ status: number; stdout: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', 'src/cli/main.ts', ...args],
      { cwd: ROOT, timeout: 30_000, env: { ...process.env, HERALD_CONFIG: '' } },
      (error, stdout) => {
        let status = 0;
        if (error !== null) status = typeof error.code === 'number' ? error.code : -1;
        resolve({ status, stdout });
      },
    );
  });
}
