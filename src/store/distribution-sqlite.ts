/**
 * The SQLite implementation of the distribution store. It opens its own connection to the
 * mail store's database file (WAL lets both share it) and keeps to its own tables, except
 * for two read-only queries on `queue_entries` that report a campaign's deliveries. Call
 * `migrate()` after the mail store's own migration, because one index covers the queue table.
 *
 * The interface comes from the distribution module as a type only: nothing of that module
 * runs here.
 */
import { randomBytes } from 'node:crypto';

import Database from 'better-sqlite3';

import type {
  AddSubscribersResult,
  ApiTokenRecord,
  BatchClaim,
  Campaign,
  CampaignBatch,
  CampaignEvent,
  CampaignRecipient,
  DistributionStore,
  MailingList,
  NewCampaign,
  NewSubscriber,
  OpenBatch,
  Organisation,
  QueueChange,
  RecipientCounts,
  RecipientStatus,
  Subscriber,
  SubscriberPage,
  SubscriberStatus,
  Suppression,
  TokenRole,
} from '../distribution/types.js';
import {
  DISTRIBUTION_MIGRATIONS,
  distributionMigrationsTableStatement,
} from './distribution-migrations.js';
import {
  RECIPIENT_STATUSES,
  SUBSCRIBER_STATUSES,
  mapRow,
  rateSlot,
  toCampaign,
  toList,
  toOpenBatch,
  toOrganisation,
  toRecipient,
  toSubscriber,
  toToken,
  type Row,
} from './distribution-rows.js';
import { prepareDatabaseFile } from './file-mode.js';
import { StoreConflictError, StoreNotFoundError } from './errors.js';
import { SQLITE_DIALECT } from './migrations.js';

export interface SqliteDistributionStoreOptions {
  /** The mail store's database file. */
  path: string;
  busyTimeoutMs?: number;
}

export class SqliteDistributionStore implements DistributionStore {
  private readonly db: Database.Database;
  private readonly statements = new Map<string, Database.Statement>();
  private closed = false;

  constructor(options: SqliteDistributionStoreOptions) {
    prepareDatabaseFile(options.path);
    this.db = new Database(options.path, { timeout: options.busyTimeoutMs ?? 10_000 });
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.pragma('foreign_keys = ON');
    // The distribution tables are read in batches by id, so a small page cache serves them.
    // better-sqlite3's 16 MiB default would mostly keep pages that are read once.
    this.db.pragma('cache_size = -4096');
  }

  migrate(): Promise<void> {
    return settle(() => {
      this.db.exec(distributionMigrationsTableStatement());
      const apply = this.db.transaction(() => {
        const rows = this.all('SELECT version FROM distribution_schema_migrations');
        const applied = new Set(rows.map((row) => Number(row.version)));
        for (const migration of DISTRIBUTION_MIGRATIONS) {
          if (applied.has(migration.version)) continue;
          for (const statement of migration.statements(SQLITE_DIALECT)) this.db.exec(statement);
          this.db
            .prepare(
              'INSERT INTO distribution_schema_migrations (version, name, applied_at) VALUES (?, ?, ?)',
            )
            .run(migration.version, migration.name, Date.now());
        }
      });
      // IMMEDIATE makes a second process wait for the first, so it reads the versions applied.
      apply.immediate();
    });
  }

  close(): Promise<void> {
    return settle(() => {
      if (this.closed) return;
      this.closed = true;
      this.db.close();
    });
  }

  getSecret(name: string): Promise<Buffer> {
    return settle(() => {
      this.db
        .prepare(
          'INSERT OR IGNORE INTO distribution_secrets (name, value, created_at) VALUES (?, ?, ?)',
        )
        .run(name, randomBytes(32), Date.now());
      const row = this.get('SELECT value FROM distribution_secrets WHERE name = ?', name);
      return row!.value as Buffer;
    });
  }

  // Organisations, domains, tokens.

  createOrganisation(name: string): Promise<Organisation> {
    return settle(() => {
      const row = this.unique(`organisation ${name}`, () =>
        this.get(
          'INSERT INTO organisations (name, created_at) VALUES (?, ?) RETURNING *',
          name,
          Date.now(),
        ),
      );
      return toOrganisation(row!);
    });
  }

  getOrganisation(id: number): Promise<Organisation | undefined> {
    return settle(() =>
      mapRow(this.get('SELECT * FROM organisations WHERE id = ?', id), toOrganisation),
    );
  }

