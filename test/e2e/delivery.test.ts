/**
 * Delivery end to end, from submission to the receivers' MX hosts named by a loopback DNS
 * server: a deferral then success, a permanent failure that returns a DSN, a null MX, fallback
 * to the second MX when the first is down, and STARTTLS with a receiver whose certificate is
 * self-signed (the sink offers STARTTLS with one, so every delivery here crosses it).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { startDnsServer, type DnsServer } from '../helpers/dns-server.js';
import { startSmtpSink, type ReceivedMessage, type SmtpSink } from '../helpers/smtp-sink.js';

import { removeDataDir, startHerald, type HeraldInstance } from './harness.js';
import { swaks } from './peers.js';

const SINK_HOST = '127.0.0.23';
/** A loopback address with nothing listening: connections to it are refused. */
const DEAD_HOST = '127.0.0.99';
const PASSWORD = 'delivery test password';

let dns: DnsServer;
let sink: SmtpSink;
let herald: HeraldInstance;

async function submit(to: string, subject: string) {
  const data = [
    'From: editor@news.test',
    `To: ${to}`,
    `Subject: ${subject}`,
    '',
    `Body of ${subject}.`,
    '',
  ].join('\r\n');
  const sent = await swaks(
    [
      '--server',
      `127.0.0.1:${herald.submissionPort}`,
      '--from',
      'editor@news.test',
      '--to',
      to,
      '--tls',
      '--auth',
      'PLAIN',
      '--auth-user',
      'editor@news.test',
      '--auth-password',
      PASSWORD,
      '--data',
      '-',
    ],
    data,
  );
  expect(sent.code, sent.stdout + sent.stderr).toBe(0);
}

/** Waits for a message to one recipient at the sink. */
async function messageTo(recipient: string, timeoutMs = 20_000): Promise<ReceivedMessage> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const found = sink.messages.find((message) => message.to.includes(recipient));
    if (found) return found;
    await new Promise((resolveWait) => setTimeout(resolveWait, 100));
  }
  throw new Error(`no message to ${recipient} within ${timeoutMs} ms`);
}

/** Lists the queue entries of one recipient through the REST API. */
async function entriesFor(recipient: string) {
  const domain = recipient.split('@')[1]!;
  const listed = await herald.api('GET', `/api/queue?domain=${domain}`);
  expect(listed.status).toBe(200);
  return (listed.body as Array<{ recipient: string; messageId: string; status: string }>).filter(
    (entry) => entry.recipient === recipient,
  );
}

/**
 * Waits for the first queue entry of `recipient` to reach `status` and returns it, or returns
 * it as it is after `timeoutMs`. The receiver has the message before Herald has committed the
 * attempt's outcome, so a status read at once can still be the one before.
 */
async function entryWithStatus(recipient: string, status: string, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const [entry] = await entriesFor(recipient);
    if (entry?.status === status || Date.now() > deadline) return entry;
    await new Promise((resolveWait) => setTimeout(resolveWait, 100));
  }
}

/** Finds the DSN that reports on `recipient` among messages to the original sender. */
async function dsnAbout(recipient: string): Promise<string> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    const dsn = sink.messages.find(
      (message) =>
        message.from === '' &&
        message.to.includes('editor@news.test') &&
        message.body.toString('latin1').includes(recipient),
    );
    if (dsn) return dsn.body.toString('latin1');
    await new Promise((resolveWait) => setTimeout(resolveWait, 100));
  }
  throw new Error(`no DSN about ${recipient}`);
}

beforeAll(async () => {
  dns = await startDnsServer({
    records: [
      { name: 'dest.test', type: 'MX', priority: 10, exchange: 'mx.dest.test' },
      { name: 'slow.test', type: 'MX', priority: 10, exchange: 'mx.dest.test' },
      { name: 'news.test', type: 'MX', priority: 10, exchange: 'mx.dest.test' },
      { name: 'mx.dest.test', type: 'A', address: SINK_HOST },
      { name: 'nullmx.test', type: 'MX', priority: 0, exchange: '.' },
      { name: 'fallback.test', type: 'MX', priority: 10, exchange: 'down.fallback.test' },
      { name: 'fallback.test', type: 'MX', priority: 20, exchange: 'mx.dest.test' },
      { name: 'down.fallback.test', type: 'A', address: DEAD_HOST },
    ],
  });
  sink = await startSmtpSink({ host: SINK_HOST, starttls: true });
  herald = await startHerald({ dnsAddress: dns.address, deliveryPort: sink.port });
  expect((await herald.api('POST', '/api/domains', { name: 'news.test' })).status).toBe(201);
  const credential = await herald.api('POST', '/api/credentials', {
    username: 'editor@news.test',
    password: PASSWORD,
  });
  expect(credential.status).toBe(201);
});

