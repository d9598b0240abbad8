/**
 * The submission listener against real clients on loopback: swaks for STARTTLS and AUTH, a
 * plain TCP session for the refusals before TLS, dkimpy and Herald's verifier for the
 * signatures, and a real SQLite store.
 */
import { execFile } from 'node:child_process';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadConfig } from '../config/index.js';
import {
  createSigningPool,
  createZoneLookup,
  dkimRecordValue,
  parseZoneFile,
  verifyMessage,
  zoneFileRecord,
  type SigningPool,
} from '../dkim/index.js';
import { hashPassword } from '../domains/password.js';
import { getHeader, parseHeaderFields, splitMessage } from '../message/index.js';
import { SrsRewriter } from '../srs/index.js';
import { openStore } from '../store/index.js';
import type { Store } from '../store/types.js';
import { startSmtpListeners, type SmtpListeners } from './index.js';

const execFileAsync = promisify(execFile);

let dataDir: string;
let store: Store;
let listeners: SmtpListeners;
let zone: string;
const keys: { selector: string; privateKey: KeyObject }[] = [];

async function swaks(args: string[]): Promise<{ code: number; output: string }> {
  const common = ['--server', `127.0.0.1:${listeners.submission.port}`, '--helo', 'client.test'];
  try {
    const { stdout, stderr } = await execFileAsync('/usr/bin/swaks', [...common, ...args], {
      timeout: 20_000,
    });
    return { code: 0, output: stdout + stderr };
  } catch (error) {
    const failure = error as { code?: number; stdout?: string; stderr?: string };
    return { code: failure.code ?? -1, output: `${failure.stdout ?? ''}${failure.stderr ?? ''}` };
  }
}

const AUTH = [
  '--tls',
  '--auth',
  'PLAIN',
  '--auth-user',
  'alice',
  '--auth-password',
  'correct horse',
];

/** Reads replies on a plain connection, for the refusals that come before STARTTLS. */
async function plainSession(commands: string[]): Promise<string[]> {
  const socket = net.connect(listeners.submission.port, '127.0.0.1');
  socket.setEncoding('utf8');
  let buffer = '';
  const replies: string[] = [];
  const next = () =>
    new Promise<string>((resolve, reject) => {
      const check = () => {
        const lines = buffer.split('\r\n');
        const last = lines.findIndex((line) => /^\d{3} /.test(line));
        if (last < 0) return false;
        buffer = lines.slice(last + 1).join('\r\n');
        resolve(lines.slice(0, last + 1).join('\n'));
        return true;
      };
      if (check()) return;
      const onData = (data: string) => {
        buffer += data;
        if (check()) socket.off('data', onData);
      };
      socket.on('data', onData);
      socket.once('error', reject);
    });
  replies.push(await next());
  for (const command of commands) {
    socket.write(`${command}\r\n`);
    replies.push(await next());
  }
  socket.destroy();
  return replies;
}

/** Starts the listeners on free loopback ports, signing with `signer` when given. */
async function startListeners(signer?: SigningPool): Promise<SmtpListeners> {
  const config = loadConfig(undefined, {});
  config.hostname = 'submit.herald.test';
  config.dataDir = dataDir;
  config.smtp.mx = { host: '127.0.0.1', port: 0 };
  config.smtp.submission = { host: '127.0.0.1', port: 0 };
  return startSmtpListeners({
    store,
    config,
    logger: pino({ level: 'silent' }),
    srs: new SrsRewriter({ domain: 'srs.herald.test', secrets: ['unused'] }),
    dkimKeys: {
      signaturesFor: (name) =>
        name === 'sender.test' ? keys.map((key) => ({ domain: 'sender.test', ...key })) : [],
    },
    resolver: {
      resolveTxt: () => Promise.reject(Object.assign(new Error('no DNS'), { code: 'ENOTFOUND' })),
    },
    signer,
  });
}

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'herald-submission-'));
  store = await openStore({ url: `sqlite:${join(dataDir, 'herald.sqlite')}` });
  const domain = await store.addDomain('sender.test');
  await store.addDomain('other.test');
  await store.addCredential({
    domainId: domain.id,
    username: 'alice',
    passwordHash: await hashPassword('correct horse'),
  });

  keys.push({
    selector: 'r1',
    privateKey: generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey,
  });
  keys.push({ selector: 'e1', privateKey: generateKeyPairSync('ed25519').privateKey });
  zone = keys
    .map((key) => zoneFileRecord(key.selector, 'sender.test', dkimRecordValue(key.privateKey)))
    .join('\n');

  listeners = await startListeners();
});