  findOrganisation(name: string): Promise<Organisation | undefined> {
    return settle(() =>
      mapRow(this.get('SELECT * FROM organisations WHERE name = ?', name), toOrganisation),
    );
  }

  listOrganisations(): Promise<Organisation[]> {
    return settle(() => this.all('SELECT * FROM organisations ORDER BY id').map(toOrganisation));
  }

  assignDomain(organisationId: number, domain: string): Promise<void> {
    return settle(() => {
      const name = domain.toLowerCase();
      const owner = this.get(
        'SELECT organisation_id FROM organisation_domains WHERE domain = ?',
        name,
      );
      if (owner && Number(owner.organisation_id) !== organisationId) {
        throw new StoreConflictError(
          `domain ${name} already belongs to organisation ${String(owner.organisation_id)}`,
        );
      }
      this.requireOrganisation(organisationId);
      this.db
        .prepare(
          'INSERT OR IGNORE INTO organisation_domains (domain, organisation_id) VALUES (?, ?)',
        )
        .run(name, organisationId);
    });
  }

  listOrganisationDomains(organisationId: number): Promise<string[]> {
    return settle(() =>
      this.all(
        'SELECT domain FROM organisation_domains WHERE organisation_id = ? ORDER BY domain',
        organisationId,
      ).map((row) => String(row.domain)),
    );
  }

  domainOwner(domain: string): Promise<number | undefined> {
    return settle(() => {
      const row = this.get(
        'SELECT organisation_id FROM organisation_domains WHERE domain = ?',
        domain.toLowerCase(),
      );
      return row ? Number(row.organisation_id) : undefined;
    });
  }

  addApiToken(token: {
    organisationId: number | null;
    role: TokenRole;
    label: string;
    secretHash: string;
  }): Promise<ApiTokenRecord> {
    return settle(() => {
      if (token.organisationId !== null) this.requireOrganisation(token.organisationId);
      const row = this.get(
        `INSERT INTO api_tokens (organisation_id, role, label, secret_hash, created_at)
         VALUES (?, ?, ?, ?, ?) RETURNING *`,
        token.organisationId,
        token.role,
        token.label,
        token.secretHash,
        Date.now(),
      );
      return toToken(row!);
    });
  }

  findApiToken(secretHash: string): Promise<ApiTokenRecord | undefined> {
    return settle(() =>
      mapRow(this.get('SELECT * FROM api_tokens WHERE secret_hash = ?', secretHash), toToken),
    );
  }

  // Lists and subscribers.

  createList(list: {
    organisationId: number;
    name: string;
    description?: string;
  }): Promise<MailingList> {
    return settle(() => {
      this.requireOrganisation(list.organisationId);
      const row = this.unique(`list ${list.name}`, () =>
        this.get(
          'INSERT INTO lists (organisation_id, name, description, created_at) VALUES (?, ?, ?, ?) RETURNING *',
          list.organisationId,
          list.name,
          list.description ?? '',
          Date.now(),
        ),
      );
      return toList(row!);
    });
  }

  getList(id: number): Promise<MailingList | undefined> {
    return settle(() => mapRow(this.get('SELECT * FROM lists WHERE id = ?', id), toList));
  }

  findList(organisationId: number, name: string): Promise<MailingList | undefined> {
    return settle(() =>
      mapRow(
        this.get(
          'SELECT * FROM lists WHERE organisation_id = ? AND name = ?',
          organisationId,
          name,
        ),
        toList,
      ),
    );
  }

  listLists(organisationId?: number): Promise<MailingList[]> {
    return settle(() =>
      (organisationId === undefined
        ? this.all('SELECT * FROM lists ORDER BY id')
        : this.all('SELECT * FROM lists WHERE organisation_id = ? ORDER BY id', organisationId)
      ).map(toList),
    );
  }

  addSubscribers(listId: number, subscribers: NewSubscriber[]): Promise<AddSubscribersResult> {
    return settle(() => {
      const insert = this.db.prepare(
        `INSERT INTO subscribers (list_id, address, address_key, name, fields, status, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (list_id, address_key) DO NOTHING RETURNING id`,
      );
      const run = this.db.transaction((rows: NewSubscriber[]) => {
        const now = Date.now();
        return rows.map((row) => {
          const inserted = insert.get(
            listId,
            row.address,
            row.address.toLowerCase(),
            row.name ?? '',
            JSON.stringify(row.fields ?? {}),
            row.status ?? 'subscribed',
            now,
            now,
          ) as Row | undefined;
          return inserted ? Number(inserted.id) : null;
        });
      });
      return { ids: run(subscribers) };
    });
  }

