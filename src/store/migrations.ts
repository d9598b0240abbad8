/**
 * The schema as an ordered list of migrations that SQLite and PostgreSQL share. Each migration
 * is written once against a small dialect table (the few column types that differ), so both
 * backends create the same tables, columns, constraints and indexes.
 *
 * Conventions that keep the SQL portable:
 * - times are integer milliseconds since the epoch (`BIGINT`), never a database time type;
 * - booleans are `INTEGER` 0/1;
 * - lists (alias targets) are JSON text;
 * - partial indexes (`CREATE INDEX ... WHERE`) are supported by both engines.
 *
 * A migration is never edited once released: a change is a new migration at the end.
 */

export interface SqlDialect {
  name: 'sqlite' | 'postgres';
  /** An auto-incrementing integer primary key column type. */
  serialKey: string;
  /** Binary large object column type. */
  blob: string;
}

export const SQLITE_DIALECT: SqlDialect = {
  name: 'sqlite',
  serialKey: 'INTEGER PRIMARY KEY AUTOINCREMENT',
  blob: 'BLOB',
};

export const POSTGRES_DIALECT: SqlDialect = {
  name: 'postgres',
  serialKey: 'BIGSERIAL PRIMARY KEY',
  blob: 'BYTEA',
};

export interface Migration {
  version: number;
  name: string;
  /** Statements run in order inside one transaction. */
  statements(dialect: SqlDialect): string[];
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'domains, keys, aliases, credentials',
    statements: (d) => [
      `CREATE TABLE domains (
        id ${d.serialKey},
        name TEXT NOT NULL UNIQUE,
        srs_domain TEXT,
        organisation_id BIGINT,
        created_at BIGINT NOT NULL
      )`,
      `CREATE TABLE dkim_keys (
        id ${d.serialKey},
        domain_id BIGINT NOT NULL REFERENCES domains (id) ON DELETE CASCADE,
        selector TEXT NOT NULL,
        algorithm TEXT NOT NULL,
        private_key_path TEXT NOT NULL,
        public_record TEXT NOT NULL,
        status TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        UNIQUE (domain_id, selector)
      )`,
      `CREATE TABLE aliases (
        id ${d.serialKey},
        domain_id BIGINT NOT NULL REFERENCES domains (id) ON DELETE CASCADE,
        local_part TEXT NOT NULL,
        targets TEXT NOT NULL,
        enabled INTEGER NOT NULL,
        dmarc_policy TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        UNIQUE (domain_id, local_part)
      )`,
      `CREATE TABLE credentials (
        id ${d.serialKey},
        domain_id BIGINT NOT NULL REFERENCES domains (id) ON DELETE CASCADE,
        username TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        created_at BIGINT NOT NULL
      )`,
    ],
  },
  {
    version: 2,
    name: 'queue',
    statements: (d) => [
      // One row per message: the body is stored once however many recipients it has, and
      // every node of a cluster can read it from the database.
      `CREATE TABLE messages (
        id TEXT PRIMARY KEY,
        body ${d.blob} NOT NULL,
        size BIGINT NOT NULL,
        origin TEXT NOT NULL,
        original_sender TEXT NOT NULL,
        client_address TEXT,
        created_at BIGINT NOT NULL
      )`,
      // One row per recipient: the unit that delivery workers claim under a lease.
      `CREATE TABLE queue_entries (
        id ${d.serialKey},
        message_id TEXT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
        recipient TEXT NOT NULL,
        recipient_domain TEXT NOT NULL,
        sender TEXT NOT NULL,
        bounce_to TEXT NOT NULL,
        origin TEXT NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        created_at BIGINT NOT NULL,
        next_attempt_at BIGINT NOT NULL,
        last_reply TEXT,
        last_dsn TEXT,
        lease_owner TEXT,
        lease_expires_at BIGINT,
        campaign_id BIGINT,
        subscriber_id BIGINT
      )`,
      // Only entries still waiting for delivery are indexed by due time, so the claim query
      // stays fast however many delivered entries the table keeps.
      `CREATE INDEX queue_entries_due ON queue_entries (next_attempt_at)
        WHERE status IN ('queued', 'deferred')`,
      `CREATE INDEX queue_entries_message ON queue_entries (message_id)`,
      `CREATE INDEX queue_entries_status_domain ON queue_entries (status, recipient_domain)`,
      // Events outlive their entry (`herald queue delete` records one), so no foreign key.
      `CREATE TABLE queue_events (
        id ${d.serialKey},
        entry_id BIGINT NOT NULL,
        message_id TEXT NOT NULL,
        time BIGINT NOT NULL,
        kind TEXT NOT NULL,
        mx TEXT,
        reply TEXT,
        dsn TEXT,
        verdict TEXT NOT NULL
      )`,
      `CREATE INDEX queue_events_message ON queue_events (message_id, id)`,
      `CREATE INDEX queue_events_entry ON queue_events (entry_id, id)`,
    ],
  },
  {
    version: 3,
    name: 'srs tokens',
    statements: () => [
      `CREATE TABLE srs_tokens (
        token TEXT PRIMARY KEY,
        original TEXT NOT NULL,
        expires_at BIGINT NOT NULL,
        created_at BIGINT NOT NULL
      )`,
      `CREATE INDEX srs_tokens_expiry ON srs_tokens (expires_at)`,
    ],
  },
  {
    version: 4,
    name: 'queue lease index',
    statements: () => [
      // Leased entries are few (the deliveries in flight), so `nextDueAt` finds the earliest
      // lease expiry without scanning the whole queue.
      `CREATE INDEX queue_entries_leased ON queue_entries (lease_expires_at)
        WHERE lease_owner IS NOT NULL`,
    ],
  },
  {
    version: 5,
    name: 'dkim private keys',
    statements: () => [
      // The PKCS#8 PEM of the private key, so every node on a shared database can sign with a
      // key that another node or CLI run created. NULL in rows created before this column,
      // whose key exists only as the file at private_key_path.
      `ALTER TABLE dkim_keys ADD COLUMN private_key_pem TEXT`,
    ],
  },
];

/** The table that records which migrations a database has applied. */
export function migrationsTableStatement(): string {
  return `CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at BIGINT NOT NULL
  )`;
}
