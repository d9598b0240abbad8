/**
 * The MX listener: mail from the Internet for hosted domains. RCPT is accepted only for what
 * the recipient router accepts: an enabled alias, a valid SRS address, Herald's bounce address.
 * Everything else gets 550 at RCPT time rather than a bounce later, so Herald relays nothing
 * and sends no backscatter. At end of DATA the message is checked against the content limits, its DKIM and
 * DMARC are evaluated for forwarded recipients, and one queue entry per target is committed to
 * the store before the client hears 250.
 *
 * Not handled here: delivery (the queue's workers), and SPF of the arriving message, which
 * forwarding does not preserve anyway.
 */
import type { Readable } from 'node:stream';

import type { Logger } from 'pino';
import type { SMTPServer, SMTPServerAddress, SMTPServerSession } from 'smtp-server';

import { createKeyCache } from '../dkim/index.js';
import {
  cacheTxtLookup,
  checkArrival,
  failsAfterForwarding,
  RecipientRouter,
  rewriteFrom,
  rewriteSender,
  type ArrivalCheck,
  type RecipientRoute,
  type SrsSource,
  type TxtLookup,
  withNodeErrorCodes,
} from '../forwarding/index.js';
import { removeOwnAuthenticationResults } from '../forwarding/authentication.js';
import type { DistributionRoute, InboundResult } from '../distribution/inbound.js';
import { delaySince, messageLogger } from '../log/index.js';
import { toSmtpLineEndings } from '../message/index.js';
import type { NewRecipient, Store } from '../store/types.js';
import { readMessage } from './data.js';
import { GreetingServer } from './server.js';
import { DataBudget, RateLimiter } from './limits.js';
import { REPLIES, replyError, replyText } from './replies.js';
import {
  ClientGuard,
  closeGracefully,
  countHops,
  MAX_HOPS,
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

export interface InboundOptions {
  store: Store;
  logger: Logger;
  hostname: string;
  limits: ListenerLimits;
  tls: TlsOptions;
  srs: SrsSource;
  dkimKeys: DkimKeySource;
  lookupTxt: TxtLookup;
  onEnqueued?: EnqueuedListener;
  /** Signs the copies whose From is rewritten; in process when absent. */
  signer?: MessageSigner;
  /** Messages per hour accepted for one SRS address from a non-null sender (auto-replies). */
  srsRepliesPerHour?: number;
  /** Campaign bounce (VERP), unsubscribe and complaint addresses, checked before aliases. */
  distribution?: DistributionAddresses;
  /** DATA bytes in flight, shared with the submission listener; a budget of its own when absent. */
  dataBudget?: DataBudget;
  /** Where mail for `postmaster@` hosted domains and the hostname goes; empty rejects it. */
  postmaster?: readonly string[];
}

/** The part of the distribution module that the MX listener calls. */
export interface DistributionAddresses {
  route(address: string): Promise<DistributionRoute>;
  receive(route: DistributionRoute, message: Buffer): Promise<InboundResult>;
}

/** A recipient that is one of the distribution addresses: processed, never queued. */
interface DistributionRecipient {
  kind: 'distribution';
  recipient: string;
  route: DistributionRoute;
}

/** Default rate for mail with a non-null sender to one SRS address: auto-replies, not floods. */
export const DEFAULT_SRS_REPLIES_PER_HOUR = 10;

/**
 * `postmaster@` a hosted domain or the hostname, which RFC 5321 section 4.5.1 requires a server
 * to accept, when no alias takes it: forwarded to the `postmaster` setting's addresses.
 */
interface PostmasterRecipient {
  kind: 'postmaster';
  recipient: string;
  targets: readonly string[];
}

type AcceptedRoute = Exclude<RecipientRoute, { kind: 'reject' }> | PostmasterRecipient;

/** The recipients accepted so far in the current transaction of a session. */
interface Transaction {
  routes: Map<string, AcceptedRoute | DistributionRecipient>;
}

/** One message body to enqueue and the recipients that receive that body. */
interface Variant {
  body: Buffer;
  recipients: NewRecipient[];
}

export class InboundListener {
  readonly server: SMTPServer;
  private readonly router: RecipientRouter;
  private readonly guard: ClientGuard;
  /** Sessions inside DATA, which a shutdown lets finish. */
  private readonly busy = new Set<string>();
  private readonly srsReplies: RateLimiter;
  private readonly srsNullSenders: RateLimiter;
  private readonly transactions = new Map<string, Transaction>();
  /** DNS answers reused across messages: DKIM keys for 5 minutes, DMARC records for 1. */
  private readonly keyCache = createKeyCache({ ttlSeconds: 300 });
  private readonly dmarcLookup: TxtLookup;

  constructor(private readonly options: InboundOptions) {
    const { limits, logger } = options;
    this.router = new RecipientRouter({
      store: options.store,
      srs: options.srs,
      hostname: options.hostname,
    });
    this.guard = new ClientGuard(limits, logger, options.dataBudget);
    this.dmarcLookup = cacheTxtLookup(withNodeErrorCodes(options.lookupTxt), { ttlMs: 60_000 });
    this.srsReplies = new RateLimiter(
      options.srsRepliesPerHour ?? DEFAULT_SRS_REPLIES_PER_HOUR,
      3_600_000,
    );
    // Bounces (null sender) to an SRS address go to the original sender, so a flood of them
    // would turn Herald into a relay of whatever the body says.
    this.srsNullSenders = new RateLimiter(limits.srsNullSendersPerHour, 3_600_000);

    this.server = new GreetingServer(
      {
        name: options.hostname,
        banner: 'Herald',
        key: options.tls.key,
        cert: options.tls.cert,
        size: limits.maxMessageSize > 0 ? limits.maxMessageSize : undefined,
        // Port 25 takes mail from anyone; AUTH belongs to the submission port.
        authOptional: true,
        disabledCommands: ['AUTH'],
        disableReverseLookup: true,
        // REQUIRETLS (RFC 8689) would promise TLS on every later hop, which delivery does not.
        hideREQUIRETLS: true,
        socketTimeout: limits.idleTimeoutMs,
        maxClients: limits.maxConnections > 0 ? limits.maxConnections : undefined,
        logger: false,
        onConnect: this.guard.onConnect,
        onClose: (session) => {
          this.transactions.delete(session.id);
          this.guard.onClose(session);
        },
        onMailFrom: (address, session, callback) => this.onMailFrom(address, session, callback),
        onRcptTo: (address, session, callback) => {
          this.onRcptTo(address, session).then(
            () => callback(),
            (error: unknown) => callback(toReplyError(error, session, logger, 'RCPT')),
          );
        },
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
      { onCommand: this.guard.onCommand },
    );
    this.server.on('error', (error) => logListenerError(logger, error, 'MX listener error'));
  }

  /** Stops accepting connections and closes the open ones once their DATA phase is over. */
  close(timeoutMs: number): Promise<void> {
    return closeGracefully(this.server, this.busy, timeoutMs);
  }

  private onMailFrom(
    _address: SMTPServerAddress,
    session: SMTPServerSession,
    callback: (error?: Error | null) => void,
  ): void {
    this.transactions.set(session.id, { routes: new Map() });
    callback();
  }

  private async onRcptTo(address: SMTPServerAddress, session: SMTPServerSession): Promise<void> {
    const transaction = this.transactionOf(session);
    const key = address.address.toLowerCase();
    const { maxRecipients } = this.options.limits;
    if (
      maxRecipients > 0 &&
      transaction.routes.size >= maxRecipients &&
      !transaction.routes.has(key)
    ) {
      throw replyError(REPLIES.tooManyRecipients);
    }

    const sender = envelopeAddress(session.envelope.mailFrom);
    const log = {
      session: session.id,
      client: session.remoteAddress,
      from: sender,
      to: address.address,
    };
    // VERP and unsubscribe addresses sit at hosted domains, where a catch-all alias would
    // otherwise take them, so they are recognised first.
    const distributionRoute = await this.options.distribution?.route(address.address);
    if (distributionRoute?.kind === 'forged') {
      this.options.logger.info(
        { ...log, reason: 'forged-token', detail: distributionRoute.reason },
        'recipient rejected',
      );
      throw replyError(REPLIES.unknownRecipient);
    }
    if (distributionRoute && distributionRoute.kind !== 'none') {
      transaction.routes.set(key, {
        kind: 'distribution',
        recipient: address.address,
        route: distributionRoute,
      });
      return;
    }

    const route = await this.router.route(address.address);
    if (route.kind === 'reject' && this.isPostmaster(address.address, route.reason)) {
      this.options.logger.info(
        { ...log, targets: this.options.postmaster },
        'recipient accepted for the postmaster addresses',
      );
      transaction.routes.set(key, {
        kind: 'postmaster',
        recipient: address.address,
        targets: this.options.postmaster ?? [],
      });
      return;
    }
    if (route.kind === 'reject') {
      this.options.logger.info(
        { ...log, reason: route.reason, detail: route.detail },
        'recipient rejected',
      );
      throw rejectionFor(route.reason);
    }

    // Auto-replies to a forwarded message come back to its SRS sender with a sender of their
    // own. They are wanted, but a flood of them is not, so each SRS address has a rate limit.
    if (route.kind === 'srs-reverse' && sender !== '' && !this.srsReplies.take(key)) {
      this.options.logger.warn(
        log,
        'recipient deferred: SRS address over its rate for non-null senders',
      );
      throw replyError(REPLIES.srsRateLimited);
    }
    if (route.kind === 'srs-reverse' && sender === '' && !this.srsNullSenders.take(key)) {
      this.options.logger.warn(log, 'recipient deferred: SRS address over its rate for bounces');
      throw replyError(REPLIES.srsRateLimited);
    }
    transaction.routes.set(key, route);
  }

  /**
   * Whether a rejected recipient is `postmaster@` (any case) a hosted domain or the hostname.
   * Without `postmaster` addresses configured the rejection stands.
   */
  private isPostmaster(
    address: string,
    reason: Extract<RecipientRoute, { kind: 'reject' }>['reason'],
  ): boolean {
    if ((this.options.postmaster ?? []).length === 0) return false;
    const at = address.lastIndexOf('@');
    if (at < 0 || address.slice(0, at).toLowerCase() !== 'postmaster') return false;
    const domain = address
      .slice(at + 1)
      .toLowerCase()
      .replace(/\.$/, '');
    return reason === 'unknown-user' || domain === this.options.hostname.toLowerCase();
  }

  private transactionOf(session: SMTPServerSession): Transaction {
    let transaction = this.transactions.get(session.id);
    if (!transaction) {
      transaction = { routes: new Map() };
      this.transactions.set(session.id, transaction);
    }
    return transaction;
  }

  private async onData(stream: NodeJS.ReadableStream, session: SMTPServerSession): Promise<string> {
    const verdict = await readMessage(stream as Readable, this.options.limits, this.guard.budget);
    const sender = envelopeAddress(session.envelope.mailFrom);
    if (!verdict.ok) {
      this.options.logger.info(
        {
          session: session.id,
          client: session.remoteAddress,
          from: sender,
          violation: verdict.violation,
          size: verdict.size,
        },
        'message rejected: content limit exceeded',
      );
      throw contentError(verdict, this.options.limits);
    }

    const accepted = [...this.transactionOf(session).routes.values()];
    this.transactions.delete(session.id);
    // Fields under Herald's own authserv-id can only be forged (RFC 8601 section 5).
    const message = removeOwnAuthenticationResults(
      toSmtpLineEndings(verdict.message),
      this.options.hostname,
    );
    const routes = accepted.filter((route) => route.kind !== 'distribution');
    const feedback = accepted.filter((route) => route.kind === 'distribution');
    if (feedback.length > 0) await this.processFeedback(feedback, message, sender, session);
    if (routes.length === 0) return replyText(REPLIES.queued, 'Ok: processed');

    if (countHops(message) >= MAX_HOPS) {
      this.options.logger.warn(
        { session: session.id, client: session.remoteAddress, from: sender },
        'message rejected: too many Received fields, probably a mail loop',
      );
      throw replyError(REPLIES.tooManyHops);
    }
    const trace = receivedField(
      session,
      this.options.hostname,
      routes.map((route) => route.recipient),
    );

    const aliasRoutes = routes.filter((route) => route.kind === 'alias');
    const check = aliasRoutes.length > 0 ? await this.checkAuthentication(message) : undefined;
    const traced = Buffer.concat([
      Buffer.from((check?.headerField ?? '') + trace, 'utf8'),
      message,
    ]);

    const variants = await this.buildVariants(traced, routes, sender, check, session);
    if (variants.length === 0) {
      this.options.logger.info(
        { session: session.id, from: sender, to: routes.map((route) => route.recipient) },
        'message for the bounce address read and discarded',
      );
      return replyText(REPLIES.queued, 'Ok: discarded');
    }

    const ids = await this.enqueue(variants, sender, session);
    return replyText(REPLIES.queued, `Ok: queued as ${ids.join(' ')}`);
  }

  /**
   * Hands a message for bounce, unsubscribe or complaint addresses to the distribution module,
   * which records its outcome in the store before the 250 goes out.
   */
  private async processFeedback(
    recipients: DistributionRecipient[],
    message: Buffer,
    sender: string,
    session: SMTPServerSession,
  ): Promise<void> {
    for (const { recipient, route } of recipients) {
      try {
        const result = await this.options.distribution!.receive(route, message);
        this.options.logger.info(
          {
            session: session.id,
            from: sender,
            to: recipient,
            route: result.route,
            report: result.report,
            outcomes: result.outcomes.length,
          },
          'distribution feedback processed',
        );
      } catch (error) {
        this.options.logger.error(
          { err: error, session: session.id, from: sender, to: recipient },
          'distribution feedback failed',
        );
        throw replyError(REPLIES.localError);
      }
    }
  }

  private async checkAuthentication(message: Buffer): Promise<ArrivalCheck> {
    return checkArrival(message, {
      lookupTxt: this.dmarcLookup,
      authservId: this.options.hostname,
      keyCache: this.keyCache,
    });
  }

  /**
   * Groups the queue entries by the body they get: the message as received, or for aliases
   * with the `rewrite-from` policy a copy with the From rewritten and a signature of the alias
   * domain. Throws the DMARC rejection when an alias with the `reject` policy receives a
   * message that would fail DMARC after forwarding, because SMTP has one reply per message.
   */
  private async buildVariants(
    message: Buffer,
    routes: AcceptedRoute[],
    sender: string,
    check: ArrivalCheck | undefined,
    session: SMTPServerSession,
  ): Promise<Variant[]> {
    const failing = check !== undefined && failsAfterForwarding(check.dmarc);
    if (
      failing &&
      routes.some((route) => route.kind === 'alias' && route.dmarcPolicy === 'reject')
    ) {
      this.options.logger.info(
        {
          session: session.id,
          from: sender,
          fromDomain: check.dmarc.fromDomain,
          reason: check.dmarc.reason,
        },
        'message rejected: it fails DMARC and an alias policy rejects such mail',
      );
      throw replyError(REPLIES.dmarcRejected);
    }

    const original: Variant = { body: message, recipients: [] };
    const rewritten = new Map<string, Variant>();
    for (const route of routes) {
      if (route.kind === 'own-bounce') continue;
      if (route.kind === 'postmaster') {
        for (const target of route.targets) {
          original.recipients.push(await this.entryFor(target, sender, null, session));
        }
        continue;
      }
      if (route.kind === 'srs-reverse') {
        original.recipients.push(await this.entryFor(route.original, sender, null, session));
        continue;
      }

      let variant = original;
      if (failing && route.dmarcPolicy === 'rewrite-from') {
        const aliasAddress =
          route.alias.localPart === '*'
            ? route.recipient.toLowerCase()
            : `${route.alias.localPart}@${route.domain.name}`;
        variant =
          rewritten.get(aliasAddress) ??
          (await this.rewrittenVariant(message, aliasAddress, route.domain.name));
        rewritten.set(aliasAddress, variant);
      }
      for (const target of route.targets) {
        variant.recipients.push(
          await this.entryFor(target, sender, route.domain.srsDomain, session),
        );
      }
    }
    return [original, ...rewritten.values()]
      .map((variant) => ({ ...variant, recipients: dedupe(variant.recipients) }))
      .filter((variant) => variant.recipients.length > 0);
  }

  private async rewrittenVariant(
    message: Buffer,
    aliasAddress: string,
    domain: string,
  ): Promise<Variant> {
    const rewritten = rewriteFrom(message, aliasAddress) ?? message;
    const signatures = this.options.dkimKeys.signaturesFor(domain);
    if (signatures.length === 0) {
      this.options.logger.warn(
        { domain },
        'From rewritten but the alias domain has no active DKIM key',
      );
      return { body: rewritten, recipients: [] };
    }
    const signer = this.options.signer ?? IN_PROCESS_SIGNER;
    return { body: await signer.sign(rewritten, { signatures }), recipients: [] };
  }

  /**
   * The queue entry for one forwarding target: the envelope sender SRS-rewritten, and bounces
   * of Herald's own addressed to the original sender directly.
   */
  private async entryFor(
    recipient: string,
    sender: string,
    srsDomain: string | null,
    session: SMTPServerSession,
  ): Promise<NewRecipient> {
    const rewrite = await rewriteSender(this.options.srs, sender, { recipient, srsDomain });
    if (rewrite.ok) return { recipient, sender: rewrite.sender, bounceTo: sender };
    // A sender that SRS cannot encode (too long, with no token store) is forwarded with the
    // null sender: the mail still arrives, and Herald's own DSNs still reach the sender.
    this.options.logger.warn(
      {
        session: session.id,
        from: sender,
        to: recipient,
        reason: rewrite.reason,
        detail: rewrite.message,
      },
      'SRS rewrite failed; forwarding with the null sender',
    );
    return { recipient, sender: '', bounceTo: sender };
  }

  private async enqueue(
    variants: Variant[],
    sender: string,
    session: SMTPServerSession,
  ): Promise<string[]> {
    const started = new Date();
    try {
      const results = await Promise.all(
        variants.map((variant) =>
          this.options.store.enqueue({
            body: variant.body,
            origin: 'forward',
            originalSender: sender,
            clientAddress: `${session.remoteAddress} (${session.hostNameAppearsAs || 'unknown'})`,
            recipients: variant.recipients,
          }),
        ),
      );
      results.forEach(({ messageId }, index) => {
        const recipients = variants[index]!.recipients;
        messageLogger(this.options.logger, messageId).info(
          {
            from: sender,
            to: recipients.map((entry) => entry.recipient).join(','),
            relay: 'none',
            delay: delaySince(started),
            dsn: '2.0.0',
            status: 'queued',
            session: session.id,
            client: session.remoteAddress,
            size: variants[index]!.body.length,
          },
          'message queued for forwarding',
        );
        this.options.onEnqueued?.({ messageId, origin: 'forward', recipients: recipients.length });
      });
      return results.map((result) => result.messageId);
    } catch (error) {
      this.options.logger.error(
        { err: error, session: session.id, from: sender },
        'enqueue failed',
      );
      throw replyError(REPLIES.localError);
    }
  }
}

function rejectionFor(reason: Extract<RecipientRoute, { kind: 'reject' }>['reason']) {
  switch (reason) {
    case 'not-hosted':
      return replyError(REPLIES.relayDenied);
    case 'unknown-user':
      return replyError(REPLIES.unknownRecipient);
    case 'disabled':
      return replyError(REPLIES.aliasDisabled);
    case 'invalid-srs':
      return replyError(REPLIES.invalidSrsAddress);
  }
}

function dedupe(recipients: NewRecipient[]): NewRecipient[] {
  const seen = new Map<string, NewRecipient>();
  for (const entry of recipients) {
    const key = entry.recipient.toLowerCase();
    if (!seen.has(key)) seen.set(key, entry);
  }
  return [...seen.values()];
}
