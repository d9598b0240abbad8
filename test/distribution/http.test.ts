/**
 * The distribution API and unsubscribe pages over real HTTP on 127.0.0.1: tenancy between two
 * organisations, CSV import with rejected rows, the one-click unsubscribe, and forged tokens.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { signMessage } from '../../src/dkim/index.js';
import type { ImportSummary } from '../../src/distribution/csv-import.js';
import { ADMIN } from '../../src/distribution/service.js';
import { makeToken } from '../../src/distribution/tokens.js';
import { distributionPlugin } from '../../src/http/distribution-plugin.js';
import { startHarness, type DistributionHarness } from './helpers.js';

/** Signs in the test process: these tests do not look at signatures. */
const signer = {
  signBatch: (messages: readonly Buffer[], options: Parameters<typeof signMessage>[1]) =>
    Promise.resolve(messages.map((message) => signMessage(message, options))),
};

let harness: DistributionHarness;
let app: FastifyInstance;
let base: string;
let tokenA: string;
let tokenB: string;
let listA: number;
let campaignA: number;
const ADMIN_TOKEN = 'admin-token-for-tests';

async function api(path: string, token: string, init: RequestInit = {}): Promise<Response> {
  return fetch(`${base}${path}`, {
    ...init,
    headers: { authorization: `Bearer ${token}`, ...(init.headers ?? {}) },
  });
}

async function json(
  path: string,
  token: string,
  method = 'GET',
  payload?: unknown,
): Promise<{ status: number; body: { id: number; error?: string } & Record<string, unknown> }> {
  const response = await api(path, token, {
    method,
    ...(payload === undefined
      ? {}
      : { body: JSON.stringify(payload), headers: { 'content-type': 'application/json' } }),
  });
  return {
    status: response.status,
    body: (await response.json()) as { id: number; error?: string } & Record<string, unknown>,
  };
}

beforeAll(async () => {
  harness = await startHarness({ signer });
  app = Fastify();
  await app.register(distributionPlugin, {
    service: harness.service,
    distribution: harness.distribution,
    recorder: harness.recorder,
    adminTokens: [ADMIN_TOKEN],
  });
  base = await app.listen({ host: '127.0.0.1', port: 0 });

  const other = await harness.service.createOrganisation(ADMIN, 'Chess Club');
  tokenA = await harness.service.createToken(ADMIN, harness.organisation.id, 'member', 'a');
  tokenB = await harness.service.createToken(ADMIN, other.id, 'member', 'b');

  const list = await json('/api/lists', tokenA, 'POST', { name: 'Members' });
  expect(list.status).toBe(201);
  listA = list.body.id;
  const campaign = await json('/api/campaigns', tokenA, 'POST', {
    listId: listA,
    from: 'news@news.test',
    subject: 'Hello {{first_name|member}}',
    html: '<p>Hi</p>',
  });
  expect(campaign.status).toBe(201);
  campaignA = campaign.body.id;
});

afterAll(async () => {
  await app?.close();
  await harness?.close();
});

