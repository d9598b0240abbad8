import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
  selfSignedCertificate,
  startSmtpSink,
  type SmtpSink,
} from '../../test/helpers/smtp-sink.js';
import {
  DeliveryError,
  hasEightBit,
  openConnection,
  requiresSmtpUtf8,
  type ClientConnection,
  type ClientOptions,
} from './client.js';
import { decide } from './decide.js';

const sinks: SmtpSink[] = [];
const connections: ClientConnection[] = [];

afterEach(async () => {
  for (const connection of connections.splice(0)) connection.close();
  for (const sink of sinks.splice(0)) await sink.close();
});

async function sink(options: Parameters<typeof startSmtpSink>[0] = {}): Promise<SmtpSink> {
  const started = await startSmtpSink({ host: '127.0.0.1', ...options });
  sinks.push(started);
  return started;
}

function options(port: number, overrides: Partial<ClientOptions> = {}): ClientOptions {
  return {
    hostname: 'herald.test',
    port,
    tls: 'opportunistic',
    connectTimeoutMs: 2_000,
    ...overrides,
  };
}

async function open(
  port: number,
  overrides: Partial<ClientOptions> = {},
): Promise<ClientConnection> {
  const connection = await openConnection(
    { host: 'mx.example.test', address: '127.0.0.1' },
    options(port, overrides),
  );
  connections.push(connection);
  return connection;
}

async function openError(
  port: number,
  overrides: Partial<ClientOptions> = {},
): Promise<DeliveryError> {
  const error: unknown = await open(port, overrides).then(
    () => undefined,
    (reason: unknown) => reason,
  );
  expect(error).toBeInstanceOf(DeliveryError);
  return error as DeliveryError;
}

const body = Buffer.from(
  'From: a@origin.test\r\nTo: b@example.test\r\nSubject: hi\r\n\r\nHello\r\n',
);

