/**
 * The distribution model (organisations, lists, subscribers, suppression, campaigns) and the
 * `DistributionStore` interface that keeps it. The SQLite implementation lives in
 * `src/store/distribution-sqlite.ts` and shares the database file of the mail store, with its
 * own tables and migrations, so a PostgreSQL backend can implement the same interface later.
 */

export interface Organisation {
  id: number;
  name: string;
  createdAt: Date;
}

/** An `admin` token reads and changes every organisation, a `member` token only its own. */
export type TokenRole = 'admin' | 'member';

/** An API token as stored: only the SHA-256 of the secret is kept. */
export interface ApiTokenRecord {
  id: number;
  /** Null for an administrator token that belongs to no organisation. */
  organisationId: number | null;
  role: TokenRole;
  label: string;
  createdAt: Date;
}

export interface MailingList {
  id: number;
  organisationId: number;
  name: string;
  description: string;
  createdAt: Date;
}

export type SubscriberStatus = 'subscribed' | 'unsubscribed' | 'bounced' | 'complained';

export interface Subscriber {
  id: number;
  listId: number;
  /** Address as imported; matching against it ignores case. */
  address: string;
  name: string;
  fields: Record<string, string>;
  status: SubscriberStatus;
  /** Soft bounces since the last successful delivery. */
  softBounces: number;
  createdAt: Date;
  updatedAt: Date;
}

export interface NewSubscriber {
  address: string;
  name?: string;
  fields?: Record<string, string>;
  status?: SubscriberStatus;
}

export type SuppressionReason =
  'hard-bounce' | 'soft-bounce' | 'complaint' | 'unsubscribe' | 'manual';

export interface Suppression {
  organisationId: number;
  /** Lower-cased address. */
  address: string;
  reason: SuppressionReason;
  detail: string;
  createdAt: Date;
}

export type CampaignStatus = 'draft' | 'scheduled' | 'sending' | 'paused' | 'cancelled' | 'sent';

export interface Campaign {
  id: number;
  organisationId: number;
  listId: number;
  name: string;
  /** `Name <local@domain>` or a bare address at one of the organisation's domains. */
  fromAddress: string;
  fromName: string;
  replyTo: string;
  subject: string;
  html: string;
  /** Plain-text body; empty means "generate it from the HTML". */
  text: string;
  status: CampaignStatus;
  scheduledAt: Date | null;
  startedAt: Date | null;
  finishedAt: Date | null;
  /** Messages per minute for the whole campaign; 0 means as fast as signing allows. */
  ratePerMinute: number;
  /**
   * Highest subscriber id claimed by a sender: batches above it are still to be claimed, and
   * unfinished batches below it are in `campaign_batches`.
   */
  cursor: number;
  createdAt: Date;
}

export type NewCampaign = Pick<
  Campaign,
  'organisationId' | 'listId' | 'name' | 'fromAddress' | 'subject' | 'html'
> &
  Partial<Pick<Campaign, 'fromName' | 'replyTo' | 'text' | 'ratePerMinute' | 'scheduledAt'>>;

/** The state of one recipient of a campaign. */
export type RecipientStatus =
  'queued' | 'delivered' | 'deferred' | 'bounced' | 'complained' | 'unsubscribed' | 'suppressed';

export interface CampaignRecipient {
  campaignId: number;
  subscriberId: number;
  address: string;
  status: RecipientStatus;
  /** Queue id of the message, once queued. */
  messageId: string | null;
  detail: string;
  updatedAt: Date;
}

export interface CampaignEvent {
  id: number;
  campaignId: number;
  subscriberId: number | null;
  time: Date;
  kind:
    'queued' | 'delivered' | 'deferred' | 'bounced' | 'complained' | 'unsubscribed' | 'suppressed';
  detail: string;
}

/** Totals of one campaign's recipients by status. */
export type RecipientCounts = Record<RecipientStatus, number>;

export interface SubscriberPage {
  subscribers: Subscriber[];
  /** Pass as `afterId` to get the next page; null at the end. */
  nextAfterId: number | null;
}

/**
 * A range of a campaign's list claimed by one sender: the subscribed subscribers with ids in
 * (`afterId`, `lastId`]. The sender holds it under a lease until it records the batch.
 */
