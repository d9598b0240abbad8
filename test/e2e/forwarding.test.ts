/**
 * Forwarding end to end. A message signed by dkimpy goes to an alias of a hosted domain and
 * reaches the target's MX with an SRS envelope sender and the author's signature intact. A
 * bounce to that SRS address travels back to the original sender. Relays, forged SRS addresses
 * and unknown or disabled recipients are rejected at RCPT.
 */
import { generateKeyPairSync } from 'node:crypto';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { startDnsServer, type DnsServer } from '../helpers/dns-server.js';
import { startSmtpSink, type SmtpSink } from '../helpers/smtp-sink.js';

import {
  makeDataDir,
  removeDataDir,
  runHerald,
  startHerald,
  writeConfig,
  type HeraldInstance,
} from './harness.js';
import { NULL_SENDER, dkimpySign, dkimpyVerify, rejectionCode, swaks } from './peers.js';

const SINK_HOST = '127.0.0.21';
const author = generateKeyPairSync('rsa', { modulusLength: 2048 });
const authorRecord = `v=DKIM1; k=rsa; p=${author.publicKey
  .export({ type: 'spki', format: 'der' })
  .toString('base64')}`;

let dns: DnsServer;
let sink: SmtpSink;
let herald: HeraldInstance;
let dataDir: string;

function zone(): string {
  return [
    '$ORIGIN test.',
    `dest.test. 300 IN MX 10 mx.dest.test.`,
    `mx.dest.test. 300 IN A ${SINK_HOST}`,
    `author.test. 300 IN MX 10 mx.author.test.`,
    `mx.author.test. 300 IN A ${SINK_HOST}`,
    `s1._domainkey.author.test. 300 IN TXT "${authorRecord.slice(0, 200)}" "${authorRecord.slice(200)}"`,
    `_dmarc.author.test. 300 IN TXT "v=DMARC1; p=none"`,
    `strict.test. 300 IN MX 10 mx.author.test.`,
    `_dmarc.strict.test. 300 IN TXT "v=DMARC1; p=reject"`,
  ].join('\n');
}

function authorMessage(subject: string, from = 'alice@author.test'): string {
  return [
    `From: Alice <${from}>`,
    'To: info@club.test',
    `Subject: ${subject}`,
    'Date: Thu, 03 Dec 2026 10:00:00 +0000',
    `Message-ID: <${subject.replace(/\W/g, '')}@author.test>`,
    '',
    'Hello from the author.',
    'A second line.',
    '',
  ].join('\r\n');
}

async function sendToMx(from: string, to: string, data?: string) {
  return swaks(
    [
      '--server',
      `127.0.0.1:${herald.mxPort}`,
      '--helo',
      'client.author.test',
      '--from',
      from,
      '--to',
      to,
      ...(data === undefined ? ['--body', 'test'] : ['--data', '-']),
    ],
    data,
  );
}

beforeAll(async () => {
  dns = await startDnsServer({ records: zone() });
  sink = await startSmtpSink({ host: SINK_HOST });
  dataDir = makeDataDir();

  // Set the domain up with the CLI before the server starts, as an operator would.
  const { configPath } = await writeConfig(dataDir, {
    dnsAddress: dns.address,
    deliveryPort: sink.port,
  });
  const steps = [
    ['domain', 'add', 'club.test'],
    ['alias', 'add', 'info@club.test', 'friend@dest.test'],
    ['alias', 'add', 'strict@club.test', 'friend@dest.test', '--dmarc-policy', 'reject'],
    ['alias', 'add', 'old@club.test', 'friend@dest.test', '--disabled'],
  ];
  for (const step of steps) {
    const result = await runHerald([...step, '--config', configPath]);
    expect(result.code, `${step.join(' ')}: ${result.stderr}`).toBe(0);
  }

  herald = await startHerald({ dnsAddress: dns.address, deliveryPort: sink.port, dataDir });
});

afterAll(async () => {
  await herald?.stop();
  await sink?.close();
  await dns?.close();
  if (dataDir) removeDataDir(dataDir);
});

