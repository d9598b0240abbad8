/**
 * The campaign sender. It expands the list in batches in subscriber-id order (never the whole
 * list in memory), skips suppressed and already-queued recipients, renders and composes each
 * message, signs a whole batch in the DKIM engine's worker pool while the next batch is
 * composed, and enqueues every message with origin `campaign` and a per-recipient VERP
 * return path. After each batch the recipients and the cursor are recorded together, so a
 * paused, cancelled or crashed send resumes at the right subscriber.
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';

import type { SignatureOptions, SignOptions } from '../dkim/index.js';
import { domainOf, parseAddressList } from '../message/index.js';
import type { Store } from '../store/types.js';
import { classifyReply } from './classify.js';
import {
  compileCampaign,
  composeMessage,
  renderContent,
  type CampaignTemplates,
} from './compose.js';
import type { FeedbackRecorder } from './feedback.js';
import { computeProgress, RateMeter, type CampaignProgress } from './progress.js';
import type { MergeContext } from './render.js';
import type { DistributionSettings } from './settings.js';
import { DomainThrottle, TokenBucket } from './throttle.js';
import { makeToken, unsubscribeMailto, verpAddress, type RecipientRef } from './tokens.js';
import type {
  Campaign,
  CampaignRecipient,
  DistributionStore,
  MailingList,
  RecipientStatus,
  Subscriber,
} from './types.js';

/** Signs batches of messages; the DKIM engine's `SigningPool` implements it. */
export interface BatchSigner {
  signBatch(messages: readonly Buffer[], options: SignOptions): Promise<Buffer[]>;
}

/** Active signing keys of a domain; the DKIM keyring implements it. */
export interface SigningKeySource {
  signaturesFor(domain: string): readonly SignatureOptions[];
}

export interface SenderLogger {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
}

export interface CampaignSenderOptions {
  store: Store;
  distribution: DistributionStore;
  signer: BatchSigner;
  keys: SigningKeySource;
  settings: DistributionSettings;
  /** Wakes the delivery workers after an enqueue. */
  notify?: () => void;
  /** Applies bounces found in the queue (Herald's own synchronous 5xx). */
  recorder: FeedbackRecorder;
  logger?: SenderLogger;
}

/** A campaign that cannot be sent as configured. The message names what to fix. */
export class CampaignError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CampaignError';
  }
}

interface Prepared {
  subscriber: Subscriber;
  verp: string;
  /** The composed message; signed once the batch is back from the signing pool. */
  message: Buffer;
}

interface PreparedBatch {
  items: Prepared[];
  /** Recipients not sent: suppressed, or queued before a restart. */
  skipped: CampaignRecipient[];
  /** Highest subscriber id of the batch. */
  last: number;
}

interface Throttle {
  campaign: TokenBucket;
  domains: DomainThrottle;
  held: { item: Prepared; readyAt: number }[];
}

/** Sleeps for `ms`, returning early without an error when `signal` aborts. */
async function pause(ms: number, signal?: AbortSignal): Promise<void> {
  await sleep(ms, undefined, { signal }).catch(() => undefined);
}

/** Everything a send needs that does not change per recipient. */
interface SendContext {
  campaign: Campaign;
  list: MailingList;
  templates: CampaignTemplates;
  from: { name: string; address: string };
  domain: string;
  signatures: readonly SignatureOptions[];
  secret: Buffer;
}

/**
 * How long a campaign's send lease lasts without renewal. It is renewed after every batch, so
 * a process that dies mid-campaign delays the rest by at most this long.
 */
const CAMPAIGN_LEASE_MS = 10 * 60_000;

export class CampaignSender {
  private readonly meters = new Map<number, RateMeter>();
  /** Owner name of this process's campaign leases. */
  private readonly runnerId = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;

  constructor(private readonly options: CampaignSenderOptions) {}

