/**
 * Pausing, resuming and restarting a send: every subscriber is queued exactly once, in
 * batches, with no whole-list read. The queue is the real SQLite queue; nothing is delivered.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { signMessage } from '../../src/dkim/index.js';
import { CampaignSender } from '../../src/distribution/sender.js';
import { ADMIN } from '../../src/distribution/service.js';
import { startCampaignScheduler } from '../../src/distribution/scheduler.js';
import type { Campaign } from '../../src/distribution/types.js';
import { startHarness, type DistributionHarness } from './helpers.js';

const signer = {
  signBatch: (messages: readonly Buffer[], options: Parameters<typeof signMessage>[1]) =>
    Promise.resolve(messages.map((message) => signMessage(message, options))),
};

let harness: DistributionHarness;
let campaign: Campaign;
const SUBSCRIBERS = 120;

beforeEach(async () => {
  harness = await startHarness({ signer, settings: { batchSize: 25 } });
  const list = await harness.service.createList(ADMIN, harness.organisation.id, 'L');
  await harness.distribution.addSubscribers(
    list.id,
    Array.from({ length: SUBSCRIBERS }, (_, i) => ({ address: `m${i}@example.net` })),
  );
  campaign = await harness.service.createCampaign(ADMIN, {
    organisationId: harness.organisation.id,
    listId: list.id,
    name: 'c',
    fromAddress: 'news@news.test',
    subject: 's',
    html: '<p>{{email}}</p>',
  });
});

afterEach(async () => {
  await harness.close();
});

/** Queue entries per subscriber id. */
async function queuedPerSubscriber(): Promise<Map<number, number>> {
  const counts = new Map<number, number>();
  for (const entry of await harness.store.listEntries({ limit: 10_000 })) {
    if (entry.campaignId !== campaign.id) continue;
    counts.set(entry.subscriberId!, (counts.get(entry.subscriberId!) ?? 0) + 1);
  }
  return counts;
}

describe('campaign send', () => {
  it('pauses between batches and resumes where it stopped', async () => {
    await harness.service.send(ADMIN, campaign.id);
    let batches = 0;
    const paused = await harness.sender.run(campaign.id, undefined, () => {
      batches += 1;
      if (batches === 2) void harness.service.pause(ADMIN, campaign.id);
    });
    expect(paused.status).toBe('paused');
    const partial = await queuedPerSubscriber();
    expect(partial.size).toBeGreaterThan(0);
    expect(partial.size).toBeLessThan(SUBSCRIBERS);

    await harness.service.resume(ADMIN, campaign.id);
    const finished = await harness.sender.run(campaign.id);
    expect(finished.status).toBe('sent');
    const counts = await queuedPerSubscriber();
    expect(counts.size).toBe(SUBSCRIBERS);
    expect([...counts.values()].every((count) => count === 1)).toBe(true);
    const progress = await harness.service.progress(ADMIN, campaign.id);
    expect(progress).toMatchObject({ total: SUBSCRIBERS, queued: SUBSCRIBERS, remaining: 0 });
  });

  it('sends no one twice after a stop between enqueue and record', async () => {
    await harness.service.send(ADMIN, campaign.id);
    // A process that died after enqueueing a batch but before recording it: the queue has the
    // entries, the campaign cursor does not.
    const controller = new AbortController();
    await harness.sender.run(campaign.id, controller.signal, () => controller.abort());
    const before = await queuedPerSubscriber();
    await harness.distribution.updateCampaign(campaign.id, { cursor: 0 });

    const restarted = new CampaignSender({
      store: harness.store,
      distribution: harness.distribution,
      signer,
      keys: { signaturesFor: () => [] },
      settings: harness.settings,
      recorder: harness.recorder,
    });
    await expect(restarted.run(campaign.id)).rejects.toThrow(/no active DKIM key/);
    const finished = await harness.sender.run(campaign.id);
    expect(finished.status).toBe('sent');
    const counts = await queuedPerSubscriber();
    expect(before.size).toBeGreaterThan(0);
    expect(counts.size).toBe(SUBSCRIBERS);
    expect([...counts.values()].every((count) => count === 1)).toBe(true);
  });

  it('starts a scheduled campaign when its time comes', async () => {
    await harness.service.send(ADMIN, campaign.id, new Date(Date.now() + 300));
    expect((await harness.service.getCampaign(ADMIN, campaign.id)).status).toBe('scheduled');
    const scheduler = startCampaignScheduler({
      distribution: harness.distribution,
      sender: harness.sender,
      intervalMs: 100,
    });
    try {
      const deadline = Date.now() + 10_000;
      while (
        (await harness.service.getCampaign(ADMIN, campaign.id)).status !== 'sent' &&
        Date.now() < deadline
      ) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    } finally {
      await scheduler.stop();
    }
    expect((await harness.service.getCampaign(ADMIN, campaign.id)).status).toBe('sent');
    expect((await queuedPerSubscriber()).size).toBe(SUBSCRIBERS);
  });

  it('cancels a campaign', async () => {
    await harness.service.send(ADMIN, campaign.id);
    const cancelled = await harness.service.cancel(ADMIN, campaign.id);
    expect(cancelled.status).toBe('cancelled');
    const result = await harness.sender.run(campaign.id);
    expect(result.status).toBe('cancelled');
    expect((await queuedPerSubscriber()).size).toBe(0);
    await expect(harness.service.resume(ADMIN, campaign.id)).rejects.toThrow(/cancelled/);
  });
});
