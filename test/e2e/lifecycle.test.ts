/**
 * The server's life cycle and the management CLI: SIGTERM lets a transaction in flight finish
 * with 250 before the process exits 0, the message survives in the store, and the `herald
 * domain|alias|credential|queue` commands work on that store with the server stopped.
 */
import { connect, type Socket } from 'node:net';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { startDnsServer, type DnsServer } from '../helpers/dns-server.js';

import {
  freePort,
  makeDataDir,
  removeDataDir,
  runHerald,
  startHerald,
  writeConfig,
  type HeraldInstance,
} from './harness.js';

let dns: DnsServer;
let dataDir: string;
let configPath: string;
let herald: HeraldInstance | undefined;
/** A port with nothing listening: every delivery attempt fails to connect and is deferred. */
let deadPort: number;
/** Retries an hour away, so deferred entries stay deferred while the test looks at them. */
const settings = { delivery: { retrySchedule: { initialDelay: '1h', factor: 2, maxDelay: '4h' } } };

async function cli(...args: string[]) {
  return runHerald([...args, '--config', configPath]);
}

/** A line-oriented SMTP client over a raw socket, so the test controls when DATA ends. */
class RawSmtp {
  private buffer = '';
  private waiting: ((line: string) => void) | undefined;

  constructor(private readonly socket: Socket) {
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      this.buffer += chunk;
      this.deliver();
    });
  }

  static open(port: number): Promise<RawSmtp> {
    return new Promise((resolveOpen, reject) => {
      const socket = connect(port, '127.0.0.1', () => resolveOpen(new RawSmtp(socket)));
      socket.once('error', reject);
    });
  }

  /** Resolves with the next complete reply (its last line). */
  reply(): Promise<string> {
    return new Promise((resolveReply) => {
      this.waiting = resolveReply;
      this.deliver();
    });
  }

  async command(line: string): Promise<string> {
    this.socket.write(`${line}\r\n`);
    return this.reply();
  }

  write(text: string): void {
    this.socket.write(text);
  }

  close(): void {
    this.socket.destroy();
  }

  private deliver(): void {
    // A reply ends with a line whose code is followed by a space (RFC 5321 section 4.2.1).
    const match = /(^|\r\n)(\d{3}) [^\r\n]*\r\n/.exec(this.buffer);
    if (!match || !this.waiting) return;
    const end = match.index + match[0].length;
    const line = match[0].trim();
    this.buffer = this.buffer.slice(end);
    const waiting = this.waiting;
    this.waiting = undefined;
    waiting(line);
  }
}

/**
 * Connects to `port` until the connection is refused, and returns that error. A shutdown
 * closes the listening socket a moment after it logs the signal, so one early connection may
 * still be accepted; it is closed again at once.
 */
async function refusedConnection(port: number, timeoutMs = 5_000): Promise<Error> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      (await RawSmtp.open(port)).close();
    } catch (error) {
      return error as Error;
    }
    if (Date.now() > deadline) throw new Error(`port ${port} still accepts connections`);
    await new Promise((resolveWait) => setTimeout(resolveWait, 50));
  }
}

beforeAll(async () => {
  dns = await startDnsServer({
    records: [
      { name: 'dest.test', type: 'MX', priority: 10, exchange: 'mx.dest.test' },
      { name: 'mx.dest.test', type: 'A', address: '127.0.0.1' },
    ],
  });
  deadPort = await freePort();
  dataDir = makeDataDir();
  ({ configPath } = await writeConfig(dataDir, {
    dnsAddress: dns.address,
    deliveryPort: deadPort,
    settings,
  }));
});

afterAll(async () => {
  await herald?.stop('SIGKILL');
  await dns?.close();
  if (dataDir) removeDataDir(dataDir);
});