export interface CampaignBatch {
  campaignId: number;
  afterId: number;
  lastId: number;
  subscribers: Subscriber[];
  /** Time from which the batch may go out, so the campaign's rate applies across senders. */
  startAt: Date;
  /** True when the batch was claimed before by a sender whose lease ran out. */
  takenOver: boolean;
}

/** An unfinished batch, for the admin pages: which sender works on which range. */
export interface OpenBatch {
  campaignId: number;
  afterId: number;
  lastId: number;
  owner: string;
  leaseUntil: Date;
  createdAt: Date;
}

/** Identifies a claimed batch and its holder. */
export interface BatchClaim {
  afterId: number;
  owner: string;
}

export interface AddSubscribersResult {
  /** Ids of the rows inserted, in input order; null where the address was already on the list. */
  ids: (number | null)[];
}

export interface QueueChange {
  subscriberId: number;
  status: 'delivered' | 'deferred' | 'failed';
  lastReply: string | null;
}

export interface DistributionStore {
  /** Create or upgrade the distribution tables; idempotent. */
  migrate(): Promise<void>;
  close(): Promise<void>;

  /**
   * A secret generated once and kept in the database (HMAC keys for unsubscribe tokens and
   * VERP addresses), so every node signs and checks with the same key.
   */
  getSecret(name: string): Promise<Buffer>;

  // Organisations, their domains and tokens.
  createOrganisation(name: string): Promise<Organisation>;
  getOrganisation(id: number): Promise<Organisation | undefined>;
  findOrganisation(name: string): Promise<Organisation | undefined>;
  listOrganisations(): Promise<Organisation[]>;
  /** Assigns a hosted domain (lower-cased name) to an organisation; a domain has one owner. */
  assignDomain(organisationId: number, domain: string): Promise<void>;
  listOrganisationDomains(organisationId: number): Promise<string[]>;
  /** The organisation owning a domain, if any. */
  domainOwner(domain: string): Promise<number | undefined>;
  /** Stores a token by the SHA-256 of its secret. */
  addApiToken(token: {
    organisationId: number | null;
    role: TokenRole;
    label: string;
    secretHash: string;
  }): Promise<ApiTokenRecord>;
  findApiToken(secretHash: string): Promise<ApiTokenRecord | undefined>;

  // Lists and subscribers.
  createList(list: {
    organisationId: number;
    name: string;
    description?: string;
  }): Promise<MailingList>;
  getList(id: number): Promise<MailingList | undefined>;
  findList(organisationId: number, name: string): Promise<MailingList | undefined>;
  listLists(organisationId?: number): Promise<MailingList[]>;
  /** Inserts subscribers in one transaction; an address already on the list is left unchanged. */
  addSubscribers(listId: number, subscribers: NewSubscriber[]): Promise<AddSubscribersResult>;
  getSubscriber(id: number): Promise<Subscriber | undefined>;
  findSubscriber(listId: number, address: string): Promise<Subscriber | undefined>;
  /** Subscribers in id order after `afterId`, for batch expansion and export. */
  pageSubscribers(
    listId: number,
    options: { afterId: number; limit: number; status?: SubscriberStatus },
  ): Promise<SubscriberPage>;
  setSubscriberStatus(id: number, status: SubscriberStatus): Promise<void>;
  /** Adds one soft bounce and returns the new count. */
  addSoftBounce(id: number): Promise<number>;
  countSubscribers(listId: number): Promise<Record<SubscriberStatus, number>>;
  /** Subscribed addresses of a list with an id above `afterId`: what a send has left. */
  countSubscribedAfter(listId: number, afterId: number): Promise<number>;

  // Suppression.
  suppress(entry: Omit<Suppression, 'createdAt'>): Promise<void>;
  /** The subset of `addresses` (any case) suppressed in the organisation, lower-cased. */
  suppressedAmong(organisationId: number, addresses: string[]): Promise<Set<string>>;
  listSuppressions(organisationId: number, limit?: number): Promise<Suppression[]>;

