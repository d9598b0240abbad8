/**
 * The campaign sender. It expands the list in batches in subscriber-id order (never the whole
 * list in memory), skips suppressed and already-queued recipients, renders and composes each
 * message, signs a whole batch in the DKIM engine's worker pool while the next batch is
 * composed, and enqueues every message with origin `campaign` and a per-recipient VERP
 * return path. Batches are claimed under a lease, so several processes can send one
 * campaign without overlap, and a batch whose sender died is taken over. A batch's recipients
 * are recorded as it completes, so a paused, cancelled or crashed send resumes at the right
 * subscriber.
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
  CampaignBatch,
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
  /**
   * Owner name of this sender's batch leases: the server passes its node name, the one its
   * delivery workers use, so the admin pages show both kinds of work under one node.
   */
  owner?: string;
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

interface BatchItem extends Prepared {
  /** `afterId` of the claimed batch the message belongs to. */
  batch: number;
}

interface PreparedBatch {
  items: BatchItem[];
  /** Recipients not sent: suppressed, or queued before a restart. */
  skipped: CampaignRecipient[];
  batch: CampaignBatch;
}

/** State of one run of a campaign, kept between batches. */
interface SendState {
  campaign: TokenBucket;
  domains: DomainThrottle;
  /**
   * Messages waiting for a per-domain limit. A message with a send time reserved in the store
   * (`reserved`) goes when that time comes. The others take a token of the local throttle again.
   */
  held: { item: BatchItem; readyAt: number; reserved?: boolean }[];
  /** Held messages per open batch; a batch is recorded done when its count reaches zero. */
  heldPerBatch: Map<number, number>;
  /** When this sender last renewed its batch leases. */
  renewedAt: number;
  /** When the campaign's status was last read, and whether it had left `sending`. */
  statusReadAt: number;
  stopped: boolean;
}

/** How often a send rereads the campaign's status, so a pause or cancel acts within this time. */
const STATUS_CHECK_MS = 500;

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

export class CampaignSender {
  private readonly meters = new Map<number, RateMeter>();
  /** Owner name of this process's batch leases. */
  private readonly runnerId: string;

