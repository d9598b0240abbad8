/**
 * The outbound SMTP client: one connection to one MX host, on nodemailer's connection layer.
 *
 * It greets with EHLO and the configured hostname, upgrades with STARTTLS when the host offers
 * it, pipelines the envelope when PIPELINING is offered, declares BODY=8BITMIME for 8-bit
 * messages and SMTPUTF8 for messages with UTF-8 addresses or header fields (RFC 6531). A
 * connection carries several transactions in turn, which is how the pool reuses it.
 *
 * Every outcome is reported per recipient as the stage, reply code and enhanced code that
 * `decide` needs. SMTP replies never throw: `send` resolves with a report for each recipient,
 * and `openConnection` rejects with a `DeliveryError` carrying the same facts.
 *
 * TLS policy: `opportunistic` encrypts when the host offers STARTTLS, accepts any certificate
 * (a self-signed receiver included, since an unverified encryption still beats plaintext) and
 * falls back to plaintext when the handshake fails. `required` sends only over TLS with a
 * certificate that verifies for the MX host name against the system CAs or `ca`.
 */
import { isAscii } from 'node:buffer';
import net from 'node:net';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import { parseReply, type DeliveryStage } from './decide.js';

export type TlsPolicy = 'opportunistic' | 'required';

export interface ClientOptions {
  /** Name sent with EHLO: Herald's own hostname. */
  hostname: string;
  /** Remote port; 25 except in tests. */
  port: number;
  tls: TlsPolicy;
  connectTimeoutMs: number;
  greetingTimeoutMs?: number;
  /** Inactivity limit for any reply, the end-of-data reply included. */
  socketTimeoutMs?: number;
  /** Certificate authorities that verify receivers under the `required` policy, PEM. */
  ca?: string | Buffer;
}

/** A host to connect to: the MX name (for SNI and logs) and the address it resolved to. */
export interface MxTarget {
  host: string;
  address: string;
}

/** The result of one step for one recipient: what `decide` takes, plus the text for logs. */
export interface StepReport {
  stage: DeliveryStage;
  code?: number;
  enhanced?: string;
  /** The remote reply, or a description of the local or network failure. */
  reply: string;
}

/** A failure that ended the session before a transaction could start. */
export class DeliveryError extends Error implements StepReport {
  override readonly name = 'DeliveryError';
  readonly stage: DeliveryStage;
  readonly code?: number;
  readonly enhanced?: string;
  readonly reply: string;

  constructor(report: StepReport) {
    super(report.reply);
    this.stage = report.stage;
    this.code = report.code;
    this.enhanced = report.enhanced;
    this.reply = report.reply;
  }
}

export interface OutboundMessage {
  /** Envelope sender, `''` for the null sender. */
  from: string;
  to: string[];
  /** The message with CRLF line endings, as stored in the queue. */
  body: Buffer;
}

/** RFC 5321 section 4.5.3.2 suggests 5 minutes for the greeting and 10 for the end of data. */
const DEFAULT_GREETING_TIMEOUT_MS = 5 * 60_000;
const DEFAULT_SOCKET_TIMEOUT_MS = 10 * 60_000;
/** Time a peer gets to reply to QUIT before the socket is closed anyway. */
const QUIT_TIMEOUT_MS = 2_000;

/** Fields nodemailer attaches to the errors it reports (see its `_formatError`). */
interface SmtpClientError extends Error {
  code?: string;
  response?: string;
  responseCode?: number;
  command?: string;
  recipient?: string;
  timeoutType?: string;
  rejectedErrors?: SmtpClientError[];
}

/**
 * Internals of nodemailer's SMTPConnection used to add SMTPUTF8 for UTF-8 header fields: the
 * library adds it only for UTF-8 addresses.
 * NOTE: these are private members of nodemailer 10; check them when upgrading it.
 */
interface ConnectionInternals {
  _sendCommand(command: string, ...rest: unknown[]): void;
  _supportedExtensions: string[];
}

/** Opens a session with `target`: connect, greeting, EHLO, and STARTTLS as the policy requires. */
export async function openConnection(
  target: MxTarget,
  options: ClientOptions,
): Promise<ClientConnection> {
  try {
    return await connectOnce(target, options, false);
  } catch (error) {
    // A failed TLS handshake leaves the session unusable. Under opportunistic TLS the message
    // may still go in plaintext, so a second connection skips STARTTLS.
    if (
      options.tls === 'opportunistic' &&
      error instanceof DeliveryError &&
      error.stage === 'starttls' &&
      error.code === undefined
    ) {
      return connectOnce(target, options, true);
    }
    throw error;
  }
}

