/**
 * The PostgreSQL backend of the store, on the `pg` driver, for several Herald nodes that share
 * one database. It runs the same migrations as SQLite (the PostgreSQL dialect of
 * `migrations.ts`) and keeps the same contract (`contract.ts`).
 *
 * Concurrency between nodes:
 * - `migrate()` holds a transaction-scoped advisory lock, so nodes that start together apply
 *   each migration once: the others wait for the lock, then find the versions recorded.
 * - `claimDue()` leases entries with `FOR UPDATE SKIP LOCKED`, so nodes claiming at the same
 *   moment take disjoint rows without waiting for each other. A lease that runs out makes the
 *   entry due again, which is how a dead node's work passes to the living ones.
 * - `completeAttempt()` and `renewLease()` apply only while the caller still owns the lease
 *   (`LeaseLostError` otherwise).
 *
 * Delivery is at least once. A node that crashes after the receiving server accepted a message
 * and before its `completeAttempt` committed leaves the entry leased to itself, so another node
 * delivers it again when the lease expires. That interval, one SMTP reply plus one round trip
 * to the database, is the window in which a crash duplicates a message. A node that stalls
 * for longer than `delivery.leaseTime` without renewing can also lose its lease while the
 * remote server is still reading the message. Its late `completeAttempt` then fails with
 * `LeaseLostError`, and the new owner delivers the message again.
 *
 * Each queue write is one statement (common table expressions put a message, its entries and
 * their events in one INSERT), so it is one transaction and one round trip. The server commits
 * concurrent transactions with one WAL flush, which is PostgreSQL's own group commit, so many
 * sessions enqueuing at once through the pool share each fsync.
 */
import pg from 'pg';

import { LeaseLostError, StoreConflictError, StoreNotFoundError } from './errors.js';
import { MIGRATIONS, POSTGRES_DIALECT, migrationsTableStatement } from './migrations.js';
import { inTransaction } from './pg-transaction.js';
import {
  CANCEL_START_SQL,
  CLUSTER_MIGRATIONS,
  HEARTBEAT_SQL,
  LIST_NODES_SQL,
  RESERVE_START_SQL,
} from './postgres-cluster.js';
import { newQueueId } from './queue-id.js';
import { claimDueSql, PENDING_STATUSES } from './queue-sql.js';
import {
  DKIM_KEY_COLUMNS,
  nullableString,
  toAlias,
  toCredential,
  toDkimKey,
  toDomain,
  toEntry,
  toEvent,
  type Row,
} from './sqlite-rows.js';
import type {
  Alias,
  AttemptOutcome,
  ClaimOptions,
  Credential,
  DkimKeyRecord,
  Domain,
  MessageInfo,
  NewDkimKey,
  NewMessage,
  NodeStatus,
  QueueEntry,
  QueueEvent,
  QueueFilter,
  QueueStatus,
  SrsTokenRecord,
  Store,
} from './types.js';

export interface PostgresStoreOptions {
  /** `postgres://user:password@host:port/database`, with any query options `pg` accepts. */
  url: string;
  /** Connections in the pool (10 when omitted); concurrent enqueues use one each. */
  maxConnections?: number;
  /**
   * Handler for errors of idle connections (the server restarted, for example). The pool drops
   * such a connection and opens a new one for the next query. Without a handler these errors
   * are ignored, because every query in progress reports its own failure.
   */
  onError?: (error: Error) => void;
}

/**
 * Key of the advisory lock that serialises migrations across nodes: the ASCII bytes of
 * `herald:m` read as a signed 64-bit integer, so it is unlikely to collide with another
 * application's lock in a shared database.
 */
export const MIGRATION_LOCK_KEY = Buffer.from('herald:m').readBigInt64BE().toString();

/** Channel of the notifications sent when entries become due (LISTEN/NOTIFY). */
const QUEUE_CHANNEL = 'herald_queue';

/**
 * A store sends at most one queue notification per this many milliseconds. PostgreSQL
 * serialises the commits of notifying transactions, so each notification is a statement of its
 * own, outside the enqueue transactions, and bursts of enqueues share one.
 */
const NOTIFY_INTERVAL_MS = 50;

/** A lease owner's heartbeat is written at most this often, in milliseconds. */
const HEARTBEAT_INTERVAL_MS = 5_000;

/**
 * A node not seen for this long counts as dead in `listNodes`: an idle delivery worker claims
 * at least every 30 s, so 90 s is three missed claims.
 */
const DEFAULT_STALE_AFTER_MS = 90_000;

/** A node unseen for this long is removed from the node list, in milliseconds (one day). */
const FORGET_AFTER_MS = 86_400_000;

/** SQLSTATE codes (PostgreSQL appendix A) that map to the store's own errors. */
const UNIQUE_VIOLATION = '23505';
const FOREIGN_KEY_VIOLATION = '23503';

