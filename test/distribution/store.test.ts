/** The SQLite distribution store, on the same file as the mail store. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import {
  openSqliteDistributionStore,
  type SqliteDistributionStore,
} from '../../src/store/distribution-sqlite.js';
import { StoreConflictError } from '../../src/store/errors.js';
import { openStore } from '../../src/store/index.js';
import type { Store } from '../../src/store/types.js';

let dir: string;
let file: string;
let store: Store;
let db: SqliteDistributionStore;

beforeEach(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'herald-distribution-store-'));
  file = path.join(dir, 'herald.db');
  store = await openStore({ url: `sqlite:${file}` });
  db = await openSqliteDistributionStore(file);
});

afterEach(async () => {
  await db.close();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('SqliteDistributionStore', () => {
  it('migrates idempotently and keeps secrets stable', async () => {
    const secret = await db.getSecret('recipient-token');
    expect(secret).toHaveLength(32);
    await db.migrate();
    const second = await openSqliteDistributionStore(file);
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

    await db.recordRecipients(
      campaign.id,
      [
        {
          campaignId: campaign.id,
          subscriberId: ids[0]!,
          address: 'a@example.net',
          status: 'queued',
          messageId,
          detail: '',
          updatedAt: new Date(),
        },
      ],
      ids[0]!,
    );
    expect((await db.getCampaign(campaign.id))!.cursor).toBe(ids[0]);
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

  it('leases a campaign to one sender', async () => {
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
    const now = new Date('2026-12-01T10:00:00Z');
    const later = (ms: number) => new Date(now.getTime() + ms);

    expect(await db.acquireCampaignLease(campaign.id, 'cli', 60_000, now)).toBe(true);
    expect(await db.acquireCampaignLease(campaign.id, 'server', 60_000, later(1_000))).toBe(false);
    // The holder renews; the other owner gets it only once the lease has expired.
    expect(await db.acquireCampaignLease(campaign.id, 'cli', 60_000, later(30_000))).toBe(true);
    expect(await db.acquireCampaignLease(campaign.id, 'server', 60_000, later(80_000))).toBe(false);
    expect(await db.acquireCampaignLease(campaign.id, 'server', 60_000, later(91_000))).toBe(true);

    // Only the holder's release frees it.
    await db.releaseCampaignLease(campaign.id, 'cli');
    expect(await db.acquireCampaignLease(campaign.id, 'cli', 60_000, later(92_000))).toBe(false);
    await db.releaseCampaignLease(campaign.id, 'server');
    expect(await db.acquireCampaignLease(campaign.id, 'cli', 60_000, later(93_000))).toBe(true);
  });
});
