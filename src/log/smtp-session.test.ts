/**
 * Real SMTP traffic through the logger: smtp-server writes its protocol trace into a Herald
 * logger while nodemailer authenticates over loopback, and the credentials must not show.
 */
import { Writable } from 'node:stream';

import nodemailer from 'nodemailer';
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { createLogger, libraryLogger } from './index.js';

const USER = 'news@example.org';
const PASSWORD = 'Sup3r-Secret-Pw';

const lines: string[] = [];
const destination = new Writable({
  write(chunk: Buffer, _encoding, done) {
    lines.push(chunk.toString('utf8'));
    done();
  },
});

let server: SMTPServer;
let port = 0;

beforeAll(async () => {
  server = new SMTPServer({
    logger: libraryLogger(
      createLogger({ level: 'trace', destination }),
    ) as unknown as SMTPServerOptions['logger'],
    allowInsecureAuth: true,
    authMethods: ['PLAIN', 'LOGIN'],
    onAuth(auth, _session, callback) {
      const valid = auth.username === USER && auth.password === PASSWORD;
      callback(valid ? null : new Error('invalid credentials'), { user: auth.username });
    },
    onData(stream, _session, callback) {
      stream.resume();
      stream.on('end', () => callback());
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.server.address();
  port = typeof address === 'object' && address !== null ? address.port : 0;
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(resolve));
});

describe('SMTP session log', () => {
  it.each(['PLAIN', 'LOGIN'])('AUTH %s leaves no credentials', async (method) => {
    lines.length = 0;
    const transport = nodemailer.createTransport({
      host: '127.0.0.1',
      port,
      secure: false,
      ignoreTLS: true,
      authMethod: method,
      auth: { user: USER, pass: PASSWORD },
    });
    const info = await transport.sendMail({ from: USER, to: 'x@example.net', text: 'hello' });
    transport.close();
    expect(info.accepted).toEqual(['x@example.net']);

    const text = lines.join('');
    // The trace keeps its text: the commands are there, the credentials are not.
    expect(text).toContain('C: MAIL FROM:<news@example.org>');
    expect(text).toContain(`C: AUTH ${method}`);
    expect(text).not.toContain(PASSWORD);
    expect(text).not.toContain(Buffer.from(PASSWORD).toString('base64'));
    expect(text).not.toContain(Buffer.from(`\0${USER}\0${PASSWORD}`).toString('base64'));
  });
});
