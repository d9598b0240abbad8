/**
 * The MX listener against real peers on loopback: a real SQLite store, the test DNS server
 * serving DKIM keys and DMARC records, and SMTP clients speaking over TCP (a small line client
 * here, and swaks for a whole transaction).
 */
import { execFile } from 'node:child_process';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { promisify } from 'node:util';

import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import { startDnsServer, type DnsServer } from '../../test/helpers/dns-server.js';
import { loadConfig, type HeraldConfig } from '../config/index.js';
import { dkimRecordValue, signMessage, splitTxtValue, verifyMessage } from '../dkim/index.js';
import { Resolver } from '../dns/index.js';
import { withNodeErrorCodes } from '../forwarding/index.js';
import { createLogger } from '../log/index.js';
import { getHeader, getHeaders, parseHeaderFields, splitMessage } from '../message/index.js';
import { SrsRewriter } from '../srs/index.js';
import { openStore } from '../store/index.js';
import type { Store } from '../store/types.js';
import { startSmtpListeners, type SmtpListeners } from './index.js';

const execFileAsync = promisify(execFile);

/** A minimal SMTP client: one command, one reply, over a plain TCP connection. */
class LineClient {
  private buffer = '';
  private waiting: ((reply: string) => void) | undefined;
  readonly closed: Promise<void>;

  private constructor(private readonly socket: net.Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (data: string) => {
      this.buffer += data;
      this.flush();
    });
    this.closed = new Promise((resolve) => socket.on('close', () => resolve()));
    socket.on('error', () => undefined);
  }

  static async connect(port: number): Promise<{ client: LineClient; greeting: string }> {
    const socket = net.connect(port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const client = new LineClient(socket);
    const greeting = await client.read();
    return { client, greeting };
  }

  /** Resolves with the next complete reply, its lines joined with newlines. */
  read(): Promise<string> {
    return new Promise((resolve) => {
      this.waiting = resolve;
      this.flush();
    });
  }

  private flush(): void {
    if (!this.waiting) return;
    const lines = this.buffer.split('\r\n');
    const last = lines.findIndex((line) => /^\d{3}( |$)/.test(line));
    if (last < 0) return;
    const reply = lines.slice(0, last + 1).join('\n');
    this.buffer = lines.slice(last + 1).join('\r\n');
    const resolve = this.waiting;
    this.waiting = undefined;
    resolve(reply);
  }

  async command(line: string): Promise<string> {
    this.socket.write(`${line}\r\n`);
    return this.read();
  }

  /** Sends DATA and the message (dot-stuffed), and returns the reply to the final dot. */
  async data(message: string | Buffer): Promise<string> {
    const start = await this.command('DATA');
    if (!start.startsWith('354')) return start;
    const text = Buffer.from(message).toString('utf8').replace(/\r?\n/g, '\r\n');
    const stuffed = text.replace(/^\./gm, '..');
    this.socket.write(stuffed.endsWith('\r\n') ? stuffed : `${stuffed}\r\n`);
    this.socket.write('.\r\n');
    return this.read();
  }

  write(text: string): void {
    this.socket.write(text);
  }

  close(): void {
    this.socket.destroy();
  }
}

/** Runs one transaction with swaks and returns its output and exit code. */
async function swaks(args: string[]): Promise<{ code: number; output: string }> {
  try {
    const { stdout, stderr } = await execFileAsync('/usr/bin/swaks', args, { timeout: 20_000 });
    return { code: 0, output: stdout + stderr };
  } catch (error) {
    const failure = error as { code?: number; stdout?: string; stderr?: string };
    return { code: failure.code ?? -1, output: `${failure.stdout ?? ''}${failure.stderr ?? ''}` };
  }
}

const SRS_SECRET = 'inbound-test-secret';
let dataDir: string;
let dns: DnsServer;
let store: Store;
let listeners: SmtpListeners;
let srs: SrsRewriter;
let config: HeraldConfig;
let authorKey: KeyObject;
let clubKey: KeyObject;
let lookupTxt: (name: string) => Promise<string[][]>;
const logLines: Record<string, unknown>[] = [];

function message(from: string, subject: string, extra = ''): Buffer {
  return Buffer.from(
    `From: Author <${from}>\r\nTo: list@club.test\r\nSubject: ${subject}\r\n` +
      `Date: Thu, 03 Dec 2026 12:00:00 +0000\r\nMessage-ID: <${subject}@origin.test>\r\n${extra}\r\n` +
      `Hello from ${subject}.\r\n`,
  );
}

