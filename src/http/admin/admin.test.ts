import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { startDnsServer, type DnsServer } from '../../../test/helpers/dns-server.js';
import { createCheckLookups } from '../../dns/check.js';
import type { ManagementContext } from '../../domains/context.js';
import { rotationStatus } from '../../domains/rotation.js';
import { addDomain } from '../../domains/service.js';
import { SqliteStore } from '../../store/sqlite.js';
import { buildHttpApp } from '../app.js';
import { Metrics } from '../metrics.js';

import { watchRotations } from './rotation-watch.js';

const TOKEN = 'admin-test-token-0123456789';
const NODE = 'mail.herald.test:4242:0badc0de';

let dir: string;
let dns: DnsServer;
let context: ManagementContext;
let app: ReturnType<typeof buildHttpApp>;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'herald-admin-'));
  dns = await startDnsServer({ records: [] });
  const store = new SqliteStore({ path: ':memory:' });
  await store.migrate();
  context = { store, dataDir: dir, hostname: 'mail.herald.test', srsDomain: 'srs.herald.test' };
  await addDomain(context, 'club.example');
  const lookups = createCheckLookups({ servers: [dns.address], timeoutMs: 500, tries: 1 });
  app = buildHttpApp({
    context,
    metrics: new Metrics(),
    tokens: [TOKEN],
    admin: { context, lookups, tokens: [TOKEN], secureCookies: false, node: NODE },
  });
  await app.ready();
});

afterAll(async () => {
  await app.close();
  await context.store.close();
  await dns.close();
  rmSync(dir, { recursive: true, force: true });
});

function login(password: string, address = '127.0.0.1') {
  return app.inject({
    method: 'POST',
    url: '/admin/login',
    remoteAddress: address,
    payload: { username: 'admin', password, next: '/admin/domains' },
  });
}

/** Signs in and returns the session cookie and the CSRF token of a page. */
async function signIn(): Promise<{ cookie: string; csrf: string }> {
  const response = await login(TOKEN, '127.0.0.9');
  expect(response.statusCode).toBe(303);
  const setCookie = String(response.headers['set-cookie']);
  const cookie = setCookie.split(';')[0]!;
  const page = await app.inject({ url: '/admin/domains', headers: { cookie } });
  const csrf = /name="_csrf" value="([^"]+)"/.exec(page.body)?.[1] ?? '';
  return { cookie, csrf };
}

describe('admin sign-in', () => {
  it('redirects to the login page without a session', async () => {
    const response = await app.inject({ url: '/admin/domains' });
    expect(response.statusCode).toBe(303);
    expect(response.headers.location).toBe('/admin/login?next=%2Fadmin%2Fdomains');
  });

  it('sets an HttpOnly SameSite=Strict cookie', async () => {
    const response = await login(TOKEN, '127.0.0.8');
    const cookie = String(response.headers['set-cookie']);
    expect(cookie).toContain('HttpOnly');
    expect(cookie).toContain('SameSite=Strict');
    expect(cookie).toContain('Path=/admin');
  });

  it('blocks a user name after five failures', async () => {
    for (let attempt = 0; attempt < 5; attempt++) {
      expect((await login('wrong', '127.0.0.7')).statusCode).toBe(401);
    }
    const blocked = await login(TOKEN, '127.0.0.7');
    expect(blocked.statusCode).toBe(429);
    expect(Number(blocked.headers['retry-after'])).toBeGreaterThan(0);
    expect(blocked.body).toContain('Too many failed sign-in attempts');
  });
});

describe('admin CSRF protection', () => {
  it('rejects a form without the token', async () => {
    const { cookie } = await signIn();
    const response = await app.inject({
      method: 'POST',
      url: '/admin/aliases/delete',
      headers: { cookie },
      payload: { address: 'info@club.example', _csrf: 'forged' },
    });
    expect(response.statusCode).toBe(403);
  });

  it('rejects another origin even with the token', async () => {
    const { cookie, csrf } = await signIn();
    const response = await app.inject({
      method: 'POST',
      url: '/admin/domains',
      headers: { cookie, origin: 'http://evil.test', host: 'localhost:80' },
      payload: { name: 'evil.example', _csrf: csrf },
    });
    expect(response.statusCode).toBe(403);
    expect(await context.store.getDomain('evil.example')).toBeUndefined();
  });

  it('accepts a form with the token', async () => {
    const { cookie, csrf } = await signIn();
    const response = await app.inject({
      method: 'POST',
      url: '/admin/domains',
      headers: { cookie },
      payload: { name: 'second.example', _csrf: csrf },
    });
    expect(response.statusCode).toBe(303);
    expect(await context.store.getDomain('second.example')).toBeDefined();
  });
});

