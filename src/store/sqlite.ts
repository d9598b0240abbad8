/**
 * The SQLite backend of the store, on better-sqlite3. The database runs in WAL mode with
 * `synchronous = FULL`, so a transaction is on disk (the WAL fsynced) when its commit returns,
 * and a busy timeout lets several processes share the file.
 *
 * The queue's hot writes (enqueue, claimDue, renewLease, completeAttempt, putSrsToken) use
 * group commit: calls wait in a batch until the event loop has handled the I/O that is ready,
 * then one transaction writes the whole batch and one fsync covers it. Each call runs in its
 * own savepoint inside that transaction, so a failing call fails alone. While the commit blocks
 * the thread, new SMTP data piles up in the kernel, so the next batch grows with the load and
 * many concurrent sessions share each fsync.
 *
 * A batch that enqueues nothing (claims, lease renewals and attempt outcomes only) commits
 * with `synchronous = NORMAL`. When its commit returns it is in the WAL and survives a crash
 * of the process. The next fsync (of the next batch with an enqueue or SRS token, or of a
 * checkpoint) makes it durable. An OS crash or power loss before then can undo the last
 * outcomes, which at worst delivers a message again. The queue promises at-least-once
 * delivery anyway, since a crash between the receiver's reply and any commit does the same.
 *
 * better-sqlite3 is synchronous: the other methods run their statements at once and return a
 * settled promise, which keeps the interface the same as a networked backend's.
 */
import Database from 'better-sqlite3';

import { LeaseLostError, StoreConflictError, StoreNotFoundError } from './errors.js';
import { prepareDatabaseFile } from './file-mode.js';
import { MIGRATIONS, SQLITE_DIALECT, migrationsTableStatement } from './migrations.js';
import { newQueueId } from './queue-id.js';
import { claimDueSql, PENDING_STATUSES } from './queue-sql.js';
import {
  DKIM_KEY_COLUMNS,
  nullableString,
  toDomain,
  toDkimKey,
  toAlias,
  toCredential,
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
  QueueEntry,
  QueueEvent,
  QueueFilter,
  QueueStatus,
  SrsTokenRecord,
  Store,
} from './types.js';

export interface SqliteStoreOptions {
  /** Database file path, or `:memory:` for a private in-memory database (tests). */
  path: string;
  /** How long a statement waits for another process's write lock, in milliseconds. */
  busyTimeoutMs?: number;
  /** Maximum number of grouped writes that one transaction commits (500 when omitted). */
  maxBatch?: number;
  /** SQLite's page cache for this connection, in KiB (`PRAGMA cache_size`); 4096 when omitted. */
  cacheKiB?: number;
}

/**
 * Most pages the queue writes contain message bodies, which are read once, by the delivery,
 * soon after they were written. The operating system's file cache serves that read as well,
 * so a page cache of better-sqlite3's default size (`cache_size = -16000`, 16,000 KiB) mostly
 * contains bodies that are never read again.
 * NOTE: 4 MiB is a judgment, not a measured optimum. The campaign benchmark ran no slower.
 */
const DEFAULT_CACHE_KIB = 4096;

/** Counters that show whether group commit works: `commits` stays well below `writes`. */
export interface GroupCommitStats {
  /** Grouped calls committed (enqueue, claimDue, renewLease, completeAttempt, putSrsToken). */
  writes: number;
  /** Messages enqueued. */
  enqueued: number;
  /** Transactions that committed grouped calls. */
  commits: number;
  /** Largest number of calls that one transaction committed. */
  largestBatch: number;
  /** Commits without an fsync of their own: batches of claims, renewals and outcomes only. */
  relaxedCommits: number;
}

interface PendingWrite {
  write: () => unknown;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
  /** True for a write that may commit without an fsync; see the file header. */
  relaxed: boolean;
}

type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };

/** Whether a grouped write needs its commit fsynced before it settles; see the file header. */
type Durability = typeof DURABLE | typeof RELAXED;
const DURABLE = 'durable';
const RELAXED = 'relaxed';

/** How often `watchQueue` looks for commits of other connections, in milliseconds. */
const QUEUE_WATCH_INTERVAL_MS = 250;

export class SqliteStore implements Store {
  readonly stats: GroupCommitStats = {
    writes: 0,
    enqueued: 0,
    commits: 0,
    largestBatch: 0,
    relaxedCommits: 0,
  };