function signedByAuthor(subject: string): Buffer {
  return signMessage(message('author@author.test', subject), {
    signatures: [{ domain: 'author.test', selector: 'sel', privateKey: authorKey }],
  });
}

/** Sends one message with MAIL, RCPT... and DATA; returns every reply. */
async function transaction(from: string, recipients: string[], body: Buffer) {
  const { client } = await LineClient.connect(listeners.mx.port);
  try {
    await client.command('EHLO client.test');
    const mail = await client.command(`MAIL FROM:<${from}>`);
    const rcpt: string[] = [];
    for (const recipient of recipients) rcpt.push(await client.command(`RCPT TO:<${recipient}>`));
    const data = rcpt.some((reply) => reply.startsWith('250')) ? await client.data(body) : '';
    await client.command('QUIT');
    return { mail, rcpt, data };
  } finally {
    client.close();
  }
}

async function entriesOf(dataReply: string) {
  const match = /queued as (\S+)/.exec(dataReply);
  expect(match).not.toBeNull();
  const messageId = match![1]!;
  const entries = await store.listEntriesOfMessage(messageId);
  const body = await store.getMessageBody(messageId);
  return { messageId, entries, body: body! };
}

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'herald-inbound-'));
  authorKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  clubKey = generateKeyPairSync('ed25519').privateKey;
  dns = await startDnsServer({
    records: [
      {
        name: 'sel._domainkey.author.test',
        type: 'TXT',
        value: splitTxtValue(dkimRecordValue(authorKey)),
      },
      { name: '_dmarc.author.test', type: 'TXT', value: 'v=DMARC1; p=reject' },
      { name: '_dmarc.forged.test', type: 'TXT', value: 'v=DMARC1; p=reject' },
      { name: '_dmarc.relaxed.test', type: 'TXT', value: 'v=DMARC1; p=none' },
      {
        name: 'h1._domainkey.club.test',
        type: 'TXT',
        value: splitTxtValue(dkimRecordValue(clubKey)),
      },
    ],
  });
  const resolver = new Resolver({ servers: [dns.address], timeoutMs: 1000, tries: 1 });
  lookupTxt = withNodeErrorCodes((name) => resolver.resolveTxt(name));

  store = await openStore({ url: `sqlite:${join(dataDir, 'herald.sqlite')}` });
  const club = await store.addDomain('club.test');
  const own = await store.addDomain('own-srs.test', { srsDomain: 'srs.own-srs.test' });
  const alias = (domainId: number, localPart: string, targets: string[], extra = {}) =>
    store.addAlias({
      domainId,
      localPart,
      targets,
      enabled: true,
      dmarcPolicy: 'forward',
      ...extra,
    });
  await alias(club.id, 'list', ['alice@dest.test', 'bob@dest.test']);
  await alias(club.id, 'strict', ['carol@dest.test'], { dmarcPolicy: 'reject' });
  await alias(club.id, 'rewrite', ['dave@dest.test'], { dmarcPolicy: 'rewrite-from' });
  await alias(club.id, 'off', ['erin@dest.test'], { enabled: false });
  await alias(own.id, 'info', ['frank@dest.test']);

  config = loadConfig(undefined, {});
  config.hostname = 'mx.herald.test';
  config.dataDir = dataDir;
  config.smtp.mx = { host: '127.0.0.1', port: 0 };
  config.smtp.submission = { host: '127.0.0.1', port: 0 };
  config.limits = {
    ...config.limits,
    maxMessageSize: 20_000,
    maxRecipients: 3,
    maxHeaderSize: 4000,
    maxLineLength: 1000,
    maxConnectionsPerClient: 5,
    idleTimeout: 1500,
  };

  srs = new SrsRewriter({ domain: 'srs.herald.test', secrets: [SRS_SECRET] });
  const destination = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (line.trim() !== '') logLines.push(JSON.parse(line) as Record<string, unknown>);
      }
      callback();
    },
  });
  listeners = await startSmtpListeners({
    store,
    config,
    logger: createLogger({ level: 'info', destination }),
    srs,
    dkimKeys: {
      signaturesFor: (domain) =>
        domain === 'club.test' ? [{ domain, selector: 'h1', privateKey: clubKey }] : [],
    },
    resolver: { resolveTxt: (name) => resolver.resolveTxt(name) },
  });
});

