/**
 * A campaign on PostgreSQL: two senders, as two nodes would run them, each with its own mail
 * store and distribution store on one database, send a 50-subscriber campaign at the same
 * time. Every reachable subscriber must be queued exactly once, with DKIM-signed messages.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { createSigningPool, type SigningPool } from '../../src/dkim/index.js';
import { FeedbackRecorder } from '../../src/distribution/feedback.js';
import { CampaignSender } from '../../src/distribution/sender.js';
import { ADMIN } from '../../src/distribution/service.js';
import type { Campaign, DistributionStore } from '../../src/distribution/types.js';
import { openDistributionStore } from '../../src/store/distribution-index.js';
import { openStore } from '../../src/store/index.js';
import type { QueueEntry, Store } from '../../src/store/types.js';
import { startPostgres, type PostgresCluster } from '../helpers/postgres.js';
import { startHarness, verifyWithDkimpy, type DistributionHarness } from './helpers.js';

const SUBSCRIBERS = 50;
const SUPPRESSED = [5, 6];
const UNSUBSCRIBED = 9;

function address(i: number): string {
  return `member${i}@members.test`;
}

let cluster: PostgresCluster;
let pool: SigningPool;
let harness: DistributionHarness;
let secondStore: Store;
let secondDistribution: DistributionStore;
let campaign: Campaign;
let subscriberIds: number[];
let finished: Campaign[];
let entries: QueueEntry[];

beforeAll(async () => {
  cluster = await startPostgres();
  const url = await cluster.createDatabase();
  pool = createSigningPool({ size: 1 });
  // Batches of 10 give each sender several claims to race for.
  harness = await startHarness({ signer: pool, storeUrl: url, settings: { batchSize: 10 } });
  secondStore = await openStore({ url });
  secondDistribution = await openDistributionStore(url);
  const secondSender = new CampaignSender({
    store: secondStore,
    distribution: secondDistribution,
    signer: pool,
    keys: harness.keys,
    settings: harness.settings,
    recorder: new FeedbackRecorder(secondDistribution, harness.settings.softBounceThreshold),
  });

  const list = await harness.service.createList(ADMIN, harness.organisation.id, 'Members');
  const { ids } = await harness.distribution.addSubscribers(
    list.id,
    Array.from({ length: SUBSCRIBERS }, (_, i) => ({
      address: address(i),
      name: `First${i}`,
      status: i === UNSUBSCRIBED ? ('unsubscribed' as const) : ('subscribed' as const),
    })),
  );
  subscriberIds = ids as number[];
  for (const i of SUPPRESSED) {
    await harness.distribution.suppress({
      organisationId: harness.organisation.id,
      address: address(i).toUpperCase(),
      reason: 'manual',
      detail: 'test',
    });
  }
  campaign = await harness.service.createCampaign(ADMIN, {
    organisationId: harness.organisation.id,
    listId: list.id,
    name: 'December news',
    fromAddress: 'Rowing Club <news@news.test>',
    subject: 'News for {{first_name}}',
    html: '<p>Hello {{first_name}}.</p><p><a href="{{unsubscribe_url}}">Unsubscribe</a></p>',
  });
  await harness.service.send(ADMIN, campaign.id);
  finished = await Promise.all([harness.sender.run(campaign.id), secondSender.run(campaign.id)]);
  entries = (await harness.store.listEntries({ limit: 1000 })).filter(
    (entry) => entry.campaignId === campaign.id,
  );
}, 60_000);

afterAll(async () => {
  await secondDistribution?.close();
  await secondStore?.close();
  await harness?.close();
  await pool?.close();
  await cluster?.stop();
});

describe('campaign on PostgreSQL', () => {
  it('queues every reachable subscriber once', () => {
    const expected = subscriberIds.filter((_, i) => i !== UNSUBSCRIBED && !SUPPRESSED.includes(i));
    const queued = entries.map((entry) => entry.subscriberId!).sort((a, b) => a - b);
    expect(queued).toEqual(expected);
    const recipients = entries.map((entry) => entry.recipient).sort();
    expect(recipients).toEqual(expected.map((id) => address(subscriberIds.indexOf(id))).sort());
  });

  it('finishes the campaign with every recipient recorded', async () => {
    const final = (await harness.distribution.getCampaign(campaign.id))!;
    expect(final.status).toBe('sent');
    expect(final.finishedAt).toBeInstanceOf(Date);
    // A sender that runs out of batches while the other still has one returns `sending`;
    // the last one to record its batch finishes the campaign.
    expect(finished.map((result) => result.status)).toContain('sent');
    const counts = await harness.distribution.countRecipients(campaign.id);
    expect(counts.queued).toBe(SUBSCRIBERS - SUPPRESSED.length - 1);
    expect(counts.suppressed).toBe(SUPPRESSED.length);
    expect(await harness.distribution.countUnsent(campaign.id)).toBe(0);
    const recipients = await harness.distribution.listRecipients(campaign.id, {
      status: 'queued',
    });
    const messageIds = new Set(entries.map((entry) => entry.messageId));
    for (const recipient of recipients) expect(messageIds.has(recipient.messageId!)).toBe(true);
  });

  it('signs the messages so that dkimpy verifies them', async () => {
    const bodies = await Promise.all(
      entries.map(async (entry) => (await harness.store.getMessageBody(entry.messageId))!),
    );
    const verdicts = verifyWithDkimpy(harness.dir, bodies, harness.txtRecords);
    expect(verdicts).toHaveLength(entries.length);
    expect(verdicts.filter((ok) => !ok)).toHaveLength(0);
  });
});