afterAll(async () => {
  await herald?.stop();
  await sink?.close();
  await dns?.close();
  if (herald) removeDataDir(herald.dataDir);
});

describe('delivery to MX hosts', () => {
  it('delivers over STARTTLS to a self-signed receiver', async () => {
    await submit('reader@dest.test', 'tls delivery');
    const message = await messageTo('reader@dest.test');
    expect(message.secure).toBe(true);
    expect(message.heloName).toBe('mx.herald.test');
    expect((await entryWithStatus('reader@dest.test', 'delivered'))?.status).toBe('delivered');
  });

  it('defers on a 4xx reply and delivers on the retry', async () => {
    sink.reply.once('rcpt', { code: 451, text: '4.3.0 Try again later' }, 'later@slow.test');
    await submit('later@slow.test', 'deferred delivery');
    const message = await messageTo('later@slow.test');
    expect(message.secure).toBe(true);

    const entry = await entryWithStatus('later@slow.test', 'delivered');
    expect(entry?.status).toBe('delivered');
    const shown = await herald.api('GET', `/api/queue/${entry!.messageId}`);
    const attempts = (
      shown.body.events as Array<{ kind: string; verdict: string; reply: string }>
    ).filter((event) => event.kind === 'attempt');
    expect(attempts.map((event) => event.verdict)).toEqual(['deferred', 'delivered']);
    expect(attempts[0]!.reply).toContain('451');
  });

  it('bounces on a 5xx reply with an RFC 3464 DSN to the sender', async () => {
    sink.reply.rcpt.set('gone@dest.test', { code: 550, text: '5.1.1 No such mailbox' });
    await submit('gone@dest.test', 'permanent failure');
    const dsn = await dsnAbout('gone@dest.test');
    expect(dsn).toMatch(/Content-Type: multipart\/report;[\s\S]*report-type="?delivery-status/i);
    expect(dsn).toMatch(/Content-Type: message\/delivery-status/i);
    expect(dsn).toMatch(/Final-Recipient: rfc822; ?gone@dest\.test/i);
    expect(dsn).toMatch(/Action: failed/i);
    expect(dsn).toMatch(/Status: 5\.1\.1/i);
    expect(dsn).toMatch(/Content-Type: text\/rfc822-headers/i);
    expect(dsn).toContain('Subject: permanent failure');
    expect((await entryWithStatus('gone@dest.test', 'failed'))?.status).toBe('failed');
  });

  it('bounces at once for a domain with a null MX', async () => {
    await submit('anyone@nullmx.test', 'null mx');
    const dsn = await dsnAbout('anyone@nullmx.test');
    expect(dsn).toMatch(/Action: failed/i);
    expect(dsn).toMatch(/Status: 5\.\d+\.\d+/i);
    const entry = await entryWithStatus('anyone@nullmx.test', 'failed');
    expect(entry?.status).toBe('failed');
  });

  it('falls back to the second MX when the first refuses connections', async () => {
    await submit('user@fallback.test', 'mx fallback');
    const message = await messageTo('user@fallback.test');
    expect(message.to).toEqual(['user@fallback.test']);
    expect((await entryWithStatus('user@fallback.test', 'delivered'))?.status).toBe('delivered');
  });
});

describe('metrics', () => {
  it('reports queue sizes and deliveries in Prometheus text format', async () => {
    const response = await fetch(`http://127.0.0.1:${herald.httpPort}/metrics`);
    expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await response.text();
    expect(text).toMatch(/^# TYPE herald_queue_entries gauge$/m);
    expect(text).toMatch(/^herald_queue_entries\{status="delivered"\} [1-9]\d*$/m);
    expect(text).toMatch(/^herald_queue_entries\{status="failed"\} [1-9]\d*$/m);
    expect(text).toMatch(/^herald_messages_received_total\{origin="submission"\} [1-9]\d*$/m);
    expect(text).toMatch(/^process_resident_memory_bytes \d+$/m);
  });
});