  /** Checks a campaign's From domain, ownership and keys, and compiles its templates. */
  async prepare(campaign: Campaign): Promise<SendContext> {
    const { distribution, keys } = this.options;
    const list = await distribution.getList(campaign.listId);
    if (!list)
      throw new CampaignError(`campaign ${campaign.id}: list ${campaign.listId} not found`);

    const mailbox = parseAddressList(campaign.fromAddress)[0];
    const domain = mailbox ? domainOf(mailbox.address) : undefined;
    if (!mailbox || !domain)
      throw new CampaignError(
        `campaign ${campaign.id}: invalid From address "${campaign.fromAddress}"`,
      );
    if ((await distribution.domainOwner(domain)) !== campaign.organisationId) {
      throw new CampaignError(
        `campaign ${campaign.id}: From domain ${domain} is not a domain of organisation ${campaign.organisationId}`,
      );
    }
    const signatures = keys.signaturesFor(domain);
    if (signatures.length === 0) {
      throw new CampaignError(
        `campaign ${campaign.id}: domain ${domain} has no active DKIM key; add one with herald domain add`,
      );
    }
    return {
      campaign,
      list,
      templates: compileCampaign(campaign),
      from: { name: campaign.fromName || mailbox.name || '', address: mailbox.address },
      domain,
      signatures,
      secret: await distribution.getSecret('recipient-token'),
    };
  }

  /** Renders the message one subscriber would receive, unsigned. */
  preview(context: SendContext, subscriber: Subscriber): Buffer {
    return this.compose(context, subscriber, {
      campaignId: context.campaign.id,
      subscriberId: subscriber.id,
    });
  }

  /**
   * Sends the campaign to test addresses: rendered with sample values, signed, queued, and not
   * counted in the campaign's figures. Returns the queue ids.
   */
  async sendTest(context: SendContext, addresses: string[]): Promise<string[]> {
    const now = new Date();
    const subscribers: Subscriber[] = addresses.map((address) => ({
      id: 0,
      listId: context.list.id,
      address,
      name: '',
      fields: {},
      status: 'subscribed',
      softBounces: 0,
      createdAt: now,
      updatedAt: now,
    }));
    const prepared = subscribers.map((subscriber) => this.prepareOne(context, subscriber));
    const signed = await this.sign(
      context,
      prepared.map((item) => item.message),
    );
    const ids = await Promise.all(
      prepared.map((item, index) =>
        this.options.store.enqueue({
          body: signed[index]!,
          origin: 'campaign',
          originalSender: item.verp,
          recipients: [{ recipient: item.subscriber.address, sender: item.verp, bounceTo: '' }],
        }),
      ),
    );
    this.options.notify?.();
    return ids.map((result) => result.messageId);
  }

  /**
   * Runs a campaign whose status is `sending` until its list is exhausted, it is paused or
   * cancelled (checked between batches), or `signal` aborts. Marks it `sent` at the end.
   */
  async run(
    campaignId: number,
    signal?: AbortSignal,
    onBatch?: (progress: CampaignProgress) => void,
  ): Promise<Campaign> {
    const { distribution } = this.options;
    const campaign = await this.requireCampaign(campaignId);
    if (campaign.status !== 'sending') return campaign;
    // Another process (the server's scheduler, or a `herald campaign send`) may be running
    // this campaign; only the holder of the lease expands its batches.
    if (!(await distribution.acquireCampaignLease(campaignId, this.runnerId, CAMPAIGN_LEASE_MS))) {
      this.options.logger?.info(
        { campaign: campaignId },
        'campaign is being sent by another process',
      );
      return campaign;
    }
    try {
      return await this.runLeased(campaign, signal, onBatch);
    } finally {
      await distribution.releaseCampaignLease(campaignId, this.runnerId);
    }
  }

