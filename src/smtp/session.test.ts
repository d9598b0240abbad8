/** Per-client command rate on a listener of its own, with a limit small enough to reach. */
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadConfig } from '../config/index.js';
import { createLogger } from '../log/index.js';
import { SrsRewriter } from '../srs/index.js';
import { openStore } from '../store/index.js';
import type { Store } from '../store/types.js';
import { startSmtpListeners, type SmtpListeners } from './index.js';

let dataDir: string;
let store: Store;
let listeners: SmtpListeners;

/** Sends each command after the previous reply; returns every reply and whether it closed. */
async function session(port: number, commands: string[]) {
  const socket = net.connect(port, '127.0.0.1');
  socket.setEncoding('utf8');
  const replies: string[] = [];
  const pending = [...commands];
  let buffer = '';
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
  socket.on('data', (data: string) => {
    buffer += data;
    let match;
    while ((match = /^(\d{3})( [^\r\n]*)?\r\n/m.exec(buffer)) !== null) {
      const end = match.index + match[0].length;
      replies.push(buffer.slice(match.index, end).trim());
      buffer = buffer.slice(end);
      const next = pending.shift();
      if (next === undefined) socket.end();
      else socket.write(`${next}\r\n`);
    }
  });
  await closed;
  return { replies, unsent: pending.length };
}

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'herald-session-'));
  store = await openStore({ url: `sqlite:${join(dataDir, 'herald.sqlite')}` });
  const config = loadConfig(undefined, {});
  config.hostname = 'mx.herald.test';
  config.dataDir = dataDir;
  config.smtp.mx = { host: '127.0.0.1', port: 0 };
  config.smtp.submission = { host: '127.0.0.1', port: 0 };
  config.limits.commandsPerMinute = 5;
  listeners = await startSmtpListeners({
    store,
    config,
    logger: createLogger({ level: 'silent' }),
    srs: new SrsRewriter({ domain: 'srs.herald.test', secrets: ['s'] }),
    dkimKeys: { signaturesFor: () => [] },
    resolver: { resolveTxt: () => Promise.resolve([]) },
  });
});

afterAll(async () => {
  await listeners?.close(500);
  await store?.close();
  await rm(dataDir, { recursive: true, force: true });
});

describe('command rate per client', () => {
  it('closes the session with 421 past the rate', async () => {
    const commands = ['EHLO client.test', 'NOOP', 'NOOP', 'RSET', 'NOOP', 'NOOP', 'NOOP'];
    const { replies, unsent } = await session(listeners.mx.port, commands);
    expect(replies[0]).toMatch(/^220 /);
    expect(replies.slice(1, 6).every((reply) => reply.startsWith('250'))).toBe(true);
    expect(replies[6]).toMatch(/^421 4\.7\.0 /);
    expect(unsent).toBe(0);
  });

  it('keeps counting in a new session', async () => {
    const { replies } = await session(listeners.mx.port, ['NOOP']);
    expect(replies[1]).toMatch(/^421 /);
  });

  it('counts each listener apart', async () => {
    const { replies } = await session(listeners.submission.port, ['NOOP']);
    expect(replies[1]).toMatch(/^250 /);
  });
});
