/**
 * Session helpers the MX and submission listeners share: the per-client limits, the
 * `Received` field (RFC 5321 section 4.4), the replies for content that broke a limit, and the
 * graceful close. Each listener keeps its own policy in its own module.
 */
import type { SMTPServer, SMTPServerSession } from 'smtp-server';
import type { Logger } from 'pino';

import {
  formatHeaderField,
  formatReceived,
  parseHeaderFields,
  splitMessage,
} from '../message/index.js';
import type { ContentLimits, ContentVerdict } from './data.js';
import { ConnectionLimiter, DataBudget, RateLimiter } from './limits.js';
import { REPLIES, replyError, replyText, SmtpReplyError } from './replies.js';

/** The settings both listeners apply, in bytes, counts and milliseconds. */
export interface ListenerLimits extends ContentLimits {
  maxRecipients: number;
  maxConnectionsPerClient: number;
  /** Command lines per client address per minute; 0 for no limit. */
  commandsPerMinute: number;
  /** Milliseconds of silence from the client before the session is closed with 421. */
  idleTimeoutMs: number;
  /** Connections to one listener over all clients; 0 for no limit. */
  maxConnections: number;
  /** Bytes of unfinished DATA over all sessions sharing a `DataBudget`; 0 for no limit. */
  maxDataInFlight: number;
  /** Milliseconds the whole DATA phase may take before 421 and close; 0 for no limit. */
  dataTimeoutMs: number;
  /** Failed AUTH attempts per client address and per user name in a window (submission). */
  authFailuresPerWindow: number;
  authFailureWindowMs: number;
  /** Messages with the null sender per hour for one SRS address (MX). */
  srsNullSendersPerHour: number;
}

type Callback = (error?: Error | null) => void;

/**
 * Connection and command limits per client address. `onConnect` and `onClose` go straight into
 * the smtp-server options, and `onCommand` into the command hook of `GreetingServer`, which
 * runs for every command line of the session.
 */
export class ClientGuard {
  private readonly connections: ConnectionLimiter;
  private readonly commands: RateLimiter;
  /** Sessions counted in `connections`, so a refused session is not released twice. */
  private readonly counted = new Set<string>();

  constructor(
    limits: ListenerLimits,
    private readonly logger: Logger,
    /** DATA bytes in flight, shared with the other listener when both get the same one. */
    readonly budget: DataBudget = new DataBudget(limits.maxDataInFlight),
  ) {
    this.connections = new ConnectionLimiter(limits.maxConnectionsPerClient);
    this.commands = new RateLimiter(limits.commandsPerMinute, 60_000);
  }

  onConnect = (session: SMTPServerSession, callback: Callback): void => {
    if (!this.connections.acquire(session.remoteAddress)) {
      this.logger.warn(
        { session: session.id, client: session.remoteAddress },
        'connection rejected: too many connections from this client',
      );
      callback(replyError(REPLIES.tooManyConnections));
      return;
    }
    this.counted.add(session.id);
    callback();
  };

  onClose = (session: SMTPServerSession): void => {
    if (this.counted.delete(session.id)) this.connections.release(session.remoteAddress);
  };

  /** Returns the error to reply with when the client is over its command rate. */
  onCommand = (session: SMTPServerSession, command: string): SmtpReplyError | undefined => {
    if (!this.commands.take(session.remoteAddress)) {
      this.logger.warn(
        { session: session.id, client: session.remoteAddress, command: commandName(command) },
        'command rejected: client over its command rate',
      );
      return replyError(REPLIES.tooManyCommands);
    }
    if (commandName(command) === 'DATA' && session.envelope.rcptTo.length > 0) {
      return this.checkBudget(session);
    }
    return undefined;
  };

  /**
   * Rejects DATA with 452 before the 354 when the memory for DATA is used up, or when the size
   * declared with SIZE (RFC 1870) would not fit. A message without SIZE is checked again for
   * each chunk while it is read.
   */
  private checkBudget(session: SMTPServerSession): SmtpReplyError | undefined {
    const mailFrom = session.envelope.mailFrom;
    const declared = mailFrom ? Number(mailFrom.args ? mailFrom.args.SIZE : 0) : 0;
    const needed = Number.isFinite(declared) && declared > 0 ? declared : 1;
    if (this.budget.fits(needed)) return undefined;
    this.logger.warn(
      {
        session: session.id,
        client: session.remoteAddress,
        declaredSize: declared,
        inFlight: this.budget.inFlight,
        maxDataInFlight: this.budget.maxBytes,
      },
      'DATA rejected: memory for messages in transfer is used up',
    );
    return replyError(REPLIES.insufficientStorage);
  }
}

/** Extracts the verb of a command line, without its arguments (which may carry AUTH data). */
function commandName(line: string): string {
  return (line.split(' ')[0] ?? '').slice(0, 16).toUpperCase();
}

/**
 * Passes an SMTP reply error through and turns any other error into 451, logged with the
 * session. Without this smtp-server would send the internal message to the client, with 550
 * at RCPT: a permanent failure for what is a local, temporary fault.
 */