  private readonly db: Database.Database;
  private readonly statements = new Map<string, Database.Statement>();
  private readonly maxBatch: number;
  private pending: PendingWrite[] = [];
  private flushScheduled = false;
  private closed = false;

  constructor(options: SqliteStoreOptions) {
    prepareDatabaseFile(options.path);
    this.db = new Database(options.path, { timeout: options.busyTimeoutMs ?? 10_000 });
    this.maxBatch = options.maxBatch ?? 500;
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.pragma('foreign_keys = ON');
    // A negative cache_size counts KiB rather than pages.
    this.db.pragma(
      `cache_size = -${Math.max(1, Math.floor(options.cacheKiB ?? DEFAULT_CACHE_KIB))}`,
    );
  }

  migrate(): Promise<void> {
    return settle(() => {
      this.db.exec(migrationsTableStatement());
      const applyAll = this.db.transaction(() => {
        // Inside an IMMEDIATE transaction, so a second process waits here and then reads the
        // versions that the first one applied.
        const rows = this.db.prepare('SELECT version FROM schema_migrations').all() as Row[];
        const applied = new Set(rows.map((row) => Number(row.version)));
        for (const migration of MIGRATIONS) {
          if (applied.has(migration.version)) continue;
          for (const statement of migration.statements(SQLITE_DIALECT)) this.db.exec(statement);
          this.db
            .prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)')
            .run(migration.version, migration.name, Date.now());
        }
      });
      applyAll.immediate();
      return;
    });
  }

  /**
   * Calls `listener` soon after another connection commits to the database: `herald campaign
   * send` or `herald queue retry` in another process, or the distribution store of this one.
   * SQLite's `data_version` changes when a commit of another connection becomes visible, so
   * reading it every 250 ms is enough to notice. Commits of this connection do not change it.
   */
  watchQueue(listener: () => void): () => void {
    let version = this.dataVersion();
    const timer = setInterval(() => {
      if (this.closed) return;
      const current = this.dataVersion();
      if (current === version) return;
      version = current;
      listener();
    }, QUEUE_WATCH_INTERVAL_MS);
    timer.unref();
    return () => clearInterval(timer);
  }

  private dataVersion(): number {
    return Number(this.db.pragma('data_version', { simple: true }));
  }

  close(): Promise<void> {
    return settle(() => {
      if (this.closed) return;
      // Writes already handed to the group commit are committed before the database closes.
      while (this.pending.length > 0) this.flush();
      this.closed = true;
      this.db.close();
    });
  }

  // Domains, keys, aliases, credentials.

  addDomain(name: string, options: { srsDomain?: string | null } = {}): Promise<Domain> {
    return settle(() => {
      const domain = name.toLowerCase();
      const row = this.run(`domain ${domain}`, () =>
        this.statement(
          `INSERT INTO domains (name, srs_domain, organisation_id, created_at)
             VALUES (?, ?, NULL, ?) RETURNING *`,
        ).get(domain, options.srsDomain ?? null, Date.now()),
      );
      return toDomain(row as Row);
    });
  }

  getDomain(name: string): Promise<Domain | undefined> {
    return settle(() => {
      const row = this.statement('SELECT * FROM domains WHERE name = ?').get(name.toLowerCase());
      return row === undefined ? undefined : toDomain(row as Row);
    });
  }

  listDomains(): Promise<Domain[]> {
    return settle(() => {
      const rows = this.statement('SELECT * FROM domains ORDER BY name').all() as Row[];
      return rows.map(toDomain);
    });
  }

  removeDomain(name: string): Promise<boolean> {
    return settle(() => {
      // Keys, aliases and credentials go with it (ON DELETE CASCADE).
      const result = this.statement('DELETE FROM domains WHERE name = ?').run(name.toLowerCase());
      return result.changes > 0;
    });
  }

  addDkimKey(key: NewDkimKey): Promise<DkimKeyRecord> {
    return settle(() => {
      const row = this.run(`DKIM selector ${key.selector}`, () =>
        this.statement(
          `INSERT INTO dkim_keys (domain_id, selector, algorithm, private_key_path,
               private_key_pem, public_record, status, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING ${DKIM_KEY_COLUMNS}`,
        ).get(
          key.domainId,
          key.selector,
          key.algorithm,
          key.privateKeyPath,
          key.privateKeyPem,
          key.publicRecord,
          key.status,
          Date.now(),
        ),
      );
      return toDkimKey(row as Row);
    });
  }

  listDkimKeys(domainId: number): Promise<DkimKeyRecord[]> {
    return settle(() => {
      const rows = this.statement(
        `SELECT ${DKIM_KEY_COLUMNS} FROM dkim_keys WHERE domain_id = ? ORDER BY id`,
      ).all(domainId) as Row[];
      return rows.map(toDkimKey);
    });
  }

  getDkimPrivateKey(id: number): Promise<string | undefined> {
    return settle(() => {
      const row = this.statement('SELECT private_key_pem FROM dkim_keys WHERE id = ?').get(id) as
        Row | undefined;
      return nullableString(row?.private_key_pem) ?? undefined;
    });
  }

  setDkimKeyStatus(id: number, status: DkimKeyRecord['status']): Promise<void> {
    return settle(() => {
      const result = this.statement('UPDATE dkim_keys SET status = ? WHERE id = ?').run(status, id);
      if (result.changes === 0) throw new StoreNotFoundError(`DKIM key ${id} not found`);
      return;
    });
  }

  addAlias(alias: Omit<Alias, 'id' | 'createdAt'>): Promise<Alias> {
    return settle(() => {
      const localPart = alias.localPart.toLowerCase();
      const row = this.run(`alias ${localPart}`, () =>
        this.statement(
          `INSERT INTO aliases (domain_id, local_part, targets, enabled, dmarc_policy, created_at)
             VALUES (?, ?, ?, ?, ?, ?) RETURNING *`,
        ).get(
          alias.domainId,
          localPart,
          JSON.stringify(alias.targets),
          alias.enabled ? 1 : 0,
          alias.dmarcPolicy,
          Date.now(),
        ),
      );
      return toAlias(row as Row);
    });
  }

  listAliases(domainId: number): Promise<Alias[]> {
    return settle(() => {
      const rows = this.statement(
        'SELECT * FROM aliases WHERE domain_id = ? ORDER BY local_part',
      ).all(domainId) as Row[];
      return rows.map(toAlias);
    });
  }

  getAlias(domainId: number, localPart: string): Promise<Alias | undefined> {
    return settle(() => {
      const row = this.statement(
        'SELECT * FROM aliases WHERE domain_id = ? AND local_part = ?',
      ).get(domainId, localPart.toLowerCase());
      return row === undefined ? undefined : toAlias(row as Row);
    });
  }

  removeAlias(domainId: number, localPart: string): Promise<boolean> {
    return settle(() => {
      const result = this.statement(
        'DELETE FROM aliases WHERE domain_id = ? AND local_part = ?',
      ).run(domainId, localPart.toLowerCase());
      return result.changes > 0;
    });
  }

  addCredential(credential: Omit<Credential, 'id' | 'createdAt'>): Promise<Credential> {
    return settle(() => {
      const row = this.run(`credential ${credential.username}`, () =>
        this.statement(
          `INSERT INTO credentials (domain_id, username, password_hash, created_at)
             VALUES (?, ?, ?, ?) RETURNING *`,
        ).get(credential.domainId, credential.username, credential.passwordHash, Date.now()),
      );
      return toCredential(row as Row);
    });
  }

  getCredential(username: string): Promise<Credential | undefined> {
    return settle(() => {
      const row = this.statement('SELECT * FROM credentials WHERE username = ?').get(username);
      return row === undefined ? undefined : toCredential(row as Row);
    });
  }

  listCredentials(domainId: number): Promise<Credential[]> {
    return settle(() => {
      const rows = this.statement(
        'SELECT * FROM credentials WHERE domain_id = ? ORDER BY username',
      ).all(domainId) as Row[];
      return rows.map(toCredential);
    });
  }

  removeCredential(username: string): Promise<boolean> {
    return settle(() => {
      const result = this.statement('DELETE FROM credentials WHERE username = ?').run(username);
      return result.changes > 0;
    });
  }

  // The queue.

  enqueue(message: NewMessage): Promise<{ messageId: string; entryIds: number[] }> {
    if (message.recipients.length === 0) {
      return Promise.reject(new TypeError('enqueue needs at least one recipient'));
    }
    return this.grouped(DURABLE, () => this.insertMessage(message)).then((result) => {
      // Counted once committed, so a failed commit does not inflate the figure.
      this.stats.enqueued += 1;
      return result;
    });
  }

  getMessageBody(messageId: string): Promise<Buffer | undefined> {
    return settle(() => {
      const row = this.statement('SELECT body FROM messages WHERE id = ?').get(messageId) as
        { body: Buffer } | undefined;
      return row?.body;
    });
  }

  getMessageInfo(messageId: string): Promise<MessageInfo | undefined> {
    return settle(() => {
      const row = this.statement(
        `SELECT id, origin, original_sender, client_address, size, created_at
           FROM messages WHERE id = ?`,
      ).get(messageId) as Row | undefined;
      if (row === undefined) return undefined;
      return {
        messageId: String(row.id),
        origin: row.origin as MessageInfo['origin'],
        originalSender: String(row.original_sender),
        clientAddress: nullableString(row.client_address),
        size: Number(row.size),
        createdAt: new Date(Number(row.created_at)),
      };
    });
  }

  claimDue(options: ClaimOptions): Promise<QueueEntry[]> {
    return this.grouped(RELAXED, () => {
      const now = (options.now ?? new Date()).getTime();
      // One statement picks and leases the entries; SQLite serialises writers, so two
      // processes never claim the same entry.
      const rows = this.statement(claimDueSql(SQLITE_DIALECT)).all({
        owner: options.owner,
        expires: now + options.leaseMs,
        now,
        limit: options.limit,
      }) as Row[];
      const entries = rows.map(toEntry);
      entries.sort((a, b) => a.nextAttemptAt.getTime() - b.nextAttemptAt.getTime() || a.id - b.id);
      return entries;
    });
  }

  renewLease(entryIds: number[], owner: string, leaseMs: number): Promise<void> {
    const renewAll = () => {
      const renew = this.statement(
        'UPDATE queue_entries SET lease_expires_at = ? WHERE id = ? AND lease_owner = ?',
      );
      const expires = Date.now() + leaseMs;
      // The leases still held are renewed even when one is lost, so other work goes on.
      return entryIds.filter((id) => renew.run(expires, id, owner).changes === 0);
    };
    return this.grouped(RELAXED, renewAll).then((lost) => {
      if (lost[0] !== undefined) throw new LeaseLostError(lost[0], owner);
    });
  }

  completeAttempt(entryId: number, owner: string, outcome: AttemptOutcome): Promise<void> {
    if (outcome.status === 'deferred' && outcome.nextAttemptAt === undefined) {
      return Promise.reject(new TypeError('a deferred outcome needs nextAttemptAt'));
    }
    return this.grouped(RELAXED, () => {
      const now = Date.now();
      // One statement checks the lease and records the outcome. Only when it updates nothing
      // does a second one tell a lost lease from an entry deleted in flight.
      const updated = this.statement(
        `UPDATE queue_entries SET status = ?, attempts = attempts + 1, last_reply = ?,
             last_dsn = ?, next_attempt_at = ?, lease_owner = NULL, lease_expires_at = NULL
           WHERE id = ? AND (lease_owner IS NULL OR lease_owner = ?)
           RETURNING message_id`,
      ).get(
        outcome.status,
        outcome.reply,
        outcome.dsn,
        outcome.nextAttemptAt?.getTime() ?? now,
        entryId,
        owner,
      ) as Row | undefined;
      if (updated === undefined) {
        const exists = this.statement('SELECT 1 FROM queue_entries WHERE id = ?').get(entryId);
        // An entry deleted while it was in flight (`herald queue delete`) has nothing to update.
        if (exists === undefined) return;
        throw new LeaseLostError(entryId, owner);
      }
      this.insertEvent(entryId, String(updated.message_id), now, 'attempt', outcome);
    });
  }

  getEntry(entryId: number): Promise<QueueEntry | undefined> {
    return settle(() => {
      const row = this.statement('SELECT * FROM queue_entries WHERE id = ?').get(entryId);
      return row === undefined ? undefined : toEntry(row as Row);
    });
  }

  listEntries(filter: QueueFilter = {}): Promise<QueueEntry[]> {
    return settle(() => {
      const conditions: string[] = [];
      const parameters: unknown[] = [];
      if (filter.status !== undefined) {
        conditions.push('status = ?');
        parameters.push(filter.status);
      }
      if (filter.recipientDomain !== undefined) {
        conditions.push('recipient_domain = ?');
        parameters.push(filter.recipientDomain.toLowerCase());
      }
      const where = conditions.length > 0 ? `WHERE ${conditions.join(' AND ')}` : '';
      const limit = filter.limit === undefined ? '' : 'LIMIT ?';
      if (filter.limit !== undefined) parameters.push(filter.limit);
      const rows = this.statement(`SELECT * FROM queue_entries ${where} ORDER BY id ${limit}`).all(
        ...parameters,
      ) as Row[];
      return rows.map(toEntry);
    });
  }

  listEntriesOfMessage(messageId: string): Promise<QueueEntry[]> {
    return settle(() => {
      const rows = this.statement(
        'SELECT * FROM queue_entries WHERE message_id = ? ORDER BY id',
      ).all(messageId) as Row[];
      return rows.map(toEntry);
    });
  }

  retryNow(selector: { messageId?: string; entryId?: number; all?: boolean }): Promise<number> {
    return settle(() => {
      const { where, parameters } = entrySelector(selector, true);
      const now = Date.now();
      const retry = this.db.transaction(() => {
        const rows = this.statement(
          `UPDATE queue_entries SET next_attempt_at = ?
             WHERE status IN ${PENDING_STATUSES} AND ${where} RETURNING id, message_id`,
        ).all(now, ...parameters) as Row[];
        for (const row of rows) {
          this.insertEvent(Number(row.id), String(row.message_id), now, 'retry', null);
        }
        return rows.length;
      });
      return retry.immediate();
    });
  }

  deleteEntries(selector: { messageId?: string; entryId?: number }): Promise<number> {
    return settle(() => {
      const { where, parameters } = entrySelector(selector, false);
      const now = Date.now();
      const remove = this.db.transaction(() => {
        const rows = this.statement(
          `DELETE FROM queue_entries WHERE ${where} RETURNING id, message_id`,
        ).all(...parameters) as Row[];
        const messages = new Set<string>();
        for (const row of rows) {
          messages.add(String(row.message_id));
          this.insertEvent(Number(row.id), String(row.message_id), now, 'deleted', null);
        }
        const orphan = this.statement(
          `DELETE FROM messages WHERE id = ?
             AND NOT EXISTS (SELECT 1 FROM queue_entries WHERE message_id = ?)`,
        );
        for (const messageId of messages) orphan.run(messageId, messageId);
        return rows.length;
      });
      return remove.immediate();
    });
  }

  listEvents(filter: {
    messageId?: string;
    entryId?: number;
    limit?: number;
  }): Promise<QueueEvent[]> {
    return settle(() => {
      const conditions: string[] = [];
      const parameters: unknown[] = [];
      if (filter.messageId !== undefined) {
        conditions.push('message_id = ?');
        parameters.push(filter.messageId);
      }
      if (filter.entryId !== undefined) {
        conditions.push('entry_id = ?');
        parameters.push(filter.entryId);
      }
      const where = conditions.length > 0 ? `WHERE ${conditions.join(' AND ')}` : '';
      const limit = filter.limit === undefined ? '' : 'LIMIT ?';
      if (filter.limit !== undefined) parameters.push(filter.limit);
      const rows = this.statement(`SELECT * FROM queue_events ${where} ORDER BY id ${limit}`).all(
        ...parameters,
      ) as Row[];
      return rows.map(toEvent);
    });
  }

  nextDueAt(): Promise<Date | undefined> {
    return settle(() => {
      // Unleased entries come in due order from the due index, so the first row is the answer.
      const free = this.statement(
        `SELECT next_attempt_at AS due FROM queue_entries INDEXED BY queue_entries_due
         WHERE status IN ${PENDING_STATUSES} AND lease_owner IS NULL
         ORDER BY next_attempt_at LIMIT 1`,
      ).get() as { due: number } | undefined;
      // A leased entry is due again only when its lease runs out.
      const leased = this.statement(
        `SELECT MIN(CASE WHEN lease_expires_at > next_attempt_at
                    THEN lease_expires_at ELSE next_attempt_at END) AS due
         FROM queue_entries INDEXED BY queue_entries_leased
         WHERE lease_owner IS NOT NULL AND status IN ${PENDING_STATUSES}`,
      ).get() as { due: number | null };
      const candidates = [free?.due, leased.due].filter((due) => due !== undefined && due !== null);
      return candidates.length === 0 ? undefined : new Date(Math.min(...candidates.map(Number)));
    });
  }

  countByStatus(): Promise<Record<QueueStatus, number>> {
    return settle(() => {
      const counts: Record<QueueStatus, number> = {
        queued: 0,
        deferred: 0,
        delivered: 0,
        failed: 0,
      };
      const rows = this.statement(
        'SELECT status, COUNT(*) AS n FROM queue_entries GROUP BY status',
      ).all() as Row[];
      for (const row of rows) counts[row.status as QueueStatus] = Number(row.n);
      return counts;
    });
  }

  purgeFinished(before: Date): Promise<number> {
    return settle(() => {
      const result = this.statement(
        `DELETE FROM messages WHERE created_at < ?
             AND NOT EXISTS (SELECT 1 FROM queue_entries
                             WHERE message_id = messages.id AND status IN ${PENDING_STATUSES})`,
      ).run(before.getTime());
      return result.changes;
    });
  }

  releaseLeasesOf(isGone: (owner: string) => boolean): Promise<number> {
    return settle(() => {
      const owners = this.statement(
        `SELECT DISTINCT lease_owner AS owner FROM queue_entries INDEXED BY queue_entries_leased
         WHERE lease_owner IS NOT NULL AND status IN ${PENDING_STATUSES}`,
      ).all() as { owner: string }[];
      let released = 0;
      for (const { owner } of owners) {
        if (!isGone(owner)) continue;
        released += this.statement(
          `UPDATE queue_entries SET lease_owner = NULL, lease_expires_at = NULL
           WHERE lease_owner = ? AND status IN ${PENDING_STATUSES}`,
        ).run(owner).changes;
      }
      return released;
    });
  }

  // SRS database mode.

  putSrsToken(record: SrsTokenRecord, maxRows: number): Promise<void> {
    return this.grouped(DURABLE, () => {
      const now = Date.now();
      {
        this.statement(
          `INSERT INTO srs_tokens (token, original, expires_at, created_at) VALUES (?, ?, ?, ?)
             ON CONFLICT (token) DO UPDATE SET original = excluded.original,
               expires_at = excluded.expires_at`,
        ).run(record.token, record.original, record.expiresAt.getTime(), now);
        this.statement('DELETE FROM srs_tokens WHERE expires_at <= ?').run(now);
        // Past the cap, the tokens closest to expiry go first: they have the least use left.
        const { n } = this.statement('SELECT COUNT(*) AS n FROM srs_tokens').get() as {
          n: number;
        };
        if (n > maxRows) {
          this.statement(
            `DELETE FROM srs_tokens WHERE token IN (
                 SELECT token FROM srs_tokens WHERE token <> ?
                 ORDER BY expires_at, created_at LIMIT ?)`,
          ).run(record.token, n - maxRows);
        }
      }
    });
  }

  getSrsToken(token: string, now: Date): Promise<string | undefined> {
    return settle(() => {
      const row = this.statement(
        'SELECT original FROM srs_tokens WHERE token = ? AND expires_at > ?',
      ).get(token, now.getTime()) as { original: string } | undefined;
      return row?.original;
    });
  }

  // Helpers.

  /** Prepare a statement once and reuse it: compiling SQL costs more than running it. */
  private statement(sql: string): Database.Statement {
    let prepared = this.statements.get(sql);
    if (prepared === undefined) {
      prepared = this.db.prepare(sql);
      this.statements.set(sql, prepared);
    }
    return prepared;
  }

  /**
   * Queue a write for the next group commit. The promise settles after the transaction that
   * contains the write has committed, or with the write's own error.
   */
  private grouped<T>(durability: Durability, write: () => T): Promise<T> {
    if (this.closed) return Promise.reject(new Error('the store is closed'));
    return new Promise<T>((resolve, reject) => {
      this.pending.push({
        write,
        resolve: (value) => resolve(value as T),
        reject,
        relaxed: durability === RELAXED,
      });
      if (this.flushScheduled) return;
      this.flushScheduled = true;
      // setImmediate runs after the I/O callbacks of this loop turn, so every session whose
      // data arrived in the same turn joins this batch.
      setImmediate(() => {
        this.flushScheduled = false;
        while (this.pending.length > 0) this.flush();
      });
    });
  }

  /** Commit up to `maxBatch` pending writes in one transaction, then settle their promises. */
  private flush(): void {
    const batch = this.pending.splice(0, this.maxBatch);
    if (batch.length === 0) return;
    const relaxed = batch.every((item) => item.relaxed);
    const outcomes: Outcome[] = [];
    const commitAll = this.db.transaction(() => {
      for (const item of batch) {
        try {
          // A nested better-sqlite3 transaction is a savepoint: an error undoes this write only.
          outcomes.push({ ok: true, value: this.db.transaction(item.write)() });
        } catch (error) {
          outcomes.push({ ok: false, error });
        }
      }
    });
    // SQLite reads the setting at each commit. It goes back to FULL at once, so every other
    // write on this connection keeps its fsync.
    if (relaxed) this.statement('PRAGMA synchronous = NORMAL').run();
    try {
      commitAll.immediate();
    } catch (error) {
      // The commit itself failed (disk full, lock timeout): nothing in the batch is durable.
      for (const item of batch) item.reject(error);
      return;
    } finally {
      if (relaxed) this.statement('PRAGMA synchronous = FULL').run();
    }
    this.stats.commits += 1;
    if (relaxed) this.stats.relaxedCommits += 1;
    this.stats.writes += batch.length;
    this.stats.largestBatch = Math.max(this.stats.largestBatch, batch.length);
    batch.forEach((item, index) => {
      const outcome = outcomes[index]!;
      if (outcome.ok) item.resolve(outcome.value);
      else item.reject(outcome.error);
    });
  }

  private insertMessage(message: NewMessage): { messageId: string; entryIds: number[] } {
    const now = Date.now();
    const messageId = newQueueId();
    this.statement(
      `INSERT INTO messages (id, body, size, origin, original_sender, client_address, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?)`,
    ).run(
      messageId,
      message.body,
      message.body.length,
      message.origin,
      message.originalSender,
      message.clientAddress ?? null,
      now,
    );
    const insertEntry = this.statement(
      `INSERT INTO queue_entries (message_id, recipient, recipient_domain, sender, bounce_to,
         origin, status, attempts, created_at, next_attempt_at, campaign_id, subscriber_id)
       VALUES (?, ?, ?, ?, ?, ?, 'queued', 0, ?, ?, ?, ?)`,
    );
    const entryIds: number[] = [];
    for (const recipient of message.recipients) {
      const result = insertEntry.run(
        messageId,
        recipient.recipient,
        domainOf(recipient.recipient),
        recipient.sender,
        recipient.bounceTo,
        message.origin,
        now,
        now,
        recipient.campaignId ?? null,
        recipient.subscriberId ?? null,
      );
      const entryId = Number(result.lastInsertRowid);
      entryIds.push(entryId);
      this.insertEvent(entryId, messageId, now, 'queued', null);
    }
    return { messageId, entryIds };
  }

  private insertEvent(
    entryId: number,
    messageId: string,
    time: number,
    kind: QueueEvent['kind'],
    outcome: AttemptOutcome | null,
  ): void {
    this.statement(
      `INSERT INTO queue_events (entry_id, message_id, time, kind, mx, reply, dsn, verdict)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(
      entryId,
      messageId,
      time,
      kind,
      outcome?.mx ?? null,
      outcome?.reply ?? null,
      outcome?.dsn ?? null,
      outcome?.status ?? kind,
    );
  }

  /** Run an insert, turning SQLite's constraint errors into the store's own errors. */
  private run(what: string, insert: () => unknown): unknown {
    try {
      return insert();
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      if (code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY') {
        throw new StoreConflictError(`${what} already exists`);
      }
      if (code === 'SQLITE_CONSTRAINT_FOREIGNKEY') {
        throw new StoreNotFoundError(`domain of ${what} not found`);
      }
      throw error;
    }
  }
}

/** Run a synchronous step as a promise, so that its errors arrive as rejections. */
function settle<T>(step: () => T): Promise<T> {
  try {
    return Promise.resolve(step());
  } catch (error) {
    return Promise.reject(error instanceof Error ? error : new Error(String(error)));
  }
}

function entrySelector(
  selector: { messageId?: string; entryId?: number; all?: boolean },
  allowAll: boolean,
): { where: string; parameters: unknown[] } {
  if (selector.entryId !== undefined) return { where: 'id = ?', parameters: [selector.entryId] };
  if (selector.messageId !== undefined) {
    return { where: 'message_id = ?', parameters: [selector.messageId] };
  }
  if (allowAll && selector.all === true) return { where: '1 = 1', parameters: [] };
  throw new TypeError('select entries by entryId or messageId (or all, for a retry)');
}

/** Lower-cased domain of an address; the whole address when it has no `@`. */
function domainOf(address: string): string {
  return address.slice(address.lastIndexOf('@') + 1).toLowerCase();
}
