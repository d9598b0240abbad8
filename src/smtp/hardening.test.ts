/**
 * Limits against resource exhaustion and password guessing, on listeners of their own with
 * limits small enough to reach. They cover connections per listener, DATA bytes in flight, the
 * DATA time limit, failed AUTH, null senders per SRS address, forged Authentication-Results
 * and postmaster. Clients are raw TCP sockets on loopback, upgraded with STARTTLS where needed.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import tls from 'node:tls';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadConfig } from '../config/index.js';
import { hashPassword } from '../domains/password.js';
import { createLogger } from '../log/index.js';
import { SrsRewriter } from '../srs/index.js';
import { openStore } from '../store/index.js';
import type { Store } from '../store/types.js';
import { startSmtpListeners, type SmtpListeners } from './index.js';

const SRS_SECRET = 'hardening-test-secret';
const srs = new SrsRewriter({ domain: 'srs.herald.test', secrets: [SRS_SECRET] });
let dataDir: string;
let store: Store;
let listeners: SmtpListeners;
const logLines: Record<string, unknown>[] = [];

/** An SMTP client over a socket that may be upgraded with STARTTLS: one command, one reply. */
class Client {
  private buffer = '';
  private waiting: ((reply: string) => void) | undefined;
  closed!: Promise<void>;
  private socket!: net.Socket;

  private constructor(socket: net.Socket) {
    this.attach(socket);
  }

  static async connect(port: number, localAddress = '127.0.0.1') {
    const socket = net.connect({ port, host: '127.0.0.1', localAddress });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const client = new Client(socket);
    const greeting = await client.read();
    return { client, greeting };
  }

  private attach(socket: net.Socket): void {
    this.socket = socket;
    socket.setEncoding('utf8');
    socket.on('data', (data: string) => {
      this.buffer += data;
      this.flush();
    });
    socket.on('error', () => undefined);
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
  }

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
    this.buffer = lines.slice(last + 1).join('\r\n');
    const resolve = this.waiting;
    this.waiting = undefined;
    resolve(lines.slice(0, last + 1).join('\n'));
  }

  command(line: string): Promise<string> {
    this.socket.write(`${line}\r\n`);
    return this.read();
  }

  write(text: string | Buffer): void {
    this.socket.write(text);
  }

  /** Sends STARTTLS and continues the session over TLS. */
  async startTls(): Promise<void> {
    const reply = await this.command('STARTTLS');
    expect(reply).toMatch(/^220 /);
    const plain = this.socket;
    plain.removeAllListeners('data');
    const secure = tls.connect({ socket: plain, rejectUnauthorized: false });
    await new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', resolve);
      secure.once('error', reject);
    });
    this.attach(secure);
  }

  close(): void {
    this.socket.destroy();
  }

  /** Closes the connection with a TCP RST, as a client that crashed would. */
  reset(): void {
    this.socket.resetAndDestroy();
  }
}

function plainAuth(username: string, password: string): string {
  return `AUTH PLAIN ${Buffer.from(`\0${username}\0${password}`).toString('base64')}`;
}

/** Opens a submission session that is ready for AUTH: EHLO, STARTTLS, EHLO. */
async function tlsSession(localAddress = '127.0.0.1'): Promise<Client> {
  const { client } = await Client.connect(listeners.submission.port, localAddress);
  await client.command('EHLO client.test');
  await client.startTls();
  await client.command('EHLO client.test');
  return client;
}