describe('management CLI', () => {
  it('adds a domain and prints the records to publish', async () => {
    const added = await cli('domain', 'add', 'club.test');
    expect(added.code, added.stderr).toBe(0);
    expect(added.stdout).toMatch(/^h\d{8}r\._domainkey\.club\.test\.\s+IN\s+TXT/m);
    expect(added.stdout).toMatch(/^h\d{8}e\._domainkey\.club\.test\.\s+IN\s+TXT/m);
    expect(added.stdout).toContain('club.test. IN MX 10 mx.herald.test.');
    expect(added.stdout).toContain('_dmarc.club.test. IN TXT "v=DMARC1;');
    expect(added.stdout).toContain('mx.herald.test. IN TXT "v=spf1 a -all"');
    expect(added.stdout).toMatch(/null sender/);

    const listed = await cli('domain', 'list', '--json');
    expect((JSON.parse(listed.stdout) as Array<{ name: string }>).map((d) => d.name)).toEqual([
      'club.test',
    ]);
    const shown = await cli('domain', 'show', 'club.test', '--json');
    const records = (JSON.parse(shown.stdout) as { records: Array<{ type: string }> }).records;
    expect(records.filter((record) => record.type === 'TXT').length).toBeGreaterThanOrEqual(5);
  });

  it('exits 2 on invalid input and 1 on a missing object', async () => {
    const invalid = await cli('domain', 'add', 'not a domain');
    expect(invalid.code).toBe(2);
    expect(invalid.stderr).toContain('invalid domain name');
    const missing = await cli('domain', 'show', 'none.test');
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('domain none.test not found');
  });

  it('manages aliases', async () => {
    expect((await cli('alias', 'add', 'info@club.test', 'friend@dest.test')).code).toBe(0);
    expect((await cli('alias', 'add', 'tmp@club.test', 'x@dest.test', '--disabled')).code).toBe(0);
    const listed = await cli('alias', 'list', 'club.test');
    expect(listed.stdout).toMatch(
      /^info@club\.test\s+enabled\s+rewrite-from\s+friend@dest\.test$/m,
    );
    expect(listed.stdout).toMatch(/^tmp@club\.test\s+disabled/m);
    expect((await cli('alias', 'remove', 'tmp@club.test')).code).toBe(0);
    expect((await cli('alias', 'remove', 'tmp@club.test')).code).toBe(1);
  });

  it('manages credentials without showing hashes', async () => {
    const added = await runHerald(
      ['credential', 'add', 'editor@club.test', '--password-stdin', '--config', configPath],
      'a long password\n',
    );
    expect(added.code, added.stderr).toBe(0);
    const generated = await cli('credential', 'add', 'robot@club.test');
    expect(generated.stdout).toMatch(/^password: \S{20,}$/m);
    const listed = await cli('credential', 'list', 'club.test', '--json');
    expect(listed.stdout).not.toContain('scrypt');
    const names = (JSON.parse(listed.stdout) as Array<{ username: string }>).map((c) => c.username);
    expect(names.sort()).toEqual(['editor@club.test', 'robot@club.test']);
    expect((await cli('credential', 'remove', 'robot@club.test')).code).toBe(0);
  });
});

describe('SIGTERM', () => {
  it('finishes the transaction in flight, then exits 0', async () => {
    herald = await startHerald({
      dnsAddress: dns.address,
      deliveryPort: deadPort,
      dataDir,
      settings,
    });
    const client = await RawSmtp.open(herald.mxPort);
    expect(await client.reply()).toMatch(/^220 /);
    expect(await client.command('EHLO client.test')).toMatch(/^250 /);
    expect(await client.command('MAIL FROM:<alice@author.test>')).toMatch(/^250 /);
    expect(await client.command('RCPT TO:<info@club.test>')).toMatch(/^250 /);
    expect(await client.command('DATA')).toMatch(/^354 /);
    client.write('From: alice@author.test\r\nTo: info@club.test\r\nSubject: in flight\r\n\r\n');

    const exited = herald.stop('SIGTERM');
    await herald.waitForLog((entry) => entry.msg === 'signal received');
    // A new connection is no longer accepted while the old transaction continues.
    expect((await refusedConnection(herald.mxPort)).message).toMatch(/ECONNREFUSED/);

    client.write('The end of the body.\r\n.\r\n');
    expect(await client.reply()).toMatch(/^250 /);
    client.close();
    expect(await exited).toBe(0);
    expect(herald.logs.some((line) => line.includes('"msg":"stopped"'))).toBe(true);
  });
});

describe('queue commands on the stopped server', () => {
  let queueId = '';

  it('lists the message kept from the transaction', async () => {
    const listed = await cli('queue', 'list', '--json');
    expect(listed.code, listed.stderr).toBe(0);
    const entries = JSON.parse(listed.stdout) as Array<{
      messageId: string;
      recipient: string;
      status: string;
    }>;
    expect(entries.map((e) => e.recipient)).toEqual(['friend@dest.test']);
    expect(['queued', 'deferred']).toContain(entries[0]!.status);
    queueId = entries[0]!.messageId;
  });

  it('shows the entries, the events and the body', async () => {
    const shown = await cli('queue', 'show', queueId, '--body');
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toContain('friend@dest.test');
    expect(shown.stdout).toContain('Subject: in flight');
    expect(shown.stdout).toContain('The end of the body.');
  });

  it('retries and deletes', async () => {
    const retried = await cli('queue', 'retry', queueId);
    expect(retried.code, retried.stderr).toBe(0);
    expect(retried.stdout).toBe('1 entry due now\n');
    const noSelector = await cli('queue', 'retry');
    expect(noSelector.code).toBe(2);
    expect(noSelector.stderr).toContain('give exactly one of');

    const deleted = await cli('queue', 'delete', queueId);
    expect(deleted.stdout).toBe('1 entry deleted\n');
    expect((await cli('queue', 'show', queueId)).code).toBe(1);
    expect((await cli('queue', 'delete', queueId)).code).toBe(1);
  });
});