  // Campaigns.
  createCampaign(campaign: NewCampaign): Promise<Campaign>;
  getCampaign(id: number): Promise<Campaign | undefined>;
  listCampaigns(organisationId?: number): Promise<Campaign[]>;
  updateCampaign(
    id: number,
    changes: Partial<
      Pick<Campaign, 'status' | 'scheduledAt' | 'startedAt' | 'finishedAt' | 'ratePerMinute'>
    >,
  ): Promise<void>;
  /** Campaigns whose status is `scheduled` and whose time has come, or `sending` (to resume). */
  dueCampaigns(now: Date): Promise<Campaign[]>;

  /**
   * Claims the next batch of up to `limit` subscribers for `owner`: first an unfinished batch
   * whose lease has expired, else the range after the cursor (moving the cursor). Returns
   * undefined when nothing is left to claim. Claims on one campaign are serialized, so two
   * senders never hold the same range.
   */
  claimCampaignBatch(
    campaignId: number,
    owner: string,
    options: { limit: number; leaseMs: number; now?: Date },
  ): Promise<CampaignBatch | undefined>;
  /** Extends `owner`'s unfinished batches; returns the `afterId` of each batch still held. */
  renewCampaignBatches(
    campaignId: number,
    owner: string,
    leaseMs: number,
    now?: Date,
  ): Promise<Set<number>>;
  /**
   * Gives up `owner`'s unfinished batch at once (its lease ends now), so the next claim takes
   * it over, skipping the subscribers already queued. A sender that stops for a pause, a
   * cancel or a shutdown calls it instead of letting the lease run out.
   */
  releaseCampaignBatch(campaignId: number, afterId: number, owner: string): Promise<void>;
  /**
   * Records a batch's recipients and marks the batch done in one transaction. Returns false,
   * recording nothing, when `owner` no longer owns the batch.
   */
  recordBatch(
    campaignId: number,
    recipients: CampaignRecipient[],
    claim: BatchClaim,
  ): Promise<boolean>;
  /**
   * Marks a `sending` campaign `sent` when no subscriber is left to claim and no batch is
   * unfinished, in one statement, so of several senders exactly one finishes it.
   */
  finishCampaign(campaignId: number, now?: Date): Promise<boolean>;
  /** Subscribed addresses a send has not reached: after the cursor or in unfinished batches. */
  countUnsent(campaignId: number): Promise<number>;
  /** Unfinished batches of every campaign, oldest claim first, at most `limit` (1,000). */
  listOpenBatches(limit?: number): Promise<OpenBatch[]>;

  // Recipients and events.
  /**
   * Records recipients in one transaction; a recipient already recorded keeps its row. Used
   * for messages of a batch that is still open (held by a per-domain limit).
   */
  recordRecipients(campaignId: number, recipients: CampaignRecipient[]): Promise<void>;
  getRecipient(campaignId: number, subscriberId: number): Promise<CampaignRecipient | undefined>;
  /** Changes a recipient's status and records an event. */
  setRecipientStatus(
    campaignId: number,
    subscriberId: number,
    status: RecipientStatus,
    detail: string,
  ): Promise<void>;
  /** Changes many recipients' statuses in one transaction, with one event each. */
  setRecipientStatuses(
    campaignId: number,
    updates: { subscriberId: number; status: RecipientStatus; detail: string }[],
  ): Promise<void>;
  listRecipients(
    campaignId: number,
    options?: { status?: RecipientStatus; limit?: number; afterId?: number },
  ): Promise<CampaignRecipient[]>;
  countRecipients(campaignId: number): Promise<RecipientCounts>;
  listCampaignEvents(campaignId: number, limit?: number): Promise<CampaignEvent[]>;
  /**
   * Subscribers of a campaign that already have a queue entry, read from the mail store's
   * queue table: a send that stopped between enqueueing and recording a batch skips them on
   * resume instead of sending twice.
   */
  alreadyQueued(campaignId: number, subscriberIds: number[]): Promise<Set<number>>;
  /**
   * Queue entries of a campaign whose status moved on since the recipient row was last
   * updated (delivered, failed, or deferred while the recipient is still `queued`). Reads the
   * mail store's queue table in the same database, so progress and bounce handling need no
   * hook in the delivery workers.
   */
  queueChanges(campaignId: number, limit: number): Promise<QueueChange[]>;
}