/** Opens an MX session with one accepted recipient, ready for DATA. */
async function mxTransaction(mailArguments = ''): Promise<Client> {
  const { client } = await Client.connect(listeners.mx.port);
  await client.command('EHLO client.test');
  expect(await client.command(`MAIL FROM:<author@origin.test>${mailArguments}`)).toMatch(/^250/);
  expect(await client.command('RCPT TO:<list@club.test>')).toMatch(/^250/);
  return client;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const MESSAGE =
  'From: Author <author@origin.test>\r\nTo: list@club.test\r\nSubject: limits\r\n' +
  'Date: Thu, 03 Dec 2026 12:00:00 +0000\r\nMessage-ID: <limits@origin.test>\r\n\r\nHello.\r\n';

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'herald-hardening-'));
  store = await openStore({ url: `sqlite:${join(dataDir, 'herald.sqlite')}` });
  const club = await store.addDomain('club.test');
  await store.addAlias({
    domainId: club.id,
    localPart: 'list',
    targets: ['alice@dest.test'],
    enabled: true,
    dmarcPolicy: 'forward',
  });
  await store.addCredential({
    domainId: club.id,
    username: 'alice',
    passwordHash: await hashPassword('correct horse'),
  });

  const config = loadConfig(undefined, {});
  config.hostname = 'mx.herald.test';
  config.dataDir = dataDir;
  config.smtp.mx = { host: '127.0.0.1', port: 0 };
  config.smtp.submission = { host: '127.0.0.1', port: 0 };
  config.limits = {
    ...config.limits,
    maxConnections: 4,
    maxDataInFlight: 64 * 1024,
    dataTimeout: 1500,
    authFailuresPerWindow: 5,
    srsNullSendersPerHour: 3,
  };
  config.postmaster = ['admin@dest.test'];
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
    dkimKeys: { signaturesFor: () => [] },
    resolver: {
      resolveTxt: () => Promise.reject(Object.assign(new Error('no DNS'), { code: 'ENOTFOUND' })),
    },
  });
});

afterAll(async () => {
  await listeners?.close(1000);
  await store?.close();
  await rm(dataDir, { recursive: true, force: true });
});

describe('connection limit per listener', () => {
  it('greets up to maxConnections and then replies 421', async () => {
    const open: Client[] = [];
    try {
      // Two client addresses, so the limit per client address is not what rejects.
      for (const address of ['127.0.0.1', '127.0.0.2', '127.0.0.1', '127.0.0.2']) {
        const { client, greeting } = await Client.connect(listeners.mx.port, address);
        expect(greeting).toMatch(/^220 /);
        open.push(client);
      }
      const { client, greeting } = await Client.connect(listeners.mx.port, '127.0.0.3');
      open.push(client);
      expect(greeting).toMatch(/^421 .*4\.7\.0 /);
      await client.closed;
    } finally {
      for (const client of open) client.close();
    }
    await sleep(100);
  });
});

describe('DATA bytes in flight', () => {
  it('rejects DATA with 452 while the budget is used up', async () => {
    const holder = await mxTransaction();
    const other = await mxTransaction();
    const declared = await mxTransaction(' SIZE=16384');
    try {
      expect(await holder.command('DATA')).toMatch(/^354/);
      // About 60 kB of a 64 KiB budget, without the final dot.
      const line = `${'x'.repeat(998)}\r\n`;
      holder.write(MESSAGE + line.repeat(60));
      await sleep(500);

      expect(await declared.command('DATA')).toMatch(/^452 4\.3\.1 /);
      // Without SIZE, DATA starts, and the message is rejected once it crosses the budget.
      expect(await other.command('DATA')).toMatch(/^354/);
      other.write(`${MESSAGE}${line.repeat(10)}.\r\n`);
      expect(await other.read()).toMatch(/^452 4\.3\.1 /);

      holder.write('.\r\n');
      expect(await holder.read()).toMatch(/^250 /);
      // The budget is free again once the first message is in.
      expect(await other.command('MAIL FROM:<author@origin.test>')).toMatch(/^250/);
      expect(await other.command('RCPT TO:<list@club.test>')).toMatch(/^250/);
      expect(await other.command('DATA')).toMatch(/^354/);
      other.write(`${MESSAGE}.\r\n`);
      expect(await other.read()).toMatch(/^250 /);
    } finally {
      holder.close();
      other.close();
      declared.close();
    }
  });
});

