/** Conversion of SQLite rows into the store's types: times are milliseconds, booleans 0/1. */
import type {
  Alias,
  Credential,
  DkimKeyRecord,
  Domain,
  QueueEntry,
  QueueEvent,
  QueueStatus,
} from './types.js';

/** A row as better-sqlite3 returns it: BLOBs are Buffers, integers are numbers. */
export type Row = Record<string, string | number | Buffer | null>;

export function nullableNumber(value: Row[string] | undefined): number | null {
  return value === null || value === undefined ? null : Number(value);
}

export function nullableString(value: Row[string] | undefined): string | null {
  return value === null || value === undefined ? null : String(value);
}

export function toDomain(row: Row): Domain {
  return {
    id: Number(row.id),
    name: String(row.name),
    srsDomain: nullableString(row.srs_domain),
    organisationId: nullableNumber(row.organisation_id),
    createdAt: new Date(Number(row.created_at)),
  };
}

/**
 * The `dkim_keys` columns of a `DkimKeyRecord`: every column but `private_key_pem`, so listings
 * never read the private key (both backends select these).
 */
export const DKIM_KEY_COLUMNS =
  'id, domain_id, selector, algorithm, private_key_path, public_record, status, created_at';

export function toDkimKey(row: Row): DkimKeyRecord {
  return {
    id: Number(row.id),
    domainId: Number(row.domain_id),
    selector: String(row.selector),
    algorithm: row.algorithm as DkimKeyRecord['algorithm'],
    privateKeyPath: String(row.private_key_path),
    publicRecord: String(row.public_record),
    status: row.status as DkimKeyRecord['status'],
    createdAt: new Date(Number(row.created_at)),
  };
}

export function toAlias(row: Row): Alias {
  return {
    id: Number(row.id),
    domainId: Number(row.domain_id),
    localPart: String(row.local_part),
    targets: JSON.parse(String(row.targets)) as string[],
    enabled: Number(row.enabled) === 1,
    dmarcPolicy: row.dmarc_policy as Alias['dmarcPolicy'],
    createdAt: new Date(Number(row.created_at)),
  };
}

export function toCredential(row: Row): Credential {
  return {
    id: Number(row.id),
    domainId: Number(row.domain_id),
    username: String(row.username),
    passwordHash: String(row.password_hash),
    createdAt: new Date(Number(row.created_at)),
  };
}

export function toEntry(row: Row): QueueEntry {
  return {
    id: Number(row.id),
    messageId: String(row.message_id),
    recipient: String(row.recipient),
    recipientDomain: String(row.recipient_domain),
    sender: String(row.sender),
    bounceTo: String(row.bounce_to),
    origin: row.origin as QueueEntry['origin'],
    status: row.status as QueueStatus,
    attempts: Number(row.attempts),
    createdAt: new Date(Number(row.created_at)),
    nextAttemptAt: new Date(Number(row.next_attempt_at)),
    lastReply: nullableString(row.last_reply),
    lastDsn: nullableString(row.last_dsn),
    campaignId: nullableNumber(row.campaign_id),
    subscriberId: nullableNumber(row.subscriber_id),
  };
}

export function toEvent(row: Row): QueueEvent {
  return {
    id: Number(row.id),
    entryId: Number(row.entry_id),
    messageId: String(row.message_id),
    time: new Date(Number(row.time)),
    kind: row.kind as QueueEvent['kind'],
    mx: nullableString(row.mx),
    reply: nullableString(row.reply),
    dsn: nullableString(row.dsn),
    verdict: String(row.verdict),
  };
}