  getSubscriber(id: number): Promise<Subscriber | undefined> {
    return settle(() =>
      mapRow(this.get('SELECT * FROM subscribers WHERE id = ?', id), toSubscriber),
    );
  }

  findSubscriber(listId: number, address: string): Promise<Subscriber | undefined> {
    return settle(() =>
      mapRow(
        this.get(
          'SELECT * FROM subscribers WHERE list_id = ? AND address_key = ?',
          listId,
          address.toLowerCase(),
        ),
        toSubscriber,
      ),
    );
  }

  pageSubscribers(
    listId: number,
    options: { afterId: number; limit: number; status?: SubscriberStatus },
  ): Promise<SubscriberPage> {
    return settle(() => {
      const rows =
        options.status === undefined
          ? this.all(
              'SELECT * FROM subscribers WHERE list_id = ? AND id > ? ORDER BY id LIMIT ?',
              listId,
              options.afterId,
              options.limit,
            )
          : this.all(
              'SELECT * FROM subscribers WHERE list_id = ? AND id > ? AND status = ? ORDER BY id LIMIT ?',
              listId,
              options.afterId,
              options.status,
              options.limit,
            );
      const subscribers = rows.map(toSubscriber);
      const last = subscribers[subscribers.length - 1];
      return {
        subscribers,
        nextAfterId: subscribers.length < options.limit || !last ? null : last.id,
      };
    });
  }

  setSubscriberStatus(id: number, status: SubscriberStatus): Promise<void> {
    return settle(() => {
      this.db
        .prepare('UPDATE subscribers SET status = ?, updated_at = ? WHERE id = ?')
        .run(status, Date.now(), id);
    });
  }

  addSoftBounce(id: number): Promise<number> {
    return settle(() => {
      const row = this.get(
        'UPDATE subscribers SET soft_bounces = soft_bounces + 1, updated_at = ? WHERE id = ? RETURNING soft_bounces',
        Date.now(),
        id,
      );
      return row ? Number(row.soft_bounces) : 0;
    });
  }

  countSubscribers(listId: number): Promise<Record<SubscriberStatus, number>> {
    return settle(() => {
      const counts = Object.fromEntries(SUBSCRIBER_STATUSES.map((status) => [status, 0])) as Record<
        SubscriberStatus,
        number
      >;
      for (const row of this.all(
        'SELECT status, COUNT(*) AS n FROM subscribers WHERE list_id = ? GROUP BY status',
        listId,
      )) {
        counts[row.status as SubscriberStatus] = Number(row.n);
      }
      return counts;
    });
  }

  countSubscribedAfter(listId: number, afterId: number): Promise<number> {
    return settle(() => {
      const row = this.get(
        "SELECT COUNT(*) AS n FROM subscribers WHERE list_id = ? AND id > ? AND status = 'subscribed'",
        listId,
        afterId,
      );
      return Number(row?.n ?? 0);
    });
  }

  // Suppression.

  suppress(entry: Omit<Suppression, 'createdAt'>): Promise<void> {
    return settle(() => {
      this.db
        .prepare(
          `INSERT INTO suppressions (organisation_id, address, reason, detail, created_at) VALUES (?, ?, ?, ?, ?)
           ON CONFLICT (organisation_id, address) DO NOTHING`,
        )
        .run(
          entry.organisationId,
          entry.address.toLowerCase(),
          entry.reason,
          entry.detail,
          Date.now(),
        );
    });
  }

  suppressedAmong(organisationId: number, addresses: string[]): Promise<Set<string>> {
    return settle(() => {
      const found = new Set<string>();
      const keys = [...new Set(addresses.map((address) => address.toLowerCase()))];
      // SQLite allows 32766 parameters; chunks of 500 keep each statement small.
      for (let start = 0; start < keys.length; start += 500) {
        const chunk = keys.slice(start, start + 500);
        const rows = this.all(
          `SELECT address FROM suppressions WHERE organisation_id = ? AND address IN (${chunk.map(() => '?').join(',')})`,
          organisationId,
          ...chunk,
        );
        for (const row of rows) found.add(String(row.address));
      }
      return found;
    });
  }