afterAll(async () => {
  await listeners?.close(1000);
  await store?.close();
  await rm(dataDir, { recursive: true, force: true });
});

describe('submission before STARTTLS', () => {
  it('offers STARTTLS and no AUTH on a plain connection', async () => {
    const [, ehlo] = await plainSession(['EHLO client.test']);
    expect(ehlo).toContain('STARTTLS');
    expect(ehlo).not.toContain('AUTH');
  });

  it('refuses AUTH before STARTTLS with 530', async () => {
    const replies = await plainSession([
      'EHLO client.test',
      'AUTH PLAIN AGFsaWNlAGNvcnJlY3QgaG9yc2U=',
    ]);
    expect(replies[2]).toMatch(/^530 5\.7\.0 Must issue a STARTTLS command first/);
  });

  it('refuses MAIL without AUTH', async () => {
    const replies = await plainSession(['EHLO client.test', 'MAIL FROM:<alice@sender.test>']);
    expect(replies[2]).toMatch(/^530 5\.7\.0 /);
  });

  it('makes swaks fail when it tries AUTH without TLS', async () => {
    const result = await swaks([
      '--auth',
      'PLAIN',
      '--auth-user',
      'alice',
      '--auth-password',
      'x',
      '--from',
      'alice@sender.test',
      '--to',
      'bob@dest.test',
    ]);
    expect(result.code).not.toBe(0);
    expect(result.code).not.toBe(-1);
  });
});

describe('submission after STARTTLS', () => {
  it('rejects a wrong password with 535', async () => {
    const result = await swaks([
      '--tls',
      '--auth',
      'PLAIN',
      '--auth-user',
      'alice',
      '--auth-password',
      'wrong',
      '--from',
      'alice@sender.test',
      '--to',
      'bob@dest.test',
    ]);
    expect(result.output).toMatch(/<~\*+ 535 5\.7\.8 /);
  });

  it('rejects an unknown user with 535', async () => {
    const result = await swaks([
      '--tls',
      '--auth',
      'LOGIN',
      '--auth-user',
      'mallory',
      '--auth-password',
      'correct horse',
      '--from',
      'alice@sender.test',
      '--to',
      'bob@dest.test',
    ]);
    expect(result.output).toMatch(/<~\*+ 535 5\.7\.8 /);
  });

  it('rejects an envelope sender outside the credential domain', async () => {
    const result = await swaks([...AUTH, '--from', 'alice@other.test', '--to', 'bob@dest.test']);
    expect(result.output).toMatch(/<~\*+ 553 5\.7\.1 /);
  });

  it('rejects a From header outside the credential domain', async () => {
    const result = await swaks([
      ...AUTH,
      '--from',
      'alice@sender.test',
      '--to',
      'bob@dest.test',
      '--header',
      'From: Boss <boss@other.test>',
    ]);
    expect(result.output).toMatch(/<~\*+ 550 5\.7\.1 /);
  });

  it('queues a signed message with Message-ID and Date added', async () => {
    const result = await swaks([
      ...AUTH,
      '--auth',
      'LOGIN',
      '--from',
      'alice@sender.test',
      '--to',
      'bob@dest.test,carol@dest.test',
      '--header',
      'Subject: signed',
      '--add-header',
      'X-Test: 1',
      '--suppress-data',
      '--data',
      'From: Alice <alice@sender.test>\nTo: bob@dest.test\nSubject: signed\n\nHello.\n',
    ]);
    expect(result.code).toBe(0);
    const id = /<~\s+250 2\.0\.0 Ok: queued as (\S+)/.exec(result.output)?.[1];
    expect(id).toBeDefined();

    const entries = await store.listEntriesOfMessage(id!);
    expect(entries.map((entry) => entry.recipient).sort()).toEqual([
      'bob@dest.test',
      'carol@dest.test',
    ]);
    expect(entries.every((entry) => entry.origin === 'submission')).toBe(true);
    expect(entries.every((entry) => entry.sender === 'alice@sender.test')).toBe(true);
    expect(entries.every((entry) => entry.bounceTo === 'alice@sender.test')).toBe(true);

    const body = (await store.getMessageBody(id!))!;
    const fields = parseHeaderFields(splitMessage(body).header);
    expect(getHeader(fields, 'message-id')).toMatch(/^<.+@sender\.test>$/);
    expect(getHeader(fields, 'date')).toMatch(/^\w{3}, \d{2} \w{3} \d{4} /);
    expect(getHeader(fields, 'received')).toMatch(/with ESMTPSA/);

    const lookupTxt = createZoneLookup(parseZoneFile(zone));
    const results = await verifyMessage(body, { lookupTxt });
    expect(results.map((entry) => `${entry.selector}:${entry.result}`).sort()).toEqual([
      'e1:pass',
      'r1:pass',
    ]);
    expect(await dkimpyVerifies(body, zone)).toBe(true);
  });
});

