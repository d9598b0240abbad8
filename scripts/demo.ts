/**
 * Herald's main job on one machine, end to end, with nothing to set up beyond `npm ci`.
 *
 * The demo builds a small world on loopback: a DNS server on 127.0.0.1 that serves the test
 * zones, the members' mailbox providers on 127.0.0.20 and 127.0.0.21 and an author's mail host
 * on 127.0.0.22 (each an SMTP sink). It then runs the real `herald` command: `herald serve` on
 * the embedded SQLite store, and the management commands. These add a domain with its DKIM
 * keys, create an organisation, import the sample list shipped in `test/fixtures/lists/` and
 * send a campaign through the queue. It also forwards a message through an alias with SRS, sends a
 * bounce back to the SRS address, and finally prints what the receivers saw: messages
 * delivered, their DKIM verdicts, the SRS addresses used and the bounces matched.
 *
 * Everything listens on 127.0.0.0/8 and the script stops every process it started.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { promises as dns } from 'node:dns';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

import nodemailer from 'nodemailer';
import { stringify } from 'yaml';

import { verifyMessage } from '../src/dkim/index.js';
import { startDnsServer, type DnsRecord } from '../test/helpers/dns-server.js';
import { startSmtpSink, type ReceivedMessage, type SmtpSink } from '../test/helpers/smtp-sink.js';

const ROOT = resolve(import.meta.dirname, '..');
const CLI = join(ROOT, 'bin', 'herald.js');
const LIST_FILE = join(ROOT, 'test', 'fixtures', 'lists', 'members.csv');
const run = promisify(execFile);

const HOSTNAME = 'mx.herald.test';
const SRS_DOMAIN = 'srs.herald.test';
const CLUB = 'club.test';
const API_TOKEN = 'demo-admin-token-4f1c2b7a9e';
/** A member whose mailbox provider rejects the address, so the campaign records a hard bounce. */
const GONE_MEMBER = 'chiara.kowalska2@members.example';
/** How long the demo waits for deliveries before it reports what arrived. */
const DELIVERY_TIMEOUT_MS = 120_000;

function step(text: string): void {
  process.stdout.write(`\n== ${text}\n`);
}

/** Environment of every `herald` process the demo runs. */
const heraldEnv: NodeJS.ProcessEnv = { ...process.env };

async function herald(configPath: string, ...args: string[]): Promise<string> {
  const { stdout } = await run(process.execPath, [CLI, ...args, '--config', configPath], {
    cwd: ROOT,
    env: heraldEnv,
    timeout: 120_000,
  });
  return stdout;
}

async function heraldJson<T>(configPath: string, ...args: string[]): Promise<T> {
  return JSON.parse(await herald(configPath, ...args, '--json')) as T;
}

async function freePort(host: string): Promise<number> {
  const probe = await startSmtpSink({ host });
  const port = probe.port;
  await probe.close();
  return port;
}

function startServe(configPath: string): { child: ChildProcess; stopped: Promise<unknown> } {
  const child = spawn(process.execPath, [CLI, 'serve', '--config', configPath], {
    cwd: ROOT,
    env: heraldEnv,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const stopped = new Promise((resolveExit) => child.once('exit', resolveExit));
  return { child, stopped };
}

async function waitForHealth(port: number): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    try {
      const response = await fetch(`http://127.0.0.1:${port}/healthz`, {
        signal: AbortSignal.timeout(1_000),
      });
      if (response.ok) return;
    } catch {
      // Not listening yet.
    }
    await new Promise((wake) => setTimeout(wake, 200));
  }
  throw new Error(`herald serve did not respond on /healthz at port ${port} within 30 s`);
}

async function waitUntil(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + DELIVERY_TIMEOUT_MS;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((wake) => setTimeout(wake, 250));
  }
}

