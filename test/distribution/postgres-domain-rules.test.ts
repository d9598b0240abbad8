/**
 * A per-destination campaign rule on PostgreSQL holds for all senders together: two senders,
 * as two nodes would run them, send one campaign whose rule allows 600 messages a minute to
 * the members' domain. The send times are reserved in the shared database, so the queue
 * entries are spaced by 100 ms across both senders, and sending takes as long as one sender
 * at that rate would need.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { signMessage } from '../../src/dkim/index.js';
import { FeedbackRecorder } from '../../src/distribution/feedback.js';
import { CampaignSender } from '../../src/distribution/sender.js';
import { ADMIN } from '../../src/distribution/service.js';
import type { DistributionStore } from '../../src/distribution/types.js';
import { openDistributionStore } from '../../src/store/distribution-index.js';
import { openStore } from '../../src/store/index.js';
import type { Store } from '../../src/store/types.js';
import { startPostgres, type PostgresCluster } from '../helpers/postgres.js';
import { startHarness, type DistributionHarness } from './helpers.js';

const SUBSCRIBERS = 30;
const PER_MINUTE = 600;

const signer = {
  signBatch: (messages: readonly Buffer[], options: Parameters<typeof signMessage>[1]) =>
    Promise.resolve(messages.map((message) => signMessage(message, options))),
};

let cluster: PostgresCluster;
let harness: DistributionHarness;
let secondStore: Store;
let secondDistribution: DistributionStore;

beforeAll(async () => {
  cluster = await startPostgres();
  const url = await cluster.createDatabase();
  harness = await startHarness({
    signer,
    storeUrl: url,
    settings: {
      batchSize: 5,
      domainRules: [{ domain: 'members.test', maxPerMinute: PER_MINUTE }],
    },
  });
  secondStore = await openStore({ url });
  secondDistribution = await openDistributionStore(url);
}, 60_000);

afterAll(async () => {
  await secondDistribution?.close();
  await secondStore?.close();
  await harness?.close();
  await cluster?.stop();
});

describe('campaign domain rules on PostgreSQL', () => {
  it('hold for two senders together', async () => {
    const second = new CampaignSender({
      store: secondStore,
      distribution: secondDistribution,
      signer,
      keys: harness.keys,
      settings: harness.settings,
      recorder: new FeedbackRecorder(secondDistribution, harness.settings.softBounceThreshold),
    });
    const list = await harness.service.createList(ADMIN, harness.organisation.id, 'Members');
    await harness.distribution.addSubscribers(
      list.id,
      Array.from({ length: SUBSCRIBERS }, (_, i) => ({ address: `member${i}@members.test` })),
    );
    const campaign = await harness.service.createCampaign(ADMIN, {
      organisationId: harness.organisation.id,
      listId: list.id,
      name: 'ramp',
      fromAddress: 'news@news.test',
      subject: 's',
      html: '<p>x</p>',
    });
    await harness.service.send(ADMIN, campaign.id);
    await Promise.all([harness.sender.run(campaign.id), second.run(campaign.id)]);

    const entries = (await harness.store.listEntries({ limit: 1000 })).filter(
      (entry) => entry.campaignId === campaign.id,
    );
    expect(new Set(entries.map((entry) => entry.subscriberId)).size).toBe(SUBSCRIBERS);
    expect(entries).toHaveLength(SUBSCRIBERS);
    // 30 messages at 10 a second: the first goes at once, the last 2.9 s later. Two senders
    // with a rule each would be done in half the time.
    const times = entries.map((entry) => entry.createdAt.getTime()).sort((a, b) => a - b);
    const interval = 60_000 / PER_MINUTE;
    expect(times[times.length - 1]! - times[0]!).toBeGreaterThanOrEqual(
      (SUBSCRIBERS - 1) * interval - 150,
    );
    expect((await harness.distribution.getCampaign(campaign.id))!.status).toBe('sent');
  }, 60_000);
});