describe('forwarding through an alias', () => {
  let srsSender = '';

  it('keeps the author signature and rewrites the sender with SRS', async () => {
    const signed = await dkimpySign(authorMessage('forward one'), {
      domain: 'author.test',
      selector: 's1',
      keyPem: author.privateKey.export({ type: 'pkcs1', format: 'pem' }).toString(),
    });
    // The records dkimpy and Herald see are the same ones.
    expect(await dkimpyVerify(signed, { 's1._domainkey.author.test': authorRecord })).toEqual([
      true,
    ]);

    const sent = await sendToMx('alice@author.test', 'info@club.test', signed);
    expect(sent.code, sent.stdout + sent.stderr).toBe(0);

    const [message] = await sink.waitForMessages(1, 20_000);
    expect(message!.to).toEqual(['friend@dest.test']);
    expect(message!.from).toMatch(/^SRS0[=+-][^=]+=[^=]+=author\.test=alice@srs\.herald\.test$/i);
    srsSender = message!.from;

    const body = message!.body.toString('latin1');
    expect(body).toMatch(/^Received: /im);
    expect(body).toMatch(/^Authentication-Results: .*dkim=pass/im);
    const verdicts = await dkimpyVerify(message!.body, {
      's1._domainkey.author.test': authorRecord,
    });
    expect(verdicts).toEqual([true]);
  });

  it('routes a bounce to the SRS address back to the original sender', async () => {
    expect(srsSender).not.toBe('');
    const before = sink.messages.length;
    const bounce = [
      'From: MAILER-DAEMON@mx.dest.test',
      `To: ${srsSender}`,
      'Subject: Undelivered Mail Returned to Sender',
      'Date: Thu, 03 Dec 2026 10:05:00 +0000',
      '',
      'The mailbox is full.',
      '',
    ].join('\r\n');
    const sent = await sendToMx(NULL_SENDER, srsSender, bounce);
    expect(sent.code, sent.stdout + sent.stderr).toBe(0);

    const messages = await sink.waitForMessages(before + 1, 20_000);
    const returned = messages[before]!;
    expect(returned.to).toEqual(['alice@author.test']);
    expect(returned.from).toBe('');
    expect(returned.body.toString('latin1')).toContain('The mailbox is full.');
  });

  it('forwards a subaddress to the alias of its base address', async () => {
    const before = sink.messages.length;
    const sent = await sendToMx('alice@author.test', 'info+news@club.test');
    expect(sent.code, sent.stdout + sent.stderr).toBe(0);
    const messages = await sink.waitForMessages(before + 1, 20_000);
    expect(messages[before]!.to).toEqual(['friend@dest.test']);
  });
});

describe('recipients Herald does not accept', () => {
  it('rejects a relay to a domain it does not host', async () => {
    const sent = await sendToMx('alice@author.test', 'someone@elsewhere.test');
    expect(sent.code).not.toBe(0);
    expect(sent.stdout).toMatch(/<\*\* +550[ -]5\.1\.1/);
  });

  it('rejects an unknown user of a hosted domain', async () => {
    const sent = await sendToMx('alice@author.test', 'nobody@club.test');
    expect(rejectionCode(sent.stdout)).toBe(550);
  });

  it('rejects a disabled alias', async () => {
    const sent = await sendToMx('alice@author.test', 'old@club.test');
    expect(rejectionCode(sent.stdout)).toBe(550);
  });

  it('rejects a forged SRS address and logs the reason', async () => {
    const forged = 'SRS0=AAAA=ZZ=author.test=alice@srs.herald.test';
    const sent = await sendToMx(NULL_SENDER, forged);
    expect(rejectionCode(sent.stdout)).toBe(550);
    const line = await herald.waitForLog((entry) => JSON.stringify(entry).includes('bad-hash'));
    expect(JSON.stringify(line)).toContain('bad-hash');
  });

  it('rejects at end of data what would fail DMARC under a reject policy', async () => {
    const unsigned = authorMessage('strict one', 'bob@strict.test').replace(
      'To: info@club.test',
      'To: strict@club.test',
    );
    const sent = await sendToMx('bob@strict.test', 'strict@club.test', unsigned);
    expect(sent.code).not.toBe(0);
    expect(sent.stdout).toMatch(/<\*\* +5\d\d[ -]/);
  });
});
