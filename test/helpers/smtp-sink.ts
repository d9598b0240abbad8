/**
 * A receiving SMTP server for tests, built on `smtp-server`, listening on a loopback address and
 * a free port. It records every accepted message with its envelope. Switches make it reply with a
 * 4xx or 5xx to chosen recipients or stages, to offer STARTTLS with a self-signed
 * certificate, or to hide extensions such as PIPELINING or SMTPUTF8.
 *
 *   const sink = await startSmtpSink({ host: '127.0.0.12', starttls: true });
 *   sink.reply.rcpt.set('nobody@example.test', { code: 550, text: '5.1.1 No such user' });
 *   sink.reply.data = { code: 451, text: '4.3.0 Try again later' };  // end of data
 *   const [message] = await sink.waitForMessages(1);
 *   await sink.close();
 *
 * Replies set as `reply.*` apply to every later command until changed; `reply.once(...)` makes a
 * reply apply to the next matching command only.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { SMTPServer, type SMTPServerOptions, type SMTPServerSession } from 'smtp-server';

/** A reply to send instead of accepting; `text` may start with an enhanced status code. */
export interface SinkReply {
  code: number;
  text: string;
}

export type SinkStage = 'connect' | 'mail' | 'rcpt' | 'data';

export interface ReceivedMessage {
  /** Envelope sender, `''` for the null sender. */
  from: string;
  /** MAIL FROM parameters as the client sent them, upper-cased keys (`BODY`, `SMTPUTF8`). */
  mailParameters: Record<string, string | boolean>;
  /** Accepted recipients only. */
  to: string[];
  body: Buffer;
  /** True when the message came over TLS (after STARTTLS). */
  secure: boolean;
  heloName: string;
  /** Id of the SMTP session, the same for messages sent over one connection. */
  sessionId: string;
  clientAddress: string;
}

export interface SmtpSinkOptions {
  /** Loopback address to listen on; `127.0.0.1` unless given. */
  host?: string;
  /**
   * Port to listen on; a free one unless given. Sinks that stand for several MX hosts of one
   * test share a port on different 127.0.0.x addresses, because `delivery.port` is one port.
   */
  port?: number;
  /** Offer STARTTLS with a self-signed certificate for `tlsName`. */
  starttls?: boolean;
  tlsName?: string;
  /** Extensions not to advertise in the EHLO reply. */
  hide?: Array<'PIPELINING' | '8BITMIME' | 'SMTPUTF8' | 'SIZE' | 'DSN'>;
  /** SIZE limit in octets to advertise and enforce. */
  size?: number;
}

export interface SmtpSink {
  host: string;
  port: number;
  messages: ReceivedMessage[];
  /** Number of SMTP sessions opened so far. */
  connections: number;
  /** Every RCPT TO address received, accepted or not, in order. */
  rcptAttempts: string[];
  reply: {
    /** Reply to the connection instead of the 220 greeting. */
    connect?: SinkReply;
    mail?: SinkReply;
    /** Replies for chosen recipients (lower-cased address); others are accepted. */
    rcpt: Map<string, SinkReply>;
    /** Reply at the end of data instead of 250. */
    data?: SinkReply;
    /** Milliseconds to wait before replying at the end of data, for slow-receiver tests. */
    dataDelayMs?: number;
    /** Apply a reply to the next command of a stage only (for a recipient, at RCPT). */
    once(stage: SinkStage, reply: SinkReply, recipient?: string): void;
  };
  /** Wait until `count` messages have been received; rejects after `timeoutMs`. */
  waitForMessages(count: number, timeoutMs?: number): Promise<ReceivedMessage[]>;
  close(): Promise<void>;
}

let certificate: { key: Buffer; cert: Buffer } | undefined;

/**
 * Creates (once per process) a self-signed P-256 certificate for `sink.test` and 127.0.0.1
 * with `openssl req -x509`, so every sink of a test run shares one key and TLS setup costs
 * little. The certificate is its own CA: pass `cert` as `ca` to a client that verifies.
 */
export function selfSignedCertificate(): { key: Buffer; cert: Buffer } {
  if (certificate) return certificate;
  const dir = mkdtempSync(path.join(tmpdir(), 'herald-sink-tls-'));
  try {
    const keyPath = path.join(dir, 'key.pem');
    const certPath = path.join(dir, 'cert.pem');
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-keyout',
        keyPath,
        '-out',
        certPath,
        '-days',
        '2',
        '-subj',
        '/CN=sink.test',
      ],
      { stdio: 'ignore' },
    );
    certificate = { key: readFileSync(keyPath), cert: readFileSync(certPath) };
    return certificate;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function replyError(reply: SinkReply): Error & { responseCode: number } {
  return Object.assign(new Error(reply.text), { responseCode: reply.code });
}

