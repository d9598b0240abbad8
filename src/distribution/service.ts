/**
 * The distribution operations that the CLI and the REST API share, with tenancy: every call
 * takes the principal making it, and an object of another organisation is reported as not
 * found (never as forbidden), so a member cannot even learn that it exists. Administrators
 * see every organisation.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

import { stringify } from 'csv-stringify';

import { domainOf, parseAddressList } from '../message/index.js';
import type { Store } from '../store/types.js';
import { checkAddress, controlCharacterIn } from './address.js';
import { compileCampaign } from './compose.js';
import { importSubscribersCsv, type ImportOptions, type ImportSummary } from './csv-import.js';
import type { CampaignProgress } from './progress.js';
import { CampaignError, type CampaignSender } from './sender.js';
import type {
  Campaign,
  CampaignEvent,
  CampaignRecipient,
  DistributionStore,
  MailingList,
  NewCampaign,
  OpenBatch,
  Organisation,
  RecipientCounts,
  RecipientStatus,
  Subscriber,
  SubscriberStatus,
  TokenRole,
} from './types.js';

export type Principal = { role: 'admin' } | { role: 'member'; organisationId: number };

export const ADMIN: Principal = { role: 'admin' };

/** The object does not exist or belongs to another organisation. */
export class NotFoundError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NotFoundError';
  }
}

/** The request is invalid. The message names the value and the reason. */
export class InvalidRequestError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidRequestError';
  }
}

/** The object is in a state that does not allow the change (a cancelled campaign resumed). */
export class StateConflictError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StateConflictError';
  }
}

/**
 * Rate thresholds that large mail platforms publish, for reports. Google's email sender
 * guidelines (in force since February 2024) ask bulk senders to keep the spam complaint rate
 * under 0.1% and never reach 0.3%. Amazon SES puts an account under review at a 5% bounce rate
 * or a 0.1% complaint rate, and may pause its sending at 10% bounces or 0.5% complaints.
 */
export const RATE_THRESHOLDS = {
  complaintTarget: 0.001,
  complaintMaximum: 0.003,
  bounceReview: 0.05,
  bouncePause: 0.1,
};

export interface CampaignReport {
  campaign: Campaign;
  progress: CampaignProgress;
  totals: RecipientCounts;
  bounceRate: number;
  complaintRate: number;
  thresholds: typeof RATE_THRESHOLDS;
  warnings: string[];
  events: CampaignEvent[];
}

export interface DistributionServiceOptions {
  store: Store;
  distribution: DistributionStore;
  /** Needed for preview, test sends and progress; the send loop itself runs elsewhere. */
  sender?: CampaignSender;
}

export class DistributionService {
  constructor(private readonly options: DistributionServiceOptions) {}

  private get db(): DistributionStore {
    return this.options.distribution;
  }

  // Organisations, domains, tokens.

  async createOrganisation(principal: Principal, name: string): Promise<Organisation> {
    requireAdmin(principal);
    if (name.trim() === '') throw new InvalidRequestError('organisation name is empty');
    return this.db.createOrganisation(name.trim());
  }

  /** Lists the unfinished campaign batches and their owners, for administrators only. */
  async openBatches(principal: Principal): Promise<OpenBatch[]> {
    requireAdmin(principal);
    return this.db.listOpenBatches();
  }

  async listOrganisations(principal: Principal): Promise<Organisation[]> {
    const all = await this.db.listOrganisations();
    return principal.role === 'admin'
      ? all
      : all.filter((org) => org.id === principal.organisationId);
  }

  async getOrganisation(principal: Principal, id: number): Promise<Organisation> {
    const organisation = await this.db.getOrganisation(id);
    if (!organisation || !canSee(principal, organisation.id)) {
      throw new NotFoundError(`organisation ${id} not found`);
    }
    return organisation;
  }

  /** Gives a hosted domain to an organisation; the domain must exist in the mail store. */
  async assignDomain(principal: Principal, organisationId: number, domain: string): Promise<void> {
    requireAdmin(principal);
    await this.getOrganisation(principal, organisationId);
    if (!(await this.options.store.getDomain(domain))) {
      throw new InvalidRequestError(
        `domain ${domain} is not hosted: add it with herald domain add`,
      );
    }
    await this.db.assignDomain(organisationId, domain);
  }