  private async runLeased(
    initial: Campaign,
    signal?: AbortSignal,
    onBatch?: (progress: CampaignProgress) => void,
  ): Promise<Campaign> {
    const { distribution, settings } = this.options;
    const campaignId = initial.id;
    let campaign = initial;
    const context = await this.prepare(campaign);

    const now = Date.now();
    const throttle: Throttle = {
      campaign: new TokenBucket(campaign.ratePerMinute, now),
      domains: new DomainThrottle(settings.domainRules, campaign.startedAt?.getTime() ?? now),
      held: [],
    };
    // `readCursor` moves as pages are read; the recorded cursor stays below every subscriber
    // not yet queued, and already-queued subscribers are skipped on resume.
    let readCursor = campaign.cursor;
    let signing: Promise<PreparedBatch> | undefined;

    for (;;) {
      const page = signal?.aborted
        ? { subscribers: [] }
        : await distribution.pageSubscribers(campaign.listId, {
            afterId: readCursor,
            limit: settings.batchSize,
            status: 'subscribed',
          });
      // The next batch is composed and handed to the signing pool before the previous one,
      // signed meanwhile, is enqueued.
      const next =
        page.subscribers.length > 0 ? this.prepareBatch(context, page.subscribers) : undefined;
      if (next) readCursor = page.subscribers[page.subscribers.length - 1]!.id;
      if (signing) await this.enqueueBatch(context, await signing, throttle, signal);
      signing = next;
      if (!next) break;
      if (onBatch) onBatch(await this.progress(campaignId));
      campaign = await this.requireCampaign(campaignId);
      if (campaign.status !== 'sending') break;
      if (
        !(await distribution.acquireCampaignLease(campaignId, this.runnerId, CAMPAIGN_LEASE_MS))
      ) {
        this.options.logger?.warn(
          { campaign: campaignId },
          'campaign lease lost; sending stops here',
        );
        // The batch being signed was never recorded, so the lease's new holder sends it.
        void signing?.catch(() => undefined);
        signing = undefined;
        break;
      }
    }
    if (signing) await this.enqueueBatch(context, await signing, throttle, signal);
    await this.releaseHeld(context, throttle, 0, signal);

    campaign = await this.requireCampaign(campaignId);
    if (campaign.status === 'sending' && !signal?.aborted && throttle.held.length === 0) {
      await distribution.updateCampaign(campaignId, { status: 'sent', finishedAt: new Date() });
      campaign = await this.requireCampaign(campaignId);
    }
    return campaign;
  }

  /** Brings recipient statuses up to date with the queue and returns the campaign's progress. */
  async progress(campaignId: number): Promise<CampaignProgress> {
    const { distribution } = this.options;
    await this.syncDeliveries(campaignId);
    const campaign = await this.requireCampaign(campaignId);
    const counts = await distribution.countRecipients(campaignId);
    const recorded = Object.values(counts).reduce((sum, value) => sum + value, 0);
    const finished = campaign.status === 'sent' || campaign.status === 'cancelled';
    const notReached = finished
      ? 0
      : await distribution.countSubscribedAfter(campaign.listId, campaign.cursor);
    const meter = this.meters.get(campaignId);
    return computeProgress(counts, recorded + notReached, meter ? meter.perSecond(Date.now()) : 0);
  }

  /**
   * Applies queue outcomes to the campaign's recipients: delivered and deferred entries update
   * the status, and a failed entry (Herald's own delivery got a 5xx or gave up) counts as a
   * bounce, classified from the last reply like a DSN.
   */
  async syncDeliveries(campaignId: number): Promise<number> {
    const { distribution, recorder } = this.options;
    let applied = 0;
    for (;;) {
      const changes = await distribution.queueChanges(campaignId, 1000);
      const updates: { subscriberId: number; status: RecipientStatus; detail: string }[] = [];
      for (const change of changes) {
        const reply = change.lastReply ?? '';
        if (change.status !== 'failed') {
          updates.push({ subscriberId: change.subscriberId, status: change.status, detail: reply });
          continue;
        }
        const outcome = await recorder.bounce(
          { campaignId, subscriberId: change.subscriberId },
          classifyReply(reply),
        );
        // A failure the classifier ignores, or one whose subscriber is gone, still leaves the
        // recipient undelivered; without this update the change would be read again.
        if (!outcome?.applied)
          updates.push({ subscriberId: change.subscriberId, status: 'bounced', detail: reply });
      }
      await distribution.setRecipientStatuses(campaignId, updates);
      applied += changes.length;
      if (changes.length < 1000) return applied;
    }
  }

