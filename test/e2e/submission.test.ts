/**
 * Submission end to end: a client authenticates after STARTTLS, its message reaches the
 * recipient's MX signed with both keys of the From domain, and dkimpy and OpenDKIM verify the
 * signatures against the keys published in the test zone. Submission without AUTH, AUTH before
 * STARTTLS, and a From domain the credential does not own are rejected.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { startDnsServer, type DnsServer } from '../helpers/dns-server.js';
import { startSmtpSink, type SmtpSink } from '../helpers/smtp-sink.js';

import { API_TOKEN, startHerald, removeDataDir, type HeraldInstance } from './harness.js';
import { dkimpyVerify, rejectionCode, opendkimVerify, swaks } from './peers.js';

const SINK_HOST = '127.0.0.22';
const PASSWORD = 'correct horse battery staple';

let dns: DnsServer;
let sink: SmtpSink;
let herald: HeraldInstance;
/** Owner name to TXT value of every DKIM key Herald published for the domain. */
const dkimRecords: Record<string, string> = {};

function message(from: string, subject: string): string {
  return [
    `From: ${from}`,
    'To: Reader <reader@dest.test>',
    `Subject: ${subject}`,
    '',
    'Signed on submission.',
    '',
  ].join('\r\n');
}

function submit(args: string[], data?: string) {
  return swaks(
    [
      '--server',
      `127.0.0.1:${herald.submissionPort}`,
      '--helo',
      'laptop.example',
      '--to',
      'reader@dest.test',
      ...args,
      ...(data === undefined ? [] : ['--data', '-']),
    ],
    data,
  );
}

beforeAll(async () => {
  dns = await startDnsServer({
    records: [
      { name: 'dest.test', type: 'MX', priority: 10, exchange: 'mx.dest.test' },
      { name: 'mx.dest.test', type: 'A', address: SINK_HOST },
    ],
  });
  sink = await startSmtpSink({ host: SINK_HOST });
  herald = await startHerald({ dnsAddress: dns.address, deliveryPort: sink.port });

  // Set the domain up through the REST API this time.
  const created = await herald.api('POST', '/api/domains', { name: 'news.test' });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  for (const record of created.body.records as Array<{
    name: string;
    type: string;
    value: string;
  }>) {
    if (record.type === 'TXT' && record.name.includes('._domainkey.')) {
      dkimRecords[record.name] = record.value;
    }
  }
  const credential = await herald.api('POST', '/api/credentials', {
    username: 'editor@news.test',
    password: PASSWORD,
  });
  expect(credential.status, JSON.stringify(credential.body)).toBe(201);

  // The test zone publishes exactly the records Herald returned for the operator to publish.
  dns.set([
    { name: 'dest.test', type: 'MX', priority: 10, exchange: 'mx.dest.test' },
    { name: 'mx.dest.test', type: 'A', address: SINK_HOST },
    ...Object.entries(dkimRecords).map(([name, value]) => ({
      name,
      type: 'TXT' as const,
      value: value.match(/.{1,250}/g) ?? [value],
    })),
  ]);
});

afterAll(async () => {
  await herald?.stop();
  await sink?.close();
  await dns?.close();
  if (herald) removeDataDir(herald.dataDir);
});

describe('authenticated submission', () => {
  it('publishes an RSA and an Ed25519 key under dated selectors', () => {
    const selectors = Object.keys(dkimRecords).map((name) => name.split('.')[0]);
    expect(selectors).toHaveLength(2);
    expect(selectors.every((selector) => /^h\d{8}[re]$/.test(selector ?? ''))).toBe(true);
    expect(Object.values(dkimRecords).some((value) => value.includes('k=ed25519'))).toBe(true);
    expect(Object.values(dkimRecords).some((value) => /k=rsa/.test(value))).toBe(true);
  });

  it('signs the message so dkimpy and OpenDKIM verify it', async () => {
    const sent = await submit(
      [
        '--from',
        'editor@news.test',
        '--tls',
        '--auth',
        'PLAIN',
        '--auth-user',
        'editor@news.test',
        '--auth-password',
        PASSWORD,
      ],
      message('Editor <editor@news.test>', 'signed issue'),
    );
    expect(sent.code, sent.stdout + sent.stderr).toBe(0);

    const [received] = await sink.waitForMessages(1, 20_000);
    expect(received!.from).toBe('editor@news.test');
    const body = received!.body.toString('latin1');
    expect(body).toMatch(/^Message-ID: <[^>]+@/im);
    expect(body).toMatch(/^Date: /im);
    expect(body.match(/^DKIM-Signature:/gim)).toHaveLength(2);

    const dkimpy = await dkimpyVerify(received!.body, dkimRecords);
    expect(dkimpy).toEqual([true, true]);

    const opendkim = await opendkimVerify(received!.body, dkimRecords);
    const expected = Object.keys(dkimRecords).map((name) => `s=${name.split('.')[0]}, d=news.test`);
    for (const pair of expected) expect(opendkim.succeeded, opendkim.output).toContain(pair);
  });

  it('accepts AUTH LOGIN too', async () => {
    const before = sink.messages.length;
    const sent = await submit(
      [
        '--from',
        'editor@news.test',
        '--tls',
        '--auth',
        'LOGIN',
        '--auth-user',
        'editor@news.test',
        '--auth-password',
        PASSWORD,
      ],
      message('editor@news.test', 'login issue'),
    );
    expect(sent.code, sent.stdout + sent.stderr).toBe(0);
    await sink.waitForMessages(before + 1, 20_000);
  });
});

describe('submission Herald rejects', () => {
  it('rejects mail without AUTH', async () => {
    const sent = await submit(
      ['--from', 'editor@news.test', '--tls'],
      message('editor@news.test', 'no auth'),
    );
    expect(sent.code).not.toBe(0);
    expect(rejectionCode(sent.stdout), sent.stdout).toBeGreaterThanOrEqual(500);
  });

  it('does not offer AUTH before STARTTLS', async () => {
    const sent = await submit(
      [
        '--from',
        'editor@news.test',
        '--auth',
        'PLAIN',
        '--auth-user',
        'editor@news.test',
        '--auth-password',
        PASSWORD,
      ],
      message('editor@news.test', 'plain text auth'),
    );
    expect(sent.code).not.toBe(0);
    expect(sent.stdout).not.toMatch(/235 /);
  });

  it('rejects a wrong password', async () => {
    const sent = await submit(
      [
        '--from',
        'editor@news.test',
        '--tls',
        '--auth',
        'PLAIN',
        '--auth-user',
        'editor@news.test',
        '--auth-password',
        'wrong password',
      ],
      message('editor@news.test', 'wrong password'),
    );
    expect(sent.code).not.toBe(0);
    expect(rejectionCode(sent.stdout), sent.stdout).toBe(535);
  });

  it('rejects a sender domain the credential does not own', async () => {
    const sent = await submit(
      [
        '--from',
        'someone@other.test',
        '--tls',
        '--auth',
        'PLAIN',
        '--auth-user',
        'editor@news.test',
        '--auth-password',
        PASSWORD,
      ],
      message('someone@other.test', 'foreign sender'),
    );
    expect(sent.code).not.toBe(0);
    expect(rejectionCode(sent.stdout), sent.stdout).toBeGreaterThanOrEqual(500);
  });

  it('never logs the password', () => {
    expect(herald.logs.join('\n')).not.toContain(PASSWORD);
    expect(herald.logs.join('\n')).not.toContain(API_TOKEN);
  });
});
