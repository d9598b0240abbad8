/**
 * The distribution store on both backends, on the same database as the mail store: a SQLite
 * file, and a fresh database of a private PostgreSQL cluster (started once for this file).
 * The last block covers what only several PostgreSQL connections can get wrong.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import type { DistributionStore } from '../../src/distribution/types.js';
import { DISTRIBUTION_MIGRATIONS } from '../../src/store/distribution-migrations.js';
import {
  openDistributionStore,
  PostgresDistributionStore,
} from '../../src/store/distribution-index.js';
import { StoreConflictError, StoreNotFoundError } from '../../src/store/errors.js';
import { openStore } from '../../src/store/index.js';
import type { Store } from '../../src/store/types.js';
import { startPostgres, type PostgresCluster } from '../helpers/postgres.js';

let cluster: PostgresCluster;
const directories: string[] = [];

beforeAll(async () => {
  cluster = await startPostgres();
}, 60_000);

afterAll(async () => {
  await cluster?.stop();
  for (const directory of directories) rmSync(directory, { recursive: true, force: true });
});

const BACKENDS = [
  {
    name: 'SQLite',
    createUrl: (): Promise<string> => {
      const directory = mkdtempSync(path.join(tmpdir(), 'herald-distribution-store-'));
      directories.push(directory);
      return Promise.resolve(`sqlite:${path.join(directory, 'herald.db')}`);
    },
  },
  { name: 'PostgreSQL', createUrl: (): Promise<string> => cluster.createDatabase() },
];

describe.each(BACKENDS)('$name distribution store', ({ createUrl }) => {
  let url: string;
  let store: Store;
  let db: DistributionStore;

  beforeEach(async () => {
    url = await createUrl();
    store = await openStore({ url });
    db = await openDistributionStore(url);
  });

  afterEach(async () => {
    await db.close();
    await store.close();
  });

  it('migrates idempotently and keeps secrets stable', async () => {
    const secret = await db.getSecret('recipient-token');
    expect(secret).toHaveLength(32);
    await db.migrate();
    const second = await openDistributionStore(url);
    expect((await second.getSecret('recipient-token')).equals(secret)).toBe(true);
    await second.close();
  });

  it('inserts subscribers once per address, ignoring case', async () => {
    const org = await db.createOrganisation('A');
    const list = await db.createList({ organisationId: org.id, name: 'L' });
    const first = await db.addSubscribers(list.id, [
      { address: 'Ann@Example.net', name: 'Ann', fields: { city: 'Oslo' } },
      { address: 'ann@example.net' },
      { address: 'bob@example.net' },
    ]);
    expect(first.ids[0]).toBeGreaterThan(0);
    expect(first.ids[1]).toBeNull();
    const second = await db.addSubscribers(list.id, [
      { address: 'BOB@example.net' },
      { address: 'cleo@example.net' },
    ]);
    expect(second.ids[0]).toBeNull();
    expect(second.ids[1]).toBeGreaterThan(0);

    const ann = await db.findSubscriber(list.id, 'ANN@example.NET');
    expect(ann).toMatchObject({
      address: 'Ann@Example.net',
      name: 'Ann',
      fields: { city: 'Oslo' },
      status: 'subscribed',
    });
    const page = await db.pageSubscribers(list.id, { afterId: 0, limit: 2 });
    expect(page.subscribers.map((s) => s.address)).toEqual(['Ann@Example.net', 'bob@example.net']);
    const rest = await db.pageSubscribers(list.id, { afterId: page.nextAfterId!, limit: 2 });
    expect(rest.subscribers.map((s) => s.address)).toEqual(['cleo@example.net']);
    expect(rest.nextAfterId).toBeNull();
    expect(await db.countSubscribedAfter(list.id, 0)).toBe(3);
  });

  it('rejects a second owner for a domain and duplicate names', async () => {
    const a = await db.createOrganisation('A');
    const b = await db.createOrganisation('B');
    await db.assignDomain(a.id, 'Club.Example');
    await db.assignDomain(a.id, 'club.example');
    await expect(db.assignDomain(b.id, 'club.example')).rejects.toBeInstanceOf(StoreConflictError);
    expect(await db.domainOwner('CLUB.example')).toBe(a.id);
    await expect(db.createOrganisation('A')).rejects.toBeInstanceOf(StoreConflictError);
  });

  it('keeps suppressions per organisation', async () => {
    const a = await db.createOrganisation('A');
    const b = await db.createOrganisation('B');
    await db.suppress({
      organisationId: a.id,
      address: 'Gone@Example.net',
      reason: 'hard-bounce',
      detail: '5.1.1',
    });
    await db.suppress({
      organisationId: a.id,
      address: 'gone@example.net',
      reason: 'complaint',
      detail: 'again',
    });
    expect([
      ...(await db.suppressedAmong(a.id, ['GONE@example.net', 'other@example.net'])),
    ]).toEqual(['gone@example.net']);
    expect((await db.suppressedAmong(b.id, ['gone@example.net'])).size).toBe(0);
    const [entry] = await db.listSuppressions(a.id);
    expect(entry).toMatchObject({ reason: 'hard-bounce', detail: '5.1.1' });
  });

  it('reads queue entries of a campaign from the mail store', async () => {
    const org = await db.createOrganisation('A');
    const list = await db.createList({ organisationId: org.id, name: 'L' });
    const campaign = await db.createCampaign({
      organisationId: org.id,
      listId: list.id,
      name: 'c',
      fromAddress: 'news@club.example',
      subject: 's',
      html: 'h',
    });
    const { ids } = await db.addSubscribers(list.id, [
      { address: 'a@example.net' },
      { address: 'b@example.net' },
    ]);
    const { messageId } = await store.enqueue({
      body: Buffer.from('Subject: x\r\n\r\nx\r\n'),
      origin: 'campaign',
      originalSender: 'bounces+x@club.example',
      recipients: [
        {
          recipient: 'a@example.net',
          sender: 'bounces+x@club.example',
          bounceTo: '',
          campaignId: campaign.id,
          subscriberId: ids[0]!,
        },
      ],
    });
    expect([...(await db.alreadyQueued(campaign.id, [ids[0]!, ids[1]!]))]).toEqual([ids[0]]);

    await db.recordRecipients(campaign.id, [
      {
        campaignId: campaign.id,
        subscriberId: ids[0]!,
        address: 'a@example.net',
        status: 'queued',
        messageId,
        detail: '',
        updatedAt: new Date(),
      },
    ]);
    expect(await db.queueChanges(campaign.id, 10)).toEqual([]);

    const [entry] = await store.listEntriesOfMessage(messageId);
    const [claimed] = await store.claimDue({ owner: 'test', limit: 1, leaseMs: 60_000 });
    expect(claimed!.id).toBe(entry!.id);
    await store.completeAttempt(entry!.id, 'test', {
      status: 'failed',
      reply: '550 5.1.1 unknown',
      mx: 'mx',
      dsn: '5.1.1',
    });
    expect(await db.queueChanges(campaign.id, 10)).toEqual([
      { subscriberId: ids[0], status: 'failed', lastReply: '550 5.1.1 unknown' },
    ]);
    await db.setRecipientStatus(campaign.id, ids[0]!, 'bounced', 'bad-address');
    expect(await db.queueChanges(campaign.id, 10)).toEqual([]);
    expect((await db.countRecipients(campaign.id)).bounced).toBe(1);
  });

  it('lists due campaigns', async () => {
    const org = await db.createOrganisation('A');
    const list = await db.createList({ organisationId: org.id, name: 'L' });
    const base = {
      organisationId: org.id,
      listId: list.id,
      name: 'c',
      fromAddress: 'n@club.example',
      subject: 's',
      html: 'h',
    };
    const later = await db.createCampaign(base);
    const soon = await db.createCampaign(base);
    const draft = await db.createCampaign(base);
    await db.updateCampaign(later.id, {
      status: 'scheduled',
      scheduledAt: new Date(Date.now() + 3_600_000),
    });
    await db.updateCampaign(soon.id, {
      status: 'scheduled',
      scheduledAt: new Date(Date.now() - 1000),
    });
    expect((await db.dueCampaigns(new Date())).map((c) => c.id)).toEqual([soon.id]);
    expect((await db.getCampaign(draft.id))!.status).toBe('draft');
  });

  it('claims campaign batches under leases', async () => {
    const org = await db.createOrganisation('A');
    const list = await db.createList({ organisationId: org.id, name: 'L' });
    const { ids } = await db.addSubscribers(
      list.id,
      Array.from({ length: 7 }, (_, i) => ({
        address: `m${i}@example.net`,
        status: i === 3 ? ('unsubscribed' as const) : ('subscribed' as const),
      })),
    );
    const subscribed = ids.filter((_, i) => i !== 3) as number[];
    const campaign = await db.createCampaign({
      organisationId: org.id,
      listId: list.id,
      name: 'c',
      fromAddress: 'n@club.example',
      subject: 's',
      html: 'h',
      ratePerMinute: 60,
    });
    await db.updateCampaign(campaign.id, { status: 'sending' });
    const now = new Date('2026-12-01T10:00:00Z');
    const at = (ms: number) => new Date(now.getTime() + ms);
    const options = { limit: 4, leaseMs: 60_000 };

    const first = (await db.claimCampaignBatch(campaign.id, 'a', { ...options, now }))!;
    expect(first.afterId).toBe(0);
    expect(first.subscribers.map((s) => s.id)).toEqual(subscribed.slice(0, 4));
    expect(first.lastId).toBe(subscribed[3]);
    expect(first.takenOver).toBe(false);
    expect(first.startAt).toEqual(now);
    // At 60 per minute, four messages take four seconds, so the next batch starts after them.
    const second = (await db.claimCampaignBatch(campaign.id, 'b', { ...options, now }))!;
    expect(second.afterId).toBe(first.lastId);
    expect(second.subscribers.map((s) => s.id)).toEqual(subscribed.slice(4));
    expect(second.startAt).toEqual(at(4_000));
    expect(await db.claimCampaignBatch(campaign.id, 'b', { ...options, now })).toBeUndefined();
    expect((await db.getCampaign(campaign.id))!.cursor).toBe(second.lastId);
    expect(await db.countUnsent(campaign.id)).toBe(6);

    // b renews, a does not: a's batch is taken over once its lease runs out.
    expect([...(await db.renewCampaignBatches(campaign.id, 'b', 60_000, at(50_000)))]).toEqual([
      second.afterId,
    ]);
    const retaken = (await db.claimCampaignBatch(campaign.id, 'b', {
      ...options,
      now: at(61_000),
    }))!;
    expect(retaken.takenOver).toBe(true);
    expect(retaken.afterId).toBe(first.afterId);
    expect(retaken.subscribers.map((s) => s.id)).toEqual(subscribed.slice(0, 4));
    expect((await db.renewCampaignBatches(campaign.id, 'a', 60_000, at(61_000))).size).toBe(0);
    // The admin pages list both open batches with their current holders.
    const open = await db.listOpenBatches();
    expect(open.map((batch) => [batch.afterId, batch.lastId, batch.owner])).toEqual([
      [first.afterId, first.lastId, 'b'],
      [second.afterId, second.lastId, 'b'],
    ]);
    expect(open[0]!.leaseUntil).toEqual(at(121_000));
    expect(open[0]!.createdAt).toEqual(now);

    const recipients = (batch: typeof first) =>
      batch.subscribers.map((subscriber) => ({
        campaignId: campaign.id,
        subscriberId: subscriber.id,
        address: subscriber.address,
        status: 'queued' as const,
        messageId: null,
        detail: '',
        updatedAt: new Date(),
      }));
    expect(await db.recordBatch(campaign.id, recipients(first), claimOfFirst('a'))).toBe(false);
    expect(await db.countRecipients(campaign.id)).toMatchObject({ queued: 0 });
    expect(await db.finishCampaign(campaign.id)).toBe(false);
    expect(await db.recordBatch(campaign.id, recipients(retaken), claimOfFirst('b'))).toBe(true);
    expect(await db.countUnsent(campaign.id)).toBe(2);
    expect(
      await db.recordBatch(campaign.id, recipients(second), {
        afterId: second.afterId,
        owner: 'b',
      }),
    ).toBe(true);
    expect(await db.countUnsent(campaign.id)).toBe(0);
    expect(await db.listOpenBatches()).toEqual([]);
    expect(await db.countRecipients(campaign.id)).toMatchObject({ queued: 6 });
    expect(await db.finishCampaign(campaign.id, at(70_000))).toBe(true);
    expect(await db.finishCampaign(campaign.id, at(71_000))).toBe(false);
    const finished = (await db.getCampaign(campaign.id))!;
    expect(finished.status).toBe('sent');
    expect(finished.finishedAt).toEqual(at(70_000));

    function claimOfFirst(owner: string) {
      return { afterId: first.afterId, owner };
    }
  });

  it('inserts large imports across chunks', async () => {
    const org = await db.createOrganisation('A');
    const list = await db.createList({ organisationId: org.id, name: 'L' });
    await db.addSubscribers(list.id, [{ address: 'early@example.net' }]);
    // 2,500 rows (three PostgreSQL chunks of at most 1,000): from row 1,000 on, every fifth
    // repeats an earlier row in upper case, often one of an earlier chunk, and the last row
    // repeats the first import.
    const duplicate = (i: number) => (i >= 1000 && i % 5 === 4) || i === 2499;
    const rows = Array.from({ length: 2500 }, (_, i) => ({
      address: duplicate(i) ? `MEMBER${i - 999}@EXAMPLE.NET` : `member${i}@example.net`,
    }));
    rows[2499] = { address: 'Early@Example.net' };
    const { ids } = await db.addSubscribers(list.id, rows);

    expect(ids).toHaveLength(2500);
    expect(ids.map((id) => id === null)).toEqual(rows.map((_, i) => duplicate(i)));
    const inserted = ids.filter((id): id is number => id !== null);
    expect([...inserted].sort((a, b) => a - b)).toEqual(inserted);
    expect(new Set(inserted).size).toBe(inserted.length);
    expect((await db.countSubscribers(list.id)).subscribed).toBe(inserted.length + 1);
    expect((await db.findSubscriber(list.id, 'member1@example.net'))!.id).toBe(ids[1]);
  });

  it('applies status updates in order', async () => {
    const org = await db.createOrganisation('A');
    const list = await db.createList({ organisationId: org.id, name: 'L' });
    const campaign = await db.createCampaign({
      organisationId: org.id,
      listId: list.id,
      name: 'c',
      fromAddress: 'n@club.example',
      subject: 's',
      html: 'h',
    });
    const { ids } = await db.addSubscribers(list.id, [
      { address: 'a@example.net' },
      { address: 'b@example.net' },
    ]);
    const [a, b] = ids as [number, number];
    const recipient = (subscriberId: number, address: string) => ({
      campaignId: campaign.id,
      subscriberId,
      address,
      status: 'queued' as const,
      messageId: null,
      detail: '',
      updatedAt: new Date(),
    });
    await db.recordRecipients(campaign.id, [recipient(a, 'a@example.net')]);
    // Recording a again adds no row and no event.
    await db.recordRecipients(campaign.id, [
      recipient(b, 'b@example.net'),
      recipient(a, 'a@example.net'),
    ]);
    expect(await db.listCampaignEvents(campaign.id)).toHaveLength(2);

    await db.setRecipientStatuses(campaign.id, [
      { subscriberId: a, status: 'deferred', detail: 'first' },
      { subscriberId: b, status: 'delivered', detail: '250 ok' },
      { subscriberId: a, status: 'bounced', detail: 'second' },
    ]);
    expect(await db.getRecipient(campaign.id, a)).toMatchObject({
      status: 'bounced',
      detail: 'second',
    });
    expect(await db.getRecipient(campaign.id, b)).toMatchObject({ status: 'delivered' });
    const events = await db.listCampaignEvents(campaign.id);
    expect(events.map((event) => [event.subscriberId, event.kind, event.detail])).toEqual([
      [a, 'bounced', 'second'],
      [b, 'delivered', '250 ok'],
      [a, 'deferred', 'first'],
      [b, 'queued', ''],
      [a, 'queued', ''],
    ]);
    expect(await db.countRecipients(campaign.id)).toEqual({
      queued: 0,
      delivered: 1,
      deferred: 0,
      bounced: 1,
      complained: 0,
      unsubscribed: 0,
      suppressed: 0,
    });
    expect(
      (await db.listRecipients(campaign.id, { status: 'bounced' })).map((r) => r.address),
    ).toEqual(['a@example.net']);
  });

  it('round-trips campaign fields and times', async () => {
    const org = await db.createOrganisation('A');
    const list = await db.createList({ organisationId: org.id, name: 'L', description: 'd' });
    const scheduledAt = new Date('2026-12-24T18:00:00.123Z');
    const campaign = await db.createCampaign({
      organisationId: org.id,
      listId: list.id,
      name: 'c',
      fromAddress: 'n@club.example',
      fromName: 'Club',
      replyTo: 'office@club.example',
      subject: 's',
      html: '<p>h</p>',
      text: 'h',
      ratePerMinute: 120,
      scheduledAt,
    });
    expect(campaign).toMatchObject({
      status: 'draft',
      fromName: 'Club',
      replyTo: 'office@club.example',
      text: 'h',
      ratePerMinute: 120,
      cursor: 0,
      startedAt: null,
      finishedAt: null,
    });
    expect(campaign.scheduledAt).toEqual(scheduledAt);

    const startedAt = new Date('2026-12-24T18:00:01.456Z');
    await db.updateCampaign(campaign.id, { status: 'sending', startedAt, scheduledAt: null });
    const updated = (await db.getCampaign(campaign.id))!;
    expect(updated.status).toBe('sending');
    expect(updated.startedAt).toEqual(startedAt);
    expect(updated.scheduledAt).toBeNull();

    expect((await db.dueCampaigns(new Date())).map((c) => c.id)).toEqual([campaign.id]);
    expect((await db.listCampaigns(org.id)).map((c) => c.id)).toEqual([campaign.id]);
    expect(await db.listCampaigns(org.id + 1)).toEqual([]);
    await expect(
      db.createCampaign({ ...campaign, listId: list.id + 1, organisationId: org.id }),
    ).rejects.toBeInstanceOf(StoreNotFoundError);
  });

  it('counts soft bounces and subscriber states', async () => {
    const org = await db.createOrganisation('A');
    const list = await db.createList({ organisationId: org.id, name: 'L' });
    const { ids } = await db.addSubscribers(list.id, [
      { address: 'a@example.net' },
      { address: 'b@example.net', status: 'unsubscribed' },
    ]);
    const [a] = ids as [number];
    expect(await db.addSoftBounce(a)).toBe(1);
    expect(await db.addSoftBounce(a)).toBe(2);
    expect(await db.addSoftBounce(a + 1000)).toBe(0);
    await db.setSubscriberStatus(a, 'bounced');
    const subscriber = (await db.getSubscriber(a))!;
    expect(subscriber.softBounces).toBe(2);
    expect(subscriber.status).toBe('bounced');
    expect(subscriber.updatedAt.getTime()).toBeGreaterThanOrEqual(subscriber.createdAt.getTime());
    expect(await db.countSubscribers(list.id)).toEqual({
      subscribed: 0,
      unsubscribed: 1,
      bounced: 1,
      complained: 0,
    });
    const page = await db.pageSubscribers(list.id, { afterId: 0, limit: 10, status: 'bounced' });
    expect(page.subscribers.map((s) => s.id)).toEqual([a]);
    expect(page.nextAfterId).toBeNull();
  });

  it('sorts domains and finds tokens', async () => {
    const org = await db.createOrganisation('A');
    for (const domain of ['a_b.example', 'A.example', 'a-b.example']) {
      await db.assignDomain(org.id, domain);
    }
    // Code point order, as SQLite compares text: '-' < '.' < '_'.
    expect(await db.listOrganisationDomains(org.id)).toEqual([
      'a-b.example',
      'a.example',
      'a_b.example',
    ]);
    await expect(db.assignDomain(org.id + 1, 'new.example')).rejects.toBeInstanceOf(
      StoreNotFoundError,
    );
    const token = await db.addApiToken({
      organisationId: org.id,
      role: 'member',
      label: 'ci',
      secretHash: 'f'.repeat(64),
    });
    expect(await db.findApiToken('f'.repeat(64))).toEqual(token);
    const admin = await db.addApiToken({
      organisationId: null,
      role: 'admin',
      label: 'root',
      secretHash: 'e'.repeat(64),
    });
    expect(admin.organisationId).toBeNull();
    await expect(
      db.addApiToken({ organisationId: org.id + 1, role: 'member', label: 'x', secretHash: 'd' }),
    ).rejects.toBeInstanceOf(StoreNotFoundError);
  });
});

describe('PostgreSQL distribution store across connections', () => {
  /** Opens the mail store and `count` distribution stores on one new database. */
  async function openNodes(count: number) {
    const url = await cluster.createDatabase();
    const store = await openStore({ url });
    const nodes = await Promise.all(
      Array.from({ length: count }, () => openDistributionStore(url)),
    );
    return {
      url,
      nodes,
      close: async () => {
        await Promise.all(nodes.map((node) => node.close()));
        await store.close();
      },
    };
  }

  it('migrates once when nodes start together', async () => {
    const url = await cluster.createDatabase();
    // Each node migrates the mail store and then the distribution tables, all at once.
    const nodes = await Promise.all(
      Array.from({ length: 4 }, async () => {
        const store = await openStore({ url });
        return { store, distribution: await openDistributionStore(url) };
      }),
    );
    try {
      const { rows } = await cluster.query(
        'SELECT version FROM distribution_schema_migrations ORDER BY version',
        [],
        url,
      );
      expect(rows.map((row: { version: number }) => row.version)).toEqual(
        DISTRIBUTION_MIGRATIONS.map((migration) => migration.version),
      );
      const organisation = await nodes[0]!.distribution.createOrganisation('A');
      expect(await nodes[3]!.distribution.getOrganisation(organisation.id)).toEqual(organisation);
    } finally {
      for (const node of nodes) {
        await node.distribution.close();
        await node.store.close();
      }
    }
  });

  it('creates a secret once when nodes race', async () => {
    const { nodes, close } = await openNodes(4);
    try {
      for (const name of ['recipient-token', 'verp', 'other']) {
        const secrets = await Promise.all(nodes.map((node) => node.getSecret(name)));
        expect(secrets[0]).toHaveLength(32);
        for (const secret of secrets) expect(secret.equals(secrets[0]!)).toBe(true);
      }
    } finally {
      await close();
    }
  });

  it('claims disjoint batches from four nodes', async () => {
    const { nodes, close } = await openNodes(4);
    try {
      const org = await nodes[0]!.createOrganisation('A');
      const list = await nodes[0]!.createList({ organisationId: org.id, name: 'L' });
      const { ids } = await nodes[0]!.addSubscribers(
        list.id,
        Array.from({ length: 300 }, (_, i) => ({ address: `m${i}@example.net` })),
      );
      const campaign = await nodes[0]!.createCampaign({
        organisationId: org.id,
        listId: list.id,
        name: 'c',
        fromAddress: 'n@club.example',
        subject: 's',
        html: 'h',
      });
      await nodes[0]!.updateCampaign(campaign.id, { status: 'sending' });
      // Every node claims and records batches of 7 until none is left, all at the same time.
      const claimed = await Promise.all(
        nodes.map(async (node, index) => {
          const owner = `node${index}`;
          const got: number[] = [];
          for (;;) {
            const batch = await node.claimCampaignBatch(campaign.id, owner, {
              limit: 7,
              leaseMs: 60_000,
            });
            if (batch === undefined) return got;
            got.push(...batch.subscribers.map((subscriber) => subscriber.id));
            const recipients = batch.subscribers.map((subscriber) => ({
              campaignId: campaign.id,
              subscriberId: subscriber.id,
              address: subscriber.address,
              status: 'queued' as const,
              messageId: null,
              detail: '',
              updatedAt: new Date(),
            }));
            expect(
              await node.recordBatch(campaign.id, recipients, { afterId: batch.afterId, owner }),
            ).toBe(true);
          }
        }),
      );
      expect(claimed.flat().sort((a, b) => a - b)).toEqual(ids);
      const finished = await Promise.all(nodes.map((node) => node.finishCampaign(campaign.id)));
      expect(finished.filter(Boolean)).toHaveLength(1);
      expect((await nodes[1]!.countRecipients(campaign.id)).queued).toBe(300);
    } finally {
      await close();
    }
  });

  it('gives a domain to one organisation when two race', async () => {
    const { nodes, close } = await openNodes(2);
    try {
      const a = await nodes[0]!.createOrganisation('A');
      const b = await nodes[0]!.createOrganisation('B');
      for (let round = 0; round < 10; round++) {
        const domain = `d${round}.example`;
        const results = await Promise.allSettled([
          nodes[0]!.assignDomain(a.id, domain),
          nodes[1]!.assignDomain(b.id, domain),
        ]);
        const fulfilled = results.filter((result) => result.status === 'fulfilled');
        expect(fulfilled).toHaveLength(1);
        const rejected = results.find((result) => result.status === 'rejected');
        expect(rejected?.reason).toBeInstanceOf(StoreConflictError);
        const owner = await nodes[1]!.domainOwner(domain);
        expect(owner).toBe(results[0].status === 'fulfilled' ? a.id : b.id);
      }
    } finally {
      await close();
    }
  });

  it('returns BIGINT ids and times as numbers and Dates', async () => {
    const { url, nodes, close } = await openNodes(1);
    const db = nodes[0]!;
    try {
      // pg returns every BIGINT as a string. Ids above 2^32 show that the conversion keeps
      // them exact.
      const high = 2 ** 40;
      for (const table of ['organisations', 'lists', 'subscribers', 'campaigns']) {
        await cluster.query(`SELECT setval('${table}_id_seq', $1)`, [high], url);
      }
      const before = Date.now();
      const org = await db.createOrganisation('A');
      const list = await db.createList({ organisationId: org.id, name: 'L' });
      const { ids } = await db.addSubscribers(list.id, [{ address: 'a@example.net' }]);
      const campaign = await db.createCampaign({
        organisationId: org.id,
        listId: list.id,
        name: 'c',
        fromAddress: 'n@club.example',
        subject: 's',
        html: 'h',
      });
      expect(org.id).toBe(high + 1);
      expect(list.id).toBe(high + 1);
      expect(ids).toEqual([high + 1]);
      expect(campaign.id).toBe(high + 1);
      expect(list.organisationId).toBe(org.id);
      expect(campaign.listId).toBe(list.id);

      for (const time of [org.createdAt, list.createdAt, campaign.createdAt]) {
        expect(time).toBeInstanceOf(Date);
        expect(time.getTime()).toBeGreaterThanOrEqual(before);
        expect(time.getTime()).toBeLessThanOrEqual(Date.now());
      }
      const batch = await db.claimCampaignBatch(campaign.id, 'node', { limit: 10, leaseMs: 1000 });
      expect(batch).toMatchObject({ afterId: 0, lastId: high + 1 });
      expect(batch!.subscribers[0]!.id).toBe(high + 1);
      const recorded = await db.recordBatch(
        campaign.id,
        [
          {
            campaignId: campaign.id,
            subscriberId: ids[0]!,
            address: 'a@example.net',
            status: 'queued',
            messageId: null,
            detail: '',
            updatedAt: new Date(),
          },
        ],
        { afterId: 0, owner: 'node' },
      );
      expect(recorded).toBe(true);
      const updated = (await db.getCampaign(campaign.id))!;
      expect(updated.cursor).toBe(high + 1);
      const recipient = (await db.getRecipient(campaign.id, ids[0]!))!;
      expect(recipient.subscriberId).toBe(high + 1);
      expect(recipient.updatedAt).toBeInstanceOf(Date);
      const [event] = await db.listCampaignEvents(campaign.id);
      expect(typeof event!.id).toBe('number');
      expect(event!.subscriberId).toBe(high + 1);
      expect(event!.time).toBeInstanceOf(Date);
      expect(await db.countSubscribedAfter(list.id, 0)).toBe(1);
      expect((await db.countRecipients(campaign.id)).queued).toBe(1);
      expect([...(await db.alreadyQueued(campaign.id, [high + 1]))]).toEqual([]);
    } finally {
      await close();
    }
  });

  it('redacts the password when it cannot connect', async () => {
    const closed = await closedPort();
    const error = await openDistributionStore(
      `postgres://herald:s3cret@127.0.0.1:${closed}/herald`,
    ).then(
      () => undefined,
      (reason: unknown) => reason as Error,
    );
    expect(error).toBeInstanceOf(Error);
    expect(error!.message).toContain(`postgres://herald:***@127.0.0.1:${closed}/herald`);
    expect(error!.message).not.toContain('s3cret');
  });

  it('rejects queries after close', async () => {
    const url = await cluster.createDatabase();
    const store = await openStore({ url });
    const db = new PostgresDistributionStore({ url });
    await db.migrate();
    await db.close();
    await db.close();
    await expect(db.listOrganisations()).rejects.toThrow(/closed/);
    await store.close();
  });
});

/** Finds a loopback port that nothing listens on, by binding and closing it. */
async function closedPort(): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}