  private async prepareBatch(
    context: SendContext,
    subscribers: Subscriber[],
  ): Promise<PreparedBatch> {
    const { distribution } = this.options;
    const campaignId = context.campaign.id;
    const addresses = subscribers.map((subscriber) => subscriber.address);
    const ids = subscribers.map((subscriber) => subscriber.id);
    const [suppressed, queued] = await Promise.all([
      distribution.suppressedAmong(context.campaign.organisationId, addresses),
      distribution.alreadyQueued(campaignId, ids),
    ]);

    const items: Prepared[] = [];
    const skipped: CampaignRecipient[] = [];
    for (const subscriber of subscribers) {
      const base = {
        campaignId,
        subscriberId: subscriber.id,
        address: subscriber.address,
        messageId: null,
        updatedAt: new Date(),
      };
      if (suppressed.has(subscriber.address.toLowerCase())) {
        skipped.push({ ...base, status: 'suppressed', detail: 'address on the suppression list' });
      } else if (queued.has(subscriber.id)) {
        skipped.push({ ...base, status: 'queued', detail: 'queued before a restart' });
      } else {
        items.push(this.prepareOne(context, subscriber));
      }
    }
    const signed = await this.sign(
      context,
      items.map((item) => item.message),
    );
    signed.forEach((body, index) => (items[index]!.message = body));
    return { items, skipped, last: subscribers[subscribers.length - 1]!.id };
  }

  private prepareOne(context: SendContext, subscriber: Subscriber): Prepared {
    const ref = { campaignId: context.campaign.id, subscriberId: subscriber.id };
    return {
      subscriber,
      verp: verpAddress(context.secret, ref, context.domain, this.options.settings.returnAddresses),
      message: this.compose(context, subscriber, ref),
    };
  }

  private compose(context: SendContext, subscriber: Subscriber, ref: RecipientRef): Buffer {
    const { settings } = this.options;
    const token = makeToken(context.secret, 'unsubscribe', ref);
    const unsubscribeUrl = `${settings.publicUrl.replace(/\/$/, '')}/u/${token}`;
    const values = mergeContext(context, subscriber, unsubscribeUrl);
    return composeMessage(renderContent(context.templates, values), {
      from: context.from,
      replyTo: context.campaign.replyTo || undefined,
      to: { name: subscriber.name, address: subscriber.address },
      listId: `${context.list.id}.lists.${context.domain}`,
      listName: context.list.name,
      unsubscribeUrl,
      unsubscribeMailto: unsubscribeMailto(
        context.secret,
        ref,
        context.domain,
        settings.returnAddresses,
      ),
      feedbackId: `${context.campaign.id}:${context.list.id}:${context.campaign.organisationId}:herald`,
    });
  }

  private sign(context: SendContext, messages: Buffer[]): Promise<Buffer[]> {
    if (messages.length === 0) return Promise.resolve([]);
    return this.options.signer.signBatch(messages, { signatures: context.signatures });
  }