describe('DATA budget shared by both listeners', () => {
  it('rejects a submission while MX sessions fill the budget', async () => {
    const holder = await mxTransaction();
    const client = await tlsSession('127.0.4.1');
    try {
      expect(await client.command(plainAuth('alice', 'correct horse'))).toMatch(/^235 /);
      expect(await client.command('MAIL FROM:<alice@club.test>')).toMatch(/^250/);
      expect(await client.command('RCPT TO:<bob@dest.test>')).toMatch(/^250/);

      expect(await holder.command('DATA')).toMatch(/^354/);
      const line = `${'x'.repeat(998)}\r\n`;
      holder.write(MESSAGE + line.repeat(60));
      await sleep(500);

      expect(await client.command('DATA')).toMatch(/^354/);
      client.write(`${MESSAGE}${line.repeat(10)}.\r\n`);
      expect(await client.read()).toMatch(/^452 4\.3\.1 /);
      holder.write('.\r\n');
      expect(await holder.read()).toMatch(/^250 /);
    } finally {
      holder.close();
      client.close();
    }
  });
});

describe('DATA time limit', () => {
  it('closes a slow DATA phase with 421', async () => {
    const client = await mxTransaction();
    expect(await client.command('DATA')).toMatch(/^354/);
    const started = Date.now();
    const reply = client.read();
    // One byte every 200 ms keeps the session clear of the idle timeout, bounded at 30 bytes.
    let open = true;
    void client.closed.then(() => (open = false));
    for (let sent = 0; open && sent < 30; sent++) {
      client.write('x');
      await sleep(200);
    }
    expect(await reply).toMatch(/^421 4\.4\.2 /);
    await client.closed;
    expect(Date.now() - started).toBeLessThan(5000);
  });
});

describe('failed AUTH on submission', () => {
  it('answers AUTH before STARTTLS with 530', async () => {
    const { client } = await Client.connect(listeners.submission.port);
    await client.command('EHLO client.test');
    expect(await client.command(plainAuth('alice', 'correct horse'))).toBe(
      '530 5.7.0 Must issue a STARTTLS command first',
    );
    client.close();
  });

  it('closes the session after three failures', async () => {
    const client = await tlsSession('127.0.0.3');
    expect(await client.command(plainAuth('mallory', 'guess1'))).toMatch(/^535 5\.7\.8 /);
    expect(await client.command(plainAuth('mallory', 'guess2'))).toMatch(/^535 5\.7\.8 /);
    expect(await client.command(plainAuth('mallory', 'guess3'))).toMatch(/^421 4\.7\.0 /);
    await client.closed;
  });

  it('locks out a client address after the window limit', async () => {
    // Five failures from one address over three sessions, with a different name each time.
    const replies: string[] = [];
    for (const names of [['u1', 'u2'], ['u3', 'u4'], ['u5']]) {
      const client = await tlsSession('127.0.0.4');
      for (const name of names) replies.push(await client.command(plainAuth(name, 'wrong')));
      client.close();
    }
    expect(replies.every((reply) => reply.startsWith('535 '))).toBe(true);

    const client = await tlsSession('127.0.0.4');
    expect(await client.command(plainAuth('alice', 'correct horse'))).toBe(
      '454 4.7.0 Too many failed authentication attempts, try again later',
    );
    client.close();

    const elsewhere = await tlsSession('127.0.0.5');
    expect(await elsewhere.command(plainAuth('alice', 'correct horse'))).toMatch(/^235 /);
    elsewhere.close();
  });

  it('locks out a user name tried from many addresses', async () => {
    const replies: string[] = [];
    for (let index = 0; index < 5; index++) {
      const client = await tlsSession(`127.0.1.${index + 1}`);
      replies.push(await client.command(plainAuth('target', 'wrong')));
      client.close();
    }
    expect(replies.every((reply) => reply.startsWith('535 '))).toBe(true);
    const client = await tlsSession('127.0.1.9');
    expect(await client.command(plainAuth('target', 'wrong'))).toMatch(/^454 4\.7\.0 /);
    client.close();
  });

  it('logs failures at info with address and name, never the password', () => {
    const failures = logLines.filter(
      (line) => line.msg === 'authentication failed: invalid credentials',
    );
    const mallory = failures.filter((line) => line.username === 'mallory');
    expect(mallory).toHaveLength(3);
    expect(mallory[2]).toMatchObject({ level: 30, client: '127.0.0.3', sessionFailures: 3 });
    expect(JSON.stringify(logLines)).not.toContain('guess1');
    const locked = logLines.filter(
      (line) => line.msg === 'authentication rejected: too many failed attempts',
    );
    expect(locked.length).toBeGreaterThan(0);
  });
});