afterAll(async () => {
  await listeners?.close(1000);
  await store?.close();
  await dns?.close();
  await rm(dataDir, { recursive: true, force: true });
});

beforeEach(() => {
  logLines.length = 0;
});

describe('MX listener recipients', () => {
  it('rejects relaying to a domain it does not host', async () => {
    const { rcpt } = await transaction(
      'a@origin.test',
      ['someone@elsewhere.test'],
      message('a@origin.test', 'relay'),
    );
    expect(rcpt[0]).toMatch(/^550 5\.1\.1 /);
  });

  it('rejects an unknown user of a hosted domain', async () => {
    const { rcpt } = await transaction(
      'a@origin.test',
      ['nobody@club.test'],
      message('a@origin.test', 'x'),
    );
    expect(rcpt[0]).toMatch(/^550 5\.1\.1 .*user unknown/);
  });

  it('rejects a disabled alias with 550', async () => {
    const { rcpt } = await transaction(
      'a@origin.test',
      ['off@club.test'],
      message('a@origin.test', 'x'),
    );
    expect(rcpt[0]).toMatch(/^550 5\.2\.1 /);
  });

  it('answers 452 past the recipient limit', async () => {
    const { client } = await LineClient.connect(listeners.mx.port);
    await client.command('EHLO client.test');
    await client.command('MAIL FROM:<a@origin.test>');
    const replies = [];
    for (const local of ['list', 'list+1', 'list+2', 'list+3']) {
      replies.push(await client.command(`RCPT TO:<${local}@club.test>`));
    }
    client.close();
    expect(replies.slice(0, 3).every((reply) => reply.startsWith('250'))).toBe(true);
    expect(replies[3]).toMatch(/^452 4\.5\.3 /);
  });
});

describe('MX listener forwarding', () => {
  it('queues one SRS-rewritten entry per alias target before 250', async () => {
    const body = signedByAuthor('forward');
    const { data } = await transaction('author@author.test', ['list@club.test'], body);
    expect(data).toMatch(/^250 2\.0\.0 Ok: queued as /);

    const { entries, body: stored } = await entriesOf(data);
    expect(entries.map((entry) => entry.recipient).sort()).toEqual([
      'alice@dest.test',
      'bob@dest.test',
    ]);
    for (const entry of entries) {
      expect(entry.origin).toBe('forward');
      expect(entry.bounceTo).toBe('author@author.test');
      expect(srs.reverse(entry.sender)).toEqual({ ok: true, address: 'author@author.test' });
    }

    // Only trace fields are added on top, so the author's signature still verifies.
    const fields = parseHeaderFields(splitMessage(stored).header);
    expect(fields[0]!.key).toBe('authentication-results');
    expect(fields[1]!.key).toBe('received');
    expect(stored.subarray(stored.length - body.length).equals(body)).toBe(true);
    const results = await verifyMessage(stored, { lookupTxt });
    expect(results.map((result) => result.result)).toEqual(['pass']);

    const authResults = getHeader(fields, 'authentication-results')!;
    expect(authResults).toMatch(/^mx\.herald\.test; dkim=pass .*header\.d=author\.test/);
    expect(authResults).toContain('dmarc=pass');
    const received = getHeader(fields, 'received')!;
    expect(received).toMatch(
      /^from client\.test \(\[127\.0\.0\.1\] \[127\.0\.0\.1\]\) by mx\.herald\.test/,
    );
    expect(received).toContain('for <list@club.test>');
  });

  it('logs the queue id first with the fixed fields', async () => {
    const { data } = await transaction(
      'author@author.test',
      ['list@club.test'],
      signedByAuthor('logged'),
    );
    const { messageId } = await entriesOf(data);
    const line = logLines.find((entry) => entry.queueId === messageId);
    expect(line).toBeDefined();
    expect(String(line!.msg).startsWith(`${messageId}: `)).toBe(true);
    expect(line).toMatchObject({ from: 'author@author.test', status: 'queued', dsn: '2.0.0' });
    expect(String(line!.to).split(',').sort()).toEqual(['alice@dest.test', 'bob@dest.test']);
  });

  it('keeps the null sender null when forwarding a bounce', async () => {
    const { data } = await transaction(
      '',
      ['list@club.test'],
      message('mailer-daemon@origin.test', 'dsn'),
    );
    const { entries } = await entriesOf(data);
    expect(entries.map((entry) => [entry.sender, entry.bounceTo])).toEqual([
      ['', ''],
      ['', ''],
    ]);
  });

  it('uses the SRS domain of the hosted domain when it has one', async () => {
    const { data } = await transaction(
      'someone@origin.test',
      ['info@own-srs.test'],
      message('someone@origin.test', 'own'),
    );
    const { entries } = await entriesOf(data);
    // A single rewriter serves every domain; only an SrsRouting gives per-domain SRS domains.
    expect(entries[0]!.sender).toMatch(/^SRS0=.*@srs\.herald\.test$/);
  });

  it('forwards a whole transaction from swaks', async () => {
    const result = await swaks([
      '--server',
      `127.0.0.1:${listeners.mx.port}`,
      '--from',
      'someone@origin.test',
      '--to',
      'list+swaks@club.test',
      '--helo',
      'swaks.test',
      '--header',
      'Subject: sent by swaks',
    ]);
    expect(result.code).toBe(0);
    const reply = /<-\s+(250 2\.0\.0 Ok: queued as \S+)/.exec(result.output);
    expect(reply).not.toBeNull();
    const { entries } = await entriesOf(reply![1]!);
    expect(entries).toHaveLength(2);
  });
});

