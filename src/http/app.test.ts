import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import type { FastifyInstance } from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import type { ManagementContext } from '../domains/context.js';
import { verifyPassword } from '../domains/password.js';
import { SqliteStore } from '../store/sqlite.js';

import { buildHttpApp } from './app.js';
import { Metrics } from './metrics.js';

const TOKEN = 'api-test-token';
const auth = { authorization: `Bearer ${TOKEN}` };

let dataDir: string;
let context: ManagementContext;
let app: FastifyInstance;
let changes: number;
let retries: number;

beforeEach(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'herald-http-'));
  const store = new SqliteStore({ path: ':memory:' });
  await store.migrate();
  context = { store, dataDir, hostname: 'mx.herald.test', srsDomain: 'srs.herald.test' };
  changes = 0;
  retries = 0;
  app = buildHttpApp({
    context,
    metrics: new Metrics(),
    tokens: [TOKEN],
    onChange: () => void changes++,
    onRetry: () => void retries++,
  });
  await app.ready();
});

afterEach(async () => {
  await app.close();
  await context.store.close();
  rmSync(dataDir, { recursive: true, force: true });
});

async function call(method: 'GET' | 'POST' | 'DELETE', url: string, payload?: object) {
  const response = await app.inject({
    method,
    url,
    headers: auth,
    ...(payload ? { payload } : {}),
  });
  return { status: response.statusCode, body: response.body ? response.json() : undefined };
}

