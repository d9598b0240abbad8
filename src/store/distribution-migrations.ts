/**
 * The distribution tables (organisations, lists, subscribers, suppressions, campaigns and
 * their recipients), migrated separately from the mail store's schema with their own version
 * table, in the same database. The statements use the mail store's dialect table, so a
 * PostgreSQL backend creates the same schema. Times are integer milliseconds since the epoch.
 */
import type { Migration, SqlDialect } from './migrations.js';

export const DISTRIBUTION_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'organisations, lists, subscribers, suppressions, campaigns',
    statements: (d: SqlDialect) => [
      `CREATE TABLE distribution_secrets (
        name TEXT PRIMARY KEY,
        value ${d.blob} NOT NULL,
        created_at BIGINT NOT NULL
      )`,
      `CREATE TABLE organisations (
        id ${d.serialKey},
        name TEXT NOT NULL UNIQUE,
        created_at BIGINT NOT NULL
      )`,
      // One owner per domain. Kept apart from the mail store's domains table so removing a
      // domain there does not need to know about organisations.
      `CREATE TABLE organisation_domains (
        domain TEXT PRIMARY KEY,
        organisation_id BIGINT NOT NULL REFERENCES organisations (id) ON DELETE CASCADE
      )`,
      `CREATE TABLE api_tokens (
        id ${d.serialKey},
        organisation_id BIGINT REFERENCES organisations (id) ON DELETE CASCADE,
        role TEXT NOT NULL,
        label TEXT NOT NULL,
        secret_hash TEXT NOT NULL UNIQUE,
        created_at BIGINT NOT NULL
      )`,
      `CREATE TABLE lists (
        id ${d.serialKey},
        organisation_id BIGINT NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        description TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        UNIQUE (organisation_id, name)
      )`,
      `CREATE TABLE subscribers (
        id ${d.serialKey},
        list_id BIGINT NOT NULL REFERENCES lists (id) ON DELETE CASCADE,
        address TEXT NOT NULL,
        address_key TEXT NOT NULL,
        name TEXT NOT NULL,
        fields TEXT NOT NULL,
        status TEXT NOT NULL,
        soft_bounces INTEGER NOT NULL DEFAULT 0,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        UNIQUE (list_id, address_key)
      )`,
      `CREATE TABLE suppressions (
        organisation_id BIGINT NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
        address TEXT NOT NULL,
        reason TEXT NOT NULL,
        detail TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        PRIMARY KEY (organisation_id, address)
      )`,
      `CREATE TABLE campaigns (
        id ${d.serialKey},
        organisation_id BIGINT NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
        list_id BIGINT NOT NULL REFERENCES lists (id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        from_address TEXT NOT NULL,
        from_name TEXT NOT NULL,
        reply_to TEXT NOT NULL,
        subject TEXT NOT NULL,
        html TEXT NOT NULL,
        text TEXT NOT NULL,
        status TEXT NOT NULL,
        scheduled_at BIGINT,
        started_at BIGINT,
        finished_at BIGINT,
        rate_per_minute INTEGER NOT NULL DEFAULT 0,
        cursor BIGINT NOT NULL DEFAULT 0,
        created_at BIGINT NOT NULL
      )`,
      `CREATE INDEX campaigns_due ON campaigns (status, scheduled_at)`,
      `CREATE TABLE campaign_recipients (
        campaign_id BIGINT NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
        subscriber_id BIGINT NOT NULL,
        address TEXT NOT NULL,
        status TEXT NOT NULL,
        message_id TEXT,
        detail TEXT NOT NULL,
        updated_at BIGINT NOT NULL,
        PRIMARY KEY (campaign_id, subscriber_id)
      )`,
      `CREATE INDEX campaign_recipients_status ON campaign_recipients (campaign_id, status)`,
      `CREATE TABLE campaign_events (
        id ${d.serialKey},
        campaign_id BIGINT NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
        subscriber_id BIGINT,
        time BIGINT NOT NULL,
        kind TEXT NOT NULL,
        detail TEXT NOT NULL
      )`,
      `CREATE INDEX campaign_events_campaign ON campaign_events (campaign_id, id)`,
      // Progress and resume read the queue by campaign.
      `CREATE INDEX IF NOT EXISTS queue_entries_campaign ON queue_entries (campaign_id, id)
        WHERE campaign_id IS NOT NULL`,
    ],
  },
  {
    version: 2,
    name: 'campaign send leases',
    // A lease that let one process at a time run a campaign's send loop. The batch claims of
    // version 3 replaced it, so several processes share a campaign; the columns are unused.
    statements: () => [
      `ALTER TABLE campaigns ADD COLUMN lease_owner TEXT`,
      `ALTER TABLE campaigns ADD COLUMN lease_until BIGINT`,
    ],
  },
  {
    version: 3,
    name: 'campaign batches claimed by nodes',
    // Every process sending a campaign claims ranges of its list, so several nodes expand one
    // campaign without overlap. A claim moves the campaign cursor, and an unfinished batch
    // whose lease has run out is taken over by the next claim. `rate_slot` is the time from
    // which the next batch may be sent, so the campaign's rate applies across all senders.
    statements: () => [
      `CREATE TABLE campaign_batches (
        campaign_id BIGINT NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
        after_id BIGINT NOT NULL,
        last_id BIGINT NOT NULL,
        owner TEXT NOT NULL,
        lease_until BIGINT NOT NULL,
        done INTEGER NOT NULL DEFAULT 0,
        created_at BIGINT NOT NULL,
        PRIMARY KEY (campaign_id, after_id)
      )`,
      `CREATE INDEX campaign_batches_open ON campaign_batches (campaign_id, lease_until)
        WHERE done = 0`,
      `ALTER TABLE campaigns ADD COLUMN rate_slot BIGINT`,
    ],
  },
];

/** The table that records which distribution migrations a database has applied. */
export function distributionMigrationsTableStatement(): string {
  return `CREATE TABLE IF NOT EXISTS distribution_schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at BIGINT NOT NULL
  )`;
}
