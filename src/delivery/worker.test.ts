import net from 'node:net';
import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startDnsServer, type DnsServer } from '../../test/helpers/dns-server.js';
import { startSmtpSink, type SmtpSink } from '../../test/helpers/smtp-sink.js';
import { Resolver, type MailResolver } from '../dns/index.js';
import { createLogger } from '../log/index.js';
import { openStore } from '../store/index.js';
import type { QueueEntry, Store } from '../store/types.js';
import { startDeliveryWorkers, type DeliveryWorkerOptions } from './worker.js';

// Every MX host of the tests is a sink on its own 127.0.0.x address, all on one port.
const zone = (port: number) => `
$ORIGIN test.
example     IN MX 10 mx1.example
example     IN MX 20 mx2.example
mx1.example IN A 127.0.0.11
mx2.example IN A 127.0.0.12
fallback    IN MX 10 down.fallback
fallback    IN MX 20 mx2.example
down.fallback IN A 127.0.0.13
origin      IN MX 10 mx2.example
nullmx      IN MX 0 .
broken      IN MX 10 mx1.example
secure      IN MX 10 mx1.example
single      IN MX 10 mx1.example
stale       IN MX 10 mx.stale
mx.stale    IN A 127.0.0.14
; port ${port}
`;

interface Harness {
  store: Store;
  dns: DnsServer;
  mx1: SmtpSink;
  mx2: SmtpSink;
  logLines: Array<Record<string, unknown>>;
  /** Host names passed to `resolveAddresses`, in call order. */
  addressLookups: string[];
  start(
    overrides?: Partial<DeliveryWorkerOptions['config']['delivery']>,
    workerStore?: Store,
  ): ReturnType<typeof startDeliveryWorkers>;
}

let harness: Harness;
let workers: Array<ReturnType<typeof startDeliveryWorkers>> = [];

beforeEach(async () => {
  const mx1 = await startSmtpSink({ host: '127.0.0.11' });
  const mx2 = await startSmtpSink({ host: '127.0.0.12', port: mx1.port });
  const dns = await startDnsServer({ records: zone(mx1.port) });
  dns.fail('broken.test', 'servfail');
  const store = await openStore({ url: ':memory:' });
  const logLines: Array<Record<string, unknown>> = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) {
        logLines.push(JSON.parse(line) as Record<string, unknown>);
      }
      callback();
    },
  });
  const logger = createLogger({ level: 'info', destination });
  const dnsResolver = new Resolver({ servers: [dns.address], timeoutMs: 500, tries: 1 });
  const addressLookups: string[] = [];
  const resolver: MailResolver = {
    resolveMx: (domain) => dnsResolver.resolveMx(domain),
    resolveTxt: (name) => dnsResolver.resolveTxt(name),
    resolveAddresses: (host) => {
      addressLookups.push(host);
      return dnsResolver.resolveAddresses(host);
    },
  };
  harness = {
    store,
    dns,
    mx1,
    mx2,
    logLines,
    addressLookups,
    start(overrides = {}, workerStore = store) {
      const started = startDeliveryWorkers({
        store: workerStore,
        resolver,
        logger,
        maxSleepMs: 200,
        config: {
          hostname: 'herald.test',
          delivery: {
            port: mx1.port,
            concurrency: 4,
            perDomainConcurrency: 1,
            perDomainRatePerMinute: 0,
            requireTls: ['secure.test'],
            retrySchedule: { initialDelay: 60_000, factor: 2, maxDelay: 600_000 },
            maxQueueLifetime: 86_400_000,
            connectTimeout: 1_000,
            leaseTime: 60_000,
            retainFinished: 604_800_000,
            ...overrides,
          },
        },
      });
      workers.push(started);
      return started;
    },
  };
});

afterEach(async () => {
  for (const worker of workers.splice(0)) await worker.stop();
  await harness.store.close();
  await harness.mx1.close();
  await harness.mx2.close();
  await harness.dns.close();
});

const body = Buffer.from(
  'From: Alice <alice@origin.test>\r\nTo: bob@example.test\r\nSubject: hello\r\n' +
    'Message-ID: <m1@origin.test>\r\n\r\nHello Bob.\r\n',
);

