/**
 * Pausing, resuming and restarting a send: every subscriber is queued exactly once, in
 * batches, with no whole-list read. The queue is the real SQLite queue; nothing is delivered.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { generateKeyPair, signMessage } from '../../src/dkim/index.js';
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

  it('takes over the batch of a sender that died between enqueue and record', async () => {
    await harness.service.send(ADMIN, campaign.id);
    // A sender that claimed the first batch, queued part of it and died: the queue has its
    // entries, the batch has no recorded recipients, and its lease runs out.
    const dead = await harness.distribution.claimCampaignBatch(campaign.id, 'dead-node', {
      limit: 25,
      leaseMs: 1,
    });
    expect(dead?.subscribers).toHaveLength(25);
    const early = dead!.subscribers.slice(0, 10);
    for (const subscriber of early) {
      await harness.store.enqueue({
        body: Buffer.from(`To: ${subscriber.address}\r\n\r\nqueued by the dead sender\r\n`),
        origin: 'campaign',
        originalSender: 'bounce@news.test',
        recipients: [
          {
            recipient: subscriber.address,
            sender: 'bounce@news.test',
            bounceTo: '',
            campaignId: campaign.id,
            subscriberId: subscriber.id,
          },
        ],
      });
    }
    await new Promise((wake) => setTimeout(wake, 5));

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
    expect(counts.size).toBe(SUBSCRIBERS);
    expect([...counts.values()].every((count) => count === 1)).toBe(true);
    // The entries the dead sender queued are recorded as queued, not sent again.
    for (const subscriber of early) {
      const recipient = await harness.distribution.getRecipient(campaign.id, subscriber.id);
      expect(recipient?.status).toBe('queued');
      expect(recipient?.detail).toBe('queued by an earlier run');
    }
    const progress = await harness.service.progress(ADMIN, campaign.id);
    expect(progress).toMatchObject({ total: SUBSCRIBERS, remaining: 0 });
  });

  it('stops within moments of a pause, mid-batch, and resumes without repeats', async () => {
    // At 600 a minute a batch of 25 takes 2.5 s to go out, so the pause lands inside one.
    await harness.distribution.updateCampaign(campaign.id, { ratePerMinute: 600 });
    await harness.service.send(ADMIN, campaign.id);
    const running = harness.sender.run(campaign.id);
    await new Promise((wake) => setTimeout(wake, 1_200));
    const pausedAt = Date.now();
    await harness.service.pause(ADMIN, campaign.id);
    const paused = await running;
    expect(paused.status).toBe('paused');
    // The sender rereads the status every 500 ms and stops there, instead of finishing this batch
    // and the next (2.5 s each). The bound leaves room for a busy machine.
    expect(Date.now() - pausedAt).toBeLessThan(2_500);
    const partial = await queuedPerSubscriber();
    expect(partial.size).toBeGreaterThan(0);
    expect(partial.size).toBeLessThanOrEqual(25);

    await harness.distribution.updateCampaign(campaign.id, { ratePerMinute: 0 });
    await harness.service.resume(ADMIN, campaign.id);
    const finished = await harness.sender.run(campaign.id);
    expect(finished.status).toBe('sent');
    const counts = await queuedPerSubscriber();
    expect(counts.size).toBe(SUBSCRIBERS);
    expect([...counts.values()].every((count) => count === 1)).toBe(true);
  });

  it('lets two senders share a campaign without overlap', async () => {
    await harness.service.send(ADMIN, campaign.id);
    const { privateKey } = await generateKeyPair({ algorithm: 'ed25519' });
    const second = new CampaignSender({
      store: harness.store,
      distribution: harness.distribution,
      signer,
      keys: { signaturesFor: (domain) => [{ domain, selector: 'second', privateKey }] },
      settings: harness.settings,
      recorder: harness.recorder,
    });
    const [a, b] = await Promise.all([harness.sender.run(campaign.id), second.run(campaign.id)]);
    expect([a.status, b.status]).toContain('sent');
    expect((await harness.service.getCampaign(ADMIN, campaign.id)).status).toBe('sent');
    const counts = await queuedPerSubscriber();
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
    await expect(harness.service.resume(ADMIN, campaign.id)).rejects.toMatchObject({
      name: 'StateConflictError',
      message: expect.stringMatching(/cancelled/) as unknown,
    });
  });
});
