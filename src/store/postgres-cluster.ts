/**
 * Tables that only a cluster needs: node heartbeats, and the shared schedule of message starts
 * per destination that makes `delivery.perDomainRatePerMinute` hold across nodes. Only the
 * PostgreSQL backend creates them, because a single SQLite process has no other node. Their versions
 * start at 1001 in the same `schema_migrations` table, so they never collide with the shared
 * migrations of `migrations.ts`, which both backends number from 1.
 *
 * Per-destination concurrency across nodes needs no table: it uses session-level advisory
 * locks (see `PostgresStore.tryAcquireDestinationSlot`), which PostgreSQL releases by itself
 * when the connection of a dead node closes.
 */
import type { Migration } from './migrations.js';

export const CLUSTER_MIGRATIONS: readonly Migration[] = [
  {
    version: 1001,
    name: 'cluster: node heartbeats and destination schedule',
    statements: () => [
      // One row per lease owner (a delivery worker of one process), refreshed when it claims
      // or renews leases, which an idle worker still does at least every 30 s.
      `CREATE TABLE cluster_nodes (
        name TEXT PRIMARY KEY,
        first_seen_at BIGINT NOT NULL,
        last_seen_at BIGINT NOT NULL
      )`,
      // The earliest time the next message to a domain may start, under the rate limit.
      `CREATE TABLE destination_schedule (
        domain TEXT PRIMARY KEY,
        next_start_at BIGINT NOT NULL
      )`,
    ],
  },
];

/**
 * Heartbeat upsert, which also forgets nodes unseen since a cutoff: every restart brings a new
 * lease owner name, so without it the table would grow with each one. Parameters: name,
 * now (ms), cutoff (ms).
 */
export const HEARTBEAT_SQL = `
  WITH forgotten AS (
    DELETE FROM cluster_nodes WHERE last_seen_at < $3 AND name <> $1
  )
  INSERT INTO cluster_nodes (name, first_seen_at, last_seen_at) VALUES ($1, $2, $2)
  ON CONFLICT (name) DO UPDATE SET last_seen_at = GREATEST(cluster_nodes.last_seen_at, $2)`;

/** Nodes with their live leases; parameter: now (ms). */
export const LIST_NODES_SQL = `
  SELECT n.name, n.first_seen_at, n.last_seen_at,
    count(q.id) FILTER (WHERE q.lease_expires_at > $1) AS leased
  FROM cluster_nodes n
  LEFT JOIN queue_entries q ON q.lease_owner = n.name AND q.status IN ('queued', 'deferred')
  GROUP BY n.name, n.first_seen_at, n.last_seen_at
  ORDER BY n.name`;

/**
 * Reserve the next start to a domain under a rate limit, spaced evenly like the in-process
 * limiter: the row lock serialises nodes, and each reservation moves the schedule on by one
 * interval. Parameters: domain, now (ms), interval (ms). Returns the reserved start time.
 */
export const RESERVE_START_SQL = `
  INSERT INTO destination_schedule (domain, next_start_at) VALUES ($1, $2::bigint + $3::bigint)
  ON CONFLICT (domain) DO UPDATE
    SET next_start_at = GREATEST(destination_schedule.next_start_at, $2::bigint) + $3::bigint
  RETURNING next_start_at - $3::bigint AS start_at`;

/** Give back one unused reservation; parameters: domain, interval (ms). */
export const CANCEL_START_SQL = `
  UPDATE destination_schedule SET next_start_at = next_start_at - $2::bigint WHERE domain = $1`;