describe('MX listener STARTTLS', () => {
  it('receives over STARTTLS and records it in Received', async () => {
    const result = await swaks([
      '--server',
      `127.0.0.1:${listeners.mx.port}`,
      '--tls',
      '--from',
      'someone@origin.test',
      '--to',
      'list@club.test',
      '--helo',
      'tls.test',
    ]);
    expect(result.output).toContain('TLS started with cipher');
    const reply = /<~\s+(250 2\.0\.0 Ok: queued as \S+)/.exec(result.output);
    expect(reply).not.toBeNull();
    const { body } = await entriesOf(reply![1]!);
    const received = getHeader(parseHeaderFields(splitMessage(body).header), 'received')!;
    expect(received).toMatch(
      /by mx\.herald\.test \(using TLSv1\.[23] with cipher \S+\) with ESMTPS /,
    );
  });
});

describe('MX listener DMARC policies', () => {
  it('rejects at end of DATA for an alias with the reject policy', async () => {
    const forged = message('ceo@forged.test', 'forged-reject');
    const { rcpt, data } = await transaction('ceo@forged.test', ['strict@club.test'], forged);
    expect(rcpt[0]).toMatch(/^250/);
    expect(data).toMatch(/^550 5\.7\.1 .*DMARC/);
  });

  it('accepts a signed message for an alias with the reject policy', async () => {
    const { data } = await transaction(
      'author@author.test',
      ['strict@club.test'],
      signedByAuthor('signed-strict'),
    );
    expect(data).toMatch(/^250 /);
  });

  it('forwards unchanged for the forward policy', async () => {
    const forged = message('ceo@forged.test', 'forged-forward');
    const { data } = await transaction('ceo@forged.test', ['list@club.test'], forged);
    const { body } = await entriesOf(data);
    expect(body.subarray(body.length - forged.length).equals(forged)).toBe(true);
    const fields = parseHeaderFields(splitMessage(body).header);
    expect(getHeader(fields, 'authentication-results')).toContain('dmarc=fail');
  });

  it('rewrites From and signs for the rewrite-from policy', async () => {
    const forged = message('ceo@forged.test', 'forged-rewrite');
    const { data } = await transaction('ceo@forged.test', ['rewrite@club.test'], forged);
    const { body, entries } = await entriesOf(data);
    expect(entries.map((entry) => entry.recipient)).toEqual(['dave@dest.test']);

    const fields = parseHeaderFields(splitMessage(body).header);
    expect(getHeaders(fields, 'from')).toEqual(['"Author via club.test" <rewrite@club.test>']);
    expect(getHeader(fields, 'reply-to')).toBe('Author <ceo@forged.test>');
    expect(getHeader(fields, 'subject')).toBe('forged-rewrite');
    expect(splitMessage(body).body.toString()).toBe('Hello from forged-rewrite.\r\n');
    const results = await verifyMessage(body, { lookupTxt });
    expect(results.find((result) => result.domain === 'club.test')?.result).toBe('pass');
  });

  it('splits one message into the original and the rewritten copy', async () => {
    const forged = message('ceo@forged.test', 'forged-both');
    const { data } = await transaction(
      'ceo@forged.test',
      ['rewrite@club.test', 'list@club.test'],
      forged,
    );
    const ids = /queued as (\S+) (\S+)/.exec(data);
    expect(ids).not.toBeNull();
    const first = await store.listEntriesOfMessage(ids![1]!);
    const second = await store.listEntriesOfMessage(ids![2]!);
    expect(first.map((entry) => entry.recipient).sort()).toEqual([
      'alice@dest.test',
      'bob@dest.test',
    ]);
    expect(second.map((entry) => entry.recipient)).toEqual(['dave@dest.test']);
  });

  it('does not act on a p=none policy', async () => {
    const { data } = await transaction(
      'x@relaxed.test',
      ['strict@club.test'],
      message('x@relaxed.test', 'none'),
    );
    expect(data).toMatch(/^250 /);
  });
});