  constructor(private readonly options: CampaignSenderOptions) {
    this.runnerId = options.owner ?? `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  }

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
   * Sends a campaign whose status is `sending`: claims batches of its list until none is left,
   * it is paused or cancelled (checked between batches), or `signal` aborts. Other processes
   * (more nodes, the server's scheduler beside a `herald campaign send`) may claim batches of
   * the same campaign at the same time. The sender that records the last batch marks the
   * campaign `sent`.
   */
  async run(
    campaignId: number,
    signal?: AbortSignal,
    onBatch?: (progress: CampaignProgress) => void,
  ): Promise<Campaign> {
    const { distribution, settings } = this.options;
    let campaign = await this.requireCampaign(campaignId);
    if (campaign.status !== 'sending') return campaign;
    const context = await this.prepare(campaign);

    const now = Date.now();
    const state: SendState = {
      campaign: new TokenBucket(campaign.ratePerMinute, now),
      domains: new DomainThrottle(settings.domainRules, campaign.startedAt?.getTime() ?? now),
      held: [],
      heldPerBatch: new Map(),
      renewedAt: now,
      statusReadAt: now,
      stopped: false,
    };
    let signing: Promise<PreparedBatch> | undefined;
    for (;;) {
      const claimed = signal?.aborted
        ? undefined
        : await distribution.claimCampaignBatch(campaignId, this.runnerId, {
            limit: settings.batchSize,
            leaseMs: settings.batchLeaseMs,
          });
      if (claimed?.takenOver) {
        this.options.logger?.info(
          { campaign: campaignId, afterId: claimed.afterId, lastId: claimed.lastId },
          'taking over a batch whose sender stopped renewing its lease',
        );
      }
      // The next batch is composed and handed to the signing pool before the previous one,
      // signed meanwhile, is enqueued.
      const next = claimed ? this.prepareBatch(context, claimed) : undefined;
      if (signing) await this.enqueueBatch(context, await signing, state, signal);
      signing = next;
      if (!next) break;
      if (onBatch) onBatch(await this.progress(campaignId));
      campaign = await this.requireCampaign(campaignId);
      if (campaign.status !== 'sending') {
        state.stopped = true;
        break;
      }
    }
    // A batch claimed before a pause, a cancel or an abort is given back at once, so a resumed
    // run or another node takes it over without waiting for its lease to run out.
    if (signing) {
      const last = await signing;
      if (await this.keepSending(context, state, signal)) {
        await this.enqueueBatch(context, last, state, signal);
      } else {
        await distribution.releaseCampaignBatch(campaignId, last.batch.afterId, this.runnerId);
      }
    }
    await this.releaseHeld(context, state, 0, signal);

    if (!signal?.aborted && state.held.length === 0) await distribution.finishCampaign(campaignId);
    return this.requireCampaign(campaignId);
  }

  /** Brings recipient statuses up to date with the queue and returns the campaign's progress. */
  async progress(campaignId: number): Promise<CampaignProgress> {
    const { distribution } = this.options;
    await this.syncDeliveries(campaignId);
    const campaign = await this.requireCampaign(campaignId);
    const counts = await distribution.countRecipients(campaignId);
    const recorded = Object.values(counts).reduce((sum, value) => sum + value, 0);
    const finished = campaign.status === 'sent' || campaign.status === 'cancelled';
    const notReached = finished ? 0 : await distribution.countUnsent(campaignId);
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

  private async prepareBatch(context: SendContext, batch: CampaignBatch): Promise<PreparedBatch> {
    const { distribution } = this.options;
    const campaignId = context.campaign.id;
    const { subscribers } = batch;
    const addresses = subscribers.map((subscriber) => subscriber.address);
    const ids = subscribers.map((subscriber) => subscriber.id);
    const [suppressed, queued] = await Promise.all([
      distribution.suppressedAmong(context.campaign.organisationId, addresses),
      distribution.alreadyQueued(campaignId, ids),
    ]);

    const items: BatchItem[] = [];
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
        skipped.push({ ...base, status: 'queued', detail: 'queued by an earlier run' });
      } else {
        items.push({ ...this.prepareOne(context, subscriber), batch: batch.afterId });
      }
    }
    const signed = await this.sign(
      context,
      items.map((item) => item.message),
    );
    signed.forEach((body, index) => (items[index]!.message = body));
    return { items, skipped, batch };
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
   * its recipients and marks it done. A message for a domain over its limit waits in the held
   * list, and its batch stays open until the last of them is queued. When more than a batch of
   * messages is held, the sender sleeps until one may go.
   */
  private async enqueueBatch(
    context: SendContext,
    prepared: PreparedBatch,
    state: SendState,
    signal?: AbortSignal,
  ): Promise<void> {
    const { distribution } = this.options;
    const { batch } = prepared;
    const slotWait = batch.startAt.getTime() - Date.now();
    if (slotWait > 0) await pause(slotWait, signal);
    if (!(await this.renew(context, state)).has(batch.afterId)) {
      // The lease ran out while the batch was signed or waited for its slot, and another
      // sender has claimed it: sending it here as well would duplicate its messages.
      this.options.logger?.warn(
        { campaign: context.campaign.id, afterId: batch.afterId },
        'batch lease lost before sending; another sender has it',
      );
      return;
    }
    const pending: Promise<CampaignRecipient>[] = [];
    let held = 0;
    for (const item of prepared.items) {
      const wait = state.campaign.take(Date.now());
      if (wait > 0) await pause(wait, signal);
      if (!(await this.keepSending(context, state, signal))) {
        // Paused, cancelled or stopped mid-batch: record what went out and give the batch back.
        // The next sender to claim it skips the subscribers queued here.
        const queued = await Promise.all(pending);
        await distribution.recordRecipients(context.campaign.id, [...prepared.skipped, ...queued]);
        await distribution.releaseCampaignBatch(context.campaign.id, batch.afterId, this.runnerId);
        state.held = state.held.filter((entry) => entry.item.batch !== batch.afterId);
        return;
      }
      const domain = domainOf(item.subscriber.address) ?? '';
      const shared = await this.reserveSharedStart(context, state, domain);
      const domainWait = shared ?? state.domains.take(domain, Date.now());
      if (domainWait > 0) {
        state.held.push({ item, readyAt: Date.now() + domainWait, reserved: shared !== undefined });
        held++;
        continue;
      }
      pending.push(this.enqueueOne(context, item));
    }
    const queued = await Promise.all(pending);
    const claim = { afterId: batch.afterId, owner: this.runnerId };
    if (held === 0) {
      if (
        !(await distribution.recordBatch(
          context.campaign.id,
          [...prepared.skipped, ...queued],
          claim,
        ))
      ) {
        this.options.logger?.warn(
          { campaign: context.campaign.id, afterId: batch.afterId },
          'batch lease lost while sending; its new holder skips the messages queued here',
        );
      }
    } else {
      await distribution.recordRecipients(context.campaign.id, [...prepared.skipped, ...queued]);
      state.heldPerBatch.set(batch.afterId, held);
    }
    await this.releaseHeld(context, state, this.options.settings.batchSize, signal);
  }

  /** Sends held messages that may go now, sleeping while more than `maxHeld` wait. */
  private async releaseHeld(
    context: SendContext,
    state: SendState,
    maxHeld: number,
    signal?: AbortSignal,
  ): Promise<void> {
    const { distribution } = this.options;
    const campaignId = context.campaign.id;
    while (state.held.length > 0) {
      if (!(await this.keepSending(context, state, signal))) {
        for (const afterId of state.heldPerBatch.keys()) {
          await distribution.releaseCampaignBatch(campaignId, afterId, this.runnerId);
        }
        state.heldPerBatch.clear();
        state.held = [];
        return;
      }
      const now = Date.now();
      const pending: Promise<CampaignRecipient>[] = [];
      const released: number[] = [];
      for (let index = 0; index < state.held.length;) {
        const entry = state.held[index]!;
        if (entry.readyAt <= now) {
          const domain = domainOf(entry.item.subscriber.address) ?? '';
          const wait = entry.reserved ? 0 : state.domains.take(domain, now);
          if (wait === 0) {
            state.held.splice(index, 1);
            released.push(entry.item.batch);
            pending.push(this.enqueueOne(context, entry.item));
            continue;
          }
          entry.readyAt = now + wait;
        }
        index++;
      }
      const queued = await Promise.all(pending);
      if (queued.length > 0) await distribution.recordRecipients(campaignId, queued);
      for (const afterId of released) {
        const left = (state.heldPerBatch.get(afterId) ?? 1) - 1;
        if (left > 0) {
          state.heldPerBatch.set(afterId, left);
          continue;
        }
        state.heldPerBatch.delete(afterId);
        await distribution.recordBatch(campaignId, [], { afterId, owner: this.runnerId });
      }
      if (state.held.length <= maxHeld || signal?.aborted) return;
      const earliest = state.held.reduce(
        (soonest, entry) => Math.min(soonest, entry.readyAt),
        Infinity,
      );
      await pause(Math.max(1, Math.min(earliest - Date.now(), this.renewEvery())), signal);
      if (Date.now() - state.renewedAt >= this.renewEvery()) await this.renew(context, state);
    }
  }

  /**
   * Reserves the next send time for `domain` under its rule in the store, when the store shares
   * reservations between nodes (PostgreSQL), and returns the milliseconds to wait. Returns
   * undefined when no rule applies or the store keeps no reservations, so the local throttle
   * decides. The key names the campaign and the rule, so each campaign ramps on its own.
   */
  private async reserveSharedStart(
    context: SendContext,
    state: SendState,
    domain: string,
  ): Promise<number | undefined> {
    const { store } = this.options;
    if (!store.reserveDestinationStart) return undefined;
    const rate = state.domains.rateFor(domain, Date.now());
    if (!rate || rate.perMinute <= 0) return undefined;
    return store.reserveDestinationStart(
      `campaign:${context.campaign.id}:${rate.rule}`,
      rate.perMinute,
    );
  }

  /**
   * False once `signal` has aborted or the campaign has left `sending` (paused or cancelled).
   * The status is read at most every `STATUS_CHECK_MS`.
   */
  private async keepSending(
    context: SendContext,
    state: SendState,
    signal?: AbortSignal,
  ): Promise<boolean> {
    if (signal?.aborted) return false;
    if (state.stopped) return false;
    const now = Date.now();
    if (now - state.statusReadAt < STATUS_CHECK_MS) return true;
    state.statusReadAt = now;
    const campaign = await this.options.distribution.getCampaign(context.campaign.id);
    state.stopped = campaign?.status !== 'sending';
    return !state.stopped;
  }

  /** Renewal interval of batch leases: a third of the lease, so two renewals may fail. */
  private renewEvery(): number {
    return Math.max(1, Math.floor(this.options.settings.batchLeaseMs / 3));
  }

  /**
   * Renews this sender's batch leases and returns the batches it still holds. Held messages of
   * a batch claimed by another sender are dropped: that sender sends them.
   */
  private async renew(context: SendContext, state: SendState): Promise<Set<number>> {
    const now = Date.now();
    const kept = await this.options.distribution.renewCampaignBatches(
      context.campaign.id,
      this.runnerId,
      this.options.settings.batchLeaseMs,
    );
    state.renewedAt = now;
    const lost = [...state.heldPerBatch.keys()].filter((afterId) => !kept.has(afterId));
    if (lost.length > 0) {
      this.options.logger?.warn(
        { campaign: context.campaign.id, batches: lost },
        'batch leases lost while messages were held; their new holder sends them',
      );
      for (const afterId of lost) state.heldPerBatch.delete(afterId);
      state.held = state.held.filter((entry) => kept.has(entry.item.batch));
    }
    return kept;
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
