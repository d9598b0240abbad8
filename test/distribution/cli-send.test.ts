/**
 * `herald campaign send` from the command line, on a SQLite store. On a campaign that is
 * already sending (started by a server's scheduler, say) it joins in and claims the batches
 * left, so every subscriber is queued once.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { openDistributionStore } from '../../src/store/distribution-index.js';
import { openStore } from '../../src/store/index.js';
import { makeDataDir, removeDataDir, runHerald, writeConfig } from '../e2e/harness.js';

const SUBSCRIBERS = 40;

let dataDir: string;
let configPath: string;
let storeUrl: string;

async function cli(...args: string[]): Promise<string> {
  const result = await runHerald([...args, '--config', configPath]);
  expect(result.code, `herald ${args.join(' ')}: ${result.stderr}`).toBe(0);
  return result.stdout;
}

beforeAll(async () => {
  dataDir = makeDataDir();
  storeUrl = `sqlite:${join(dataDir, 'herald.sqlite')}`;
  ({ configPath } = await writeConfig(dataDir, {
    dnsAddress: '127.0.0.1:9',
    deliveryPort: 9,
    settings: { store: { url: storeUrl }, distribution: { batchSize: 10 } },
  }));
  await cli('domain', 'add', 'news.test');
  await cli('org', 'create', 'Club', '--domain', 'news.test');
  await cli('list', 'create', 'Club', 'Members');
  const csv = join(dataDir, 'members.csv');
  const rows = ['email,name'];
  for (let i = 0; i < SUBSCRIBERS; i++) rows.push(`m${i}@members.test,Member ${i}`);
  writeFileSync(csv, `${rows.join('\n')}\n`);
  await cli('list', 'import', '1', csv);
  const html = join(dataDir, 'news.html');
  writeFileSync(html, '<p>Hello {{first_name}}</p>');
  await cli(
    'campaign',
    'create',
    '--list',
    '1',
    '--from',
    'news@news.test',
    '--subject',
    'Hi',
    '--html',
    html,
  );
}, 120_000);

afterAll(() => {
  if (dataDir) removeDataDir(dataDir);
});

describe('herald campaign send', () => {
  it('joins a campaign that is already sending and finishes it', async () => {
    // A campaign a scheduler started, with its first batch claimed and sent by that sender.
    const distribution = await openDistributionStore(storeUrl);
    const store = await openStore({ url: storeUrl });
    try {
      await distribution.updateCampaign(1, { status: 'sending', startedAt: new Date() });
      const first = await distribution.claimCampaignBatch(1, 'scheduler', {
        limit: 10,
        leaseMs: 600_000,
      });
      expect(first?.subscribers).toHaveLength(10);
      const queued = [];
      for (const subscriber of first!.subscribers) {
        const { messageId } = await store.enqueue({
          body: Buffer.from('Subject: Hi\r\n\r\nbody\r\n'),
          origin: 'campaign',
          originalSender: 'bounces@news.test',
          recipients: [
            {
              recipient: subscriber.address,
              sender: 'bounces@news.test',
              bounceTo: '',
              campaignId: 1,
              subscriberId: subscriber.id,
            },
          ],
        });
        queued.push({
          campaignId: 1,
          subscriberId: subscriber.id,
          address: subscriber.address,
          status: 'queued' as const,
          messageId,
          detail: '',
          updatedAt: new Date(),
        });
      }
      expect(
        await distribution.recordBatch(1, queued, { afterId: first!.afterId, owner: 'scheduler' }),
      ).toBe(true);
    } finally {
      await store.close();
      await distribution.close();
    }

    const output = await cli('campaign', 'send', '1');
    expect(output).toContain('campaign 1 sent');

    const store2 = await openStore({ url: storeUrl });
    try {
      const entries = (await store2.listEntries({ limit: 1000 })).filter(
        (entry) => entry.campaignId === 1,
      );
      const perSubscriber = new Map<number, number>();
      for (const entry of entries) {
        perSubscriber.set(entry.subscriberId!, (perSubscriber.get(entry.subscriberId!) ?? 0) + 1);
      }
      expect(perSubscriber.size).toBe(SUBSCRIBERS);
      expect([...perSubscriber.values()].every((count) => count === 1)).toBe(true);
    } finally {
      await store2.close();
    }
  }, 120_000);
});
