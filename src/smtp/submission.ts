/**
 * The submission listener (RFC 6409, port 587): mail from Herald's own users. The session
 * must use STARTTLS before AUTH PLAIN or LOGIN (RFC 4954 section 4), and AUTH before MAIL.
 * A credential sends only as its own domain: the envelope sender and every From address must
 * be in it. Message-ID and Date are added when missing, then the message is signed with every
 * active DKIM key of the From domain and committed to the queue before 250.
 */
import type { Readable } from 'node:stream';

import type { Logger } from 'pino';
import type {
  SMTPServer,
  SMTPServerAddress,
  SMTPServerAuthentication,
  SMTPServerAuthenticationResponse,
  SMTPServerSession,
} from 'smtp-server';

import { verifyPassword } from '../domains/password.js';
import { fromDomains } from '../forwarding/index.js';
import { delaySince, messageLogger } from '../log/index.js';
import {
  createMessageId,
  formatDate,
  formatHeaderField,
  parseHeaderFields,
  splitMessage,
  toSmtpLineEndings,
} from '../message/index.js';
import type { Store } from '../store/types.js';
import { readMessage } from './data.js';
import { DataBudget, FailureCounter } from './limits.js';
import { GreetingServer } from './server.js';
import { REPLIES, replyError, replyText, type SmtpReplyError } from './replies.js';
import {
  ClientGuard,
  closeGracefully,
  contentError,
  envelopeAddress,
  logListenerError,
  receivedField,
  startDataTimer,
  toReplyError,
  type ListenerLimits,
} from './session.js';
import {
  IN_PROCESS_SIGNER,
  type DkimKeySource,
  type EnqueuedListener,
  type MessageSigner,
  type TlsOptions,
} from './types.js';

export interface SubmissionOptions {
  store: Store;
  logger: Logger;
  hostname: string;
  limits: ListenerLimits;
  tls: TlsOptions;
  dkimKeys: DkimKeySource;
  onEnqueued?: EnqueuedListener;
  /** Signs submitted messages; in process when absent. */
  signer?: MessageSigner;
  /** DATA bytes in flight, shared with the MX listener; a budget of its own when absent. */
  dataBudget?: DataBudget;
}

/** Failed AUTH attempts in one session before it is closed with 421. */
export const MAX_AUTH_FAILURES_PER_SESSION = 3;

/** The authenticated user of a session: a credential and the domain it may send as. */
export interface SubmissionUser {
  username: string;
  domain: string;
}

type Callback = (error?: Error | null) => void;

export class SubmissionListener {
  readonly server: SMTPServer;
  private readonly guard: ClientGuard;
  /** Sessions inside DATA, which a shutdown lets finish. */
  private readonly busy = new Set<string>();
  /** Failed AUTH attempts per client address and per user name, over the failure window. */
  private readonly authFailures: FailureCounter;
  /** Failed AUTH attempts per open session. */
  private readonly sessionFailures = new Map<string, number>();
  /** AUTH attempts rejected while locked out, per key, so only some of them are logged. */
  private readonly lockedAttempts: FailureCounter;

  constructor(private readonly options: SubmissionOptions) {
    const { limits, logger } = options;
    this.guard = new ClientGuard(limits, logger, options.dataBudget);
    this.authFailures = new FailureCounter(
      limits.authFailuresPerWindow,
      limits.authFailureWindowMs,
    );
    this.lockedAttempts = new FailureCounter(Number.MAX_SAFE_INTEGER, limits.authFailureWindowMs);
    this.server = new GreetingServer(
      {
        name: options.hostname,
        banner: 'Herald submission',
        key: options.tls.key,
        cert: options.tls.cert,
        size: limits.maxMessageSize > 0 ? limits.maxMessageSize : undefined,
        authMethods: ['PLAIN', 'LOGIN'],
        // smtp-server refuses AUTH before STARTTLS with 538 unless this is true.
        allowInsecureAuth: false,
        authRequiredMessage: replyText(REPLIES.authRequired),
        disableReverseLookup: true,
        socketTimeout: limits.idleTimeoutMs,
        maxClients: limits.maxConnections > 0 ? limits.maxConnections : undefined,
        logger: false,
        // REQUIRETLS (RFC 8689) would promise TLS on every later hop, which delivery does not.
        hideREQUIRETLS: true,
        onConnect: (session, callback) => {
          // AUTH is not even advertised before STARTTLS (RFC 4954 section 4, RFC 4616 section 6).
          session.disabledCommands = ['AUTH'];
          this.guard.onConnect(session, callback);
        },
        onSecure: (_socket, session, callback) => {
          session.disabledCommands = [];
          callback();
        },
        onClose: (session) => {
          this.sessionFailures.delete(session.id);
          this.guard.onClose(session);
        },
        onAuth: (auth, session, callback) => {
          this.onAuth(auth, session).then(
            (response) => callback(null, response),
            (error: unknown) => callback(toReplyError(error, session, logger, 'AUTH')),
          );
        },
        onMailFrom: (address, session, callback) => this.onMailFrom(address, session, callback),
        onRcptTo: (address, session, callback) => this.onRcptTo(address, session, callback),
        onData: (stream, session, callback) => {
          this.busy.add(session.id);
          const cancelTimer = startDataTimer(this.server, session, limits.dataTimeoutMs, logger);
          this.onData(stream, session)
            .then(
              (reply) => callback(null, reply),
              (error: unknown) => callback(toReplyError(error, session, logger, 'DATA')),
            )
            .finally(() => {
              cancelTimer();
              this.busy.delete(session.id);
            });
        },
      },
      { onCommand: (session, command) => this.onCommand(session, command) },
    );
    this.server.on('error', (error) =>
      logListenerError(logger, error, 'submission listener error'),
    );
  }