describe('distribution API', () => {
  it('rejects requests without a valid token', async () => {
    expect((await fetch(`${base}/api/lists`)).status).toBe(401);
    expect((await api('/api/lists', 'hrld_forged')).status).toBe(401);
  });

  it('answers 404 for another organisation', async () => {
    expect((await json(`/api/lists/${listA}`, tokenA)).status).toBe(200);
    expect((await json(`/api/lists/${listA}`, tokenB)).status).toBe(404);
    expect((await json(`/api/campaigns/${campaignA}`, tokenB)).status).toBe(404);
    expect((await json(`/api/campaigns/${campaignA}/report`, tokenB)).status).toBe(404);
    expect((await json(`/api/campaigns/${campaignA}/send`, tokenB, 'POST', {})).status).toBe(404);
    expect((await json(`/api/organisations/${harness.organisation.id}`, tokenB)).status).toBe(404);
    expect((await json('/api/lists', tokenB)).body).toEqual([]);
    const admin = await json(`/api/lists/${listA}`, ADMIN_TOKEN);
    expect(admin.status).toBe(200);
  });

  it('answers 409 for a change the campaign state does not allow', async () => {
    const cancelled = await json(`/api/campaigns/${campaignA}/cancel`, tokenA, 'POST', {});
    expect(cancelled.status).toBe(200);
    const resumed = await json(`/api/campaigns/${campaignA}/resume`, tokenA, 'POST', {});
    expect(resumed.status).toBe(409);
    expect(resumed.body.error).toMatch(/is cancelled/);
    const sent = await json(`/api/campaigns/${campaignA}/send`, tokenA, 'POST', {});
    expect(sent.status).toBe(409);
  });

  it('refuses a From domain the organisation does not own', async () => {
    const other = await json('/api/lists', tokenB, 'POST', { name: 'Chess' });
    const created = await json('/api/campaigns', tokenB, 'POST', {
      listId: other.body.id,
      from: 'news@news.test',
      subject: 's',
      html: '<p>x</p>',
    });
    expect(created.status).toBe(400);
    expect(created.body.error).toMatch(/not a domain of organisation/);
  });

  it('imports CSV, reports malformed rows and exports the list', async () => {
    const csv =
      'email,first_name\nann@example.net,Ann\nbroken,Bob\ncleo@example.net,Cleo,extra\nann@example.net,Ann\n';
    const response = await api(`/api/lists/${listA}/import`, tokenA, {
      method: 'POST',
      body: csv,
      headers: { 'content-type': 'text/csv' },
    });
    expect(response.status).toBe(200);
    const summary = (await response.json()) as ImportSummary;
    expect(summary).toMatchObject({ rows: 4, imported: 1, duplicates: 1, rejected: 3 });
    expect(summary.rejects.map((reject) => [reject.line, reject.reason])).toEqual([
      [3, 'address has no @'],
      [4, 'wrong number of fields'],
      [5, 'duplicate address'],
    ]);

    const forbidden = await api(`/api/lists/${listA}/import`, tokenB, {
      method: 'POST',
      body: csv,
      headers: { 'content-type': 'text/csv' },
    });
    expect(forbidden.status).toBe(404);

    const exported = await api(`/api/lists/${listA}/export`, tokenA);
    expect(exported.headers.get('content-type')).toMatch(/^text\/csv/);
    const lines = (await exported.text()).trim().split('\n');
    expect(lines[0]).toBe('email,name,status,fields,created_at');
    expect(lines[1]).toMatch(/^ann@example\.net,Ann,subscribed,"{""first_name"":""Ann""}",/);
    expect(lines).toHaveLength(2);
  });

  it('serves the OpenAPI document without a token', async () => {
    const response = await fetch(`${base}/api/distribution/openapi.json`);
    expect(response.status).toBe(200);
    const document = (await response.json()) as { openapi: string; paths: Record<string, unknown> };
    expect(document.openapi).toBe('3.1.0');
    expect(Object.keys(document.paths)).toContain('/campaigns/{id}/report');
  });
});

describe('unsubscribe pages', () => {
  it('shows a confirmation page, then unsubscribes on one-click POST', async () => {
    const subscriber = (await harness.distribution.findSubscriber(listA, 'ann@example.net'))!;
    const secret = await harness.distribution.getSecret('recipient-token');
    const token = makeToken(secret, 'unsubscribe', {
      campaignId: campaignA,
      subscriberId: subscriber.id,
    });

    const page = await fetch(`${base}/u/${token}`);
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain('Unsubscribe ann@example.net from the list Members?');
    expect(html).toContain(`<form method="post" action="/u/${token}">`);
    // A GET changes nothing: link scanners follow links.
    expect((await harness.distribution.getSubscriber(subscriber.id))!.status).toBe('subscribed');

    const post = await fetch(`${base}/u/${token}`, {
      method: 'POST',
      body: 'List-Unsubscribe=One-Click',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(post.status).toBe(200);
    expect((await harness.distribution.getSubscriber(subscriber.id))!.status).toBe('unsubscribed');
    const suppressed = await harness.distribution.suppressedAmong(harness.organisation.id, [
      'ann@example.net',
    ]);
    expect(suppressed.has('ann@example.net')).toBe(true);
  });

  it('rejects a forged token', async () => {
    const subscriber = await harness.service.addSubscriber(ADMIN, listA, {
      address: 'dan@example.net',
    });
    const forged = `${campaignA.toString(36)}.${subscriber.id.toString(36)}.0123456789abcdef0123`;
    expect((await fetch(`${base}/u/${forged}`)).status).toBe(404);
    const post = await fetch(`${base}/u/${forged}`, {
      method: 'POST',
      body: 'List-Unsubscribe=One-Click',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(post.status).toBe(404);
    expect((await harness.distribution.getSubscriber(subscriber.id))!.status).toBe('subscribed');
  });
});