describe('admin assets and headers', () => {
  it('serves its own assets with a same-origin policy', async () => {
    const css = await app.inject({ url: '/admin/assets/admin.css' });
    expect(css.statusCode).toBe(200);
    expect(css.headers['content-type']).toContain('text/css');
    expect(String(css.headers['content-security-policy'])).toContain("default-src 'self'");
    const page = await app.inject({ url: '/admin/login' });
    const sources = [...page.body.matchAll(/(?:src|href)="([^"]+)"/g)].map((match) => match[1]);
    expect(sources.every((source) => source?.startsWith('/') || source?.startsWith('#'))).toBe(
      true,
    );
  });
});

describe('DNS check API', () => {
  it('requires the bearer token', async () => {
    const response = await app.inject({ url: '/api/domains/club.example/check' });
    expect(response.statusCode).toBe(401);
  });

  it('returns findings and the readiness card', async () => {
    const response = await app.inject({
      url: '/api/domains/club.example/check',
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    expect(response.statusCode).toBe(200);
    const report = response.json<{
      ok: boolean;
      records: { kind: string; findings: { code: string }[] }[];
      readiness: { requirement: string }[];
    }>();
    expect(report.ok).toBe(false);
    const dkim = report.records.filter((record) => record.kind === 'dkim');
    expect(dkim.map((record) => record.findings[0]?.code)).toEqual(['missing', 'missing']);
    expect(report.readiness.map((item) => item.requirement)).toContain('reverse-dns');
  });

  it('starts a rotation', async () => {
    const response = await app.inject({
      method: 'POST',
      url: '/api/domains/club.example/rotation',
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    expect(response.statusCode).toBe(201);
    expect(response.json<{ stage: string }>().stage).toBe('waiting-for-dns');
  });
});

describe('rotation watch', () => {
  it('switches signing once DNS serves the new keys', async () => {
    const lookups = createCheckLookups({ servers: [dns.address], timeoutMs: 500, tries: 1 });
    const switched: string[] = [];
    const watch = watchRotations(
      { context, lookups, tokens: [], onChange: () => void switched.push('reload') },
      app.log,
      60_000,
    );
    const before = await rotationStatus(context, 'club.example');
    expect(before.stage).toBe('waiting-for-dns');
    await watch.check();
    expect(switched).toEqual([]);

    dns.set(
      before.pending.map(({ key }) => ({
        name: `${key.selector}._domainkey.club.example`,
        type: 'TXT' as const,
        value: key.publicRecord.match(/.{1,255}/g)!,
      })),
    );
    await watch.check();
    watch.stop();
    expect(switched).toEqual(['reload']);
    const after = await rotationStatus(context, 'club.example');
    expect(after.stage).toBe('grace');
    expect(after.active.map((key) => key.selector).sort()).toEqual(
      before.pending.map(({ key }) => key.selector).sort(),
    );
  });
});

describe('delegated DKIM page', () => {
  it('shows the CNAMEs and the provider zone', async () => {
    const { cookie, csrf } = await signIn();
    await addDomain(context, 'delegated.example');
    const enabled = await app.inject({
      method: 'POST',
      url: '/admin/domains/delegated.example/rotation/delegate',
      headers: { cookie },
      payload: { zone: 'keys.provider.test', _csrf: csrf },
    });
    expect(enabled.statusCode).toBe(303);
    const page = await app.inject({ url: '/admin/domains/delegated.example', headers: { cookie } });
    expect(page.body).toContain('Delegated DKIM: CNAME records to publish once');
    expect(page.body).toContain('hd1r.delegated.example.keys.provider.test');
    expect(page.body).toContain("Records for the provider's zone keys.provider.test");
    const clientTable = page.body.slice(0, page.body.indexOf('Delegated DKIM: CNAME'));
    expect(clientTable).not.toContain('hd1r._domainkey.delegated.example</p>');
  });
});

describe('nodes page', () => {
  it('shows this node as the only one on SQLite', async () => {
    const { cookie } = await signIn();
    const response = await app.inject({ url: '/admin/nodes', headers: { cookie } });
    expect(response.statusCode).toBe(200);
    expect(response.body).toContain('The store is SQLite, so this is the only node.');
    expect(response.body).toContain(`<code>${NODE}</code> (this node)`);
    expect(response.body).toContain('No campaign batch is being sent.');
    expect(response.body).toContain('href="/admin/nodes"');
  });

  it('requires a session', async () => {
    const response = await app.inject({ url: '/admin/nodes' });
    expect(response.statusCode).toBe(303);
    expect(response.headers.location).toBe('/admin/login?next=%2Fadmin%2Fnodes');
  });
});