describe('submission line endings', () => {
  it('signs a bare CR as the CRLF that is transmitted', async () => {
    const result = await swaks([
      ...AUTH,
      '--auth',
      'PLAIN',
      '--from',
      'alice@sender.test',
      '--to',
      'bob@dest.test',
      '--data',
      'From: Alice <alice@sender.test>\r\nTo: bob@dest.test\r\nSubject: cr\r\n\r\nline1\rline2\r\n',
    ]);
    expect(result.code).toBe(0);
    const id = /<~\s+250 2\.0\.0 Ok: queued as (\S+)/.exec(result.output)?.[1];
    expect(id).toBeDefined();

    const body = (await store.getMessageBody(id!))!;
    expect(body.includes(Buffer.from('line1\r\nline2\r\n'))).toBe(true);
    const lookupTxt = createZoneLookup(parseZoneFile(zone));
    const results = await verifyMessage(body, { lookupTxt });
    expect(results.map((entry) => entry.result)).toEqual(['pass', 'pass']);
    expect(await dkimpyVerifies(body, zone)).toBe(true);
  });
});

describe('submission with a signing pool', () => {
  let pool: SigningPool;
  let pooled: SmtpListeners;

  beforeAll(async () => {
    pool = createSigningPool({ size: 1 });
    pooled = await startListeners(pool);
  });

  afterAll(async () => {
    await pooled?.close(1000);
    await pool?.close();
  });

  it('signs in a worker thread', async () => {
    const { stdout } = await execFileAsync('/usr/bin/swaks', [
      '--server',
      `127.0.0.1:${pooled.submission.port}`,
      '--helo',
      'client.test',
      ...AUTH,
      '--from',
      'alice@sender.test',
      '--to',
      'bob@dest.test',
      '--header',
      'From: alice@sender.test',
    ]);
    const id = /<~\s+250 2\.0\.0 Ok: queued as (\S+)/.exec(stdout)?.[1];
    expect(id).toBeDefined();
    const body = (await store.getMessageBody(id!))!;
    const results = await verifyMessage(body, { lookupTxt: createZoneLookup(parseZoneFile(zone)) });
    expect(results.map((entry) => entry.result)).toEqual(['pass', 'pass']);
  });
});

/** Verifies with dkimpy (Debian's python3-dkim), keys read from the zone text. */
async function dkimpyVerifies(message: Buffer, zoneText: string): Promise<boolean> {
  const records: Record<string, string> = {};
  for (const [name, values] of parseZoneFile(zoneText).records) {
    records[`${name}.`] = values[0]!.join('');
  }
  const script = [
    'import sys, json, dkim',
    'records = json.loads(sys.argv[1])',
    'def dnsfunc(name, timeout=5):',
    '    value = records.get(name.decode() if isinstance(name, bytes) else name)',
    '    return value.encode() if value else None',
    'message = sys.stdin.buffer.read()',
    'd = dkim.DKIM(message)',
    'count = len([l for l in message.split(b"\\r\\n\\r\\n")[0].split(b"\\r\\n") if l.lower().startswith(b"dkim-signature:")])',
    'ok = all(d.verify(idx=i, dnsfunc=dnsfunc) for i in range(count))',
    'print("pass" if ok and count > 0 else "fail")',
  ].join('\n');
  const child = execFile('/usr/bin/python3', ['-c', script, JSON.stringify(records)]);
  child.stdin!.end(message);
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  await new Promise((resolve) => child.on('close', resolve));
  return output.trim() === 'pass';
}