const ENQUEUE_SQL = `
  WITH message AS (
    INSERT INTO messages (id, body, size, origin, original_sender, client_address, created_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7)
    RETURNING id
  ), entries AS (
    INSERT INTO queue_entries (message_id, recipient, recipient_domain, sender, bounce_to,
      origin, status, attempts, created_at, next_attempt_at, campaign_id, subscriber_id)
    SELECT message.id, r.recipient, r.domain, r.sender, r.bounce_to, $4, 'queued', 0, $7, $7,
      r.campaign_id, r.subscriber_id
    FROM message, unnest($8::text[], $9::text[], $10::text[], $11::text[], $12::bigint[],
      $13::bigint[]) WITH ORDINALITY AS r (recipient, domain, sender, bounce_to, campaign_id,
      subscriber_id, position)
    ORDER BY r.position
    RETURNING id, message_id
  ), events AS (
    INSERT INTO queue_events (entry_id, message_id, time, kind, verdict)
    SELECT id, message_id, $7, 'queued', 'queued' FROM entries
  )
  SELECT id FROM entries ORDER BY id`;

/**
 * Several messages in one statement: the messages, their entries and the entries' `queued`
 * events. Arrays run parallel: $1 to $6 per message, $7 the time, $8 to $15 per recipient,
 * with $8 naming the recipient's message. Bodies travel as a `bytea[]`, which the driver sends
 * as hex text.
 */
const ENQUEUE_BATCH_SQL = `
  WITH message AS (
    INSERT INTO messages (id, body, size, origin, original_sender, client_address, created_at)
    SELECT m.id, m.body, m.size, m.origin, m.original_sender, m.client_address, $7
    FROM unnest($1::text[], $2::bytea[], $3::bigint[], $4::text[], $5::text[], $6::text[])
      AS m (id, body, size, origin, original_sender, client_address)
    RETURNING id, origin
  ), entries AS (
    INSERT INTO queue_entries (message_id, recipient, recipient_domain, sender, bounce_to,
      origin, status, attempts, created_at, next_attempt_at, campaign_id, subscriber_id)
    SELECT message.id, r.recipient, r.domain, r.sender, r.bounce_to, message.origin, 'queued',
      0, $7, $7, r.campaign_id, r.subscriber_id
    FROM unnest($8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::bigint[],
      $14::bigint[]) WITH ORDINALITY AS r (message_id, recipient, domain, sender, bounce_to,
      campaign_id, subscriber_id, position)
    JOIN message ON message.id = r.message_id
    ORDER BY r.position
    RETURNING id, message_id
  ), events AS (
    INSERT INTO queue_events (entry_id, message_id, time, kind, verdict)
    SELECT id, message_id, $7, 'queued', 'queued' FROM entries
  )
  SELECT id, message_id FROM entries ORDER BY id`;

/** Messages per batched enqueue statement, and the body bytes one statement carries at most. */
const ENQUEUE_BATCH_MESSAGES = 100;
const ENQUEUE_BATCH_BYTES = 4 * 1024 * 1024;

interface PendingEnqueue {
  message: NewMessage;
  messageId: string;
  resolve: (result: { messageId: string; entryIds: number[] }) => void;
  reject: (error: unknown) => void;
}

// The entry is updated only while the caller owns its lease, even an expired one that no other
// node has claimed yet. An entry whose lease is released (another node finished it) rejects a
// late verdict, so a stalled node cannot overwrite the result of the node that took over.
// `present` distinguishes a lost lease (the row exists) from an entry deleted in flight, which is ignored.
const COMPLETE_SQL = `
  WITH updated AS (
    UPDATE queue_entries SET status = $3, attempts = attempts + 1, last_reply = $4,
      last_dsn = $5, next_attempt_at = $6, lease_owner = NULL, lease_expires_at = NULL
    WHERE id = $1 AND lease_owner = $2
    RETURNING id, message_id
  ), event AS (
    INSERT INTO queue_events (entry_id, message_id, time, kind, mx, reply, dsn, verdict)
    SELECT id, message_id, $7, 'attempt', $8, $4, $5, $3 FROM updated
  )
  SELECT (SELECT count(*) FROM updated) AS applied,
    (SELECT count(*) FROM queue_entries WHERE id = $1) AS present`;

export class PostgresStore implements Store {
  private readonly pool: pg.Pool;
  private readonly url: string;
  private readonly onError: (error: Error) => void;
  private readonly heartbeats = new Map<string, number>();
  private readonly statementNames = new Map<string, string>();
  /** Enqueues of the current turn of the event loop, sent together by `flushEnqueues`. */
  private readonly pendingEnqueues: PendingEnqueue[] = [];
  /** The connection that holds this node's destination slots (session advisory locks). */
  private slotClient: Promise<pg.Client> | undefined;
  private readonly queueListeners = new Set<() => void>();
  private notifyTimer: NodeJS.Timeout | undefined;
  /** Destination slots this store holds, as `slot:domain`. */
  private readonly heldSlots = new Set<string>();
  private closed = false;