describe('openConnection', () => {
  it('upgrades to TLS with a self-signed receiver', async () => {
    const receiver = await sink({ starttls: true });
    const connection = await open(receiver.port);
    expect(connection.secure).toBe(true);
    const reports = await connection.send({ from: 'a@origin.test', to: ['b@example.test'], body });
    expect(reports.get('b@example.test')).toMatchObject({
      stage: 'end-of-data',
      code: 250,
      enhanced: '2.0.0',
    });
    const [message] = await receiver.waitForMessages(1);
    expect(message!.secure).toBe(true);
    expect(message!.heloName).toBe('herald.test');
    expect(message!.from).toBe('a@origin.test');
    expect(message!.body.toString()).toBe(body.toString());
  });

  it('verifies the certificate when TLS is required', async () => {
    const receiver = await sink({ starttls: true });
    const unverified = await openError(receiver.port, { tls: 'required' });
    expect(unverified.stage).toBe('starttls');
    expect(unverified.reply).toMatch(/self[- ]signed/i);

    const target = { host: 'sink.test', address: '127.0.0.1' };
    const ca = selfSignedCertificate().cert;
    const connection = await openConnection(
      target,
      options(receiver.port, { tls: 'required', ca }),
    );
    connections.push(connection);
    expect(connection.secure).toBe(true);
  });

  it('stays in plaintext without STARTTLS when opportunistic', async () => {
    const receiver = await sink();
    const connection = await open(receiver.port);
    expect(connection.secure).toBe(false);
  });

  it('refuses plaintext when TLS is required', async () => {
    const receiver = await sink();
    const error = await openError(receiver.port, { tls: 'required' });
    expect(error.stage).toBe('starttls');
    expect(error.enhanced).toBe('4.7.4');
    // The sink replies 5xx to the STARTTLS it does not offer, and that must not bounce.
    expect(decide({ ...error, lastMx: true })).toEqual({ action: 'defer', dsn: '4.7.4' });
  });

  it('reports a refused connection at connect', async () => {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as net.AddressInfo).port;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    const error = await openError(port);
    expect(error.stage).toBe('connect');
    expect(error.code).toBeUndefined();
  });

  it('reports a 554 greeting at greeting', async () => {
    const receiver = await sink();
    receiver.reply.connect = { code: 554, text: '5.7.1 No service for you' };
    const error = await openError(receiver.port);
    expect(error.stage).toBe('greeting');
    expect(error.code).toBe(554);
    expect(error.enhanced).toBe('5.7.1');
  });

  it('retries in plaintext after a failed TLS handshake', async () => {
    let sessions = 0;
    const server = net.createServer((socket) => {
      sessions++;
      socket.write('220 fake.test ESMTP\r\n');
      socket.on('error', () => socket.destroy());
      socket.on('data', (data) => {
        const command = data.toString();
        if (/^EHLO/i.test(command)) socket.write('250-fake.test\r\n250 STARTTLS\r\n');
        else if (/^STARTTLS/i.test(command)) socket.write('220 Go ahead\r\nthis is not TLS\r\n');
        else if (/^QUIT/i.test(command)) socket.end('221 Bye\r\n');
        // Anything else is the TLS ClientHello: reply with bytes no TLS client accepts.
        else socket.end('garbage instead of a ServerHello\r\n');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const connection = await open((server.address() as net.AddressInfo).port);
      expect(connection.secure).toBe(false);
      expect(sessions).toBe(2);
    } finally {
      for (const connection of connections.splice(0)) connection.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});

describe('ClientConnection.close', () => {
  it('drops a peer that ignores QUIT', async () => {
    let closed: () => void = () => undefined;
    const socketClosed = new Promise<void>((resolve) => (closed = resolve));
    const server = net.createServer((socket) => {
      socket.write('220 mute.test ESMTP\r\n');
      socket.on('error', () => socket.destroy());
      socket.on('close', () => closed());
      socket.on('data', (data) => {
        if (/^EHLO/i.test(data.toString())) socket.write('250 mute.test\r\n');
        // QUIT gets no reply at all.
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const connection = await openConnection(
        { host: 'mute.test', address: '127.0.0.1' },
        options((server.address() as net.AddressInfo).port),
      );
      const started = Date.now();
      connection.close();
      await socketClosed;
      expect(Date.now() - started).toBeGreaterThanOrEqual(1_500);
      expect(Date.now() - started).toBeLessThan(5_000);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});

describe('ClientConnection.send', () => {
  it('reports each recipient with PIPELINING', async () => {
    const receiver = await sink();
    receiver.reply.rcpt.set('gone@example.test', { code: 550, text: '5.1.1 No such user' });
    receiver.reply.rcpt.set('full@example.test', { code: 452, text: '4.2.2 Mailbox full' });
    const connection = await open(receiver.port);
    expect(connection.hasExtension('PIPELINING')).toBe(true);
    const reports = await connection.send({
      from: 'a@origin.test',
      to: ['b@example.test', 'gone@example.test', 'full@example.test'],
      body,
    });
    expect(reports.get('b@example.test')).toMatchObject({ stage: 'end-of-data', code: 250 });
    expect(reports.get('gone@example.test')).toMatchObject({
      stage: 'rcpt',
      code: 550,
      enhanced: '5.1.1',
    });
    expect(reports.get('full@example.test')).toMatchObject({
      stage: 'rcpt',
      code: 452,
      enhanced: '4.2.2',
    });
    const [message] = await receiver.waitForMessages(1);
    expect(message!.to).toEqual(['b@example.test']);
  });

  it('reports every recipient refused without PIPELINING', async () => {
    const receiver = await sink({ hide: ['PIPELINING'] });
    receiver.reply.rcpt.set('gone@example.test', { code: 550, text: '5.1.1 No such user' });
    const connection = await open(receiver.port);
    const reports = await connection.send({
      from: 'a@origin.test',
      to: ['gone@example.test'],
      body,
    });
    expect(reports.get('gone@example.test')).toMatchObject({
      stage: 'rcpt',
      code: 550,
      enhanced: '5.1.1',
    });
  });

  it('reuses the session after a refused MAIL FROM', async () => {
    const receiver = await sink();
    receiver.reply.once('mail', { code: 451, text: '4.3.0 Try again' });
    const connection = await open(receiver.port);
    const first = await connection.send({ from: 'a@origin.test', to: ['b@example.test'], body });
    expect(first.get('b@example.test')).toMatchObject({
      stage: 'mail',
      code: 451,
      enhanced: '4.3.0',
    });
    expect(connection.usable).toBe(true);
    const second = await connection.send({ from: 'a@origin.test', to: ['b@example.test'], body });
    expect(second.get('b@example.test')).toMatchObject({ stage: 'end-of-data', code: 250 });
    const third = await connection.send({ from: '', to: ['c@example.test'], body });
    expect(third.get('c@example.test')).toMatchObject({ stage: 'end-of-data', code: 250 });
    const messages = await receiver.waitForMessages(2);
    expect(receiver.connections).toBe(1);
    expect(messages[1]!.from).toBe('');
    expect(messages[0]!.sessionId).toBe(messages[1]!.sessionId);
  });

  it('drops the session after a 421', async () => {
    const receiver = await sink();
    receiver.reply.once('mail', { code: 421, text: '4.3.2 Shutting down' });
    const connection = await open(receiver.port);
    const reports = await connection.send({ from: 'a@origin.test', to: ['b@example.test'], body });
    expect(reports.get('b@example.test')).toMatchObject({ code: 421, enhanced: '4.3.2' });
    expect(connection.usable).toBe(false);
  });

  it('reports a refusal at the end of data', async () => {
    const receiver = await sink();
    receiver.reply.data = { code: 554, text: '5.7.1 Message rejected as spam' };
    const connection = await open(receiver.port);
    const reports = await connection.send({ from: 'a@origin.test', to: ['b@example.test'], body });
    expect(reports.get('b@example.test')).toMatchObject({
      stage: 'end-of-data',
      code: 554,
      enhanced: '5.7.1',
    });
  });

  it('declares 8BITMIME for an 8-bit body', async () => {
    const receiver = await sink();
    const connection = await open(receiver.port);
    const eightBit = Buffer.concat([body, Buffer.from('Gr\u00fc\u00dfe\r\n')]);
    await connection.send({ from: 'a@origin.test', to: ['b@example.test'], body: eightBit });
    const [message] = await receiver.waitForMessages(1);
    expect(message!.mailParameters.BODY).toBe('8BITMIME');
    expect(message!.mailParameters.SMTPUTF8).toBeUndefined();
    expect(message!.body.equals(eightBit)).toBe(true);
  });

  it('adds SMTPUTF8 for a UTF-8 header field', async () => {
    const receiver = await sink();
    const connection = await open(receiver.port);
    const utf8 = Buffer.from('From: J\u00fcrgen <j@origin.test>\r\nSubject: x\r\n\r\nHi\r\n');
    await connection.send({ from: 'j@origin.test', to: ['b@example.test'], body: utf8 });
    const [message] = await receiver.waitForMessages(1);
    expect(message!.mailParameters.SMTPUTF8).toBe(true);
  });

  it('refuses a UTF-8 message to a host without SMTPUTF8', async () => {
    const receiver = await sink({ hide: ['SMTPUTF8'] });
    const connection = await open(receiver.port);
    const reports = await connection.send({
      from: 'j\u00fc@origin.test',
      to: ['b@example.test'],
      body,
    });
    expect(reports.get('b@example.test')).toMatchObject({ stage: 'mail', enhanced: '5.6.7' });
    expect(receiver.messages).toHaveLength(0);
  });

  it('reports a message over the SIZE limit', async () => {
    const receiver = await sink({ size: 100 });
    const connection = await open(receiver.port);
    const reports = await connection.send({
      from: 'a@origin.test',
      to: ['b@example.test'],
      body: Buffer.alloc(500, 'a'),
    });
    expect(reports.get('b@example.test')).toMatchObject({
      stage: 'mail',
      code: 552,
      enhanced: '5.3.4',
    });
  });
});

describe('requiresSmtpUtf8', () => {
  it('looks at addresses and header fields only', () => {
    const ascii = Buffer.from('Subject: x\r\n\r\nK\u00e4se\r\n');
    expect(requiresSmtpUtf8({ from: 'a@b.test', to: ['c@d.test'], body: ascii })).toBe(false);
    expect(requiresSmtpUtf8({ from: 'a@b.test', to: ['c\u00e9@d.test'], body: ascii })).toBe(true);
    const header = Buffer.from('Subject: K\u00e4se\r\n\r\nx\r\n');
    expect(requiresSmtpUtf8({ from: 'a@b.test', to: ['c@d.test'], body: header })).toBe(true);
  });
});

describe('hasEightBit', () => {
  it('finds octets above 127', () => {
    expect(hasEightBit(Buffer.from('Subject: x\r\n\r\nplain\r\n'))).toBe(false);
    expect(hasEightBit(Buffer.alloc(0))).toBe(false);
    expect(hasEightBit(Buffer.from([0x41, 0x7f, 0x80]))).toBe(true);
    expect(hasEightBit(Buffer.from([0x41, 0x7f, 0xff]))).toBe(true);
  });

  it('reads only the view it is given', () => {
    const whole = Buffer.from('ascii K\u00e4se');
    expect(hasEightBit(whole)).toBe(true);
    expect(hasEightBit(whole.subarray(0, 5))).toBe(false);
  });
});