  listSuppressions(organisationId: number, limit = 1000): Promise<Suppression[]> {
    return settle(() =>
      this.all(
        'SELECT * FROM suppressions WHERE organisation_id = ? ORDER BY created_at DESC, address LIMIT ?',
        organisationId,
        limit,
      ).map((row) => ({
        organisationId: Number(row.organisation_id),
        address: String(row.address),
        reason: row.reason as Suppression['reason'],
        detail: String(row.detail),
        createdAt: new Date(Number(row.created_at)),
      })),
    );
  }

  // Campaigns.

  createCampaign(campaign: NewCampaign): Promise<Campaign> {
    return settle(() => {
      const list = this.get('SELECT organisation_id FROM lists WHERE id = ?', campaign.listId);
      if (!list || Number(list.organisation_id) !== campaign.organisationId) {
        throw new StoreNotFoundError(
          `list ${campaign.listId} not found in organisation ${campaign.organisationId}`,
        );
      }
      const row = this.get(
        `INSERT INTO campaigns (organisation_id, list_id, name, from_address, from_name, reply_to, subject,
           html, text, status, scheduled_at, rate_per_minute, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'draft', ?, ?, ?) RETURNING *`,
        campaign.organisationId,
        campaign.listId,
        campaign.name,
        campaign.fromAddress,
        campaign.fromName ?? '',
        campaign.replyTo ?? '',
        campaign.subject,
        campaign.html,
        campaign.text ?? '',
        campaign.scheduledAt?.getTime() ?? null,
        campaign.ratePerMinute ?? 0,
        Date.now(),
      );
      return toCampaign(row!);
    });
  }

  getCampaign(id: number): Promise<Campaign | undefined> {
    return settle(() => mapRow(this.get('SELECT * FROM campaigns WHERE id = ?', id), toCampaign));
  }

  listCampaigns(organisationId?: number): Promise<Campaign[]> {
    return settle(() =>
      (organisationId === undefined
        ? this.all('SELECT * FROM campaigns ORDER BY id')
        : this.all('SELECT * FROM campaigns WHERE organisation_id = ? ORDER BY id', organisationId)
      ).map(toCampaign),
    );
  }

  updateCampaign(
    id: number,
    changes: Partial<
      Pick<Campaign, 'status' | 'scheduledAt' | 'startedAt' | 'finishedAt' | 'ratePerMinute'>
    >,
  ): Promise<void> {
    return settle(() => {
      const columns: Record<string, string> = {
        status: 'status',
        scheduledAt: 'scheduled_at',
        startedAt: 'started_at',
        finishedAt: 'finished_at',
        ratePerMinute: 'rate_per_minute',
      };
      const sets: string[] = [];
      const values: unknown[] = [];
      for (const [key, value] of Object.entries(changes)) {
        const column = columns[key];
        if (!column) continue;
        sets.push(`${column} = ?`);
        values.push(value instanceof Date ? value.getTime() : (value ?? null));
      }
      if (sets.length === 0) return;
      this.db.prepare(`UPDATE campaigns SET ${sets.join(', ')} WHERE id = ?`).run(...values, id);
    });
  }

  dueCampaigns(now: Date): Promise<Campaign[]> {
    return settle(() =>
      this.all(
        `SELECT * FROM campaigns
         WHERE (status = 'scheduled' AND scheduled_at <= ?) OR status = 'sending' ORDER BY id`,
        now.getTime(),
      ).map(toCampaign),
    );
  }