export async function startSmtpSink(options: SmtpSinkOptions = {}): Promise<SmtpSink> {
  const host = options.host ?? '127.0.0.1';
  const messages: ReceivedMessage[] = [];
  const rcptAttempts: string[] = [];
  const waiters: Array<() => void> = [];
  const onceReplies: Array<{ stage: SinkStage; reply: SinkReply; recipient?: string }> = [];

  const takeOnce = (stage: SinkStage, recipient?: string): SinkReply | undefined => {
    const index = onceReplies.findIndex(
      (entry) =>
        entry.stage === stage && (entry.recipient === undefined || entry.recipient === recipient),
    );
    if (index < 0) return undefined;
    return onceReplies.splice(index, 1)[0]!.reply;
  };

  const sink: SmtpSink = {
    host,
    port: 0,
    messages,
    connections: 0,
    rcptAttempts,
    reply: {
      rcpt: new Map(),
      once(stage, reply, recipient) {
        onceReplies.push({ stage, reply, recipient: recipient?.toLowerCase() });
      },
    },
    waitForMessages: (count, timeoutMs = 10_000) =>
      new Promise((resolve, reject) => {
        const check = (): boolean => {
          if (messages.length < count) return false;
          clearTimeout(timer);
          resolve(messages.slice(0, count));
          return true;
        };
        const timer = setTimeout(() => {
          reject(
            new Error(`Sink received ${messages.length} of ${count} messages in ${timeoutMs} ms`),
          );
        }, timeoutMs);
        const waiter = (): void => {
          if (!check()) waiters.push(waiter);
        };
        waiter();
      }),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };

  const hide = new Set(options.hide ?? []);
  const tls = options.starttls ? selfSignedCertificate() : undefined;
  const serverOptions: SMTPServerOptions = {
    name: options.tlsName ?? 'sink.test',
    authOptional: true,
    disabledCommands: options.starttls ? ['AUTH'] : ['AUTH', 'STARTTLS'],
    hideENHANCEDSTATUSCODES: true,
    hidePIPELINING: hide.has('PIPELINING'),
    hide8BITMIME: hide.has('8BITMIME'),
    hideSMTPUTF8: hide.has('SMTPUTF8'),
    hideSize: hide.has('SIZE') || options.size === undefined,
    hideDSN: hide.has('DSN'),
    size: options.size,
    logger: false,
    ...(tls ? { key: tls.key, cert: tls.cert } : {}),

    onConnect(_session, callback) {
      sink.connections++;
      const reply = takeOnce('connect') ?? sink.reply.connect;
      callback(reply ? replyError(reply) : null);
    },
    onMailFrom(_address, _session, callback) {
      const reply = takeOnce('mail') ?? sink.reply.mail;
      callback(reply ? replyError(reply) : null);
    },
    onRcptTo(address, _session, callback) {
      const recipient = address.address.toLowerCase();
      rcptAttempts.push(recipient);
      const reply = takeOnce('rcpt', recipient) ?? sink.reply.rcpt.get(recipient);
      callback(reply ? replyError(reply) : null);
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => void finish());
      const finish = async (): Promise<void> => {
        if (sink.reply.dataDelayMs) {
          await new Promise((resolve) => setTimeout(resolve, sink.reply.dataDelayMs));
        }
        const reply = takeOnce('data') ?? sink.reply.data;
        if (reply) {
          callback(replyError(reply));
          return;
        }
        messages.push(recordMessage(session, Buffer.concat(chunks)));
        callback(null, `2.0.0 Ok: queued as sink${messages.length}`);
        for (const waiter of waiters.splice(0)) waiter();
      };
    },
  };

  const server = new SMTPServer(serverOptions);
  server.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => resolve());
  });
  const address = server.server.address();
  sink.port = typeof address === 'object' && address ? address.port : 0;
  return sink;
}

function recordMessage(session: SMTPServerSession, body: Buffer): ReceivedMessage {
  const mailFrom = session.envelope.mailFrom;
  const args = mailFrom ? (mailFrom.args as Record<string, string | boolean> | false) : false;
  const mailParameters: Record<string, string | boolean> = {};
  for (const [key, value] of Object.entries(args || {})) mailParameters[key.toUpperCase()] = value;
  return {
    from: mailFrom ? mailFrom.address : '',
    mailParameters,
    to: session.envelope.rcptTo.map((recipient) => recipient.address),
    body,
    secure: session.secure,
    heloName: session.hostNameAppearsAs,
    sessionId: session.id,
    clientAddress: session.remoteAddress,
  };
}