  /**
   * Enqueues a signed batch under the campaign's rate and the per-domain rules, then records
   * its recipients and the cursor. A message for a domain over its limit waits in the held
   * list. When more than a batch of messages is held, the sender sleeps until one may go.
   */
  private async enqueueBatch(
    context: SendContext,
    batch: PreparedBatch,
    throttle: Throttle,
    signal?: AbortSignal,
  ): Promise<void> {
    const pending: Promise<CampaignRecipient>[] = [];
    for (const item of batch.items) {
      const wait = throttle.campaign.take(Date.now());
      if (wait > 0) await pause(wait, signal);
      const domain = domainOf(item.subscriber.address) ?? '';
      const domainWait = throttle.domains.take(domain, Date.now());
      if (domainWait > 0) {
        throttle.held.push({ item, readyAt: Date.now() + domainWait });
        continue;
      }
      pending.push(this.enqueueOne(context, item));
    }
    const queued = await Promise.all(pending);
    const lowestHeld = throttle.held.reduce(
      (lowest, entry) => Math.min(lowest, entry.item.subscriber.id - 1),
      batch.last,
    );
    await this.options.distribution.recordRecipients(
      context.campaign.id,
      [...batch.skipped, ...queued],
      lowestHeld,
    );
    await this.releaseHeld(context, throttle, this.options.settings.batchSize, signal);
  }

  /** Sends held messages that may go now, sleeping while more than `maxHeld` wait. */
  private async releaseHeld(
    context: SendContext,
    throttle: Throttle,
    maxHeld: number,
    signal?: AbortSignal,
  ): Promise<void> {
    const { held } = throttle;
    while (held.length > 0) {
      const now = Date.now();
      const pending: Promise<CampaignRecipient>[] = [];
      for (let index = 0; index < held.length;) {
        const entry = held[index]!;
        if (entry.readyAt <= now) {
          const domain = domainOf(entry.item.subscriber.address) ?? '';
          const wait = throttle.domains.take(domain, now);
          if (wait === 0) {
            held.splice(index, 1);
            pending.push(this.enqueueOne(context, entry.item));
            continue;
          }
          entry.readyAt = now + wait;
        }
        index++;
      }
      const queued = await Promise.all(pending);
      if (queued.length > 0) {
        await this.options.distribution.recordRecipients(context.campaign.id, queued, 0);
      }
      if (held.length <= maxHeld || signal?.aborted) return;
      const earliest = held.reduce((soonest, entry) => Math.min(soonest, entry.readyAt), Infinity);
      await pause(Math.max(1, earliest - Date.now()), signal);
    }
  }

  /** Enqueues one signed message; returns the recipient row to record. */
  private async enqueueOne(context: SendContext, item: Prepared): Promise<CampaignRecipient> {
    const campaignId = context.campaign.id;
    const result = await this.options.store.enqueue({
      body: item.message,
      origin: 'campaign',
      originalSender: item.verp,
      recipients: [
        {
          recipient: item.subscriber.address,
          sender: item.verp,
          // Herald's own failures are read back from the queue, so no DSN is generated for them.
          bounceTo: '',
          campaignId,
          subscriberId: item.subscriber.id,
        },
      ],
    });
    this.options.notify?.();
    this.meter(campaignId).add(1, Date.now());
    return {
      campaignId,
      subscriberId: item.subscriber.id,
      address: item.subscriber.address,
      status: 'queued',
      messageId: result.messageId,
      detail: '',
      updatedAt: new Date(),
    };
  }

  private meter(campaignId: number): RateMeter {
    let meter = this.meters.get(campaignId);
    if (!meter) {
      meter = new RateMeter();
      this.meters.set(campaignId, meter);
    }
    return meter;
  }

  private async requireCampaign(id: number): Promise<Campaign> {
    const campaign = await this.options.distribution.getCampaign(id);
    if (!campaign) throw new CampaignError(`campaign ${id} not found`);
    return campaign;
  }
}

/** Merge values for one subscriber: its columns, custom fields and the campaign's links. */
export function mergeContext(
  context: { campaign: Campaign; list: MailingList },
  subscriber: Subscriber,
  unsubscribeUrl: string,
): MergeContext {
  const [first = '', ...rest] = subscriber.name.split(/\s+/).filter(Boolean);
  return {
    first_name: first,
    last_name: rest.join(' '),
    ...subscriber.fields,
    email: subscriber.address,
    name: subscriber.name,
    unsubscribe_url: unsubscribeUrl,
    list_name: context.list.name,
    campaign_name: context.campaign.name,
  };
}