  claimCampaignBatch(
    campaignId: number,
    owner: string,
    options: { limit: number; leaseMs: number; now?: Date },
  ): Promise<CampaignBatch | undefined> {
    return settle(() => {
      const now = (options.now ?? new Date()).getTime();
      const leaseUntil = now + options.leaseMs;
      const claim = this.db.transaction((): CampaignBatch | undefined => {
        const campaign = this.get(
          'SELECT list_id, cursor, rate_per_minute, rate_slot FROM campaigns WHERE id = ?',
          campaignId,
        );
        if (!campaign) return undefined;
        const listId = Number(campaign.list_id);
        let afterId: number;
        let lastId: number;
        let subscribers: Subscriber[];
        const expired = this.get(
          `SELECT after_id, last_id FROM campaign_batches
           WHERE campaign_id = ? AND done = 0 AND lease_until < ? ORDER BY after_id LIMIT 1`,
          campaignId,
          now,
        );
        if (expired) {
          afterId = Number(expired.after_id);
          lastId = Number(expired.last_id);
          this.db
            .prepare(
              'UPDATE campaign_batches SET owner = ?, lease_until = ? WHERE campaign_id = ? AND after_id = ?',
            )
            .run(owner, leaseUntil, campaignId, afterId);
          subscribers = this.all(
            `SELECT * FROM subscribers WHERE list_id = ? AND id > ? AND id <= ? AND status = 'subscribed'
             ORDER BY id`,
            listId,
            afterId,
            lastId,
          ).map(toSubscriber);
        } else {
          afterId = Number(campaign.cursor);
          subscribers = this.all(
            `SELECT * FROM subscribers WHERE list_id = ? AND id > ? AND status = 'subscribed'
             ORDER BY id LIMIT ?`,
            listId,
            afterId,
            options.limit,
          ).map(toSubscriber);
          if (subscribers.length === 0) return undefined;
          lastId = subscribers[subscribers.length - 1]!.id;
          this.db
            .prepare(
              `INSERT INTO campaign_batches (campaign_id, after_id, last_id, owner, lease_until, created_at)
               VALUES (?, ?, ?, ?, ?, ?)`,
            )
            .run(campaignId, afterId, lastId, owner, leaseUntil, now);
          this.db.prepare('UPDATE campaigns SET cursor = ? WHERE id = ?').run(lastId, campaignId);
        }
        const startAt = rateSlot(campaign, subscribers.length, now);
        if (startAt.next !== null) {
          this.db
            .prepare('UPDATE campaigns SET rate_slot = ? WHERE id = ?')
            .run(startAt.next, campaignId);
        }
        return {
          campaignId,
          afterId,
          lastId,
          subscribers,
          startAt: new Date(startAt.start),
          takenOver: expired !== undefined,
        };
      });
      // IMMEDIATE takes the write lock before reading the cursor, so claims never overlap.
      return claim.immediate();
    });
  }

  renewCampaignBatches(
    campaignId: number,
    owner: string,
    leaseMs: number,
    now: Date = new Date(),
  ): Promise<Set<number>> {
    return settle(() => {
      const rows = this.all(
        `UPDATE campaign_batches SET lease_until = ?
         WHERE campaign_id = ? AND owner = ? AND done = 0 RETURNING after_id`,
        now.getTime() + leaseMs,
        campaignId,
        owner,
      );
      return new Set(rows.map((row) => Number(row.after_id)));
    });
  }

  releaseCampaignBatch(campaignId: number, afterId: number, owner: string): Promise<void> {
    return settle(() => {
      this.statement(
        `UPDATE campaign_batches SET lease_until = 0
         WHERE campaign_id = ? AND after_id = ? AND owner = ? AND done = 0`,
      ).run(campaignId, afterId, owner);
    });
  }

  recordBatch(
    campaignId: number,
    recipients: CampaignRecipient[],
    claim: BatchClaim,
  ): Promise<boolean> {
    return settle(() => {
      const run = this.db.transaction((): boolean => {
        const done = this.db
          .prepare(
            `UPDATE campaign_batches SET done = 1
             WHERE campaign_id = ? AND after_id = ? AND owner = ? AND done = 0`,
          )
          .run(campaignId, claim.afterId, claim.owner);
        if (done.changes === 0) return false;
        this.insertRecipients(campaignId, recipients);
        return true;
      });
      return run.immediate();
    });
  }

  finishCampaign(campaignId: number, now: Date = new Date()): Promise<boolean> {
    return settle(() => {
      const result = this.db
        .prepare(
          `UPDATE campaigns SET status = 'sent', finished_at = ?
           WHERE id = ? AND status = 'sending'
             AND NOT EXISTS (SELECT 1 FROM campaign_batches b WHERE b.campaign_id = campaigns.id AND b.done = 0)
             AND NOT EXISTS (SELECT 1 FROM subscribers s
               WHERE s.list_id = campaigns.list_id AND s.id > campaigns.cursor AND s.status = 'subscribed')`,
        )
        .run(now.getTime(), campaignId);
      return result.changes === 1;
    });
  }

