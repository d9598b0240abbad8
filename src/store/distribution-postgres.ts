/**
 * The PostgreSQL implementation of the distribution store, for several nodes that share one
 * database. It has its own `pg.Pool` on the mail store's database and keeps to its own tables,
 * except for two read-only queries on `queue_entries` that report a campaign's deliveries. Call
 * `migrate()` after the mail store's own migration, because one index covers the queue table.
 *
 * It keeps the semantics of the SQLite store method for method. Where several nodes can race:
 * - `migrate()` takes the same transaction-scoped advisory lock as the mail store's migration,
 *   so nodes that start together apply each distribution migration once;
 * - `getSecret()` inserts with ON CONFLICT DO NOTHING and then reads, so two nodes creating a
 *   secret at once both get the row that committed first;
 * - `acquireCampaignLease()` is one conditional UPDATE. Under READ COMMITTED a second UPDATE
 *   of the same row waits for the first to commit and then re-checks its WHERE clause against
 *   the new row, so only one owner wins a free lease;
 * - `assignDomain()` inserts first and reads the owner afterwards, so two organisations
 *   claiming one domain at once cannot both succeed;
 * - `claimCampaignBatch()` and `finishCampaign()` lock the campaign row first, so claims on
 *   one campaign run one at a time, and a campaign is finished only after every claim that
 *   committed before it. The lock is FOR NO KEY UPDATE, which does not conflict with the
 *   FOR KEY SHARE locks that foreign key checks take. FOR UPDATE would, so every insert of
 *   recipients, events or batches of the campaign would wait for the claim in progress.
 *
 * Times are BIGINT milliseconds, which pg returns as strings, and COUNT(*) is a BIGINT too:
 * every row mapper converts with `Number`, which is exact below 2^53.
 */
import { randomBytes } from 'node:crypto';

import pg from 'pg';

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
import { StoreConflictError, StoreNotFoundError } from './errors.js';
import { POSTGRES_DIALECT } from './migrations.js';
import { inTransaction } from './pg-transaction.js';
import { MIGRATION_LOCK_KEY } from './postgres.js';

/** SQLSTATE codes (PostgreSQL appendix A) that map to the store's own errors. */
const UNIQUE_VIOLATION = '23505';
const FOREIGN_KEY_VIOLATION = '23503';

/** Rows per INSERT in `addSubscribers`, which bounds the size of one statement's arrays. */
const SUBSCRIBER_CHUNK = 1000;

/** Campaign fields that `updateCampaign` may change, by column. */
const CAMPAIGN_COLUMNS: Record<string, string> = {
  status: 'status',
  scheduledAt: 'scheduled_at',
  startedAt: 'started_at',
  finishedAt: 'finished_at',
  ratePerMinute: 'rate_per_minute',
};

export interface PostgresDistributionStoreOptions {
  /** The mail store's `postgres://` URL. */
  url: string;
  /** Connections in the pool (5 when omitted). */
  maxConnections?: number;
  /**
   * Handler for errors of idle connections (the server restarted, for example). The pool drops
   * such a connection and opens a new one for the next query. Without a handler these errors
   * are ignored, because every query in progress reports its own failure.
   */
  onError?: (error: Error) => void;
}

export class PostgresDistributionStore implements DistributionStore {
  private readonly pool: pg.Pool;
  private closed = false;

  constructor(options: PostgresDistributionStoreOptions) {
    this.pool = new pg.Pool({
      connectionString: options.url,
      max: options.maxConnections ?? 5,
      application_name: 'herald-distribution',
    });
    this.pool.on('error', options.onError ?? (() => undefined));
  }