function connectOnce(
  target: MxTarget,
  options: ClientOptions,
  plaintext: boolean,
): Promise<ClientConnection> {
  const connection = new SMTPConnection({
    host: target.address,
    port: options.port,
    name: options.hostname,
    servername: net.isIP(target.host) ? undefined : target.host,
    connectionTimeout: options.connectTimeoutMs,
    greetingTimeout: options.greetingTimeoutMs ?? DEFAULT_GREETING_TIMEOUT_MS,
    socketTimeout: options.socketTimeoutMs ?? DEFAULT_SOCKET_TIMEOUT_MS,
    requireTLS: options.tls === 'required',
    opportunisticTLS: options.tls === 'opportunistic',
    ignoreTLS: plaintext,
    tls: {
      rejectUnauthorized: options.tls === 'required',
      minVersion: 'TLSv1.2',
      ...(options.ca ? { ca: options.ca } : {}),
    },
    logger: false,
  });

  return new Promise((resolve, reject) => {
    let settled = false;
    // `on`, not `once`: an EventEmitter without an 'error' listener throws, and a closing
    // session can report more than one error.
    connection.on('error', (error: SmtpClientError) => {
      if (settled) return;
      settled = true;
      // `upgrading` is set from the 220 reply to STARTTLS until the handshake completes.
      const duringHandshake = connection.upgrading === true || error.code === 'ETLS';
      reject(new DeliveryError(sessionFailure(error, options.tls, duringHandshake)));
    });
    connection.connect(() => {
      if (settled) return;
      settled = true;
      resolve(new ClientConnection(connection, target));
    });
  });
}

/** Maps an error from the session set-up (before any MAIL FROM) to its stage and reply. */
function sessionFailure(
  error: SmtpClientError,
  policy: TlsPolicy,
  duringHandshake: boolean,
): StepReport {
  const reply = error.response?.trim();
  const parsed = reply ? parseReply(reply) : {};
  const command = error.command ?? 'CONN';

  if (duringHandshake || command === 'STARTTLS' || /required STARTTLS/.test(error.message)) {
    // A host that will not encrypt is ruled out only under this message's TLS policy, so
    // `decide` treats every STARTTLS failure as transient (X.7.4 when TLS is required).
    return {
      stage: 'starttls',
      code: parsed.code,
      enhanced: policy === 'required' ? '4.7.4' : parsed.enhanced,
      reply: `TLS negotiation failed: ${error.message}`,
    };
  }
  if (command === 'EHLO' || command === 'HELO' || command === 'LHLO') {
    return { stage: 'ehlo', ...parsed, reply: reply ?? error.message };
  }
  if (reply || error.timeoutType === 'GREETING_TIMEOUT') {
    return { stage: 'greeting', ...parsed, reply: reply ?? error.message };
  }
  return { stage: 'connect', reply: describeNetworkError(error) };
}

function describeNetworkError(error: SmtpClientError): string {
  const original = (error as { originalCode?: string }).originalCode;
  return original ? `${error.message} (${original})` : error.message;
}

/** One open SMTP session. Transactions run one at a time. */
export class ClientConnection {
  /** Transactions sent over this connection, delivered or not. */
  transactions = 0;
  private closed = false;
  private needsReset = false;
  private smtpUtf8Wanted = false;

  constructor(
    private readonly connection: SMTPConnection,
    readonly target: MxTarget,
  ) {
    connection.on('error', () => {
      this.closed = true;
    });
    connection.on('end', () => {
      this.closed = true;
    });
    this.addSmtpUtf8Parameter();
  }

  /** True when the session was upgraded with STARTTLS. */
  get secure(): boolean {
    return this.connection.secure;
  }

  /** False once the peer closed the session or a failure left it in an unknown state. */
  get usable(): boolean {
    return !this.closed && !this.connection.destroyed;
  }

  hasExtension(name: string): boolean {
    return (this.connection as unknown as ConnectionInternals)._supportedExtensions.includes(name);
  }

  /**
   * Sends one message to recipients of this host. Resolves with a report per recipient: the
   * end-of-data reply for accepted ones, the refusal for the others.
   */
  async send(message: OutboundMessage): Promise<Map<string, StepReport>> {
    this.transactions++;
    if (this.needsReset) await this.reset();

    const needsSmtpUtf8 = requiresSmtpUtf8(message);
    if (needsSmtpUtf8 && !this.hasExtension('SMTPUTF8')) {
      // RFC 6531: without SMTPUTF8 at the server such a message must not be sent.
      return sameForAll(message.to, {
        stage: 'mail',
        code: 554,
        enhanced: '5.6.7',
        reply: `${this.target.host} does not support SMTPUTF8, which the message requires`,
      });
    }
    this.smtpUtf8Wanted = needsSmtpUtf8;
    // NOTE: an 8-bit body goes to a host without 8BITMIME unchanged. The 8BITMIME extension
    // (RFC 1426 section 3) requires a 7-bit conversion or a bounce, but a conversion would
    // break DKIM signatures.

    try {
      const info = await new Promise<SMTPConnection.SentMessageInfo>((resolve, reject) => {
        this.connection.send(
          {
            from: message.from,
            to: message.to,
            size: message.body.length,
            use8BitMime: hasEightBit(message.body),
          },
          message.body,
          (error, result) => (error ? reject(error) : resolve(result)),
        );
      });
      return this.reportsForSent(message.to, info);
    } catch (error) {
      this.needsReset = true;
      return this.reportsForError(message.to, error as SmtpClientError);
    } finally {
      this.smtpUtf8Wanted = false;
    }
  }