  countUnsent(campaignId: number): Promise<number> {
    return settle(() => {
      const row = this.get(
        `SELECT
           (SELECT COUNT(*) FROM subscribers s
             WHERE s.list_id = c.list_id AND s.id > c.cursor AND s.status = 'subscribed')
           + (SELECT COUNT(*) FROM campaign_batches b
               JOIN subscribers s ON s.list_id = c.list_id AND s.id > b.after_id AND s.id <= b.last_id
               WHERE b.campaign_id = c.id AND b.done = 0 AND s.status = 'subscribed'
                 AND NOT EXISTS (SELECT 1 FROM campaign_recipients r
                   WHERE r.campaign_id = c.id AND r.subscriber_id = s.id)) AS n
         FROM campaigns c WHERE c.id = ?`,
        campaignId,
      );
      return row ? Number(row.n) : 0;
    });
  }

  listOpenBatches(limit = 1000): Promise<OpenBatch[]> {
    return settle(() =>
      this.all(
        `SELECT * FROM campaign_batches WHERE done = 0 ORDER BY created_at, campaign_id, after_id
         LIMIT ?`,
        limit,
      ).map(toOpenBatch),
    );
  }

  // Recipients and events.

  recordRecipients(campaignId: number, recipients: CampaignRecipient[]): Promise<void> {
    return settle(() => {
      this.db.transaction(() => this.insertRecipients(campaignId, recipients))();
    });
  }

  /** Inserts recipient rows not yet present, with one event each; call inside a transaction. */
  private insertRecipients(campaignId: number, recipients: CampaignRecipient[]): void {
    const insert = this.db.prepare(
      `INSERT INTO campaign_recipients (campaign_id, subscriber_id, address, status, message_id, detail, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (campaign_id, subscriber_id) DO NOTHING`,
    );
    const event = this.db.prepare(
      'INSERT INTO campaign_events (campaign_id, subscriber_id, time, kind, detail) VALUES (?, ?, ?, ?, ?)',
    );
    const now = Date.now();
    for (const recipient of recipients) {
      const result = insert.run(
        campaignId,
        recipient.subscriberId,
        recipient.address,
        recipient.status,
        recipient.messageId,
        recipient.detail,
        now,
      );
      if (result.changes > 0)
        event.run(campaignId, recipient.subscriberId, now, recipient.status, recipient.detail);
    }
  }

  getRecipient(campaignId: number, subscriberId: number): Promise<CampaignRecipient | undefined> {
    return settle(() =>
      mapRow(
        this.get(
          'SELECT * FROM campaign_recipients WHERE campaign_id = ? AND subscriber_id = ?',
          campaignId,
          subscriberId,
        ),
        toRecipient,
      ),
    );
  }

  setRecipientStatus(
    campaignId: number,
    subscriberId: number,
    status: RecipientStatus,
    detail: string,
  ): Promise<void> {
    return this.setRecipientStatuses(campaignId, [{ subscriberId, status, detail }]);
  }

  setRecipientStatuses(
    campaignId: number,
    updates: { subscriberId: number; status: RecipientStatus; detail: string }[],
  ): Promise<void> {
    return settle(() => {
      const update = this.db.prepare(
        `UPDATE campaign_recipients SET status = ?, detail = ?, updated_at = ?
         WHERE campaign_id = ? AND subscriber_id = ?`,
      );
      const event = this.db.prepare(
        'INSERT INTO campaign_events (campaign_id, subscriber_id, time, kind, detail) VALUES (?, ?, ?, ?, ?)',
      );
      const run = this.db.transaction(() => {
        const now = Date.now();
        for (const item of updates) {
          update.run(item.status, item.detail, now, campaignId, item.subscriberId);
          event.run(campaignId, item.subscriberId, now, item.status, item.detail);
        }
      });
      run();
    });
  }

  listRecipients(
    campaignId: number,
    options: { status?: RecipientStatus; limit?: number; afterId?: number } = {},
  ): Promise<CampaignRecipient[]> {
    return settle(() => {
      const limit = options.limit ?? 1000;
      const afterId = options.afterId ?? 0;
      const rows =
        options.status === undefined
          ? this.all(
              'SELECT * FROM campaign_recipients WHERE campaign_id = ? AND subscriber_id > ? ORDER BY subscriber_id LIMIT ?',
              campaignId,
              afterId,
              limit,
            )
          : this.all(
              `SELECT * FROM campaign_recipients WHERE campaign_id = ? AND status = ? AND subscriber_id > ?
               ORDER BY subscriber_id LIMIT ?`,
              campaignId,
              options.status,
              afterId,
              limit,
            );
      return rows.map(toRecipient);
    });
  }