  async listDomains(principal: Principal, organisationId: number): Promise<string[]> {
    await this.getOrganisation(principal, organisationId);
    return this.db.listOrganisationDomains(organisationId);
  }

  /** Creates an API token and returns its secret, which is shown once and stored hashed. */
  async createToken(
    principal: Principal,
    organisationId: number | null,
    role: TokenRole,
    label: string,
  ): Promise<string> {
    requireAdmin(principal);
    if (role === 'member' && organisationId === null) {
      throw new InvalidRequestError('a member token needs an organisation');
    }
    if (organisationId !== null) await this.getOrganisation(principal, organisationId);
    const secret = `hrld_${randomBytes(24).toString('base64url')}`;
    await this.db.addApiToken({ organisationId, role, label, secretHash: hashToken(secret) });
    return secret;
  }

  /** Returns the principal of a bearer token, or undefined for an unknown token. */
  async authenticate(secret: string): Promise<Principal | undefined> {
    const token = await this.db.findApiToken(hashToken(secret));
    if (!token) return undefined;
    if (token.role === 'admin') return ADMIN;
    return token.organisationId === null
      ? undefined
      : { role: 'member', organisationId: token.organisationId };
  }

  // Lists and subscribers.

  async createList(
    principal: Principal,
    organisationId: number,
    name: string,
    description = '',
  ): Promise<MailingList> {
    await this.getOrganisation(principal, organisationId);
    if (name.trim() === '') throw new InvalidRequestError('list name is empty');
    return this.db.createList({ organisationId, name: name.trim(), description });
  }

  async listLists(principal: Principal): Promise<MailingList[]> {
    return this.db.listLists(principal.role === 'admin' ? undefined : principal.organisationId);
  }

  async getList(principal: Principal, id: number): Promise<MailingList> {
    const list = await this.db.getList(id);
    if (!list || !canSee(principal, list.organisationId))
      throw new NotFoundError(`list ${id} not found`);
    return list;
  }

  async addSubscriber(
    principal: Principal,
    listId: number,
    input: { address: string; name?: string; fields?: Record<string, string> },
  ): Promise<Subscriber> {
    await this.getList(principal, listId);
    const check = checkAddress(input.address);
    if (!check.ok) throw new InvalidRequestError(`${input.address}: ${check.reason}`);
    for (const [key, value] of Object.entries({ name: input.name ?? '', ...input.fields })) {
      const control = controlCharacterIn(value);
      if (control) throw new InvalidRequestError(`${key}: control character ${control}`);
    }
    const { ids } = await this.db.addSubscribers(listId, [{ ...input, address: check.address }]);
    const subscriber =
      ids[0] === null || ids[0] === undefined
        ? await this.db.findSubscriber(listId, check.address)
        : await this.db.getSubscriber(ids[0]);
    return subscriber!;
  }

  async listSubscribers(
    principal: Principal,
    listId: number,
    options: { afterId?: number; limit?: number; status?: SubscriberStatus },
  ): Promise<{ subscribers: Subscriber[]; nextAfterId: number | null }> {
    await this.getList(principal, listId);
    return this.db.pageSubscribers(listId, {
      afterId: options.afterId ?? 0,
      limit: Math.min(options.limit ?? 100, 1000),
      status: options.status,
    });
  }

  async importCsv(
    principal: Principal,
    listId: number,
    input: Readable,
    options: Omit<ImportOptions, 'write'> = {},
  ): Promise<ImportSummary> {
    await this.getList(principal, listId);
    return importSubscribersCsv(input, {
      ...options,
      write: async (batch) => (await this.db.addSubscribers(listId, batch)).ids,
    });
  }