describe('MX listener SRS addresses', () => {
  it('queues a bounce to an SRS address for the original sender', async () => {
    const forward = srs.forward('author@origin.test');
    const address = forward.kind === 'rewritten' ? forward.address : '';
    const { rcpt, data } = await transaction(
      '',
      [address],
      message('mailer-daemon@dest.test', 'bounce'),
    );
    expect(rcpt[0]).toMatch(/^250/);
    const { entries } = await entriesOf(data);
    expect(entries.map((entry) => [entry.recipient, entry.sender, entry.bounceTo])).toEqual([
      ['author@origin.test', '', ''],
    ]);
  });

  it('rejects a forged SRS address and logs the reason', async () => {
    const forged = 'SRS0=ZZZZ=AB=origin.test=author@srs.herald.test';
    const { rcpt } = await transaction('', [forged], message('x@dest.test', 'forged'));
    expect(rcpt[0]).toMatch(/^550 5\.1\.1 .*SRS/);
    const line = logLines.find((entry) => entry.to === forged);
    expect(line).toMatchObject({ reason: 'invalid-srs' });
    expect(String(line!.detail)).toMatch(/^(bad-hash|bad-stamp|expired)/);
  });

  it('rejects an expired SRS address', async () => {
    const old = new SrsRewriter({
      domain: 'srs.herald.test',
      secrets: [SRS_SECRET],
      now: () => new Date(Date.now() - 30 * 86_400_000),
    }).forward('author@origin.test');
    const address = old.kind === 'rewritten' ? old.address : '';
    const { rcpt } = await transaction('', [address], message('x@dest.test', 'expired'));
    expect(rcpt[0]).toMatch(/^550 /);
    expect(logLines.find((entry) => entry.to === address)?.detail).toMatch(/^expired/);
  });

  it('rate-limits mail with a real sender to one SRS address', async () => {
    const forward = srs.forward('limited@origin.test');
    const address = forward.kind === 'rewritten' ? forward.address : '';
    const { client } = await LineClient.connect(listeners.mx.port);
    await client.command('EHLO client.test');
    const replies: string[] = [];
    for (let attempt = 0; attempt < 11; attempt++) {
      await client.command('MAIL FROM:<autoreply@dest.test>');
      replies.push(await client.command(`RCPT TO:<${address}>`));
      await client.command('RSET');
    }
    client.close();
    expect(replies.slice(0, 10).every((reply) => reply.startsWith('250'))).toBe(true);
    expect(replies[10]).toMatch(/^450 4\.7\.1 /);
  });

  it('rejects postmaster when no postmaster address is set', async () => {
    const { rcpt } = await transaction(
      'x@dest.test',
      ['postmaster@club.test'],
      message('x@dest.test', 'postmaster'),
    );
    expect(rcpt[0]).toMatch(/^550 5\.1\.1 /);
  });

  it('accepts the bounce address and discards its mail', async () => {
    const { rcpt, data } = await transaction(
      'x@dest.test',
      ['MAILER-DAEMON@mx.herald.test'],
      message('x@dest.test', 'reply'),
    );
    expect(rcpt[0]).toMatch(/^250/);
    expect(data).toMatch(/^250 2\.0\.0 Ok: discarded/);
  });
});

