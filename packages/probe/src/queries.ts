/**
 * The SQL a probe runs. Every function used exists since PostgreSQL 13 and is
 * executable by PUBLIC; pg_stat_replication and pg_stat_wal_receiver show all
 * columns only to members of pg_monitor (see the monitor's README for grants).
 */

/** One row describing the node. Timeline: from the current WAL file name on a primary, the receiver or the last checkpoint on a replica. */
export const NODE_QUERY = `
SELECT pg_is_in_recovery() AS in_recovery,
       (SELECT system_identifier::text FROM pg_control_system()) AS system_identifier,
       CASE WHEN pg_is_in_recovery()
            THEN coalesce((SELECT received_tli FROM pg_stat_wal_receiver), (SELECT timeline_id FROM pg_control_checkpoint()))
            ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int
       END AS timeline,
       CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END AS current_lsn,
       pg_last_wal_receive_lsn()::text AS receive_lsn,
       pg_last_wal_replay_lsn()::text AS replay_lsn,
       (SELECT setting::float8 FROM pg_settings WHERE name = 'wal_receiver_timeout') AS wal_receiver_timeout_ms,
       current_setting('synchronous_standby_names') AS synchronous_standby_names,
       current_setting('default_transaction_read_only')::bool AS default_read_only,
       CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() ELSE false END AS replay_paused,
       pg_last_xact_replay_timestamp() AS last_replay_at,
       clock_timestamp() AS server_now,
       (SELECT row_to_json(r) FROM (
          SELECT status, received_tli, last_msg_receipt_time, sender_host, sender_port, slot_name
            FROM pg_stat_wal_receiver) r) AS wal_receiver`;

/** Standbys streaming from a primary, with lag in bytes from the primary's current position. */
export const STANDBYS_QUERY = `
SELECT r.pid, r.application_name, host(r.client_addr) AS client_addr, r.state, r.sync_state,
       r.sent_lsn::text, r.write_lsn::text, r.flush_lsn::text, r.replay_lsn::text,
       (extract(epoch FROM r.write_lag) * 1000)::float8 AS write_lag_ms,
       (extract(epoch FROM r.flush_lag) * 1000)::float8 AS flush_lag_ms,
       (extract(epoch FROM r.replay_lag) * 1000)::float8 AS replay_lag_ms,
       pg_wal_lsn_diff(pg_current_wal_lsn(), r.replay_lsn)::float8 AS replay_lag_bytes,
       s.slot_name
  FROM pg_stat_replication r
  LEFT JOIN pg_replication_slots s ON s.active_pid = r.pid`;

/** Replication slots of a primary, with the WAL each holds back. */
export const SLOTS_QUERY = `
SELECT slot_name, slot_type, active, active_pid, wal_status, safe_wal_size::float8 AS safe_wal_size,
       pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::float8 AS retained_bytes
  FROM pg_replication_slots`;

const EPOCH_AND_TERM = `
       (SELECT row_to_json(e) FROM (
          SELECT epoch::float8 AS epoch, primary_id, system_identifier, cause, previous_primary_id, at, sig
            FROM pgreplica.epoch ORDER BY epoch DESC LIMIT 1) e) AS epoch,
       (SELECT term::float8 FROM pgreplica.term WHERE id = 1) AS term`;

/**
 * What pgreplica keeps in the node itself (it replicates from the primary):
 * this monitor's heartbeat row ($1, null for none), the latest epoch record
 * and the term floor. Fails with 42P01 while the tables do not exist.
 */
export const PGREPLICA_STATE_QUERY = `
SELECT (SELECT row_to_json(h) FROM (SELECT seq::float8 AS seq, at FROM pgreplica.heartbeat WHERE monitor_id = $1) h) AS heartbeat,${EPOCH_AND_TERM}`;

/**
 * {@link PGREPLICA_STATE_QUERY} without the heartbeat: what is left to read
 * when the heartbeat table cannot be (a role without SELECT on it), so the
 * epoch record and the term floor are never lost with it.
 */
export const EPOCH_STATE_QUERY = `
SELECT NULL::json AS heartbeat,${EPOCH_AND_TERM}`;

/**
 * Creates pgreplica's tables; idempotent. Needs CREATE on the database (or run
 * it once as an admin and grant what the monitor and worker write, see the
 * monitor's README).
 * - heartbeat: written by the monitor on the primary every probe interval, read
 *   back on replicas to measure replication lag in time;
 * - epoch: one row per primary epoch, written by the worker on the new primary
 *   before it is announced (the durable record of who is primary; a deposed
 *   primary keeps a lower epoch);
 * - term: the highest monitor leadership term, so terms never go backwards
 *   even when Redis restarts empty.
 */
export const PGREPLICA_SCHEMA_SQL = `
CREATE SCHEMA IF NOT EXISTS pgreplica;
CREATE TABLE IF NOT EXISTS pgreplica.heartbeat (
  monitor_id text PRIMARY KEY,
  seq bigint NOT NULL,
  at timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS pgreplica.epoch (
  epoch bigint PRIMARY KEY CHECK (epoch > 0),
  primary_id text NOT NULL,
  system_identifier text NOT NULL,
  cause text NOT NULL,
  previous_primary_id text,
  at timestamptz NOT NULL,
  sig text
);
CREATE TABLE IF NOT EXISTS pgreplica.term (
  id int PRIMARY KEY CHECK (id = 1),
  term bigint NOT NULL
);
-- Every application role's router reads the epoch before it writes (client-side fencing).
GRANT USAGE ON SCHEMA pgreplica TO PUBLIC;
GRANT SELECT ON pgreplica.epoch TO PUBLIC`;

/** Records an epoch on the primary it names; a second write of the same epoch is a no-op. Returns the stored row's primary. */
export const EPOCH_WRITE_QUERY = `
WITH ins AS (
  INSERT INTO pgreplica.epoch (epoch, primary_id, system_identifier, cause, previous_primary_id, at, sig)
  VALUES ($1, $2, $3, $4, $5, $6, $7)
  ON CONFLICT (epoch) DO NOTHING
  RETURNING primary_id)
SELECT primary_id FROM ins
UNION ALL
SELECT primary_id FROM pgreplica.epoch WHERE epoch = $1 AND NOT EXISTS (SELECT 1 FROM ins)`;

/** Raises the term floor (never lowers it). */
export const TERM_WRITE_QUERY = `
INSERT INTO pgreplica.term (id, term) VALUES (1, $1)
ON CONFLICT (id) DO UPDATE SET term = greatest(pgreplica.term.term, EXCLUDED.term)`;

/** Writes this monitor's heartbeat; returns the primary's commit-side timestamp. */
export const HEARTBEAT_WRITE_QUERY = `
INSERT INTO pgreplica.heartbeat (monitor_id, seq, at) VALUES ($1, $2, clock_timestamp())
ON CONFLICT (monitor_id) DO UPDATE SET seq = EXCLUDED.seq, at = EXCLUDED.at
RETURNING at`;
