/**
 * A campaign end to end: a 1,000-subscriber list sent through the real queue and delivery
 * workers to two sink servers on 127.0.0.x behind a loopback DNS server, every message
 * checked with dkimpy, its personalisation, its List-Unsubscribe pair and its VERP address.
 */
import { Writable } from 'node:stream';

import { simpleParser } from 'mailparser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { createSigningPool, type SigningPool } from '../../src/dkim/index.js';
import { startDeliveryWorkers, type DeliveryWorkers } from '../../src/delivery/worker.js';
import { ADMIN } from '../../src/distribution/service.js';
import type { Campaign, MailingList } from '../../src/distribution/types.js';
import { Resolver } from '../../src/dns/index.js';
import { createLogger } from '../../src/log/index.js';
import { startDnsServer, type DnsRecord, type DnsServer } from '../helpers/dns-server.js';
import { startSmtpSink, type ReceivedMessage, type SmtpSink } from '../helpers/smtp-sink.js';
import { startHarness, verifyWithDkimpy, type DistributionHarness } from './helpers.js';

const SUBSCRIBERS = 1000;
const SUPPRESSED = [10, 11, 12, 13, 14].map((i) => address(i));
const UNSUBSCRIBED = address(20);
const REJECTED = address(30);

function address(i: number): string {
  return `member${i}@${i % 2 === 0 ? 'members.test' : 'other.test'}`;
}

let harness: DistributionHarness;
let pool: SigningPool;
let dns: DnsServer;
let sinkA: SmtpSink;
let sinkB: SmtpSink;
let workers: DeliveryWorkers;
let list: MailingList;
let campaign: Campaign;
let received: ReceivedMessage[];