  /**
   * Writes the list as CSV: address, name, status, the custom fields as JSON, creation time.
   * `end: false` leaves the output open (standard output cannot be closed).
   */
  async exportCsv(
    principal: Principal,
    listId: number,
    output: Writable,
    options: { end?: boolean } = {},
  ): Promise<number> {
    await this.getList(principal, listId);
    const db = this.db;
    let count = 0;
    async function* rows(): AsyncGenerator<Record<string, string>> {
      let afterId = 0;
      for (;;) {
        const page = await db.pageSubscribers(listId, { afterId, limit: 1000 });
        for (const subscriber of page.subscribers) {
          count += 1;
          yield {
            email: subscriber.address,
            name: subscriber.name,
            status: subscriber.status,
            fields: JSON.stringify(subscriber.fields),
            created_at: subscriber.createdAt.toISOString(),
          };
        }
        if (page.nextAfterId === null) return;
        afterId = page.nextAfterId;
      }
    }
    const columns = ['email', 'name', 'status', 'fields', 'created_at'];
    await pipeline(rows(), stringify({ header: true, columns }), output, {
      end: options.end ?? true,
    });
    return count;
  }

  // Campaigns.

  async createCampaign(principal: Principal, input: NewCampaign): Promise<Campaign> {
    const list = await this.getList(principal, input.listId);
    if (list.organisationId !== input.organisationId)
      throw new NotFoundError(`list ${input.listId} not found`);
    const mailbox = parseAddressList(input.fromAddress)[0];
    const domain = mailbox ? domainOf(mailbox.address) : undefined;
    if (!mailbox || !domain || !checkAddress(mailbox.address).ok) {
      throw new InvalidRequestError(`From address "${input.fromAddress}" is invalid`);
    }
    if ((await this.db.domainOwner(domain)) !== input.organisationId) {
      throw new InvalidRequestError(
        `From domain ${domain} is not a domain of organisation ${input.organisationId}: assign it with herald org add-domain`,
      );
    }
    if (input.subject.trim() === '') throw new InvalidRequestError('subject is empty');
    if (input.html.trim() === '') throw new InvalidRequestError('HTML body is empty');
    compileCampaign({ subject: input.subject, html: input.html, text: input.text ?? '' });
    return this.db.createCampaign({ ...input, fromName: input.fromName || mailbox.name || '' });
  }

  async listCampaigns(principal: Principal): Promise<Campaign[]> {
    return this.db.listCampaigns(principal.role === 'admin' ? undefined : principal.organisationId);
  }

  async getCampaign(principal: Principal, id: number): Promise<Campaign> {
    const campaign = await this.db.getCampaign(id);
    if (!campaign || !canSee(principal, campaign.organisationId)) {
      throw new NotFoundError(`campaign ${id} not found`);
    }
    return campaign;
  }

  /** Renders the message for one subscriber (the first subscribed one when not given). */
  async preview(principal: Principal, campaignId: number, address?: string): Promise<Buffer> {
    const campaign = await this.getCampaign(principal, campaignId);
    const sender = this.requireSender();
    const context = await sender.prepare(campaign);
    const subscriber = address
      ? await this.db.findSubscriber(campaign.listId, address)
      : (
          await this.db.pageSubscribers(campaign.listId, {
            afterId: 0,
            limit: 1,
            status: 'subscribed',
          })
        ).subscribers[0];
    if (!subscriber)
      throw new NotFoundError(
        `subscriber ${address ?? '(any)'} not found on list ${campaign.listId}`,
      );
    return sender.preview(context, subscriber);
  }

  async sendTest(principal: Principal, campaignId: number, addresses: string[]): Promise<string[]> {
    const campaign = await this.getCampaign(principal, campaignId);
    for (const address of addresses) {
      const check = checkAddress(address);
      if (!check.ok) throw new InvalidRequestError(`${address}: ${check.reason}`);
    }
    const sender = this.requireSender();
    return sender.sendTest(await sender.prepare(campaign), addresses);
  }

  /** Starts a draft now (`sending`) or at a time (`scheduled`); the sender loop picks it up. */
  async send(principal: Principal, campaignId: number, at?: Date): Promise<Campaign> {
    const campaign = await this.getCampaign(principal, campaignId);
    if (campaign.status !== 'draft' && campaign.status !== 'scheduled') {
      throw new StateConflictError(
        `campaign ${campaignId} is ${campaign.status}: only a draft or scheduled campaign can be sent`,
      );
    }
    if (this.options.sender) await this.options.sender.prepare(campaign);
    if (at && at.getTime() > Date.now()) {
      await this.db.updateCampaign(campaignId, { status: 'scheduled', scheduledAt: at });
    } else {
      await this.db.updateCampaign(campaignId, { status: 'sending', startedAt: new Date() });
    }
    return this.getCampaign(principal, campaignId);
  }

