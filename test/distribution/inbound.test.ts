/**
 * Reports arriving by SMTP at the distribution addresses: a DSN built by Herald's own DSN
 * writer at a VERP address, an ARF complaint at the complaint address, mail to the unsubscribe
 * address, soft bounces up to the threshold, and a forged VERP address rejected at RCPT.
 * swaks is the client; the listener is a small smtp-server that hands RCPT and DATA to the
 * distribution handler the way the MX listener does.
 */
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

import { SMTPServer } from 'smtp-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { signMessage } from '../../src/dkim/index.js';
import { DistributionInbound, type DistributionRoute } from '../../src/distribution/inbound.js';
import { ADMIN } from '../../src/distribution/service.js';
import { unsubscribeMailto, verpAddress } from '../../src/distribution/tokens.js';
import type { Campaign, MailingList, Subscriber } from '../../src/distribution/types.js';
import { buildDsn } from '../../src/queue/dsn.js';
import { startHarness, type DistributionHarness } from './helpers.js';

const run = promisify(execFile);
const signer = {
  signBatch: (messages: readonly Buffer[], options: Parameters<typeof signMessage>[1]) =>
    Promise.resolve(messages.map((message) => signMessage(message, options))),
};

let harness: DistributionHarness;
let inbound: DistributionInbound;
let server: SMTPServer;
let port: number;
let list: MailingList;
let campaign: Campaign;
let subscribers: Subscriber[];
let secret: Buffer;