  countRecipients(campaignId: number): Promise<RecipientCounts> {
    return settle(() => {
      const counts = Object.fromEntries(
        RECIPIENT_STATUSES.map((status) => [status, 0]),
      ) as RecipientCounts;
      const rows = this.all(
        'SELECT status, COUNT(*) AS n FROM campaign_recipients WHERE campaign_id = ? GROUP BY status',
        campaignId,
      );
      for (const row of rows) counts[row.status as RecipientStatus] = Number(row.n);
      return counts;
    });
  }

  listCampaignEvents(campaignId: number, limit = 1000): Promise<CampaignEvent[]> {
    return settle(() =>
      this.all(
        'SELECT * FROM campaign_events WHERE campaign_id = ? ORDER BY id DESC LIMIT ?',
        campaignId,
        limit,
      ).map((row) => ({
        id: Number(row.id),
        campaignId: Number(row.campaign_id),
        subscriberId: row.subscriber_id === null ? null : Number(row.subscriber_id),
        time: new Date(Number(row.time)),
        kind: row.kind as CampaignEvent['kind'],
        detail: String(row.detail),
      })),
    );
  }

  alreadyQueued(campaignId: number, subscriberIds: number[]): Promise<Set<number>> {
    return settle(() => {
      const found = new Set<number>();
      for (let start = 0; start < subscriberIds.length; start += 500) {
        const chunk = subscriberIds.slice(start, start + 500);
        const rows = this.all(
          `SELECT DISTINCT subscriber_id FROM queue_entries
           WHERE campaign_id = ? AND subscriber_id IN (${chunk.map(() => '?').join(',')})`,
          campaignId,
          ...chunk,
        );
        for (const row of rows) found.add(Number(row.subscriber_id));
      }
      return found;
    });
  }

  queueChanges(campaignId: number, limit: number): Promise<QueueChange[]> {
    return settle(() =>
      this.all(
        `SELECT q.subscriber_id, q.status, q.last_reply FROM queue_entries q
         JOIN campaign_recipients r ON r.campaign_id = q.campaign_id AND r.subscriber_id = q.subscriber_id
         WHERE q.campaign_id = ? AND r.status IN ('queued', 'deferred')
           AND (q.status IN ('delivered', 'failed') OR (q.status = 'deferred' AND r.status = 'queued'))
         ORDER BY q.id LIMIT ?`,
        campaignId,
        limit,
      ).map((row) => ({
        subscriberId: Number(row.subscriber_id),
        status: row.status as QueueChange['status'],
        lastReply: row.last_reply === null ? null : String(row.last_reply),
      })),
    );
  }

  private get(sql: string, ...parameters: unknown[]): Row | undefined {
    return this.statement(sql).get(...parameters) as Row | undefined;
  }

  private all(sql: string, ...parameters: unknown[]): Row[] {
    return this.statement(sql).all(...parameters) as Row[];
  }

  /**
   * Returns the prepared statement for `sql`, compiled once, because the send loop runs the
   * same few queries for every batch. The texts are this file's constants plus IN lists of up
   * to 500 parameters, so the cache is cleared when it passes 256 statements.
   */
  private statement(sql: string): Database.Statement {
    let statement = this.statements.get(sql);
    if (!statement) {
      if (this.statements.size >= 256) this.statements.clear();
      statement = this.db.prepare(sql);
      this.statements.set(sql, statement);
    }
    return statement;
  }

  private requireOrganisation(id: number): void {
    if (!this.get('SELECT id FROM organisations WHERE id = ?', id)) {
      throw new StoreNotFoundError(`organisation ${id} not found`);
    }
  }

  /** Runs an insert and turns a unique-constraint failure into a `StoreConflictError`. */
  private unique<T>(what: string, step: () => T): T {
    try {
      return step();
    } catch (error) {
      if (error instanceof Error && /UNIQUE constraint failed/.test(error.message)) {
        throw new StoreConflictError(`${what} already exists`);
      }
      throw error;
    }
  }
}

function settle<T>(step: () => T): Promise<T> {
  try {
    return Promise.resolve(step());
  } catch (error) {
    return Promise.reject(error instanceof Error ? error : new Error(String(error)));
  }
}

/** Opens the distribution store on the mail store's SQLite file and migrates it. */
export async function openSqliteDistributionStore(path: string): Promise<SqliteDistributionStore> {
  const store = new SqliteDistributionStore({ path });
  try {
    await store.migrate();
  } catch (error) {
    await store.close();
    throw error;
  }
  return store;
}