beforeAll(async () => {
  pool = createSigningPool({ size: 2 });
  sinkA = await startSmtpSink({ host: '127.0.0.31' });
  sinkB = await startSmtpSink({ host: '127.0.0.32', port: sinkA.port });
  sinkA.reply.rcpt.set(REJECTED, { code: 550, text: '5.1.1 No such user here' });
  let notify = (): void => undefined;
  harness = await startHarness({ signer: pool, notify: () => notify() });

  const records: DnsRecord[] = [
    { name: 'members.test', type: 'MX', priority: 10, exchange: 'mx.members.test' },
    { name: 'mx.members.test', type: 'A', address: '127.0.0.31' },
    { name: 'other.test', type: 'MX', priority: 10, exchange: 'mx.other.test' },
    { name: 'mx.other.test', type: 'A', address: '127.0.0.32' },
    ...Object.entries(harness.txtRecords).map(([name, value]) => ({
      name,
      type: 'TXT' as const,
      value,
    })),
  ];
  dns = await startDnsServer({ records });
  workers = startDeliveryWorkers({
    store: harness.store,
    resolver: new Resolver({ servers: [dns.address], timeoutMs: 1000, tries: 1 }),
    logger: createLogger({
      level: 'warn',
      destination: new Writable({ write: (_c, _e, done) => done() }),
    }),
    maxSleepMs: 200,
    config: {
      hostname: 'herald.test',
      delivery: {
        port: sinkA.port,
        concurrency: 8,
        perDomainConcurrency: 4,
        perDomainRatePerMinute: 0,
        requireTls: [],
        retrySchedule: { initialDelay: 60_000, factor: 2, maxDelay: 600_000 },
        maxQueueLifetime: 86_400_000,
        connectTimeout: 1_000,
        leaseTime: 60_000,
        retainFinished: 604_800_000,
      },
    },
  });
  notify = () => workers.notify();

  list = await harness.service.createList(ADMIN, harness.organisation.id, 'Members');
  const rows = Array.from({ length: SUBSCRIBERS }, (_, i) => ({
    address: address(i),
    name: i === 7 ? 'Eve\r\nBcc: victim@evil.test' : `First${i} Last${i}`,
    fields: { city: i === 8 ? '<script>alert("x")</script>' : `City${i}` },
    status: address(i) === UNSUBSCRIBED ? ('unsubscribed' as const) : ('subscribed' as const),
  }));
  await harness.distribution.addSubscribers(list.id, rows);
  for (const suppressed of SUPPRESSED) {
    await harness.distribution.suppress({
      organisationId: harness.organisation.id,
      address: suppressed,
      reason: 'manual',
      detail: 'test',
    });
  }

  campaign = await harness.service.createCampaign(ADMIN, {
    organisationId: harness.organisation.id,
    listId: list.id,
    name: 'December news',
    fromAddress: 'Rowing Club <news@news.test>',
    replyTo: 'office@news.test',
    subject: 'News for {{first_name|member}}',
    html:
      '<p>Hello {{first_name}} from {{city|somewhere}}.</p>' +
      '<p><a href="{{unsubscribe_url}}">Unsubscribe</a></p>',
  });
  await harness.service.send(ADMIN, campaign.id);
  const finished = await harness.sender.run(campaign.id);
  expect(finished.status).toBe('sent');

  const expected = SUBSCRIBERS - SUPPRESSED.length - 2;
  const deadline = Date.now() + 60_000;
  while (sinkA.messages.length + sinkB.messages.length < expected && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  await workers.idle();
  received = [...sinkA.messages, ...sinkB.messages];
}, 120_000);

afterAll(async () => {
  await workers?.stop();
  await pool?.close();
  await harness?.close();
  await sinkA?.close();
  await sinkB?.close();
  await dns?.close();
});

describe('campaign to a 1,000-subscriber list', () => {
  it('delivers one message per reachable subscriber', () => {
    const recipients = received.flatMap((message) => message.to).sort();
    const expected = Array.from({ length: SUBSCRIBERS }, (_, i) => address(i))
      .filter((a) => !SUPPRESSED.includes(a) && a !== UNSUBSCRIBED && a !== REJECTED)
      .sort();
    expect(recipients).toEqual(expected);
  });

  it('sends nothing to suppressed or unsubscribed addresses', () => {
    const attempted = [...sinkA.rcptAttempts, ...sinkB.rcptAttempts];
    for (const skipped of [...SUPPRESSED, UNSUBSCRIBED]) expect(attempted).not.toContain(skipped);
  });

  it('signs every message so that dkimpy verifies it', () => {
    const verdicts = verifyWithDkimpy(
      harness.dir,
      received.map((message) => message.body),
      harness.txtRecords,
    );
    expect(verdicts).toHaveLength(received.length);
    expect(verdicts.filter((ok) => !ok)).toHaveLength(0);
  }, 60_000);

  it('personalises each message and carries the list headers', async () => {
    const byAddress = new Map(received.map((message) => [message.to[0]!, message]));
    for (const i of [0, 1, 7, 8, 999]) {
      const message = byAddress.get(address(i))!;
      const parsed = await simpleParser(message.body);
      const subscriber = (await harness.distribution.findSubscriber(list.id, address(i)))!;
      const first = i === 7 ? 'Eve' : `First${i}`;
      expect(parsed.subject).toBe(`News for ${first}`);
      expect(parsed.text).toContain(`Hello ${first} from `);
      expect(parsed.headers.has('bcc')).toBe(false);
      if (i === 8) {
        expect(parsed.html).toContain('from &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;.');
        expect(parsed.text).toContain('from <script>alert("x")</script>.');
      }

      // VERP: bounces+CAMPAIGN.SUBSCRIBER.MAC@news.test, ids in base 36.
      const verp = /^bounces\+([0-9a-z]+)\.([0-9a-z]+)\.[0-9a-f]{20}@news\.test$/.exec(
        message.from,
      );
      expect(verp).not.toBeNull();
      expect(parseInt(verp![1]!, 36)).toBe(campaign.id);
      expect(parseInt(verp![2]!, 36)).toBe(subscriber.id);

      const raw = message.body.toString('latin1');
      const unsubscribe =
        /^List-Unsubscribe: <(https?:\/\/[^>]+\/u\/([^>]+))>,\r\n <mailto:(unsubscribe\+([^@]+)@news\.test)>\r\n/m.exec(
          raw,
        );
      expect(unsubscribe).not.toBeNull();
      expect(unsubscribe![2]).toBe(unsubscribe![4]);
      expect(raw).toMatch(/^List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n/m);
      expect(raw).toMatch(
        new RegExp(`^List-Id: Members <${list.id}\\.lists\\.news\\.test>\\r\\n`, 'm'),
      );
      const signature = /^DKIM-Signature:[\s\S]*?\bh=([^;]+);/m.exec(raw);
      const signed = signature![1]!.replace(/\s+/g, '').toLowerCase().split(':');
      expect(signed).toContain('list-unsubscribe');
      expect(signed).toContain('list-unsubscribe-post');
      expect(signed).toContain('list-id');
    }
  });

  it('counts the synchronous 5xx as a hard bounce and suppresses it', async () => {
    const progress = await harness.service.progress(ADMIN, campaign.id);
    expect(progress).toMatchObject({
      total: SUBSCRIBERS - 1,
      delivered: SUBSCRIBERS - SUPPRESSED.length - 2,
      bounced: 1,
      suppressed: SUPPRESSED.length,
      remaining: 0,
    });
    const rejected = (await harness.distribution.findSubscriber(list.id, REJECTED))!;
    expect(rejected.status).toBe('bounced');
    const suppressed = await harness.distribution.suppressedAmong(harness.organisation.id, [
      REJECTED,
    ]);
    expect(suppressed.has(REJECTED)).toBe(true);
    const recipient = await harness.distribution.getRecipient(campaign.id, rejected.id);
    expect(recipient?.detail).toMatch(/^bad-address: 5\.1\.1/);
  });
});