describe('authentication', () => {
  it('rejects requests without a valid bearer token', async () => {
    for (const authorization of [undefined, 'Bearer wrong', `Basic ${TOKEN}`, TOKEN]) {
      const response = await app.inject({
        method: 'GET',
        url: '/api/domains',
        headers: authorization ? { authorization } : {},
      });
      expect(response.statusCode, String(authorization)).toBe(401);
      expect(response.headers['www-authenticate']).toBe('Bearer realm="herald"');
    }
  });

  it('rejects every API request when no token is configured', async () => {
    const closed = buildHttpApp({ context, metrics: new Metrics(), tokens: [] });
    const response = await closed.inject({ method: 'GET', url: '/api/domains', headers: auth });
    expect(response.statusCode).toBe(401);
    await closed.close();
  });

  it('serves /healthz and /metrics without a token', async () => {
    expect((await app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/metrics' })).statusCode).toBe(200);
  });
});

describe('domains, aliases and credentials', () => {
  it('adds a domain and returns the records to publish', async () => {
    const created = await call('POST', '/api/domains', { name: 'club.test' });
    expect(created.status).toBe(201);
    expect(created.body.domain.name).toBe('club.test');
    expect(created.body.keys).toHaveLength(2);
    const names = (created.body.records as Array<{ name: string }>).map((r) => r.name);
    expect(names).toContain(`${created.body.keys[0].selector}._domainkey.club.test`);
    expect(names).toContain('_dmarc.club.test');
    expect(changes).toBe(1);

    const listed = await call('GET', '/api/domains');
    expect((listed.body as Array<{ name: string }>).map((d) => d.name)).toEqual(['club.test']);
    const shown = await call('GET', '/api/domains/club.test');
    expect(shown.body.records.length).toBe(created.body.records.length);
  });

  it('maps service errors to 400, 404 and 409', async () => {
    expect((await call('POST', '/api/domains', { name: 'not a domain' })).status).toBe(400);
    expect((await call('POST', '/api/domains', {})).status).toBe(400);
    expect((await call('GET', '/api/domains/none.test')).status).toBe(404);
    await call('POST', '/api/domains', { name: 'club.test' });
    const again = await call('POST', '/api/domains', { name: 'club.test' });
    expect(again.status).toBe(409);
    expect(again.body.error).toContain('club.test');
  });

  it('adds, lists and removes aliases', async () => {
    await call('POST', '/api/domains', { name: 'club.test' });
    const created = await call('POST', '/api/aliases', {
      address: 'info@club.test',
      targets: ['a@dest.test'],
      dmarcPolicy: 'reject',
    });
    expect(created.status).toBe(201);
    expect(created.body.dmarcPolicy).toBe('reject');
    const bad = await call('POST', '/api/aliases', { address: 'x@club.test', targets: 'a@d.test' });
    expect(bad.status).toBe(400);

    const listed = await call('GET', '/api/domains/club.test/aliases');
    expect((listed.body as Array<{ localPart: string }>).map((a) => a.localPart)).toEqual(['info']);
    expect((await call('DELETE', '/api/aliases/info@club.test')).status).toBe(204);
    expect((await call('DELETE', '/api/aliases/info@club.test')).status).toBe(404);
  });

  it('adds credentials with a hashed password and never returns the hash', async () => {
    await call('POST', '/api/domains', { name: 'club.test' });
    const created = await call('POST', '/api/credentials', {
      username: 'editor@club.test',
      password: 'long enough password',
    });
    expect(created.status).toBe(201);
    expect(JSON.stringify(created.body)).not.toContain('scrypt');
    const stored = await context.store.getCredential('editor@club.test');
    expect(await verifyPassword('long enough password', stored!.passwordHash)).toBe(true);

    const listed = await call('GET', '/api/domains/club.test/credentials');
    expect(JSON.stringify(listed.body)).not.toContain('scrypt');
    expect((await call('DELETE', '/api/credentials/editor@club.test')).status).toBe(204);
  });
});

describe('queue', () => {
  async function enqueue() {
    return context.store.enqueue({
      body: Buffer.from('Subject: queued\r\n\r\nbody\r\n'),
      origin: 'submission',
      originalSender: 'a@club.test',
      recipients: [{ recipient: 'b@dest.test', sender: 'a@club.test', bounceTo: 'a@club.test' }],
    });
  }

  it('lists, shows, retries and deletes entries', async () => {
    const { messageId } = await enqueue();
    const listed = await call('GET', '/api/queue?status=queued');
    expect((listed.body as Array<{ messageId: string }>).map((e) => e.messageId)).toEqual([
      messageId,
    ]);
    expect((await call('GET', '/api/queue?status=bogus')).status).toBe(400);

    const shown = await call('GET', `/api/queue/${messageId}?body=1`);
    expect(shown.body.entries[0].recipient).toBe('b@dest.test');
    expect(shown.body.body).toContain('Subject: queued');

    const retried = await call('POST', `/api/queue/${messageId}/retry`);
    expect(retried.body.changed).toBe(1);
    expect(retries).toBe(1);

    expect((await call('DELETE', `/api/queue/${messageId}`)).body.deleted).toBe(1);
    expect((await call('GET', `/api/queue/${messageId}`)).status).toBe(404);
  });
});

describe('/metrics', () => {
  it('renders queue sizes and counters in the exposition format', async () => {
    await enqueueOne();
    const metrics = new Metrics();
    metrics.messageReceived('inbound', 2);
    metrics.deliveryAttempted('delivered');
    const text = await metrics.render(context.store);
    expect(text).toContain('# TYPE herald_queue_entries gauge\n');
    expect(text).toMatch(/^herald_queue_entries\{status="queued"\} 1$/m);
    expect(text).toMatch(/^herald_queue_entries\{status="failed"\} 0$/m);
    expect(text).toMatch(/^herald_messages_received_total\{origin="inbound"\} 1$/m);
    expect(text).toMatch(/^herald_recipients_received_total\{origin="inbound"\} 2$/m);
    expect(text).toMatch(/^herald_deliveries_total\{result="delivered"\} 1$/m);
    expect(text.endsWith('\n')).toBe(true);
  });

  it('escapes label values', async () => {
    const metrics = new Metrics();
    metrics.increment('x_total', 'X.', { label: 'a"b\\c\nd' });
    expect(await metrics.render(context.store)).toContain('x_total{label="a\\"b\\\\c\\nd"} 1');
  });

  async function enqueueOne() {
    await context.store.enqueue({
      body: Buffer.from('\r\n'),
      origin: 'inbound',
      originalSender: '',
      recipients: [{ recipient: 'b@dest.test', sender: '', bounceTo: '' }],
    });
  }
});