  /** Ends the session politely with QUIT, or drops it when it is no longer usable. */
  close(): void {
    this.closed = true;
    if (this.connection.destroyed) return;
    if (this.connection.stage !== 'connected') {
      this.connection.close();
      return;
    }
    this.connection.quit();
    // A peer that never replies to QUIT would keep the socket until the inactivity timeout.
    const timer = setTimeout(() => this.connection.close(), QUIT_TIMEOUT_MS);
    timer.unref();
  }

  private reset(): Promise<void> {
    return new Promise((resolve) => {
      this.connection.reset((error) => {
        if (error) this.closed = true;
        else this.needsReset = false;
        resolve();
      });
    });
  }

  private reportsForSent(
    recipients: string[],
    info: SMTPConnection.SentMessageInfo,
  ): Map<string, StepReport> {
    const reports = new Map<string, StepReport>();
    const reply = info.response.trim();
    for (const recipient of info.accepted) {
      reports.set(recipient, { stage: 'end-of-data', ...parseReply(reply), reply });
    }
    for (const error of (info.rejectedErrors ?? []) as SmtpClientError[]) {
      if (error.recipient) reports.set(error.recipient, rcptReport(error));
    }
    // Any recipient nodemailer did not account for is reported rather than lost.
    for (const recipient of recipients) {
      if (!reports.has(recipient)) {
        reports.set(recipient, { stage: 'end-of-data', reply: `no reply for ${recipient}` });
      }
    }
    return reports;
  }

  private reportsForError(recipients: string[], error: SmtpClientError): Map<string, StepReport> {
    const reply = error.response?.trim();
    const parsed = reply ? parseReply(reply) : {};

    if (error.code === 'EENVELOPE' && error.command === 'RCPT TO') {
      const reports = sameForAll(recipients, {
        stage: 'rcpt',
        ...parsed,
        reply: reply ?? error.message,
      });
      for (const rejected of error.rejectedErrors ?? []) {
        if (rejected.recipient) reports.set(rejected.recipient, rcptReport(rejected));
      }
      return reports;
    }
    if (error.code === 'EENVELOPE' && error.command === 'MAIL FROM') {
      return sameForAll(recipients, { stage: 'mail', ...parsed, reply: reply ?? error.message });
    }
    if (error.code === 'EENVELOPE' && error.command === 'DATA') {
      return sameForAll(recipients, { stage: 'data', ...parsed, reply: reply ?? error.message });
    }
    if (error.code === 'EMESSAGE' && error.command === 'MAIL FROM') {
      // The host's SIZE limit (RFC 1870) is below the message size.
      return sameForAll(recipients, {
        stage: 'mail',
        code: 552,
        enhanced: '5.3.4',
        reply: error.message,
      });
    }
    if (error.code === 'EMESSAGE' && error.command === 'DATA') {
      return sameForAll(recipients, {
        stage: 'end-of-data',
        ...parsed,
        reply: reply ?? error.message,
      });
    }
    // The connection failed mid-transaction, or the peer sent 421 and closed it.
    this.closed = true;
    return sameForAll(recipients, {
      stage: 'data',
      ...parsed,
      reply: reply ?? describeNetworkError(error),
    });
  }

  /** Appends SMTPUTF8 to MAIL FROM when the message needs it and nodemailer did not add it. */
  private addSmtpUtf8Parameter(): void {
    const internals = this.connection as unknown as ConnectionInternals;
    const sendCommand = internals._sendCommand.bind(this.connection);
    internals._sendCommand = (command: string, ...rest: unknown[]) => {
      const wanted =
        this.smtpUtf8Wanted && /^MAIL FROM:/i.test(command) && !/\sSMTPUTF8\b/i.test(command);
      sendCommand(wanted ? `${command} SMTPUTF8` : command, ...rest);
    };
  }
}

function rcptReport(error: SmtpClientError): StepReport {
  const reply = (error.response ?? error.message).trim();
  return { stage: 'rcpt', ...parseReply(reply), reply };
}

function sameForAll(recipients: string[], report: StepReport): Map<string, StepReport> {
  return new Map(recipients.map((recipient) => [recipient, report]));
}

/** Any octet above 127 makes the content 8-bit, which needs BODY=8BITMIME. */
export function hasEightBit(body: Buffer): boolean {
  return !isAscii(body);
}

/** RFC 6531: UTF-8 in an envelope address or in the header section needs SMTPUTF8. */
export function requiresSmtpUtf8(message: OutboundMessage): boolean {
  const nonAscii = (text: string): boolean => Buffer.byteLength(text) !== text.length;
  if (nonAscii(message.from) || message.to.some(nonAscii)) return true;
  let headerEnd = message.body.indexOf('\r\n\r\n');
  if (headerEnd < 0) headerEnd = message.body.length;
  return hasEightBit(message.body.subarray(0, headerEnd));
}
