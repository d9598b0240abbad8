/**
 * Row mapping shared by the SQLite and PostgreSQL distribution stores. Both read the same
 * schema; PostgreSQL returns BIGINT columns and counts as strings, so every mapper converts with
 * `Number`, which is exact below 2^53. Times are integer milliseconds since the epoch.
 */
import type {
  ApiTokenRecord,
  Campaign,
  CampaignRecipient,
  MailingList,
  OpenBatch,
  Organisation,
  RecipientStatus,
  Subscriber,
  SubscriberStatus,
  TokenRole,
} from '../distribution/types.js';

/** A row as either driver returns it. */
export type Row = Record<string, string | number | Buffer | null>;

export const RECIPIENT_STATUSES: RecipientStatus[] = [
  'queued',
  'delivered',
  'deferred',
  'bounced',
  'complained',
  'unsubscribed',
  'suppressed',
];
export const SUBSCRIBER_STATUSES: SubscriberStatus[] = [
  'subscribed',
  'unsubscribed',
  'bounced',
  'complained',
];

/** Maps a `campaign_batches` row. */
export function toOpenBatch(row: Row): OpenBatch {
  return {
    campaignId: Number(row.campaign_id),
    afterId: Number(row.after_id),
    lastId: Number(row.last_id),
    owner: String(row.owner),
    leaseUntil: new Date(Number(row.lease_until)),
    createdAt: new Date(Number(row.created_at)),
  };
}

/**
 * Computes the send window of a batch of `count` messages under the campaign's rate: it starts at the
 * later of now and the campaign's `rate_slot`, and `next` is the slot after it (null when
 * the campaign has no rate).
 */
export function rateSlot(
  campaign: Row,
  count: number,
  now: number,
): { start: number; next: number | null } {
  const rate = Number(campaign.rate_per_minute);
  if (!(rate > 0)) return { start: now, next: null };
  const start = Math.max(now, campaign.rate_slot === null ? 0 : Number(campaign.rate_slot));
  return { start, next: start + Math.ceil((count * 60_000) / rate) };
}

export function mapRow<T>(row: Row | undefined, map: (row: Row) => T): T | undefined {
  return row === undefined ? undefined : map(row);
}

export function dateOrNull(value: Row[string] | undefined): Date | null {
  return value === null || value === undefined ? null : new Date(Number(value));
}

export function toOrganisation(row: Row): Organisation {
  return {
    id: Number(row.id),
    name: String(row.name),
    createdAt: new Date(Number(row.created_at)),
  };
}

export function toToken(row: Row): ApiTokenRecord {
  return {
    id: Number(row.id),
    organisationId: row.organisation_id === null ? null : Number(row.organisation_id),
    role: row.role as TokenRole,
    label: String(row.label),
    createdAt: new Date(Number(row.created_at)),
  };
}

export function toList(row: Row): MailingList {
  return {
    id: Number(row.id),
    organisationId: Number(row.organisation_id),
    name: String(row.name),
    description: String(row.description),
    createdAt: new Date(Number(row.created_at)),
  };
}

export function toSubscriber(row: Row): Subscriber {
  return {
    id: Number(row.id),
    listId: Number(row.list_id),
    address: String(row.address),
    name: String(row.name),
    fields: JSON.parse(String(row.fields)) as Record<string, string>,
    status: row.status as SubscriberStatus,
    softBounces: Number(row.soft_bounces),
    createdAt: new Date(Number(row.created_at)),
    updatedAt: new Date(Number(row.updated_at)),
  };
}

export function toCampaign(row: Row): Campaign {
  return {
    id: Number(row.id),
    organisationId: Number(row.organisation_id),
    listId: Number(row.list_id),
    name: String(row.name),
    fromAddress: String(row.from_address),
    fromName: String(row.from_name),
    replyTo: String(row.reply_to),
    subject: String(row.subject),
    html: String(row.html),
    text: String(row.text),
    status: row.status as Campaign['status'],
    scheduledAt: dateOrNull(row.scheduled_at),
    startedAt: dateOrNull(row.started_at),
    finishedAt: dateOrNull(row.finished_at),
    ratePerMinute: Number(row.rate_per_minute),
    cursor: Number(row.cursor),
    createdAt: new Date(Number(row.created_at)),
  };
}

export function toRecipient(row: Row): CampaignRecipient {
  return {
    campaignId: Number(row.campaign_id),
    subscriberId: Number(row.subscriber_id),
    address: String(row.address),
    status: row.status as RecipientStatus,
    messageId: row.message_id === null ? null : String(row.message_id),
    detail: String(row.detail),
    updatedAt: new Date(Number(row.updated_at)),
  };
}