  constructor(options: PostgresStoreOptions) {
    this.url = options.url;
    this.pool = new pg.Pool({
      connectionString: options.url,
      max: options.maxConnections ?? 10,
      application_name: 'herald',
    });
    this.onError = options.onError ?? (() => undefined);
    this.pool.on('error', this.onError);
  }

  async migrate(): Promise<void> {
    await this.transaction(async (client) => {
      // Held until this transaction ends: a second node blocks here, then sees every version
      // the first one recorded and applies nothing twice.
      await client.query('SELECT pg_advisory_xact_lock($1::bigint)', [MIGRATION_LOCK_KEY]);
      await client.query(migrationsTableStatement());
      const { rows } = await client.query<{ version: number }>(
        'SELECT version FROM schema_migrations',
      );
      const applied = new Set(rows.map((row) => Number(row.version)));
      for (const migration of [...MIGRATIONS, ...CLUSTER_MIGRATIONS]) {
        if (applied.has(migration.version)) continue;
        for (const statement of migration.statements(POSTGRES_DIALECT)) {
          await client.query(statement);
        }
        await client.query(
          'INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)',
          [migration.version, migration.name, Date.now()],
        );
      }
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.notifyTimer);
    this.notifyTimer = undefined;
    const slots = this.slotClient;
    this.slotClient = undefined;
    // Ending the session releases every destination slot this node still holds.
    if (slots !== undefined) await slots.then((client) => client.end()).catch(() => undefined);
    // Queries already started finish first: pg's Pool.end waits for checked-out clients.
    await this.pool.end();
  }

  // Domains, keys, aliases, credentials.

  async addDomain(name: string, options: { srsDomain?: string | null } = {}): Promise<Domain> {
    const domain = name.toLowerCase();
    const row = await this.insert(
      `domain ${domain}`,
      `INSERT INTO domains (name, srs_domain, organisation_id, created_at)
         VALUES ($1, $2, NULL, $3) RETURNING *`,
      [domain, options.srsDomain ?? null, Date.now()],
    );
    return toDomain(row);
  }

  async getDomain(name: string): Promise<Domain | undefined> {
    const row = await this.one('SELECT * FROM domains WHERE name = $1', [name.toLowerCase()]);
    return row === undefined ? undefined : toDomain(row);
  }

  async listDomains(): Promise<Domain[]> {
    return (await this.rows('SELECT * FROM domains ORDER BY name')).map(toDomain);
  }

  async removeDomain(name: string): Promise<boolean> {
    // Keys, aliases and credentials go with it (ON DELETE CASCADE).
    const result = await this.query('DELETE FROM domains WHERE name = $1', [name.toLowerCase()]);
    return (result.rowCount ?? 0) > 0;
  }

  async addDkimKey(key: NewDkimKey): Promise<DkimKeyRecord> {
    const row = await this.insert(
      `DKIM selector ${key.selector}`,
      `INSERT INTO dkim_keys (domain_id, selector, algorithm, private_key_path,
           private_key_pem, public_record, status, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING ${DKIM_KEY_COLUMNS}`,
      [
        key.domainId,
        key.selector,
        key.algorithm,
        key.privateKeyPath,
        key.privateKeyPem,
        key.publicRecord,
        key.status,
        Date.now(),
      ],
    );
    return toDkimKey(row);
  }

  async listDkimKeys(domainId: number): Promise<DkimKeyRecord[]> {
    const rows = await this.rows(
      `SELECT ${DKIM_KEY_COLUMNS} FROM dkim_keys WHERE domain_id = $1 ORDER BY id`,
      [domainId],
    );
    return rows.map(toDkimKey);
  }

  async getDkimPrivateKey(id: number): Promise<string | undefined> {
    const row = await this.one('SELECT private_key_pem FROM dkim_keys WHERE id = $1', [id]);
    return nullableString(row?.private_key_pem) ?? undefined;
  }

  async setDkimKeyStatus(id: number, status: DkimKeyRecord['status']): Promise<void> {
    const result = await this.query('UPDATE dkim_keys SET status = $1 WHERE id = $2', [status, id]);
    if (result.rowCount === 0) throw new StoreNotFoundError(`DKIM key ${id} not found`);
  }

  async addAlias(alias: Omit<Alias, 'id' | 'createdAt'>): Promise<Alias> {
    const localPart = alias.localPart.toLowerCase();
    const row = await this.insert(
      `alias ${localPart}`,
      `INSERT INTO aliases (domain_id, local_part, targets, enabled, dmarc_policy, created_at)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING *`,
      [
        alias.domainId,
        localPart,
        JSON.stringify(alias.targets),
        alias.enabled ? 1 : 0,
        alias.dmarcPolicy,
        Date.now(),
      ],
    );
    return toAlias(row);
  }

  async listAliases(domainId: number): Promise<Alias[]> {
    // COLLATE "C" sorts by code point like SQLite, so `*` comes before letters in any locale.
    const rows = await this.rows(
      'SELECT * FROM aliases WHERE domain_id = $1 ORDER BY local_part COLLATE "C"',
      [domainId],
    );
    return rows.map(toAlias);
  }

  async getAlias(domainId: number, localPart: string): Promise<Alias | undefined> {
    const row = await this.one('SELECT * FROM aliases WHERE domain_id = $1 AND local_part = $2', [
      domainId,
      localPart.toLowerCase(),
    ]);
    return row === undefined ? undefined : toAlias(row);
  }

  async removeAlias(domainId: number, localPart: string): Promise<boolean> {
    const result = await this.query(
      'DELETE FROM aliases WHERE domain_id = $1 AND local_part = $2',
      [domainId, localPart.toLowerCase()],
    );
    return (result.rowCount ?? 0) > 0;
  }

  async addCredential(credential: Omit<Credential, 'id' | 'createdAt'>): Promise<Credential> {
    const row = await this.insert(
      `credential ${credential.username}`,
      `INSERT INTO credentials (domain_id, username, password_hash, created_at)
         VALUES ($1, $2, $3, $4) RETURNING *`,
      [credential.domainId, credential.username, credential.passwordHash, Date.now()],
    );
    return toCredential(row);
  }

  async getCredential(username: string): Promise<Credential | undefined> {
    const row = await this.one('SELECT * FROM credentials WHERE username = $1', [username]);
    return row === undefined ? undefined : toCredential(row);
  }

  async listCredentials(domainId: number): Promise<Credential[]> {
    const rows = await this.rows(
      'SELECT * FROM credentials WHERE domain_id = $1 ORDER BY username COLLATE "C"',
      [domainId],
    );
    return rows.map(toCredential);
  }

  async removeCredential(username: string): Promise<boolean> {
    const result = await this.query('DELETE FROM credentials WHERE username = $1', [username]);
    return (result.rowCount ?? 0) > 0;
  }

  // The queue.

  /**
   * Enqueues one message. Calls made in the same turn of the event loop (a campaign batch,
   * several SMTP sessions) share statements of up to 100 messages, so a burst costs a few round
   * trips and commits instead of one each. If a shared statement fails, each of its messages
   * is enqueued again on its own, so a caller sees only its own message's error.
   */
  enqueue(message: NewMessage): Promise<{ messageId: string; entryIds: number[] }> {
    if (message.recipients.length === 0) {
      return Promise.reject(new TypeError('enqueue needs at least one recipient'));
    }
    return new Promise((resolve, reject) => {
      this.pendingEnqueues.push({ message, messageId: newQueueId(), resolve, reject });
      if (this.pendingEnqueues.length === 1) setImmediate(() => this.flushEnqueues());
    });
  }

  /** Sends the enqueues gathered in this turn, in statements of bounded size. */
  private flushEnqueues(): void {
    const pending = this.pendingEnqueues.splice(0);
    while (pending.length > 0) {
      const batch: PendingEnqueue[] = [];
      let bytes = 0;
      while (
        pending.length > 0 &&
        batch.length < ENQUEUE_BATCH_MESSAGES &&
        (batch.length === 0 ||
          bytes + (pending[0]!.message.body?.length ?? 0) <= ENQUEUE_BATCH_BYTES)
      ) {
        const next = pending.shift()!;
        bytes += next.message.body?.length ?? 0;
        batch.push(next);
      }
      void this.enqueueBatch(batch);
    }
  }

  private async enqueueBatch(batch: PendingEnqueue[]): Promise<void> {
    if (batch.length === 1) {
      const [only] = batch;
      await this.enqueueOne(only!.message, only!.messageId).then(only!.resolve, only!.reject);
      return;
    }
    const now = Date.now();
    const recipients = batch.flatMap((item) =>
      item.message.recipients.map((recipient) => ({ ...recipient, messageId: item.messageId })),
    );
    let rows: Row[];
    try {
      rows = await this.rows(ENQUEUE_BATCH_SQL, [
        batch.map((item) => item.messageId),
        batch.map((item) => item.message.body),
        batch.map((item) => (item.message.body as Buffer | null)?.length ?? 0),
        batch.map((item) => item.message.origin),
        batch.map((item) => item.message.originalSender),
        batch.map((item) => item.message.clientAddress ?? null),
        now,
        recipients.map((r) => r.messageId),
        recipients.map((r) => r.recipient),
        recipients.map((r) => domainOf(r.recipient)),
        recipients.map((r) => r.sender),
        recipients.map((r) => r.bounceTo),
        recipients.map((r) => r.campaignId ?? null),
        recipients.map((r) => r.subscriberId ?? null),
      ]);
    } catch {
      // One bad message fails the whole statement; alone, each gets its own outcome.
      await Promise.all(
        batch.map((item) =>
          this.enqueueOne(item.message, item.messageId).then(item.resolve, item.reject),
        ),
      );
      return;
    }
    this.scheduleNotify();
    const entryIds = new Map<string, number[]>();
    for (const row of rows) {
      const id = String(row.message_id);
      entryIds.set(id, [...(entryIds.get(id) ?? []), Number(row.id)]);
    }
    for (const item of batch) {
      item.resolve({ messageId: item.messageId, entryIds: entryIds.get(item.messageId) ?? [] });
    }
  }

  private async enqueueOne(
    message: NewMessage,
    messageId: string,
  ): Promise<{ messageId: string; entryIds: number[] }> {
    const now = Date.now();
    const recipients = message.recipients;
    const rows = await this.rows(ENQUEUE_SQL, [
      messageId,
      message.body,
      // A missing body fails on the NOT NULL constraint, like in SQLite.
      (message.body as Buffer | null)?.length ?? 0,
      message.origin,
      message.originalSender,
      message.clientAddress ?? null,
      now,
      recipients.map((r) => r.recipient),
      recipients.map((r) => domainOf(r.recipient)),
      recipients.map((r) => r.sender),
      recipients.map((r) => r.bounceTo),
      recipients.map((r) => r.campaignId ?? null),
      recipients.map((r) => r.subscriberId ?? null),
    ]);
    this.scheduleNotify();
    return { messageId, entryIds: rows.map((row) => Number(row.id)) };
  }

  async getMessageBody(messageId: string): Promise<Buffer | undefined> {
    const row = await this.one('SELECT body FROM messages WHERE id = $1', [messageId]);
    return row === undefined ? undefined : (row.body as Buffer);
  }

  async getMessageInfo(messageId: string): Promise<MessageInfo | undefined> {
    const row = await this.one(
      `SELECT id, origin, original_sender, client_address, size, created_at
         FROM messages WHERE id = $1`,
      [messageId],
    );
    if (row === undefined) return undefined;
    return {
      messageId: String(row.id),
      origin: row.origin as MessageInfo['origin'],
      originalSender: String(row.original_sender),
      clientAddress: nullableString(row.client_address),
      size: Number(row.size),
      createdAt: new Date(Number(row.created_at)),
    };
  }

  async claimDue(options: ClaimOptions): Promise<QueueEntry[]> {
    const now = (options.now ?? new Date()).getTime();
    const [rows] = await Promise.all([
      this.rows(claimDueSql(POSTGRES_DIALECT), [
        options.owner,
        now + options.leaseMs,
        now,
        options.limit,
      ]),
      this.heartbeat(options.owner),
    ]);
    const entries = rows.map(toEntry);
    entries.sort((a, b) => a.nextAttemptAt.getTime() - b.nextAttemptAt.getTime() || a.id - b.id);
    return entries;
  }

  async renewLease(entryIds: number[], owner: string, leaseMs: number): Promise<void> {
    if (entryIds.length === 0) return;
    // The leases still held are renewed even when one is lost, so other work goes on.
    const [rows] = await Promise.all([
      this.rows(
        `UPDATE queue_entries SET lease_expires_at = $1
           WHERE id = ANY($2::bigint[]) AND lease_owner = $3 RETURNING id`,
        [Date.now() + leaseMs, entryIds, owner],
      ),
      this.heartbeat(owner),
    ]);
    const renewed = new Set(rows.map((row) => Number(row.id)));
    const lost = entryIds.find((id) => !renewed.has(id));
    if (lost !== undefined) throw new LeaseLostError(lost, owner);
  }

  async completeAttempt(entryId: number, owner: string, outcome: AttemptOutcome): Promise<void> {
    if (outcome.status === 'deferred' && outcome.nextAttemptAt === undefined) {
      throw new TypeError('a deferred outcome needs nextAttemptAt');
    }
    const now = Date.now();
    const row = await this.one(COMPLETE_SQL, [
      entryId,
      owner,
      outcome.status,
      outcome.reply,
      outcome.dsn,
      outcome.nextAttemptAt?.getTime() ?? now,
      now,
      outcome.mx,
    ]);
    if (Number(row?.applied) === 0 && Number(row?.present) > 0) {
      throw new LeaseLostError(entryId, owner);
    }
  }

  async getEntry(entryId: number): Promise<QueueEntry | undefined> {
    const row = await this.one('SELECT * FROM queue_entries WHERE id = $1', [entryId]);
    return row === undefined ? undefined : toEntry(row);
  }

  async listEntries(filter: QueueFilter = {}): Promise<QueueEntry[]> {
    const conditions: string[] = [];
    const parameters: unknown[] = [];
    if (filter.status !== undefined) {
      parameters.push(filter.status);
      conditions.push(`status = $${parameters.length}`);
    }
    if (filter.recipientDomain !== undefined) {
      parameters.push(filter.recipientDomain.toLowerCase());
      conditions.push(`recipient_domain = $${parameters.length}`);
    }
    const where = conditions.length > 0 ? `WHERE ${conditions.join(' AND ')}` : '';
    let limit = '';
    if (filter.limit !== undefined) {
      parameters.push(filter.limit);
      limit = `LIMIT $${parameters.length}`;
    }
    const rows = await this.rows(
      `SELECT * FROM queue_entries ${where} ORDER BY id ${limit}`,
      parameters,
    );
    return rows.map(toEntry);
  }

  async listEntriesOfMessage(messageId: string): Promise<QueueEntry[]> {
    const rows = await this.rows('SELECT * FROM queue_entries WHERE message_id = $1 ORDER BY id', [
      messageId,
    ]);
    return rows.map(toEntry);
  }

  async retryNow(selector: {
    messageId?: string;
    entryId?: number;
    all?: boolean;
  }): Promise<number> {
    const { where, parameters } = entrySelector(selector, true, 2);
    const rows = await this.rows(
      `WITH retried AS (
         UPDATE queue_entries SET next_attempt_at = $1
         WHERE status IN ${PENDING_STATUSES} AND ${where}
         RETURNING id, message_id
       ), events AS (
         INSERT INTO queue_events (entry_id, message_id, time, kind, verdict)
         SELECT id, message_id, $1, 'retry', 'retry' FROM retried
       )
       SELECT count(*) AS n FROM retried`,
      [Date.now(), ...parameters],
    );
    const retried = Number(rows[0]?.n ?? 0);
    if (retried > 0) this.scheduleNotify();
    return retried;
  }

  async deleteEntries(selector: { messageId?: string; entryId?: number }): Promise<number> {
    const { where, parameters } = entrySelector(selector, false, 1);
    const now = Date.now();
    return this.transaction(async (client) => {
      const removed = await client.query<Row>(
        `DELETE FROM queue_entries WHERE ${where} RETURNING id, message_id`,
        parameters,
      );
      const messages = new Set<string>();
      for (const row of removed.rows) {
        messages.add(String(row.message_id));
        await client.query(
          `INSERT INTO queue_events (entry_id, message_id, time, kind, verdict)
             VALUES ($1, $2, $3, 'deleted', 'deleted')`,
          [row.id, row.message_id, now],
        );
      }
      for (const messageId of messages) {
        await client.query(
          `DELETE FROM messages WHERE id = $1
             AND NOT EXISTS (SELECT 1 FROM queue_entries WHERE message_id = $1)`,
          [messageId],
        );
      }
      return removed.rows.length;
    });
  }

  async listEvents(filter: {
    messageId?: string;
    entryId?: number;
    limit?: number;
  }): Promise<QueueEvent[]> {
    const conditions: string[] = [];
    const parameters: unknown[] = [];
    if (filter.messageId !== undefined) {
      parameters.push(filter.messageId);
      conditions.push(`message_id = $${parameters.length}`);
    }
    if (filter.entryId !== undefined) {
      parameters.push(filter.entryId);
      conditions.push(`entry_id = $${parameters.length}`);
    }
    const where = conditions.length > 0 ? `WHERE ${conditions.join(' AND ')}` : '';
    let limit = '';
    if (filter.limit !== undefined) {
      parameters.push(filter.limit);
      limit = `LIMIT $${parameters.length}`;
    }
    const rows = await this.rows(
      `SELECT * FROM queue_events ${where} ORDER BY id ${limit}`,
      parameters,
    );
    return rows.map(toEvent);
  }

  async nextDueAt(): Promise<Date | undefined> {
    // The first unleased entry comes from the due index in order. Leased entries are few (the
    // deliveries in flight, in their own index), and one is due again when its lease runs out.
    // LEAST ignores a NULL, so an empty side drops out.
    const row = await this.one(
      `SELECT LEAST(
         (SELECT next_attempt_at FROM queue_entries
            WHERE status IN ${PENDING_STATUSES} AND lease_owner IS NULL
            ORDER BY next_attempt_at LIMIT 1),
         (SELECT MIN(CASE WHEN lease_expires_at > next_attempt_at
                     THEN lease_expires_at ELSE next_attempt_at END)
            FROM queue_entries
            WHERE lease_owner IS NOT NULL AND status IN ${PENDING_STATUSES})
       ) AS due`,
    );
    return row?.due === null || row?.due === undefined ? undefined : new Date(Number(row.due));
  }

  async countByStatus(): Promise<Record<QueueStatus, number>> {
    const counts: Record<QueueStatus, number> = { queued: 0, deferred: 0, delivered: 0, failed: 0 };
    const rows = await this.rows('SELECT status, count(*) AS n FROM queue_entries GROUP BY status');
    for (const row of rows) counts[row.status as QueueStatus] = Number(row.n);
    return counts;
  }

  async purgeFinished(before: Date): Promise<number> {
    // The entries go with their message (ON DELETE CASCADE); the events stay.
    const result = await this.query(
      `DELETE FROM messages WHERE created_at < $1
         AND NOT EXISTS (SELECT 1 FROM queue_entries
                         WHERE message_id = messages.id AND status IN ${PENDING_STATUSES})`,
      [before.getTime()],
    );
    return result.rowCount ?? 0;
  }

  // SRS database mode.

  async putSrsToken(record: SrsTokenRecord, maxRows: number): Promise<void> {
    const now = Date.now();
    await this.transaction(async (client) => {
      await client.query(
        `INSERT INTO srs_tokens (token, original, expires_at, created_at) VALUES ($1, $2, $3, $4)
           ON CONFLICT (token) DO UPDATE SET original = excluded.original,
             expires_at = excluded.expires_at`,
        [record.token, record.original, record.expiresAt.getTime(), now],
      );
      await client.query('DELETE FROM srs_tokens WHERE expires_at <= $1', [now]);
      // Past the cap, the tokens closest to expiry go first: they have the least use left.
      const counted = await client.query<{ n: string }>('SELECT count(*) AS n FROM srs_tokens');
      const excess = Number(counted.rows[0]?.n ?? 0) - maxRows;
      if (excess > 0) {
        await client.query(
          `DELETE FROM srs_tokens WHERE token IN (
               SELECT token FROM srs_tokens WHERE token <> $1
               ORDER BY expires_at, created_at LIMIT $2)`,
          [record.token, excess],
        );
      }
    });
  }

  async getSrsToken(token: string, now: Date): Promise<string | undefined> {
    const row = await this.one(
      'SELECT original FROM srs_tokens WHERE token = $1 AND expires_at > $2',
      [token, now.getTime()],
    );
    return row === undefined ? undefined : String(row.original);
  }

  // Cluster coordination.

  async listNodes(options: { now?: Date; staleAfterMs?: number } = {}): Promise<NodeStatus[]> {
    const now = (options.now ?? new Date()).getTime();
    const staleAfter = options.staleAfterMs ?? DEFAULT_STALE_AFTER_MS;
    const rows = await this.rows(LIST_NODES_SQL, [now]);
    return rows.map((row) => {
      const lastSeen = Number(row.last_seen_at);
      return {
        name: String(row.name),
        firstSeenAt: new Date(Number(row.first_seen_at)),
        lastSeenAt: new Date(lastSeen),
        alive: now - lastSeen <= staleAfter,
        leasedEntries: Number(row.leased),
      };
    });
  }

  /**
   * Slots are session-level advisory locks keyed by `hashtext(domain)` and the slot number, held
   * on one dedicated connection per store. PostgreSQL drops a session's locks when its
   * connection ends, so a killed node frees its slots at once. Two domains whose hashes collide
   * share their slots, which errs on the side of fewer connections.
   */
  async tryAcquireDestinationSlot(
    domain: string,
    limit: number,
  ): Promise<(() => Promise<void>) | undefined> {
    const client = await this.slots();
    const key = domain.toLowerCase();
    // Start at a random slot, so nodes asking at once seldom try the same locks in turn.
    const offset = Math.floor(Math.random() * limit);
    for (let i = 0; i < limit; i++) {
      const slot = (offset + i) % limit;
      // Advisory locks are re-entrant within a session, so this node's own slots are skipped
      // here rather than taken twice.
      const name = `${slot}:${key}`;
      if (this.heldSlots.has(name)) continue;
      this.heldSlots.add(name);
      const result = await client
        .query<{ locked: boolean }>('SELECT pg_try_advisory_lock(hashtext($1), $2) AS locked', [
          key,
          slot,
        ])
        .catch((error: unknown) => {
          this.heldSlots.delete(name);
          throw error;
        });
      if (result.rows[0]?.locked !== true) {
        this.heldSlots.delete(name);
        continue;
      }
      let released = false;
      return async () => {
        if (released) return;
        released = true;
        this.heldSlots.delete(name);
        try {
          await client.query('SELECT pg_advisory_unlock(hashtext($1), $2)', [key, slot]);
        } catch (error) {
          // The session is gone, and its locks with it.
          this.onError(error as Error);
        }
      };
    }
    return undefined;
  }

  async reserveDestinationStart(domain: string, ratePerMinute: number): Promise<number> {
    if (ratePerMinute <= 0) return 0;
    const now = Date.now();
    const row = await this.one(RESERVE_START_SQL, [
      domain.toLowerCase(),
      now,
      Math.round(60_000 / ratePerMinute),
    ]);
    return Math.max(0, Number(row?.start_at ?? now) - now);
  }

  async cancelDestinationStart(domain: string, ratePerMinute: number): Promise<void> {
    if (ratePerMinute <= 0) return;
    await this.query(CANCEL_START_SQL, [domain.toLowerCase(), Math.round(60_000 / ratePerMinute)]);
  }

  watchQueue(listener: () => void): () => void {
    this.queueListeners.add(listener);
    // LISTEN runs on the slot connection, which stays open for the life of the store.
    this.slots().catch((error: unknown) => this.onError(error as Error));
    return () => this.queueListeners.delete(listener);
  }

  // Helpers.

  /** Send one queue notification soon, for this and every other node's watchers. */
  private scheduleNotify(): void {
    if (this.notifyTimer !== undefined || this.closed) return;
    this.notifyTimer = setTimeout(() => {
      this.notifyTimer = undefined;
      this.query('SELECT pg_notify($1, $2)', [QUEUE_CHANNEL, '']).catch((error: unknown) =>
        this.onError(error as Error),
      );
    }, NOTIFY_INTERVAL_MS);
    this.notifyTimer.unref();
  }

  /** Records that `owner` is alive, at most once per heartbeat interval. */
  private async heartbeat(owner: string): Promise<void> {
    const now = Date.now();
    if (now - (this.heartbeats.get(owner) ?? 0) < HEARTBEAT_INTERVAL_MS) return;
    this.heartbeats.set(owner, now);
    await this.query(HEARTBEAT_SQL, [owner, now, now - FORGET_AFTER_MS]);
  }

  /** The dedicated slot connection, opened on first use and again after it failed. */
  private slots(): Promise<pg.Client> {
    if (this.closed) return Promise.reject(new Error('the store is closed'));
    if (this.slotClient === undefined) {
      const client = new pg.Client({ connectionString: this.url, application_name: 'herald' });
      client.on('notification', () => {
        for (const listener of this.queueListeners) listener();
      });
      const opened = client
        .connect()
        .then(() => client.query(`LISTEN ${QUEUE_CHANNEL}`))
        .then(() => client);
      client.on('error', (error) => {
        // Its locks are released with the session; the next call opens a new connection.
        if (this.slotClient === opened) {
          this.slotClient = undefined;
          this.heldSlots.clear();
        }
        this.onError(error);
      });
      opened.catch(() => {
        if (this.slotClient === opened) this.slotClient = undefined;
      });
      this.slotClient = opened;
    }
    return this.slotClient;
  }

  /**
   * Run one statement as a named prepared statement, so each pooled connection parses and plans
   * it once instead of at every call. The names are unique per SQL text within this store.
   */
  private query(sql: string, values: unknown[] = []): Promise<pg.QueryResult<Row>> {
    if (this.closed) return Promise.reject(new Error('the store is closed'));
    let name = this.statementNames.get(sql);
    if (name === undefined) {
      name = `herald_${this.statementNames.size + 1}`;
      this.statementNames.set(sql, name);
    }
    return this.pool.query<Row>({ name, text: sql, values });
  }

  private async rows(sql: string, values: unknown[] = []): Promise<Row[]> {
    return (await this.query(sql, values)).rows;
  }

  private async one(sql: string, values: unknown[] = []): Promise<Row | undefined> {
    return (await this.query(sql, values)).rows[0];
  }

  /** Run an INSERT ... RETURNING, turning constraint errors into the store's own errors. */
  private async insert(what: string, sql: string, values: unknown[]): Promise<Row> {
    try {
      const row = await this.one(sql, values);
      if (row === undefined) throw new Error(`inserting ${what} returned no row`);
      return row;
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      if (code === UNIQUE_VIOLATION) throw new StoreConflictError(`${what} already exists`);
      if (code === FOREIGN_KEY_VIOLATION)
        throw new StoreNotFoundError(`domain of ${what} not found`);
      throw error;
    }
  }

  /** Runs `work` in one transaction on one pooled connection; any error rolls it back. */
  private async transaction<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    if (this.closed) throw new Error('the store is closed');
    return inTransaction(this.pool, work);
  }
}

/** A WHERE clause for `retryNow` and `deleteEntries`, its placeholders numbered from `first`. */
function entrySelector(
  selector: { messageId?: string; entryId?: number; all?: boolean },
  allowAll: boolean,
  first: number,
): { where: string; parameters: unknown[] } {
  if (selector.entryId !== undefined) {
    return { where: `id = $${first}`, parameters: [selector.entryId] };
  }
  if (selector.messageId !== undefined) {
    return { where: `message_id = $${first}`, parameters: [selector.messageId] };
  }
  if (allowAll && selector.all === true) return { where: 'TRUE', parameters: [] };
  throw new TypeError('select entries by entryId or messageId (or all, for a retry)');
}

/** Lower-cased domain of an address; the whole address when it has no `@`. */
function domainOf(address: string): string {
  return address.slice(address.lastIndexOf('@') + 1).toLowerCase();
}
