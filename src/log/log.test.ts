import { generateKeyPairSync } from 'node:crypto';
import { Writable } from 'node:stream';

import { describe, expect, it } from 'vitest';

import { createLogger, delaySince, messageLogger, scrubSecrets } from './index.js';

/** Create a logger that writes into an array of raw JSON lines. */
function capture(level = 'trace') {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(
        ...chunk
          .toString('utf8')
          .split('\n')
          .filter((line) => line !== ''),
      );
      done();
    },
  });
  const logger = createLogger({ level, destination });
  const parsed = () => lines.map((line) => JSON.parse(line) as Record<string, unknown>);
  return { logger, lines, parsed };
}

describe('createLogger', () => {
  it('writes JSON lines with level and time', () => {
    const { logger, parsed } = capture();
    logger.info({ port: 2525 }, 'listening');
    expect(parsed()[0]).toMatchObject({ level: 30, port: 2525, msg: 'listening' });
    expect(typeof parsed()[0]!.time).toBe('number');
  });

  it('redacts secret fields at any depth', () => {
    const { logger, lines } = capture();
    logger.info(
      {
        password: 'hunter2-top',
        auth: { username: 'news', password: 'hunter2-nested' },
        session: { user: { passwordHash: 'scrypt$1$2$3$salt$hash' } },
        req: { headers: { authorization: 'Bearer tok-123456' } },
        api: { tokens: ['tok-abcdef'] },
      },
      'login',
    );
    const text = lines.join('\n');
    for (const secret of [
      'hunter2-top',
      'hunter2-nested',
      'scrypt$1',
      'tok-123456',
      'tok-abcdef',
    ]) {
      expect(text).not.toContain(secret);
    }
    expect(text).toContain('"username":"news"');
    expect(text).toContain('[redacted]');
  });

  it('scrubs AUTH lines in messages and arguments', () => {
    const { logger, lines } = capture();
    logger.info('C: AUTH PLAIN AG5ld3MAc2VjcmV0cGFzcw==');
    logger.info('C: %s', 'auth login bmV3cw==');
    logger.info({ command: 'AUTH PLAIN AG5ld3MAc2VjcmV0cGFzcw==' }, 'command');
    const text = lines.join('\n');
    expect(text).not.toContain('AG5ld3MAc2VjcmV0cGFzcw==');
    expect(text).not.toContain('bmV3cw==');
    expect(text).toContain('AUTH PLAIN [redacted]');
  });

  it('scrubs private keys and URL passwords', () => {
    const { privateKey } = generateKeyPairSync('ed25519');
    const pem = privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
    const body = pem.split('\n')[1]!;
    const { logger, lines } = capture();
    logger.warn({ detail: `loaded ${pem}` }, 'key');
    logger.error({ url: 'postgres://herald:db-pass-9@db/herald' }, 'store');
    logger.error({ err: new Error('connect postgres://herald:db-pass-9@db failed') }, 'store');
    const text = lines.join('\n');
    expect(text).not.toContain(body);
    expect(text).not.toContain('db-pass-9');
    expect(text).toContain('postgres://herald:[redacted]@db');
  });

  it('leaves ordinary text alone', () => {
    expect(scrubSecrets('Authentication-Results: mx; dkim=pass')).toBe(
      'Authentication-Results: mx; dkim=pass',
    );
    expect(scrubSecrets('delivered to mx1.example.net')).toBe('delivered to mx1.example.net');
  });

  it('honours the level', () => {
    const { logger, lines } = capture('warn');
    logger.info('hidden');
    logger.warn('shown');
    expect(lines.length).toBe(1);
  });
});

describe('messageLogger', () => {
  it('starts lines with the queue id and fixed fields', () => {
    const { logger, lines, parsed } = capture();
    const log = messageLogger(logger, '4bX9kq2m7Hz1', { from: 'a@example.org' });
    log.info(
      {
        to: 'b@example.net',
        relay: 'mx.example.net[127.0.0.2]:25',
        delay: 1.25,
        dsn: '2.0.0',
        status: 'sent',
        reply: '250 ok',
      },
      'delivered',
    );
    const [line] = parsed();
    expect(line!.msg).toBe('4bX9kq2m7Hz1: delivered');
    const keys = Object.keys(line!);
    const fixed = ['queueId', 'from', 'to', 'relay', 'delay', 'dsn', 'status'];
    expect(keys.filter((key) => fixed.includes(key) || key === 'reply')).toEqual([
      ...fixed,
      'reply',
    ]);
    expect(line).toMatchObject({ queueId: '4bX9kq2m7Hz1', from: 'a@example.org', status: 'sent' });
    expect(lines[0]!.indexOf('"queueId"')).toBeLessThan(lines[0]!.indexOf('"from"'));
  });

  it('writes unknown fixed fields as null', () => {
    const { logger, parsed } = capture();
    messageLogger(logger, 'Q1').with({ to: 'b@example.net' }).warn({ status: 'deferred' }, 'later');
    expect(parsed()[0]).toMatchObject({
      queueId: 'Q1',
      from: null,
      to: 'b@example.net',
      relay: null,
      delay: null,
      dsn: null,
      status: 'deferred',
    });
  });

  it('keeps redaction for message lines', () => {
    const { logger, lines } = capture();
    messageLogger(logger, 'Q2').info({ status: 'queued', password: 'pw-12345' }, 'AUTH PLAIN eHl6');
    expect(lines.join('\n')).not.toContain('pw-12345');
    expect(lines.join('\n')).not.toContain('eHl6');
  });
});

describe('delaySince', () => {
  it('returns seconds to two decimals', () => {
    expect(delaySince(new Date(1000), new Date(3456))).toBe(2.46);
  });
});