  async migrate(): Promise<void> {
    await this.transaction(async (client) => {
      // The mail store's migration takes the same lock, so a node never creates the queue index
      // while another node is still creating the queue table.
      await client.query('SELECT pg_advisory_xact_lock($1::bigint)', [MIGRATION_LOCK_KEY]);
      await client.query(distributionMigrationsTableStatement());
      const { rows } = await client.query<Row>(
        'SELECT version FROM distribution_schema_migrations',
      );
      const applied = new Set(rows.map((row) => Number(row.version)));
      for (const migration of DISTRIBUTION_MIGRATIONS) {
        if (applied.has(migration.version)) continue;
        for (const statement of migration.statements(POSTGRES_DIALECT)) {
          await client.query(statement);
        }
        await client.query(
          'INSERT INTO distribution_schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)',
          [migration.version, migration.name, Date.now()],
        );
      }
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // Queries already started finish first: pg's Pool.end waits for checked-out clients.
    await this.pool.end();
  }

  async getSecret(name: string): Promise<Buffer> {
    await this.query(
      `INSERT INTO distribution_secrets (name, value, created_at) VALUES ($1, $2, $3)
       ON CONFLICT (name) DO NOTHING`,
      [name, randomBytes(32), Date.now()],
    );
    const row = await this.one('SELECT value FROM distribution_secrets WHERE name = $1', [name]);
    if (row === undefined) throw new Error(`distribution secret ${name} not found after insert`);
    return row.value as Buffer;
  }

  // Organisations, domains, tokens.

  async createOrganisation(name: string): Promise<Organisation> {
    const row = await this.insert(
      `organisation ${name}`,
      'INSERT INTO organisations (name, created_at) VALUES ($1, $2) RETURNING *',
      [name, Date.now()],
    );
    return toOrganisation(row);
  }

  async getOrganisation(id: number): Promise<Organisation | undefined> {
    return mapRow(
      await this.one('SELECT * FROM organisations WHERE id = $1', [id]),
      toOrganisation,
    );
  }

  async findOrganisation(name: string): Promise<Organisation | undefined> {
    return mapRow(
      await this.one('SELECT * FROM organisations WHERE name = $1', [name]),
      toOrganisation,
    );
  }

  async listOrganisations(): Promise<Organisation[]> {
    return (await this.rows('SELECT * FROM organisations ORDER BY id')).map(toOrganisation);
  }

  async assignDomain(organisationId: number, domain: string): Promise<void> {
    const name = domain.toLowerCase();
    // As in the SQLite store, an existing owner wins before the organisation is checked.
    // ON CONFLICT checks the arbiter index before the foreign key, so a taken domain inserts
    // nothing and raises no foreign key error.
    try {
      await this.query(
        `INSERT INTO organisation_domains (domain, organisation_id) VALUES ($1, $2)
         ON CONFLICT (domain) DO NOTHING`,
        [name, organisationId],
      );
    } catch (error) {
      if (sqlState(error) === FOREIGN_KEY_VIOLATION) {
        throw new StoreNotFoundError(`organisation ${organisationId} not found`);
      }
      throw error;
    }
    const owner = await this.one(
      'SELECT organisation_id FROM organisation_domains WHERE domain = $1',
      [name],
    );
    if (owner && Number(owner.organisation_id) !== organisationId) {
      throw new StoreConflictError(
        `domain ${name} already belongs to organisation ${String(owner.organisation_id)}`,
      );
    }
  }

  async listOrganisationDomains(organisationId: number): Promise<string[]> {
    // COLLATE "C" sorts by code point, as SQLite's default BINARY collation does.
    const rows = await this.rows(
      `SELECT domain FROM organisation_domains WHERE organisation_id = $1
       ORDER BY domain COLLATE "C"`,
      [organisationId],
    );
    return rows.map((row) => String(row.domain));
  }

  async domainOwner(domain: string): Promise<number | undefined> {
    const row = await this.one(
      'SELECT organisation_id FROM organisation_domains WHERE domain = $1',
      [domain.toLowerCase()],
    );
    return row ? Number(row.organisation_id) : undefined;
  }

  async addApiToken(token: {
    organisationId: number | null;
    role: TokenRole;
    label: string;
    secretHash: string;
  }): Promise<ApiTokenRecord> {
    if (token.organisationId !== null) await this.requireOrganisation(token.organisationId);
    const row = await this.insert(
      `API token ${token.label}`,
      `INSERT INTO api_tokens (organisation_id, role, label, secret_hash, created_at)
       VALUES ($1, $2, $3, $4, $5) RETURNING *`,
      [token.organisationId, token.role, token.label, token.secretHash, Date.now()],
    );
    return toToken(row);
  }

  async findApiToken(secretHash: string): Promise<ApiTokenRecord | undefined> {
    return mapRow(
      await this.one('SELECT * FROM api_tokens WHERE secret_hash = $1', [secretHash]),
      toToken,
    );
  }

  // Lists and subscribers.

  async createList(list: {
    organisationId: number;
    name: string;
    description?: string;
  }): Promise<MailingList> {
    await this.requireOrganisation(list.organisationId);
    const row = await this.insert(
      `list ${list.name}`,
      `INSERT INTO lists (organisation_id, name, description, created_at)
       VALUES ($1, $2, $3, $4) RETURNING *`,
      [list.organisationId, list.name, list.description ?? '', Date.now()],
    );
    return toList(row);
  }

  async getList(id: number): Promise<MailingList | undefined> {
    return mapRow(await this.one('SELECT * FROM lists WHERE id = $1', [id]), toList);
  }

  async findList(organisationId: number, name: string): Promise<MailingList | undefined> {
    return mapRow(
      await this.one('SELECT * FROM lists WHERE organisation_id = $1 AND name = $2', [
        organisationId,
        name,
      ]),
      toList,
    );
  }

  async listLists(organisationId?: number): Promise<MailingList[]> {
    const rows =
      organisationId === undefined
        ? await this.rows('SELECT * FROM lists ORDER BY id')
        : await this.rows('SELECT * FROM lists WHERE organisation_id = $1 ORDER BY id', [
            organisationId,
          ]);
    return rows.map(toList);
  }

  async addSubscribers(
    listId: number,
    subscribers: NewSubscriber[],
  ): Promise<AddSubscribersResult> {
    const ids = await this.transaction(async (client) => {
      const now = Date.now();
      const result: (number | null)[] = [];
      for (let start = 0; start < subscribers.length; start += SUBSCRIBER_CHUNK) {
        const chunk = subscribers.slice(start, start + SUBSCRIBER_CHUNK);
        result.push(...(await insertSubscribers(client, listId, chunk, now)));
      }
      return result;
    }).catch((error: unknown) => {
      if (sqlState(error) === FOREIGN_KEY_VIOLATION) {
        throw new StoreNotFoundError(`list ${listId} not found`);
      }
      throw error;
    });
    return { ids };
  }

  async getSubscriber(id: number): Promise<Subscriber | undefined> {
    return mapRow(await this.one('SELECT * FROM subscribers WHERE id = $1', [id]), toSubscriber);
  }

  async findSubscriber(listId: number, address: string): Promise<Subscriber | undefined> {
    return mapRow(
      await this.one('SELECT * FROM subscribers WHERE list_id = $1 AND address_key = $2', [
        listId,
        address.toLowerCase(),
      ]),
      toSubscriber,
    );
  }

  async pageSubscribers(
    listId: number,
    options: { afterId: number; limit: number; status?: SubscriberStatus },
  ): Promise<SubscriberPage> {
    const rows =
      options.status === undefined
        ? await this.rows(
            'SELECT * FROM subscribers WHERE list_id = $1 AND id > $2 ORDER BY id LIMIT $3',
            [listId, options.afterId, options.limit],
          )
        : await this.rows(
            `SELECT * FROM subscribers WHERE list_id = $1 AND id > $2 AND status = $3
             ORDER BY id LIMIT $4`,
            [listId, options.afterId, options.status, options.limit],
          );
    const page = rows.map(toSubscriber);
    const last = page[page.length - 1];
    return {
      subscribers: page,
      nextAfterId: page.length < options.limit || !last ? null : last.id,
    };
  }

  async setSubscriberStatus(id: number, status: SubscriberStatus): Promise<void> {
    await this.query('UPDATE subscribers SET status = $1, updated_at = $2 WHERE id = $3', [
      status,
      Date.now(),
      id,
    ]);
  }

  async addSoftBounce(id: number): Promise<number> {
    const row = await this.one(
      `UPDATE subscribers SET soft_bounces = soft_bounces + 1, updated_at = $1 WHERE id = $2
       RETURNING soft_bounces`,
      [Date.now(), id],
    );
    return row ? Number(row.soft_bounces) : 0;
  }

  async countSubscribers(listId: number): Promise<Record<SubscriberStatus, number>> {
    const counts = Object.fromEntries(SUBSCRIBER_STATUSES.map((status) => [status, 0])) as Record<
      SubscriberStatus,
      number
    >;
    const rows = await this.rows(
      'SELECT status, COUNT(*) AS n FROM subscribers WHERE list_id = $1 GROUP BY status',
      [listId],
    );
    for (const row of rows) counts[row.status as SubscriberStatus] = Number(row.n);
    return counts;
  }

  async countSubscribedAfter(listId: number, afterId: number): Promise<number> {
    const row = await this.one(
      `SELECT COUNT(*) AS n FROM subscribers
       WHERE list_id = $1 AND id > $2 AND status = 'subscribed'`,
      [listId, afterId],
    );
    return Number(row?.n ?? 0);
  }

  // Suppression.

  async suppress(entry: Omit<Suppression, 'createdAt'>): Promise<void> {
    await this.query(
      `INSERT INTO suppressions (organisation_id, address, reason, detail, created_at)
       VALUES ($1, $2, $3, $4, $5) ON CONFLICT (organisation_id, address) DO NOTHING`,
      [entry.organisationId, entry.address.toLowerCase(), entry.reason, entry.detail, Date.now()],
    );
  }

  async suppressedAmong(organisationId: number, addresses: string[]): Promise<Set<string>> {
    const keys = [...new Set(addresses.map((address) => address.toLowerCase()))];
    if (keys.length === 0) return new Set();
    // One array parameter carries any number of addresses, so no chunking is needed.
    const rows = await this.rows(
      'SELECT address FROM suppressions WHERE organisation_id = $1 AND address = ANY($2::text[])',
      [organisationId, keys],
    );
    return new Set(rows.map((row) => String(row.address)));
  }

  async listSuppressions(organisationId: number, limit = 1000): Promise<Suppression[]> {
    const rows = await this.rows(
      `SELECT * FROM suppressions WHERE organisation_id = $1
       ORDER BY created_at DESC, address COLLATE "C" LIMIT $2`,
      [organisationId, limit],
    );
    return rows.map((row) => ({
      organisationId: Number(row.organisation_id),
      address: String(row.address),
      reason: row.reason as Suppression['reason'],
      detail: String(row.detail),
      createdAt: new Date(Number(row.created_at)),
    }));
  }

  // Campaigns.

  async createCampaign(campaign: NewCampaign): Promise<Campaign> {
    const list = await this.one('SELECT organisation_id FROM lists WHERE id = $1', [
      campaign.listId,
    ]);
    if (!list || Number(list.organisation_id) !== campaign.organisationId) {
      throw new StoreNotFoundError(
        `list ${campaign.listId} not found in organisation ${campaign.organisationId}`,
      );
    }
    const row = await this.insert(
      `campaign ${campaign.name}`,
      `INSERT INTO campaigns (organisation_id, list_id, name, from_address, from_name, reply_to,
         subject, html, text, status, scheduled_at, rate_per_minute, created_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'draft', $10, $11, $12) RETURNING *`,
      [
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
      ],
    );
    return toCampaign(row);
  }

  async getCampaign(id: number): Promise<Campaign | undefined> {
    return mapRow(await this.one('SELECT * FROM campaigns WHERE id = $1', [id]), toCampaign);
  }

  async listCampaigns(organisationId?: number): Promise<Campaign[]> {
    const rows =
      organisationId === undefined
        ? await this.rows('SELECT * FROM campaigns ORDER BY id')
        : await this.rows('SELECT * FROM campaigns WHERE organisation_id = $1 ORDER BY id', [
            organisationId,
          ]);
    return rows.map(toCampaign);
  }

  async updateCampaign(
    id: number,
    changes: Partial<
      Pick<Campaign, 'status' | 'scheduledAt' | 'startedAt' | 'finishedAt' | 'ratePerMinute'>
    >,
  ): Promise<void> {
    const sets: string[] = [];
    const values: unknown[] = [];
    for (const [key, value] of Object.entries(changes)) {
      const column = CAMPAIGN_COLUMNS[key];
      if (!column) continue;
      values.push(value instanceof Date ? value.getTime() : (value ?? null));
      sets.push(`${column} = $${values.length}`);
    }
    if (sets.length === 0) return;
    values.push(id);
    await this.query(
      `UPDATE campaigns SET ${sets.join(', ')} WHERE id = $${values.length}`,
      values,
    );
  }

  async dueCampaigns(now: Date): Promise<Campaign[]> {
    const rows = await this.rows(
      `SELECT * FROM campaigns
       WHERE (status = 'scheduled' AND scheduled_at <= $1) OR status = 'sending' ORDER BY id`,
      [now.getTime()],
    );
    return rows.map(toCampaign);
  }

  async claimCampaignBatch(
    campaignId: number,
    owner: string,
    options: { limit: number; leaseMs: number; now?: Date },
  ): Promise<CampaignBatch | undefined> {
    const now = (options.now ?? new Date()).getTime();
    const leaseUntil = now + options.leaseMs;
    return this.transaction(async (client) => {
      const campaign = (
        await client.query<Row>(
          `SELECT list_id, cursor, rate_per_minute, rate_slot FROM campaigns WHERE id = $1
           FOR NO KEY UPDATE`,
          [campaignId],
        )
      ).rows[0];
      if (!campaign) return undefined;
      const listId = Number(campaign.list_id);
      const batch =
        (await takeOverExpiredBatch(client, campaignId, listId, owner, now, leaseUntil)) ??
        (await claimNextRange(client, campaignId, listId, Number(campaign.cursor), owner, {
          limit: options.limit,
          now,
          leaseUntil,
        }));
      if (batch === undefined) return undefined;
      const slot = rateSlot(campaign, batch.subscribers.length, now);
      if (slot.next !== null) {
        await client.query('UPDATE campaigns SET rate_slot = $1 WHERE id = $2', [
          slot.next,
          campaignId,
        ]);
      }
      return { campaignId, ...batch, startAt: new Date(slot.start) };
    });
  }

  async renewCampaignBatches(
    campaignId: number,
    owner: string,
    leaseMs: number,
    now: Date = new Date(),
  ): Promise<Set<number>> {
    const rows = await this.rows(
      `UPDATE campaign_batches SET lease_until = $1
       WHERE campaign_id = $2 AND owner = $3 AND done = 0 RETURNING after_id`,
      [now.getTime() + leaseMs, campaignId, owner],
    );
    return new Set(rows.map((row) => Number(row.after_id)));
  }

  async releaseCampaignBatch(campaignId: number, afterId: number, owner: string): Promise<void> {
    await this.query(
      `UPDATE campaign_batches SET lease_until = 0
       WHERE campaign_id = $1 AND after_id = $2 AND owner = $3 AND done = 0`,
      [campaignId, afterId, owner],
    );
  }

  async recordBatch(
    campaignId: number,
    recipients: CampaignRecipient[],
    claim: BatchClaim,
  ): Promise<boolean> {
    return this.transaction(async (client) => {
      // A sender that took the batch over meanwhile owns it now; this sender records nothing.
      const done = await client.query(
        `UPDATE campaign_batches SET done = 1
         WHERE campaign_id = $1 AND after_id = $2 AND owner = $3 AND done = 0`,
        [campaignId, claim.afterId, claim.owner],
      );
      if (done.rowCount !== 1) return false;
      await recordNewRecipients(client, campaignId, recipients);
      return true;
    });
  }

  async finishCampaign(campaignId: number, now: Date = new Date()): Promise<boolean> {
    return this.transaction(async (client) => {
      // Taking the row lock first makes the UPDATE below read the batches of every claim that
      // committed before it. Without it, a claim that committed while the UPDATE waited for
      // the row would be rechecked against the old snapshot, where its batch is not visible.
      await client.query('SELECT id FROM campaigns WHERE id = $1 FOR NO KEY UPDATE', [campaignId]);
      const result = await client.query(
        `UPDATE campaigns SET status = 'sent', finished_at = $1
         WHERE id = $2 AND status = 'sending'
           AND NOT EXISTS (SELECT 1 FROM campaign_batches b
             WHERE b.campaign_id = campaigns.id AND b.done = 0)
           AND NOT EXISTS (SELECT 1 FROM subscribers s
             WHERE s.list_id = campaigns.list_id AND s.id > campaigns.cursor
               AND s.status = 'subscribed')`,
        [now.getTime(), campaignId],
      );
      return result.rowCount === 1;
    });
  }

  async countUnsent(campaignId: number): Promise<number> {
    const row = await this.one(
      `SELECT
         (SELECT COUNT(*) FROM subscribers s
           WHERE s.list_id = c.list_id AND s.id > c.cursor AND s.status = 'subscribed')
         + (SELECT COUNT(*) FROM campaign_batches b
             JOIN subscribers s
               ON s.list_id = c.list_id AND s.id > b.after_id AND s.id <= b.last_id
             WHERE b.campaign_id = c.id AND b.done = 0 AND s.status = 'subscribed'
               AND NOT EXISTS (SELECT 1 FROM campaign_recipients r
                 WHERE r.campaign_id = c.id AND r.subscriber_id = s.id)) AS n
       FROM campaigns c WHERE c.id = $1`,
      [campaignId],
    );
    return row ? Number(row.n) : 0;
  }

  async listOpenBatches(limit = 1000): Promise<OpenBatch[]> {
    const rows = await this.rows(
      `SELECT * FROM campaign_batches WHERE done = 0 ORDER BY created_at, campaign_id, after_id
       LIMIT $1`,
      [limit],
    );
    return rows.map(toOpenBatch);
  }

  // Recipients and events.

  async recordRecipients(campaignId: number, recipients: CampaignRecipient[]): Promise<void> {
    await this.transaction((client) => recordNewRecipients(client, campaignId, recipients));
  }

  async getRecipient(
    campaignId: number,
    subscriberId: number,
  ): Promise<CampaignRecipient | undefined> {
    return mapRow(
      await this.one(
        'SELECT * FROM campaign_recipients WHERE campaign_id = $1 AND subscriber_id = $2',
        [campaignId, subscriberId],
      ),
      toRecipient,
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

  async setRecipientStatuses(
    campaignId: number,
    updates: { subscriberId: number; status: RecipientStatus; detail: string }[],
  ): Promise<void> {
    if (updates.length === 0) return;
    // Applied in order, a later update of the same subscriber overwrites an earlier one. One
    // UPDATE cannot change a row twice, so it gets only the last update of each subscriber,
    // while every update still records its event.
    const latest = new Map(updates.map((update) => [update.subscriberId, update]));
    await this.transaction(async (client) => {
      const now = Date.now();
      const final = [...latest.values()];
      await client.query(
        `UPDATE campaign_recipients r SET status = u.status, detail = u.detail, updated_at = $2
         FROM unnest($3::bigint[], $4::text[], $5::text[]) AS u (subscriber_id, status, detail)
         WHERE r.campaign_id = $1 AND r.subscriber_id = u.subscriber_id`,
        [
          campaignId,
          now,
          final.map((update) => update.subscriberId),
          final.map((update) => update.status),
          final.map((update) => update.detail),
        ],
      );
      await insertEvents(client, campaignId, updates, now);
    });
  }

  async listRecipients(
    campaignId: number,
    options: { status?: RecipientStatus; limit?: number; afterId?: number } = {},
  ): Promise<CampaignRecipient[]> {
    const limit = options.limit ?? 1000;
    const afterId = options.afterId ?? 0;
    const rows =
      options.status === undefined
        ? await this.rows(
            `SELECT * FROM campaign_recipients WHERE campaign_id = $1 AND subscriber_id > $2
             ORDER BY subscriber_id LIMIT $3`,
            [campaignId, afterId, limit],
          )
        : await this.rows(
            `SELECT * FROM campaign_recipients
             WHERE campaign_id = $1 AND status = $2 AND subscriber_id > $3
             ORDER BY subscriber_id LIMIT $4`,
            [campaignId, options.status, afterId, limit],
          );
    return rows.map(toRecipient);
  }

  async countRecipients(campaignId: number): Promise<RecipientCounts> {
    const counts = Object.fromEntries(
      RECIPIENT_STATUSES.map((status) => [status, 0]),
    ) as RecipientCounts;
    const rows = await this.rows(
      `SELECT status, COUNT(*) AS n FROM campaign_recipients WHERE campaign_id = $1
       GROUP BY status`,
      [campaignId],
    );
    for (const row of rows) counts[row.status as RecipientStatus] = Number(row.n);
    return counts;
  }

  async listCampaignEvents(campaignId: number, limit = 1000): Promise<CampaignEvent[]> {
    const rows = await this.rows(
      'SELECT * FROM campaign_events WHERE campaign_id = $1 ORDER BY id DESC LIMIT $2',
      [campaignId, limit],
    );
    return rows.map((row) => ({
      id: Number(row.id),
      campaignId: Number(row.campaign_id),
      subscriberId: row.subscriber_id === null ? null : Number(row.subscriber_id),
      time: new Date(Number(row.time)),
      kind: row.kind as CampaignEvent['kind'],
      detail: String(row.detail),
    }));
  }

  async alreadyQueued(campaignId: number, subscriberIds: number[]): Promise<Set<number>> {
    if (subscriberIds.length === 0) return new Set();
    const rows = await this.rows(
      `SELECT DISTINCT subscriber_id FROM queue_entries
       WHERE campaign_id = $1 AND subscriber_id = ANY($2::bigint[])`,
      [campaignId, subscriberIds],
    );
    return new Set(rows.map((row) => Number(row.subscriber_id)));
  }

  async queueChanges(campaignId: number, limit: number): Promise<QueueChange[]> {
    const rows = await this.rows(
      `SELECT q.subscriber_id, q.status, q.last_reply FROM queue_entries q
       JOIN campaign_recipients r
         ON r.campaign_id = q.campaign_id AND r.subscriber_id = q.subscriber_id
       WHERE q.campaign_id = $1 AND r.status IN ('queued', 'deferred')
         AND (q.status IN ('delivered', 'failed') OR (q.status = 'deferred' AND r.status = 'queued'))
       ORDER BY q.id LIMIT $2`,
      [campaignId, limit],
    );
    return rows.map((row) => ({
      subscriberId: Number(row.subscriber_id),
      status: row.status as QueueChange['status'],
      lastReply: row.last_reply === null ? null : String(row.last_reply),
    }));
  }

  private query(sql: string, values: unknown[] = []): Promise<pg.QueryResult<Row>> {
    if (this.closed) return Promise.reject(new Error('the distribution store is closed'));
    return this.pool.query<Row>(sql, values);
  }

  private async rows(sql: string, values: unknown[] = []): Promise<Row[]> {
    return (await this.query(sql, values)).rows;
  }

  private async one(sql: string, values: unknown[] = []): Promise<Row | undefined> {
    return (await this.query(sql, values)).rows[0];
  }

  /** Runs an INSERT ... RETURNING and turns a unique violation into a `StoreConflictError`. */
  private async insert(what: string, sql: string, values: unknown[]): Promise<Row> {
    let row: Row | undefined;
    try {
      row = await this.one(sql, values);
    } catch (error) {
      if (sqlState(error) === UNIQUE_VIOLATION)
        throw new StoreConflictError(`${what} already exists`);
      if (sqlState(error) === FOREIGN_KEY_VIOLATION) {
        throw new StoreNotFoundError(`the row that ${what} refers to was not found`);
      }
      throw error;
    }
    if (row === undefined) throw new Error(`inserting ${what} returned no row`);
    return row;
  }

  private async requireOrganisation(id: number): Promise<void> {
    if (!(await this.one('SELECT id FROM organisations WHERE id = $1', [id]))) {
      throw new StoreNotFoundError(`organisation ${id} not found`);
    }
  }

  /** Runs `work` in one transaction on one pooled connection; any error rolls it back. */
  private async transaction<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    if (this.closed) throw new Error('the distribution store is closed');
    return inTransaction(this.pool, work);
  }
}

/**
 * Inserts one chunk of subscribers and returns their ids in input order, null where the
 * address was already on the list. Rows go in by ordinality, so when one chunk contains an
 * address twice (in any case) the first occurrence is inserted, as a loop of single inserts
 * would do, and the second one is skipped by ON CONFLICT DO NOTHING.
 *
 * PostgreSQL text cannot contain U+0000. The import and the service refuse control
 * characters in names and fields, and addresses are ASCII atoms, so none reaches this point.
 */
async function insertSubscribers(
  client: pg.PoolClient,
  listId: number,
  subscribers: NewSubscriber[],
  now: number,
): Promise<(number | null)[]> {
  const keys = subscribers.map((subscriber) => subscriber.address.toLowerCase());
  const { rows } = await client.query<Row>(
    `INSERT INTO subscribers
       (list_id, address, address_key, name, fields, status, created_at, updated_at)
     SELECT $1, s.address, s.address_key, s.name, s.fields, s.status, $2, $2
     FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::text[]) WITH ORDINALITY
       AS s (address, address_key, name, fields, status, position)
     ORDER BY s.position
     ON CONFLICT (list_id, address_key) DO NOTHING
     RETURNING id, address_key`,
    [
      listId,
      now,
      subscribers.map((subscriber) => subscriber.address),
      keys,
      subscribers.map((subscriber) => subscriber.name ?? ''),
      subscribers.map((subscriber) => JSON.stringify(subscriber.fields ?? {})),
      subscribers.map((subscriber) => subscriber.status ?? 'subscribed'),
    ],
  );
  const inserted = new Map(rows.map((row) => [String(row.address_key), Number(row.id)]));
  return keys.map((key) => {
    const id = inserted.get(key);
    // Only the first occurrence of a key gets the id of the row inserted for it.
    inserted.delete(key);
    return id ?? null;
  });
}

/**
 * Takes over the first unfinished batch whose lease has expired, if any. FOR UPDATE rechecks
 * the row once a concurrent renewal or record commits, so a batch renewed or recorded in the
 * meantime is skipped instead of taken.
 */
async function takeOverExpiredBatch(
  client: pg.PoolClient,
  campaignId: number,
  listId: number,
  owner: string,
  now: number,
  leaseUntil: number,
): Promise<Omit<CampaignBatch, 'campaignId' | 'startAt'> | undefined> {
  const expired = (
    await client.query<Row>(
      `SELECT after_id, last_id FROM campaign_batches
       WHERE campaign_id = $1 AND done = 0 AND lease_until < $2
       ORDER BY after_id LIMIT 1 FOR UPDATE`,
      [campaignId, now],
    )
  ).rows[0];
  if (!expired) return undefined;
  const afterId = Number(expired.after_id);
  const lastId = Number(expired.last_id);
  await client.query(
    `UPDATE campaign_batches SET owner = $1, lease_until = $2
     WHERE campaign_id = $3 AND after_id = $4`,
    [owner, leaseUntil, campaignId, afterId],
  );
  const { rows } = await client.query<Row>(
    `SELECT * FROM subscribers
     WHERE list_id = $1 AND id > $2 AND id <= $3 AND status = 'subscribed' ORDER BY id`,
    [listId, afterId, lastId],
  );
  return { afterId, lastId, subscribers: rows.map(toSubscriber), takenOver: true };
}

/** Claims the next `limit` subscribed subscribers after the cursor and moves the cursor. */
async function claimNextRange(
  client: pg.PoolClient,
  campaignId: number,
  listId: number,
  cursor: number,
  owner: string,
  options: { limit: number; now: number; leaseUntil: number },
): Promise<Omit<CampaignBatch, 'campaignId' | 'startAt'> | undefined> {
  const { rows } = await client.query<Row>(
    `SELECT * FROM subscribers WHERE list_id = $1 AND id > $2 AND status = 'subscribed'
     ORDER BY id LIMIT $3`,
    [listId, cursor, options.limit],
  );
  const subscribers = rows.map(toSubscriber);
  const last = subscribers[subscribers.length - 1];
  if (last === undefined) return undefined;
  await client.query(
    `INSERT INTO campaign_batches (campaign_id, after_id, last_id, owner, lease_until, created_at)
     VALUES ($1, $2, $3, $4, $5, $6)`,
    [campaignId, cursor, last.id, owner, options.leaseUntil, options.now],
  );
  await client.query('UPDATE campaigns SET cursor = $1 WHERE id = $2', [last.id, campaignId]);
  return { afterId: cursor, lastId: last.id, subscribers, takenOver: false };
}

/**
 * Inserts recipients not recorded yet, with one event each in input order; a recipient
 * already recorded gets neither. Call inside a transaction.
 */
async function recordNewRecipients(
  client: pg.PoolClient,
  campaignId: number,
  recipients: CampaignRecipient[],
): Promise<void> {
  const now = Date.now();
  const inserted = await insertRecipients(client, campaignId, recipients, now);
  // `delete` returns true once per inserted id, so a repeated recipient gets one event.
  const events = recipients.filter((recipient) => inserted.delete(recipient.subscriberId));
  await insertEvents(client, campaignId, events, now);
}

/** Inserts campaign recipients, skipping those already recorded; returns the new ones' ids. */
async function insertRecipients(
  client: pg.PoolClient,
  campaignId: number,
  recipients: CampaignRecipient[],
  now: number,
): Promise<Set<number>> {
  if (recipients.length === 0) return new Set();
  const { rows } = await client.query<Row>(
    `INSERT INTO campaign_recipients
       (campaign_id, subscriber_id, address, status, message_id, detail, updated_at)
     SELECT $1, r.subscriber_id, r.address, r.status, r.message_id, r.detail, $2
     FROM unnest($3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[]) WITH ORDINALITY
       AS r (subscriber_id, address, status, message_id, detail, position)
     ORDER BY r.position
     ON CONFLICT (campaign_id, subscriber_id) DO NOTHING
     RETURNING subscriber_id`,
    [
      campaignId,
      now,
      recipients.map((recipient) => recipient.subscriberId),
      recipients.map((recipient) => recipient.address),
      recipients.map((recipient) => recipient.status),
      recipients.map((recipient) => recipient.messageId),
      recipients.map((recipient) => recipient.detail),
    ],
  );
  return new Set(rows.map((row) => Number(row.subscriber_id)));
}

/** Inserts one campaign event per item, with ids in the order of `items`. */
async function insertEvents(
  client: pg.PoolClient,
  campaignId: number,
  items: { subscriberId: number; status: RecipientStatus; detail: string }[],
  now: number,
): Promise<void> {
  if (items.length === 0) return;
  await client.query(
    `INSERT INTO campaign_events (campaign_id, subscriber_id, time, kind, detail)
     SELECT $1, e.subscriber_id, $2, e.kind, e.detail
     FROM unnest($3::bigint[], $4::text[], $5::text[]) WITH ORDINALITY
       AS e (subscriber_id, kind, detail, position)
     ORDER BY e.position`,
    [
      campaignId,
      now,
      items.map((item) => item.subscriberId),
      items.map((item) => item.status),
      items.map((item) => item.detail),
    ],
  );
}

function sqlState(error: unknown): unknown {
  return (error as { code?: unknown } | null)?.code;
}