  /** Stops accepting connections and closes the open ones once their DATA phase is over. */
  close(timeoutMs: number): Promise<void> {
    return closeGracefully(this.server, this.busy, timeoutMs);
  }

  /**
   * Answers AUTH before STARTTLS with 530 (RFC 3207 section 4): AUTH is disabled then, and
   * smtp-server would reply 500 to a disabled command.
   */
  private onCommand(session: SMTPServerSession, command: string): SmtpReplyError | undefined {
    const rejection = this.guard.onCommand(session, command);
    if (rejection) return rejection;
    const verb = (command.split(' ')[0] ?? '').toUpperCase();
    if (verb === 'AUTH' && !session.secure) return replyError(REPLIES.startTlsFirst);
    return undefined;
  }

  private async onAuth(
    auth: SMTPServerAuthentication,
    session: SMTPServerSession,
  ): Promise<SMTPServerAuthenticationResponse> {
    const username = auth.username ?? '';
    const log = {
      session: session.id,
      client: session.remoteAddress,
      username,
      method: auth.method,
    };
    const clientKey = `client:${session.remoteAddress}`;
    const userKey = `user:${username.toLowerCase()}`;
    const lockedKey = [clientKey, userKey].find((key) => this.authFailures.blocked(key));
    if (lockedKey !== undefined) {
      // A locked-out client may keep trying, so only the 1st, 10th, 100th... attempt is logged.
      const attempts = this.lockedAttempts.add(lockedKey);
      if (Number.isInteger(Math.log10(attempts))) {
        this.options.logger.info(
          { ...log, lockedBy: lockedKey, attempts },
          'authentication rejected: too many failed attempts',
        );
      }
      throw replyError(REPLIES.authLocked);
    }

    let user: SubmissionUser | undefined;
    try {
      user = await this.authenticate(username, auth.password ?? '');
    } catch (error) {
      this.options.logger.error({ ...log, err: error }, 'authentication failed: store error');
      throw replyError(REPLIES.authTemporary);
    }
    if (!user) throw this.authFailed(session, clientKey, userKey, log);
    this.options.logger.info({ ...log, domain: user.domain }, 'authenticated');
    return { user };
  }

  /**
   * Counts a failed AUTH attempt for the session, the client address and the user name, and
   * returns the reply: 535, or 421 once the session has failed too often.
   */
  private authFailed(
    session: SMTPServerSession,
    clientKey: string,
    userKey: string,
    log: Record<string, unknown>,
  ): SmtpReplyError {
    const sessionFailures = (this.sessionFailures.get(session.id) ?? 0) + 1;
    this.sessionFailures.set(session.id, sessionFailures);
    const clientFailures = this.authFailures.add(clientKey);
    const userFailures = this.authFailures.add(userKey);
    this.options.logger.info(
      { ...log, sessionFailures, clientFailures, userFailures },
      'authentication failed: invalid credentials',
    );
    return sessionFailures >= MAX_AUTH_FAILURES_PER_SESSION
      ? replyError(REPLIES.authClosing)
      : replyError(REPLIES.authFailed);
  }

  /** Checks a username and password; returns the user, or undefined when they do not match. */
  private async authenticate(
    username: string,
    password: string,
  ): Promise<SubmissionUser | undefined> {
    const credential = await this.options.store.getCredential(username);
    // An unknown user still costs one scrypt run, so timing does not reveal which names exist.
    const hash = credential?.passwordHash ?? UNKNOWN_USER_HASH;
    const valid = await verifyPassword(password, hash);
    if (!credential || !valid) return undefined;

    const domains = await this.options.store.listDomains();
    const domain = domains.find((candidate) => candidate.id === credential.domainId);
    return domain
      ? { username: credential.username, domain: domain.name.toLowerCase() }
      : undefined;
  }