async function enqueue(recipients: string[], sender = 'alice@origin.test', bounceTo = sender) {
  return harness.store.enqueue({
    body,
    origin: 'submission',
    originalSender: sender,
    recipients: recipients.map((recipient) => ({ recipient, sender, bounceTo })),
  });
}

async function entriesOf(messageId: string): Promise<QueueEntry[]> {
  return harness.store.listEntriesOfMessage(messageId);
}

describe('startDeliveryWorkers', () => {
  it('delivers to the preferred MX host', async () => {
    const worker = harness.start();
    const { messageId } = await enqueue(['bob@example.test', 'carol@example.test']);
    worker.notify();
    const [message] = await harness.mx1.waitForMessages(1);
    expect(message!.to.sort()).toEqual(['bob@example.test', 'carol@example.test']);
    expect(message!.from).toBe('alice@origin.test');
    expect(message!.heloName).toBe('herald.test');
    expect(message!.body.equals(body)).toBe(true);
    await worker.idle();
    const entries = await entriesOf(messageId);
    expect(entries.map((entry) => entry.status)).toEqual(['delivered', 'delivered']);
    const events = await harness.store.listEvents({ messageId });
    const attempt = events.find((event) => event.kind === 'attempt');
    expect(attempt?.mx).toBe('mx1.example.test[127.0.0.11]');
    expect(attempt?.reply).toMatch(/^250 /);
    expect(harness.mx2.messages).toHaveLength(0);
  });

  it('falls back to the second MX host', async () => {
    const worker = harness.start();
    const { messageId } = await enqueue(['dave@fallback.test']);
    worker.notify();
    const [message] = await harness.mx2.waitForMessages(1);
    expect(message!.to).toEqual(['dave@fallback.test']);
    await worker.idle();
    const [entry] = await entriesOf(messageId);
    expect(entry!.status).toBe('delivered');
    const nextMx = harness.logLines.find((line) => line.status === 'next-mx');
    expect(nextMx?.relay).toBe('down.fallback.test[127.0.0.13]');
    expect(nextMx?.queueId).toBe(messageId);

    // The refused address is skipped for the next message instead of being tried again.
    const later = await enqueue(['erin@fallback.test']);
    worker.notify();
    await harness.mx2.waitForMessages(2);
    await worker.idle();
    expect((await entriesOf(later.messageId))[0]!.status).toBe('delivered');
    expect(harness.logLines.filter((line) => line.status === 'next-mx')).toHaveLength(1);
  });

  it('defers on 4xx, then delivers on retry', async () => {
    harness.mx1.reply.once('rcpt', { code: 451, text: '4.7.1 Greylisted, try again' });
    const worker = harness.start();
    const { messageId } = await enqueue(['bob@single.test']);
    worker.notify();
    await worker.idle();
    const [deferred] = await entriesOf(messageId);
    expect(deferred!.status).toBe('deferred');
    expect(deferred!.lastReply).toBe('451 4.7.1 Greylisted, try again');
    expect(deferred!.nextAttemptAt.getTime()).toBeGreaterThan(Date.now() + 50_000);

    await harness.store.retryNow({ messageId });
    worker.notify();
    await harness.mx1.waitForMessages(1);
    await worker.idle();
    const [delivered] = await entriesOf(messageId);
    expect(delivered!.status).toBe('delivered');
    expect(delivered!.attempts).toBe(2);
  });

  it('bounces a 5xx with a DSN to the sender', async () => {
    harness.mx1.reply.rcpt.set('gone@example.test', { code: 550, text: '5.1.1 No such user here' });
    const worker = harness.start();
    const { messageId } = await enqueue(['gone@example.test', 'bob@example.test']);
    worker.notify();
    // The DSN goes to origin.test, whose MX is mx2.
    const [dsn] = await harness.mx2.waitForMessages(1);
    await worker.idle();
    const statuses = Object.fromEntries(
      (await entriesOf(messageId)).map((e) => [e.recipient, e.status]),
    );
    expect(statuses).toEqual({ 'gone@example.test': 'failed', 'bob@example.test': 'delivered' });
    expect(dsn!.from).toBe('');
    expect(dsn!.to).toEqual(['alice@origin.test']);
    const text = dsn!.body.toString();
    expect(text).toMatch(/multipart\/report; report-type=delivery-status/);
    expect(text).toMatch(/Final-Recipient: rfc822; ?gone@example.test/);
    expect(text).toMatch(/Status: 5\.1\.1/);
    expect(text).toMatch(/Diagnostic-Code: smtp; 550 5\.1\.1 No such user here/);
    expect(text).toMatch(/Message-ID: <m1@origin.test>/);
    expect(text).not.toMatch(/Final-Recipient: rfc822; ?bob@example.test/);
  });

  it('bounces a null MX domain', async () => {
    const worker = harness.start();
    const { messageId } = await enqueue(['eve@nullmx.test']);
    worker.notify();
    const [dsn] = await harness.mx2.waitForMessages(1);
    await worker.idle();
    const [entry] = await entriesOf(messageId);
    expect(entry!.status).toBe('failed');
    expect(entry!.lastDsn).toBe('5.1.10');
    expect(dsn!.body.toString()).toMatch(/Status: 5\.1\.10/);
    expect(harness.mx1.rcptAttempts).toHaveLength(0);
  });

  it('sends no DSN for the null sender', async () => {
    harness.mx1.reply.rcpt.set('gone@example.test', { code: 550, text: '5.1.1 No such user' });
    const worker = harness.start();
    const { messageId } = await enqueue(['gone@example.test'], '', '');
    worker.notify();
    await worker.idle();
    const [entry] = await entriesOf(messageId);
    expect(entry!.status).toBe('failed');
    expect((await harness.store.countByStatus()).queued).toBe(0);
    expect(harness.mx2.messages).toHaveLength(0);
  });

  it('defers when DNS fails', async () => {
    const worker = harness.start();
    const { messageId } = await enqueue(['frank@broken.test']);
    worker.notify();
    await worker.idle();
    const [entry] = await entriesOf(messageId);
    expect(entry!.status).toBe('deferred');
    expect(entry!.lastDsn).toBe('4.4.3');
  });

  it('expires a deferred entry past its lifetime', async () => {
    harness.mx1.reply.rcpt.set('bob@single.test', { code: 451, text: '4.3.0 Try later' });
    const worker = harness.start({ maxQueueLifetime: 1 });
    const { messageId } = await enqueue(['bob@single.test']);
    worker.notify();
    const [dsn] = await harness.mx2.waitForMessages(1);
    await worker.idle();
    const [entry] = await entriesOf(messageId);
    expect(entry!.status).toBe('failed');
    expect(entry!.lastDsn).toBe('4.3.0');
    expect(entry!.lastReply).toMatch(/expired/);
    expect(dsn!.body.toString()).toMatch(/Status: 4\.3\.0/);
  });

  it('uses STARTTLS with a self-signed receiver', async () => {
    await harness.mx1.close();
    harness.mx1 = await startSmtpSink({
      host: '127.0.0.11',
      port: harness.mx2.port,
      starttls: true,
    });
    const worker = harness.start();
    await enqueue(['bob@example.test']);
    worker.notify();
    const [message] = await harness.mx1.waitForMessages(1);
    expect(message!.secure).toBe(true);
  });

  it('defers a TLS-required domain without STARTTLS', async () => {
    const worker = harness.start();
    const { messageId } = await enqueue(['gina@secure.test']);
    worker.notify();
    await worker.idle();
    const [entry] = await entriesOf(messageId);
    expect(entry!.status).toBe('deferred');
    expect(entry!.lastDsn).toBe('4.7.4');
    expect(harness.mx1.messages).toHaveLength(0);
  });

  it('reuses one connection for many messages', async () => {
    const worker = harness.start();
    for (let i = 0; i < 6; i++) await enqueue([`user${i}@example.test`]);
    worker.notify();
    await harness.mx1.waitForMessages(6);
    await worker.idle();
    expect(harness.mx1.connections).toBe(1);
  });

  it('looks up an MX address once per claim', async () => {
    for (let i = 0; i < 6; i++) await enqueue([`user${i}@single.test`]);
    const worker = harness.start();
    await harness.mx1.waitForMessages(6);
    await worker.idle();
    // The six entries are due together, so the first claim takes all of them.
    expect(harness.addressLookups).toEqual(['mx1.example.test']);
    const statuses = await harness.store.countByStatus();
    expect(statuses.delivered).toBe(6);
  });

  it('spaces messages by the domain rate', async () => {
    // 1200 a minute is one start every 50 ms, so four messages span at least 150 ms.
    const worker = harness.start({ perDomainRatePerMinute: 1200, perDomainConcurrency: 4 });
    for (let i = 0; i < 4; i++) await enqueue([`user${i}@example.test`]);
    const started = Date.now();
    worker.notify();
    await harness.mx1.waitForMessages(4);
    expect(Date.now() - started).toBeGreaterThanOrEqual(150);
  });

  it('keeps a slow domain from blocking others', async () => {
    // Two global slots, one per domain: mail for origin.test must not wait behind the queue
    // of single.test, whose receiver takes 500 ms per message.
    harness.mx1.reply.dataDelayMs = 500;
    const worker = harness.start({ concurrency: 2, perDomainConcurrency: 1 });
    for (let i = 0; i < 3; i++) await enqueue([`user${i}@single.test`]);
    await enqueue(['alice@origin.test']);
    worker.notify();
    await harness.mx2.waitForMessages(1);
    expect(harness.mx1.messages).toHaveLength(0);
    await harness.mx1.waitForMessages(3);
  });

  it('claims new mail while a slow domain waits', async () => {
    // Six slow messages to one domain fill the claim room of a worker with one slot unless
    // their waiting transactions are left out of it: the later message to origin.test must
    // overtake most of them.
    harness.mx1.reply.dataDelayMs = 300;
    const worker = harness.start({ concurrency: 1, perDomainConcurrency: 1 });
    for (let i = 0; i < 6; i++) await enqueue([`user${i}@single.test`]);
    worker.notify();
    while (harness.mx1.rcptAttempts.length === 0)
      await new Promise((resolve) => setTimeout(resolve, 5));
    await enqueue(['alice@origin.test']);
    worker.notify();
    await harness.mx2.waitForMessages(1);
    expect(harness.mx1.messages.length).toBeLessThan(3);
    await harness.mx1.waitForMessages(6);
  });

  it('renews the lease of a slow delivery', async () => {
    // The sink takes 2.5 s to accept while the lease is 1.5 s: without renewal the second
    // worker would claim the entry and deliver it again.
    harness.mx1.reply.dataDelayMs = 2_500;
    const first = harness.start({ leaseTime: 1_500 });
    const { messageId } = await enqueue(['bob@example.test']);
    first.notify();
    while (harness.mx1.rcptAttempts.length === 0)
      await new Promise((resolve) => setTimeout(resolve, 5));
    const second = harness.start({ leaseTime: 1_500 });
    second.notify();
    await harness.mx1.waitForMessages(1);
    await first.idle();
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(harness.mx1.messages).toHaveLength(1);
    expect(harness.mx1.rcptAttempts).toHaveLength(1);
    const [entry] = await entriesOf(messageId);
    expect(entry!.status).toBe('delivered');
    expect(entry!.attempts).toBe(1);
  });

  it('retries a pooled session the host dropped', async () => {
    // A scripted receiver that accepts one message per session and then drops the
    // connection at the next MAIL FROM without a reply, as a host does when it closes an
    // idle session just as the client starts a new transaction.
    const received: string[] = [];
    const receiver = net.createServer((socket) => {
      let transactions = 0;
      let inData = false;
      let data = '';
      socket.on('error', () => socket.destroy());
      socket.write('220 stale.test ESMTP\r\n');
      socket.on('data', (chunk) => {
        for (const line of chunk
          .toString()
          .split('\r\n')
          .filter((part, i, all) => part || i < all.length - 1)) {
          if (inData) {
            if (line === '.') {
              inData = false;
              received.push(data);
              socket.write('250 2.0.0 Ok\r\n');
            } else data += `${line}\n`;
          } else if (/^EHLO/i.test(line)) socket.write('250-stale.test\r\n250 8BITMIME\r\n');
          else if (/^MAIL/i.test(line)) {
            transactions++;
            if (transactions > 1) socket.destroy();
            else socket.write('250 2.1.0 Ok\r\n');
          } else if (/^RCPT/i.test(line)) socket.write('250 2.1.5 Ok\r\n');
          else if (/^DATA/i.test(line)) {
            inData = true;
            data = '';
            socket.write('354 Go ahead\r\n');
          } else if (/^RSET/i.test(line)) socket.write('250 Ok\r\n');
          else if (/^QUIT/i.test(line)) socket.end('221 Bye\r\n');
        }
      });
    });
    await new Promise<void>((resolve) => receiver.listen(harness.mx1.port, '127.0.0.14', resolve));
    try {
      const worker = harness.start();
      const first = await enqueue(['one@stale.test']);
      worker.notify();
      await worker.idle();
      const second = await enqueue(['two@stale.test']);
      worker.notify();
      await worker.idle();
      expect(received).toHaveLength(2);
      const [entry] = await entriesOf(second.messageId);
      expect(entry!.status).toBe('delivered');
      expect(entry!.attempts).toBe(1);
      expect((await entriesOf(first.messageId))[0]!.status).toBe('delivered');
    } finally {
      for (const worker of workers.splice(0)) await worker.stop();
      await new Promise<void>((resolve) => receiver.close(() => resolve()));
    }
  });

  it('reads a body once a slot is free', async () => {
    // With one slot and a slow receiver, two of the three claimed transactions wait; their
    // bodies stay on disk until their turn.
    harness.mx1.reply.dataDelayMs = 300;
    for (let i = 0; i < 3; i++) await enqueue([`user${i}@single.test`]);
    const reads: string[] = [];
    const counting = new Proxy(harness.store, {
      get(target, property, receiver) {
        if (property === 'getMessageBody') {
          return (messageId: string) => {
            reads.push(messageId);
            return target.getMessageBody(messageId);
          };
        }
        return Reflect.get(target, property, receiver) as unknown;
      },
    });
    const worker = harness.start({ concurrency: 1 }, counting);
    while (harness.mx1.rcptAttempts.length === 0)
      await new Promise((resolve) => setTimeout(resolve, 5));
    expect(reads).toHaveLength(1);
    await harness.mx1.waitForMessages(3);
    await worker.idle();
    expect(new Set(reads).size).toBe(3);
    expect(reads).toHaveLength(3);
  });

  it('survives a store that fails to read a body', async () => {
    // With one slot, the second message's transaction waits while the first is delivered
    // slowly, and its body read fails when its turn comes.
    harness.mx1.reply.dataDelayMs = 300;
    const first = await enqueue(['bob@example.test']);
    const second = await enqueue(['carol@example.test']);
    const failing = new Proxy(harness.store, {
      get(target, property, receiver) {
        if (property === 'getMessageBody') {
          return (messageId: string) =>
            messageId === second.messageId
              ? Promise.reject(new Error('disk read failed'))
              : target.getMessageBody(messageId);
        }
        return Reflect.get(target, property, receiver) as unknown;
      },
    });
    const worker = harness.start({ concurrency: 1 }, failing);
    worker.notify();
    await harness.mx1.waitForMessages(1);
    while (!harness.logLines.some((line) => line.level === 50)) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const error = harness.logLines.find((line) => line.level === 50);
    expect((error!.err as { message: string }).message).toBe('disk read failed');
    expect(error!.queueId).toBe(second.messageId);
    expect((await entriesOf(first.messageId))[0]!.status).toBe('delivered');
  });

  it('finishes deliveries in flight on stop', async () => {
    const worker = harness.start();
    const { messageId } = await enqueue(['bob@example.test']);
    worker.notify();
    // Stop as soon as the sink has the RCPT: the transaction is in flight.
    while (harness.mx1.rcptAttempts.length === 0)
      await new Promise((resolve) => setTimeout(resolve, 5));
    await worker.stop();
    workers = workers.filter((other) => other !== worker);
    const [entry] = await entriesOf(messageId);
    expect(entry!.status).toBe('delivered');
  });
});