  async pause(principal: Principal, campaignId: number): Promise<Campaign> {
    return this.transition(principal, campaignId, ['sending', 'scheduled'], 'paused');
  }

  async resume(principal: Principal, campaignId: number): Promise<Campaign> {
    return this.transition(principal, campaignId, ['paused'], 'sending');
  }

  async cancel(principal: Principal, campaignId: number): Promise<Campaign> {
    return this.transition(
      principal,
      campaignId,
      ['draft', 'scheduled', 'sending', 'paused'],
      'cancelled',
    );
  }

  async progress(principal: Principal, campaignId: number): Promise<CampaignProgress> {
    await this.getCampaign(principal, campaignId);
    return this.requireSender().progress(campaignId);
  }

  async report(
    principal: Principal,
    campaignId: number,
    eventLimit = 100,
  ): Promise<CampaignReport> {
    const progress = await this.progress(principal, campaignId);
    const campaign = await this.getCampaign(principal, campaignId);
    const totals = await this.db.countRecipients(campaignId);
    const bounceRate = progress.sent === 0 ? 0 : totals.bounced / progress.sent;
    const complaintRate = progress.sent === 0 ? 0 : totals.complained / progress.sent;
    const warnings: string[] = [];
    if (complaintRate >= RATE_THRESHOLDS.complaintMaximum) {
      warnings.push(`complaint rate ${percent(complaintRate)} is at or above the 0.3% maximum`);
    } else if (complaintRate >= RATE_THRESHOLDS.complaintTarget) {
      warnings.push(`complaint rate ${percent(complaintRate)} is above the 0.1% target`);
    }
    if (bounceRate >= RATE_THRESHOLDS.bouncePause) {
      warnings.push(
        `bounce rate ${percent(bounceRate)} is at or above 10%, where sending may be paused`,
      );
    } else if (bounceRate >= RATE_THRESHOLDS.bounceReview) {
      warnings.push(
        `bounce rate ${percent(bounceRate)} is at or above 5%, where accounts are reviewed`,
      );
    }
    return {
      campaign,
      progress,
      totals,
      bounceRate,
      complaintRate,
      thresholds: RATE_THRESHOLDS,
      warnings,
      events: await this.db.listCampaignEvents(campaignId, eventLimit),
    };
  }

  async listRecipients(
    principal: Principal,
    campaignId: number,
    options: { status?: RecipientStatus; limit?: number; afterId?: number },
  ): Promise<CampaignRecipient[]> {
    await this.getCampaign(principal, campaignId);
    return this.db.listRecipients(campaignId, options);
  }

  private async transition(
    principal: Principal,
    campaignId: number,
    from: Campaign['status'][],
    to: Campaign['status'],
  ): Promise<Campaign> {
    const campaign = await this.getCampaign(principal, campaignId);
    if (!from.includes(campaign.status)) {
      throw new StateConflictError(
        `campaign ${campaignId} is ${campaign.status}: cannot change it to ${to}`,
      );
    }
    await this.db.updateCampaign(campaignId, {
      status: to,
      ...(to === 'cancelled' ? { finishedAt: new Date() } : {}),
      ...(to === 'sending' && !campaign.startedAt ? { startedAt: new Date() } : {}),
    });
    return this.getCampaign(principal, campaignId);
  }

  private requireSender(): CampaignSender {
    if (!this.options.sender) throw new CampaignError('this operation needs the campaign sender');
    return this.options.sender;
  }
}

function canSee(principal: Principal, organisationId: number): boolean {
  return principal.role === 'admin' || principal.organisationId === organisationId;
}

function requireAdmin(principal: Principal): void {
  if (principal.role !== 'admin') throw new NotFoundError('not found');
}

/** SHA-256 of a token secret, hex: tokens are random, so no salt or slow hash is needed. */
export function hashToken(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

function percent(rate: number): string {
  return `${(rate * 100).toFixed(2)}%`;
}
