/** What a client hears when the store fails: a temporary 451, never a permanent 5xx. */
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadConfig } from '../config/index.js';
import { createLogger } from '../log/index.js';
import { SrsRewriter } from '../srs/index.js';
import { openStore } from '../store/index.js';
import { startSmtpListeners, type SmtpListeners } from './index.js';

let dataDir: string;
let listeners: SmtpListeners;

/** Sends each command in turn and collects the last line of every reply. */
async function session(port: number, commands: string[]): Promise<string[]> {
  const socket = net.connect(port, '127.0.0.1');
  socket.setEncoding('utf8');
  const replies: string[] = [];
  let buffer = '';
  const pending = [...commands];
  await new Promise<void>((resolve, reject) => {
    socket.on('error', reject);
    socket.on('data', (data: string) => {
      buffer += data;
      let match;
      while ((match = /^(\d{3})( [^\r\n]*)?\r\n/m.exec(buffer)) !== null) {
        const end = match.index + match[0].length;
        replies.push(buffer.slice(match.index, end).trim());
        buffer = buffer.slice(end);
        const next = pending.shift();
        if (next === undefined) {
          socket.destroy();
          resolve();
          return;
        }
        socket.write(`${next}\r\n`);
      }
    });
  });
  return replies;
}

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'herald-failures-'));
  const store = await openStore({ url: `sqlite:${join(dataDir, 'herald.sqlite')}` });
  await store.addDomain('club.test');
  // A closed store fails every call, like a database that went away.
  await store.close();

  const config = loadConfig(undefined, {});
  config.hostname = 'mx.herald.test';
  config.dataDir = dataDir;
  config.smtp.mx = { host: '127.0.0.1', port: 0 };
  config.smtp.submission = { host: '127.0.0.1', port: 0 };
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
  await rm(dataDir, { recursive: true, force: true });
});

describe('MX listener with a failed store', () => {
  it('answers RCPT with 451', async () => {
    const replies = await session(listeners.mx.port, [
      'EHLO client.test',
      'MAIL FROM:<a@origin.test>',
      'RCPT TO:<list@club.test>',
    ]);
    expect(replies[3]).toMatch(/^451 4\.3\.0 /);
    expect(replies[3]).not.toContain('database');
  });
});