describe('MX listener limits', () => {
  it('advertises SIZE and answers 552 for a larger message', async () => {
    const { client } = await LineClient.connect(listeners.mx.port);
    const ehlo = await client.command('EHLO client.test');
    expect(ehlo).toContain('SIZE 20000');
    await client.command('MAIL FROM:<a@origin.test>');
    await client.command('RCPT TO:<list@club.test>');
    const big = `Subject: big\r\n\r\n${'0123456789abcdef\r\n'.repeat(1500)}`;
    const reply = await client.data(big);
    client.close();
    expect(reply).toMatch(/^552 5\.3\.4 /);
  });

  it('answers 552 to MAIL FROM with a SIZE over the limit', async () => {
    const { client } = await LineClient.connect(listeners.mx.port);
    await client.command('EHLO client.test');
    const reply = await client.command('MAIL FROM:<a@origin.test> SIZE=50000');
    client.close();
    expect(reply).toMatch(/^552 /);
  });

  it('rejects a line over 1000 octets', async () => {
    const { data } = await transaction(
      'a@origin.test',
      ['list@club.test'],
      Buffer.from(`Subject: x\r\n\r\n${'y'.repeat(1200)}\r\n`),
    );
    expect(data).toMatch(/^554 5\.6\.0 .*1000 octets/);
  });

  it('rejects a header section over the limit', async () => {
    const header = Array.from(
      { length: 60 },
      (_, index) => `X-Filler-${index}: ${'h'.repeat(70)}`,
    ).join('\r\n');
    const { data } = await transaction(
      'a@origin.test',
      ['list@club.test'],
      Buffer.from(`${header}\r\n\r\nbody\r\n`),
    );
    expect(data).toMatch(/^552 5\.3\.4 .*header/);
  });

  it('rejects a message with 50 Received fields as a loop', async () => {
    const trace = 'Received: from a by b; Thu, 03 Dec 2026 12:00:00 +0000\r\n';
    const looping = Buffer.from(`${trace.repeat(50)}Subject: loop\r\n\r\nbody\r\n`);
    const { data } = await transaction('a@origin.test', ['list@club.test'], looping);
    expect(data).toMatch(/^554 5\.4\.6 /);
    const fine = Buffer.from(`${trace.repeat(49)}Subject: loop\r\n\r\nbody\r\n`);
    expect((await transaction('a@origin.test', ['list@club.test'], fine)).data).toMatch(/^250 /);
  });

  it('refuses connections past the per-client limit', async () => {
    const open = [];
    for (let index = 0; index < 5; index++) open.push(await LineClient.connect(listeners.mx.port));
    const extra = await LineClient.connect(listeners.mx.port);
    expect(open.every(({ greeting }) => greeting.startsWith('220'))).toBe(true);
    expect(extra.greeting).toMatch(/^421 4\.7\.0 /);
    for (const { client } of open) client.close();
    extra.client.close();
    await Promise.all(open.map(({ client }) => client.closed));
    // smtp-server runs onClose on a later tick, so the slots come back a moment after the
    // client sees the close, and the next test would otherwise get the 421 as its greeting.
    await new Promise((resolve) => setTimeout(resolve, 200));
  });

  it('closes an idle session with 421', async () => {
    const { client, greeting } = await LineClient.connect(listeners.mx.port);
    expect(greeting).toMatch(/^220 /);
    const started = Date.now();
    const reply = await client.read();
    expect(reply).toMatch(/^421 /);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1400);
    await client.closed;
  });
});

// Runs last: it closes the listeners the other tests use.
describe('MX listener shutdown', () => {
  it('finishes a message in DATA and closes idle sessions with 421', async () => {
    const { client: busy } = await LineClient.connect(listeners.mx.port);
    await busy.command('EHLO busy.test');
    await busy.command('MAIL FROM:<late@origin.test>');
    await busy.command('RCPT TO:<list@club.test>');
    expect(await busy.command('DATA')).toMatch(/^354/);
    const { client: idle } = await LineClient.connect(listeners.mx.port);
    await idle.command('EHLO idle.test');

    const closing = listeners.close(5000);
    expect(await idle.read()).toMatch(/^421 4\.3\.2 /);
    await expect(LineClient.connect(listeners.mx.port)).rejects.toThrow();

    // The message in DATA still completes and is committed before its 250.
    const end = busy.read();
    busy.write('From: late@origin.test\r\nSubject: late\r\n\r\nstill here\r\n.\r\n');
    const reply = await end;
    expect(reply).toMatch(/^250 2\.0\.0 Ok: queued as /);
    const { entries } = await entriesOf(reply);
    expect(entries).toHaveLength(2);
    await closing;
  });
});