function headerValue(message: ReceivedMessage, name: string): string {
  const head = message.body.toString('latin1').split('\r\n\r\n', 1)[0] ?? '';
  const match = new RegExp(`^${name}:[ \\t]*(.*(?:\\r\\n[ \\t].*)*)`, 'im').exec(head);
  return match?.[1]?.replace(/\r\n[ \t]+/g, ' ') ?? '';
}

async function main(): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), 'herald-demo-'));
  const cleanups: Array<() => Promise<unknown>> = [];

  try {
    step('Starting the loopback world: DNS on 127.0.0.1, mail hosts on 127.0.0.20-22');
    const port = await freePort('127.0.0.20');
    const members = await startSmtpSink({ host: '127.0.0.20', port });
    const post = await startSmtpSink({ host: '127.0.0.21', port });
    const author = await startSmtpSink({ host: '127.0.0.22', port });
    cleanups.push(
      () => members.close(),
      () => post.close(),
      () => author.close(),
    );
    members.reply.rcpt.set(GONE_MEMBER, { code: 550, text: '5.1.1 No such mailbox' });

    const zone: DnsRecord[] = [
      { name: 'members.example', type: 'MX', priority: 10, exchange: 'mx.members.example' },
      { name: 'mx.members.example', type: 'A', address: '127.0.0.20' },
      { name: 'post.example', type: 'MX', priority: 10, exchange: 'mx.post.example' },
      { name: 'mx.post.example', type: 'A', address: '127.0.0.21' },
      { name: 'author.example', type: 'MX', priority: 10, exchange: 'mail.author.example' },
      { name: 'mail.author.example', type: 'A', address: '127.0.0.22' },
    ];
    const dnsServer = await startDnsServer({ records: zone });
    cleanups.push(() => dnsServer.close());
    process.stdout.write(`DNS ${dnsServer.address}; every mail host listens on port ${port}\n`);

    const [mxPort, submissionPort, httpPort] = [
      await freePort('127.0.0.1'),
      await freePort('127.0.0.1'),
      await freePort('127.0.0.1'),
    ];
    heraldEnv.HERALD_DISTRIBUTION_PUBLIC_URL = `http://127.0.0.1:${httpPort}`;
    const configPath = join(dataDir, 'herald.yaml');
    writeFileSync(
      configPath,
      stringify({
        hostname: HOSTNAME,
        dataDir,
        smtp: {
          mx: { host: '127.0.0.1', port: mxPort },
          submission: { host: '127.0.0.1', port: submissionPort },
        },
        http: { host: '127.0.0.1', port: httpPort },
        dns: { servers: [dnsServer.address] },
        delivery: { port },
        srs: { domain: SRS_DOMAIN },
        api: { tokens: [API_TOKEN] },
        log: { level: 'warn' },
      }),
      { mode: 0o600 },
    );

    step(`herald domain add ${CLUB}: RSA-2048 and Ed25519 keys, and the records to publish`);
    const details = await heraldJson<{
      records: Array<{ name: string; type: string; value: string; purpose: string }>;
    }>(configPath, 'domain', 'add', CLUB);
    for (const record of details.records) {
      process.stdout.write(`${record.type.padEnd(5)} ${record.name}  (${record.purpose})\n`);
      if (record.type === 'TXT' && record.name.includes('._domainkey.')) {
        zone.push({ name: record.name, type: 'TXT', value: splitTxt(record.value) });
      }
    }
    dnsServer.set(zone);
    process.stdout.write('The DKIM TXT records are now served by the loopback DNS server.\n');

    step('herald serve on the embedded SQLite store');
    const serve = startServe(configPath);
    cleanups.push(async () => {
      if (serve.child.exitCode === null) serve.child.kill('SIGTERM');
      await serve.stopped;
    });
    await waitForHealth(httpPort);
    process.stdout.write(
      `MX 127.0.0.1:${mxPort}, submission ${submissionPort}, HTTP ${httpPort}\n`,
    );

    step('An organisation, its list from the sample CSV, and a campaign');
    await herald(configPath, 'org', 'create', 'Harbour Rowing Club', '--domain', CLUB);
    const list = await heraldJson<{ id: number }>(
      configPath,
      'list',
      'create',
      'Harbour Rowing Club',
      'Members',
    );
    const imported = await heraldJson<{
      imported: number;
      rejects: Array<{ line: number; reason: string }>;
    }>(configPath, 'list', 'import', String(list.id), LIST_FILE);
    process.stdout.write(`imported ${imported.imported} subscribers; rejected rows:\n`);
    for (const reject of imported.rejects) {
      process.stdout.write(`  line ${reject.line}: ${reject.reason}\n`);
    }
    const htmlPath = join(dataDir, 'newsletter.html');
    writeFileSync(
      htmlPath,
      '<h1>Spring regatta</h1><p>Dear {{first_name|member}} from {{city|your town}},</p>' +
        '<p>the boats go back on the water on Saturday.</p>',
    );
    const campaign = await heraldJson<{ id: number }>(
      configPath,
      'campaign',
      'create',
      '--list',
      String(list.id),
      '--from',
      `Harbour Rowing Club <news@${CLUB}>`,
      '--subject',
      'Spring regatta, {{first_name|member}}',
      '--html',
      htmlPath,
    );
    await herald(configPath, 'campaign', 'send', String(campaign.id));
    process.stdout.write(`campaign ${campaign.id} queued to ${imported.imported} subscribers\n`);

    const expected = imported.imported - 1;
    await waitUntil(
      () => members.messages.length + post.messages.length >= expected,
      `${expected} campaign messages at the mailbox providers`,
    );

    step('Forwarding: info@club.test forwards to a member, with SRS');
    await herald(configPath, 'alias', 'add', `info@${CLUB}`, 'uma.novak46@members.example');
    const transport = nodemailer.createTransport({
      host: '127.0.0.1',
      port: mxPort,
      secure: false,
      ignoreTLS: true,
      name: 'mail.author.example',
    });
    const before = members.messages.length;
    await transport.sendMail({
      envelope: { from: 'alice@author.example', to: [`info@${CLUB}`] },
      from: 'Alice <alice@author.example>',
      to: `info@${CLUB}`,
      subject: 'Boat house keys',
      text: 'Who has the keys to the boat house?\n',
    });
    await waitUntil(() => members.messages.length > before, 'the forwarded message');
    const forwarded = members.messages[members.messages.length - 1]!;
    process.stdout.write(`envelope sender at the member's provider: ${forwarded.from}\n`);

    step('The member provider bounces it: the DSN goes to the SRS address and back to Alice');
    await transport.sendMail({
      envelope: { from: '', to: [forwarded.from] },
      from: 'MAILER-DAEMON@mx.members.example',
      to: forwarded.from,
      subject: 'Undelivered Mail Returned to Sender',
      text: 'The mailbox uma.novak46@members.example is full.\n',
    });
    await waitUntil(() => author.messages.length > 0, 'the bounce at the original sender');
    const returned = author.messages[0]!;
    process.stdout.write(`bounce delivered to ${returned.to.join(', ')} (null sender)\n`);
    transport.close();

    step('What the receivers saw');
    const resolver = new dns.Resolver({ timeout: 2_000, tries: 1 });
    resolver.setServers([dnsServer.address]);
    const campaignMessages = [...members.messages, ...post.messages].filter(
      (message) => headerValue(message, 'List-Unsubscribe') !== '',
    );
    const verdicts = new Map<string, number>();
    for (const message of campaignMessages) {
      const results = await verifyMessage(message.body, {
        lookupTxt: (name) => resolver.resolveTxt(name),
      });
      for (const result of results) {
        const key = `${result.algorithm ?? '?'} ${result.result}`;
        verdicts.set(key, (verdicts.get(key) ?? 0) + 1);
      }
    }
    process.stdout.write(`campaign messages delivered: ${campaignMessages.length}\n`);
    for (const [verdict, count] of verdicts) {
      process.stdout.write(`  DKIM ${verdict}: ${count}\n`);
    }
    const sample = campaignMessages[0]!;
    process.stdout.write(`  sample Subject: ${headerValue(sample, 'Subject')}\n`);
    process.stdout.write(`  sample return path (VERP): ${sample.from}\n`);
    process.stdout.write(`  sample List-Unsubscribe: ${headerValue(sample, 'List-Unsubscribe')}\n`);
    process.stdout.write(`SRS envelope sender used: ${forwarded.from}\n`);
    process.stdout.write(`SRS bounce returned to: ${returned.to.join(', ')}\n`);

    step('Feedback: a one-click unsubscribe and a DSN to a VERP return path');
    const unsubscribeUrl = /<(https?:[^>]+)>/.exec(headerValue(sample, 'List-Unsubscribe'))?.[1];
    const unsubscribed = await fetch(unsubscribeUrl!, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'List-Unsubscribe=One-Click',
      signal: AbortSignal.timeout(10_000),
    });
    process.stdout.write(`POST ${unsubscribeUrl} (RFC 8058 one-click): ${unsubscribed.status}\n`);

    const bounced = campaignMessages[1]!;
    const feedback = nodemailer.createTransport({
      host: '127.0.0.1',
      port: mxPort,
      secure: false,
      ignoreTLS: true,
      name: 'mx.members.example',
    });
    const dsnReply = await feedback.sendMail({
      envelope: { from: '', to: [bounced.from] },
      raw: deliveryStatusNotification(bounced.to[0]!, bounced.from),
    });
    feedback.close();
    process.stdout.write(`DSN for ${bounced.to[0]} to ${bounced.from}: ${dsnReply.response}\n`);

    const status = await herald(configPath, 'campaign', 'status', String(campaign.id));
    const summary = status.split('\n').slice(0, 8).join('\n');
    process.stdout.write(`\nherald campaign status ${campaign.id} (first lines):\n${summary}\n`);
    printSinkTotals([members, post, author]);
    process.stdout.write(`\nData directory (store, keys, configuration): ${dataDir}\n`);
  } finally {
    for (const cleanup of cleanups.reverse()) await cleanup();
  }
}