beforeAll(async () => {
  harness = await startHarness({ signer });
  inbound = await DistributionInbound.create(
    harness.distribution,
    harness.recorder,
    harness.settings,
  );
  secret = await harness.distribution.getSecret('recipient-token');

  list = await harness.service.createList(ADMIN, harness.organisation.id, 'Members');
  const addresses = [
    'hard@example.net',
    'complains@example.net',
    'leaves@example.net',
    'full@example.net',
    'stays@example.net',
  ];
  await harness.distribution.addSubscribers(
    list.id,
    addresses.map((address) => ({ address })),
  );
  subscribers = (await harness.distribution.pageSubscribers(list.id, { afterId: 0, limit: 10 }))
    .subscribers;
  campaign = await harness.service.createCampaign(ADMIN, {
    organisationId: harness.organisation.id,
    listId: list.id,
    name: 'n',
    fromAddress: 'news@news.test',
    subject: 's',
    html: '<p>x</p>',
  });
  await harness.distribution.recordRecipients(
    campaign.id,
    subscribers.map((subscriber) => ({
      campaignId: campaign.id,
      subscriberId: subscriber.id,
      address: subscriber.address,
      status: 'delivered',
      messageId: null,
      detail: '',
      updatedAt: new Date(),
    })),
  );

  const routes = new Map<string, DistributionRoute[]>();
  server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onRcptTo(address, session, callback) {
      void inbound.route(address.address).then((route) => {
        if (route.kind === 'none' || route.kind === 'forged') {
          const reason = route.kind === 'forged' ? route.reason : 'no such recipient';
          callback(Object.assign(new Error(`5.1.1 ${reason}`), { responseCode: 550 }));
          return;
        }
        routes.set(session.id, [...(routes.get(session.id) ?? []), route]);
        callback();
      }, callback);
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => {
        const message = Buffer.concat(chunks);
        const pending = (routes.get(session.id) ?? []).map((route) =>
          inbound.receive(route, message),
        );
        routes.delete(session.id);
        Promise.all(pending).then(() => callback(), callback);
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.server.address() as { port: number }).port;
});

afterAll(async () => {
  await new Promise<void>((resolve) => server?.close(() => resolve()));
  await harness?.close();
});

/** Sends a message file with swaks; returns its transcript, and rejects on an SMTP failure. */
async function swaks(from: string, to: string, message: Buffer): Promise<string> {
  const file = path.join(harness.dir, `message-${Date.now()}-${Math.random()}.eml`);
  writeFileSync(file, message);
  const { stdout } = await run('/usr/bin/swaks', [
    '--server',
    `127.0.0.1:${port}`,
    '--from',
    // swaks prompts on the terminal for an empty sender, and `<>` is the null reverse-path.
    from === '' ? '<>' : from,
    '--to',
    to,
    '--data',
    `@${file}`,
    '--helo',
    'mx.example.net',
    '--suppress-data',
  ]);
  return stdout;
}

function ref(index: number): { campaignId: number; subscriberId: number } {
  return { campaignId: campaign.id, subscriberId: subscribers[index]!.id };
}

async function statusOf(index: number): Promise<string> {
  return (await harness.distribution.getSubscriber(subscribers[index]!.id))!.status;
}

async function isSuppressed(index: number): Promise<boolean> {
  const address = subscribers[index]!.address;
  return (await harness.distribution.suppressedAmong(harness.organisation.id, [address])).has(
    address,
  );
}

function campaignMessage(to: string, verp: string): Buffer {
  return Buffer.from(
    `Return-Path: <${verp}>\r\nFrom: news@news.test\r\nTo: ${to}\r\nSubject: s\r\n` +
      'Message-ID: <c1@news.test>\r\n\r\nx\r\n',
  );
}

describe('distribution inbound', () => {
  it('suppresses the recipient of a hard-bounce DSN', async () => {
    const verp = verpAddress(secret, ref(0), 'news.test');
    const dsn = buildDsn({
      hostname: 'mx.example.net',
      to: verp,
      queueId: 'Q1',
      arrivalDate: new Date(),
      recipients: [
        {
          recipient: 'hard@example.net',
          action: 'failed',
          status: '5.1.1',
          remoteMta: 'mail.example.net',
          diagnostic: '550 5.1.1 <hard@example.net>: Recipient address rejected: User unknown',
        },
      ],
      original: campaignMessage('hard@example.net', verp),
    });
    await swaks('', verp, dsn);
    expect(await statusOf(0)).toBe('bounced');
    expect(await isSuppressed(0)).toBe(true);
    const recipient = await harness.distribution.getRecipient(campaign.id, subscribers[0]!.id);
    expect(recipient).toMatchObject({ status: 'bounced', detail: 'bad-address: 5.1.1' });
    expect(await statusOf(4)).toBe('subscribed');
  });

  it('suppresses the recipient of an ARF complaint', async () => {
    const verp = verpAddress(secret, ref(1), 'news.test');
    const arf = Buffer.from(
      [
        'From: <feedback@receiver.example>',
        'To: <fbl@news.test>',
        'Subject: Complaint',
        'MIME-Version: 1.0',
        'Content-Type: multipart/report; report-type=feedback-report; boundary="arf"',
        '',
        '--arf',
        'Content-Type: text/plain',
        '',
        'A user marked this message as spam.',
        '--arf',
        'Content-Type: message/feedback-report',
        '',
        'Feedback-Type: abuse',
        'User-Agent: Receiver-FBL/1.0',
        'Version: 1',
        `Original-Mail-From: <${verp}>`,
        'Original-Rcpt-To: <complains@example.net>',
        '',
        '--arf',
        'Content-Type: message/rfc822',
        '',
        campaignMessage('complains@example.net', verp).toString(),
        '--arf--',
        '',
      ].join('\r\n'),
    );
    await swaks('feedback@receiver.example', 'fbl@news.test', arf);
    expect(await statusOf(1)).toBe('complained');
    expect(await isSuppressed(1)).toBe(true);
    const recipient = await harness.distribution.getRecipient(campaign.id, subscribers[1]!.id);
    expect(recipient?.status).toBe('complained');
  });

  it('unsubscribes on mail to the unsubscribe address', async () => {
    const address = unsubscribeMailto(secret, ref(2), 'news.test');
    await swaks('leaves@example.net', address, Buffer.from('Subject: unsubscribe\r\n\r\n\r\n'));
    expect(await statusOf(2)).toBe('unsubscribed');
    expect(await isSuppressed(2)).toBe(true);
  });

  it('suppresses soft bounces at the threshold', async () => {
    const verp = verpAddress(secret, ref(3), 'news.test');
    const soft = (): Buffer =>
      buildDsn({
        hostname: 'mx.example.net',
        to: verp,
        queueId: 'Q2',
        arrivalDate: new Date(),
        recipients: [
          {
            recipient: 'full@example.net',
            action: 'failed',
            status: '5.2.2',
            diagnostic: '552 5.2.2 Mailbox full',
          },
        ],
        original: campaignMessage('full@example.net', verp),
      });
    for (let i = 1; i < harness.settings.softBounceThreshold; i++) {
      await swaks('', verp, soft());
      expect(await isSuppressed(3)).toBe(false);
    }
    await swaks('', verp, soft());
    expect(await isSuppressed(3)).toBe(true);
    expect(await statusOf(3)).toBe('bounced');
  });

  it('rejects a forged VERP address at RCPT', async () => {
    const forged = `bounces+${campaign.id.toString(36)}.${subscribers[4]!.id.toString(36)}.0123456789abcdef0123@news.test`;
    await expect(swaks('', forged, Buffer.from('Subject: x\r\n\r\nx\r\n'))).rejects.toMatchObject({
      stdout: expect.stringMatching(/<\*\* 550 5\.1\.1 invalid bounce token/),
    });
    expect(await statusOf(4)).toBe('subscribed');
  });
});