export function toReplyError(
  error: unknown,
  session: SMTPServerSession,
  logger: Logger,
  stage: string,
): SmtpReplyError {
  if (error instanceof SmtpReplyError) return error;
  if (isClientDisconnect(error)) {
    logger.info(
      { session: session.id, client: session.remoteAddress, stage, reason: errorText(error) },
      `client disconnected during ${stage}`,
    );
    return replyError(REPLIES.localError);
  }
  logger.error(
    { err: error, session: session.id, client: session.remoteAddress, stage },
    `${stage} failed`,
  );
  return replyError(REPLIES.localError);
}

/**
 * Socket error codes that mean the client closed or broke the connection. ECONNECTION is what
 * smtp-server 3.21 sets on the DATA stream when the client leaves before the final dot.
 */
const DISCONNECT_CODES = new Set(['ECONNECTION', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT']);

/** Whether an error is the client's disconnect rather than a local fault. */
export function isClientDisconnect(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && DISCONNECT_CODES.has(code);
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Logs an error event of a listener: a client's disconnect at info without the stack, since
 * it is the client's doing, and anything else at error.
 */
export function logListenerError(logger: Logger, error: Error, message: string): void {
  if (isClientDisconnect(error)) {
    const client = (error as { remoteAddress?: unknown }).remoteAddress;
    logger.info({ client, reason: error.message }, 'client disconnected');
    return;
  }
  logger.error({ err: error }, message);
}

/**
 * Starts the time limit of a DATA phase: when it runs out the session gets 421 and is closed,
 * which ends the DATA stream with an error. Returns the function that cancels the limit.
 */
export function startDataTimer(
  server: SMTPServer,
  session: SMTPServerSession,
  timeoutMs: number,
  logger: Logger,
): () => void {
  if (timeoutMs <= 0) return () => undefined;
  const timer = setTimeout(() => {
    for (const connection of server.connections) {
      if (connection.session.id !== session.id) continue;
      logger.info(
        { session: session.id, client: session.remoteAddress, timeoutMs },
        'session closed: DATA took longer than its time limit',
      );
      connection.send(REPLIES.dataTimeout.code, replyText(REPLIES.dataTimeout));
    }
  }, timeoutMs);
  timer.unref();
  return () => clearTimeout(timer);
}

/** Builds the reply for content that broke a limit. */
export function contentError(
  verdict: Extract<ContentVerdict, { ok: false }>,
  limits: ContentLimits,
): SmtpReplyError {
  switch (verdict.violation) {
    case 'message-size':
      return replyError(
        REPLIES.messageTooLarge,
        `Message size exceeds the fixed maximum message size of ${limits.maxMessageSize} octets`,
      );
    case 'line-length':
      return replyError(
        REPLIES.lineTooLong,
        `Message contains a line longer than ${limits.maxLineLength} octets`,
      );
    case 'header-size':
      return replyError(
        REPLIES.headerTooLarge,
        `Message header exceeds the limit of ${limits.maxHeaderSize} octets`,
      );
    case 'storage':
      return replyError(REPLIES.insufficientStorage);
  }
}

/**
 * Builds the `Received` field for a session. The `for` clause names the recipient only when
 * there is exactly one, as Postfix does, so a message to many does not list them all.
 */
export function receivedField(
  session: SMTPServerSession,
  hostname: string,
  recipients: readonly string[],
  now: Date = new Date(),
): string {
  const helo = session.hostNameAppearsAs || 'unknown';
  const reverse = session.clientHostname || `[${session.remoteAddress}]`;
  const tls = session.tlsOptions
    ? ` (using ${session.tlsOptions.version ?? 'TLS'} with cipher ${session.tlsOptions.name})`
    : '';
  const value = formatReceived({
    from: `${helo} (${reverse} [${session.remoteAddress}])`,
    by: `${hostname}${tls}`,
    with: session.transmissionType || 'ESMTP',
    id: session.id,
    ...(recipients.length === 1 ? { for: recipients[0]! } : {}),
    date: now,
  });
  return formatHeaderField('Received', value);
}

/**
 * Received fields a message may carry before it is taken for a loop (RFC 5321 section 6.3).
 * Postfix's `hopcount_limit` defaults to the same 50.
 */
export const MAX_HOPS = 50;

/** Counts the Received fields of a CRLF message's header section. */
export function countHops(message: Buffer): number {
  return parseHeaderFields(splitMessage(message).header).filter((field) => field.key === 'received')
    .length;
}

/** Reads an smtp-server address's text, which is `''` for the null sender. */
export function envelopeAddress(address: { address: string } | false | undefined): string {
  return address ? address.address : '';
}

/**
 * Closes a listener for shutdown: it stops accepting at once, sessions outside DATA get 421
 * (RFC 5321 section 3.8) and are closed, and sessions inside DATA finish their message first,
 * so every message that got a 250 reply is in the store. After `timeoutMs` smtp-server
 * closes whatever is left.
 */
export async function closeGracefully(
  server: SMTPServer,
  busy: ReadonlySet<string>,
  timeoutMs: number,
): Promise<void> {
  server.options.closeTimeout = timeoutMs;
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  const shutdown = replyText(REPLIES.shuttingDown);
  const sweep = () => {
    for (const connection of server.connections) {
      if (busy.has(connection.session.id)) continue;
      connection.send(REPLIES.shuttingDown.code, shutdown);
      connection.close();
    }
  };
  sweep();
  const timer = setInterval(sweep, 50);
  try {
    await closed;
  } finally {
    clearInterval(timer);
  }
}