/** An RFC 3464 report of a permanent failure, as a receiving server sends it after accepting. */
function deliveryStatusNotification(recipient: string, returnPath: string): string {
  return [
    'From: MAILER-DAEMON@mx.members.example',
    `To: ${returnPath}`,
    'Subject: Undelivered Mail Returned to Sender',
    'MIME-Version: 1.0',
    'Content-Type: multipart/report; report-type=delivery-status; boundary="demo-report"',
    '',
    '--demo-report',
    'Content-Type: text/plain',
    '',
    `The mailbox ${recipient} no longer exists.`,
    '',
    '--demo-report',
    'Content-Type: message/delivery-status',
    '',
    'Reporting-MTA: dns; mx.members.example',
    '',
    `Final-Recipient: rfc822; ${recipient}`,
    'Action: failed',
    'Status: 5.1.1',
    'Diagnostic-Code: smtp; 550 5.1.1 User unknown',
    '',
    '--demo-report--',
    '',
  ].join('\r\n');
}

/** Splits a TXT value into strings of at most 255 octets, as a zone file publishes it. */
function splitTxt(value: string): string[] {
  const strings: string[] = [];
  for (let start = 0; start < value.length; start += 255)
    strings.push(value.slice(start, start + 255));
  return strings;
}

function printSinkTotals(sinks: SmtpSink[]): void {
  const total = sinks.reduce((sum, sink) => sum + sink.messages.length, 0);
  process.stdout.write(`messages received by the loopback mail hosts: ${total}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`demo failed: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exitCode = 1;
});