  private onMailFrom(
    address: SMTPServerAddress,
    session: SMTPServerSession,
    callback: Callback,
  ): void {
    const user = userOf(session);
    // AUTH is disabled until STARTTLS, and smtp-server only requires AUTH while it is enabled.
    if (!user) return callback(replyError(REPLIES.authRequired));
    if (domainOfAddress(address.address) !== user.domain) {
      this.options.logger.warn(
        { session: session.id, username: user.username, from: address.address },
        'sender rejected: not in the domain of the credential',
      );
      return callback(replyError(REPLIES.senderNotOwned));
    }
    callback();
  }

  private onRcptTo(
    _address: SMTPServerAddress,
    session: SMTPServerSession,
    callback: Callback,
  ): void {
    if (!userOf(session)) return callback(replyError(REPLIES.authRequired));
    const { maxRecipients } = this.options.limits;
    if (maxRecipients > 0 && session.envelope.rcptTo.length >= maxRecipients) {
      return callback(replyError(REPLIES.tooManyRecipients));
    }
    callback();
  }

  private async onData(stream: NodeJS.ReadableStream, session: SMTPServerSession): Promise<string> {
    const verdict = await readMessage(stream as Readable, this.options.limits, this.guard.budget);
    if (!verdict.ok) throw contentError(verdict, this.options.limits);

    const user = userOf(session);
    if (!user) throw replyError(REPLIES.authRequired);
    const sender = envelopeAddress(session.envelope.mailFrom);
    const recipients = session.envelope.rcptTo.map((rcpt) => rcpt.address);
    let message = toSmtpLineEndings(verdict.message);

    const domains = fromDomains(message);
    if (domains.length === 0) throw replyError(REPLIES.fromMissing);
    if (domains.some((domain) => domain !== user.domain)) {
      this.options.logger.warn(
        { session: session.id, username: user.username, from: sender, fromDomains: domains },
        'message rejected: From is not in the domain of the credential',
      );
      throw replyError(REPLIES.fromNotOwned);
    }

    const now = new Date();
    message = Buffer.concat([
      Buffer.from(receivedField(session, this.options.hostname, recipients, now), 'utf8'),
      addMissingFields(message, user.domain, now),
    ]);
    const signatures = this.options.dkimKeys.signaturesFor(user.domain);
    if (signatures.length > 0) {
      const signer = this.options.signer ?? IN_PROCESS_SIGNER;
      message = await signer.sign(message, { signatures, time: now });
    } else {
      this.options.logger.warn({ domain: user.domain }, 'message not signed: no active DKIM key');
    }

    const messageId = await this.enqueue(message, sender, recipients, session);
    messageLogger(this.options.logger, messageId).info(
      {
        from: sender,
        to: recipients.join(','),
        relay: 'none',
        delay: delaySince(now),
        dsn: '2.0.0',
        status: 'queued',
        session: session.id,
        username: user.username,
        signatures: signatures.map((key) => `${key.domain}/${key.selector}`),
        size: message.length,
      },
      'submitted message queued',
    );
    this.options.onEnqueued?.({ messageId, origin: 'submission', recipients: recipients.length });
    return replyText(REPLIES.queued, `Ok: queued as ${messageId}`);
  }

  private async enqueue(
    message: Buffer,
    sender: string,
    recipients: string[],
    session: SMTPServerSession,
  ): Promise<string> {
    try {
      const { messageId } = await this.options.store.enqueue({
        body: message,
        origin: 'submission',
        originalSender: sender,
        clientAddress: `${session.remoteAddress} (${session.hostNameAppearsAs || 'unknown'})`,
        recipients: recipients.map((recipient) => ({ recipient, sender, bounceTo: sender })),
      });
      return messageId;
    } catch (error) {
      this.options.logger.error(
        { err: error, session: session.id, from: sender },
        'enqueue failed',
      );
      throw replyError(REPLIES.localError);
    }
  }
}

/** A well-formed hash that no password matches in practice, for the unknown-user path. */
const UNKNOWN_USER_HASH =
  'scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=';

function userOf(session: SMTPServerSession): SubmissionUser | undefined {
  return session.user as SubmissionUser | undefined;
}

function domainOfAddress(address: string): string | undefined {
  const at = address.lastIndexOf('@');
  if (at < 0) return undefined;
  return address
    .slice(at + 1)
    .toLowerCase()
    .replace(/\.$/, '');
}

/** Adds `Message-ID` and `Date` on top of the header when the message lacks them (RFC 6409 section 8). */
export function addMissingFields(message: Buffer, domain: string, now: Date): Buffer {
  const fields = parseHeaderFields(splitMessage(message).header);
  let added = '';
  if (!fields.some((field) => field.key === 'message-id')) {
    added += formatHeaderField('Message-ID', createMessageId(domain, now));
  }
  if (!fields.some((field) => field.key === 'date'))
    added += formatHeaderField('Date', formatDate(now));
  return added === '' ? message : Buffer.concat([Buffer.from(added, 'utf8'), message]);
}