describe('null sender to an SRS address', () => {
  it('defers bounces past the hourly rate with 450', async () => {
    const forward = srs.forward('victim@origin.test');
    const address = forward.kind === 'rewritten' ? forward.address : '';
    const { client } = await Client.connect(listeners.mx.port, '127.0.2.1');
    await client.command('EHLO client.test');
    const replies: string[] = [];
    for (let attempt = 0; attempt < 4; attempt++) {
      await client.command('MAIL FROM:<>');
      replies.push(await client.command(`RCPT TO:<${address}>`));
      await client.command('RSET');
    }
    client.close();
    expect(replies.slice(0, 3).every((reply) => reply.startsWith('250'))).toBe(true);
    expect(replies[3]).toMatch(/^450 4\.7\.1 /);
  });
});

describe('client disconnects', () => {
  it('logs a reset in the middle of DATA at info', async () => {
    const before = logLines.length;
    const client = await mxTransaction();
    expect(await client.command('DATA')).toMatch(/^354/);
    client.write('Subject: cut off\r\n\r\nhalf a message');
    await sleep(100);
    client.reset();
    await client.closed;
    await sleep(300);

    const lines = logLines.slice(before);
    expect(lines.filter((line) => Number(line.level) >= 50)).toEqual([]);
    const disconnect = lines.find((line) => line.msg === 'client disconnected during DATA');
    expect(disconnect).toMatchObject({ level: 30 });
    expect(disconnect).not.toHaveProperty('err');
  });
});

describe('forged Authentication-Results', () => {
  it('forwards only the field Herald adds under its own id', async () => {
    const client = await mxTransaction();
    expect(await client.command('DATA')).toMatch(/^354/);
    client.write(
      'Authentication-Results: mx.herald.test; dkim=pass header.d=bank.test; dmarc=pass\r\n' +
        'Authentication-Results: upstream.test; spf=pass\r\n' +
        `${MESSAGE}.\r\n`,
    );
    const reply = await client.read();
    client.close();
    const messageId = /queued as (\S+)/.exec(reply)?.[1];
    expect(messageId).toBeDefined();
    const body = (await store.getMessageBody(messageId!))!.toString('utf8');
    const fields = body.split('\r\n\r\n')[0]!.match(/^Authentication-Results:.*$/gim) ?? [];
    expect(fields).toHaveLength(2);
    expect(body).not.toContain('bank.test');
    expect(body).toContain('Authentication-Results: upstream.test; spf=pass');
  });
});

describe('postmaster', () => {
  it('queues mail for postmaster to the configured address', async () => {
    const { client } = await Client.connect(listeners.mx.port, '127.0.3.1');
    await client.command('EHLO client.test');
    expect(await client.command('MAIL FROM:<reporter@origin.test>')).toMatch(/^250/);
    expect(await client.command('RCPT TO:<postmaster@club.test>')).toMatch(/^250/);
    expect(await client.command('RCPT TO:<PostMaster@mx.herald.test>')).toMatch(/^250/);
    expect(await client.command('RCPT TO:<postmaster@elsewhere.test>')).toMatch(/^550 /);
    expect(await client.command('DATA')).toMatch(/^354/);
    client.write(`${MESSAGE}.\r\n`);
    const reply = await client.read();
    client.close();
    const messageId = /queued as (\S+)/.exec(reply)?.[1];
    expect(messageId).toBeDefined();
    const entries = await store.listEntriesOfMessage(messageId!);
    expect(entries.map((entry) => entry.recipient)).toEqual(['admin@dest.test']);
  });
});
