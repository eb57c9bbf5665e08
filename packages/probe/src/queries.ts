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

/** This monitor's heartbeat row, if the table exists on the node (it replicates from the primary). */
export const HEARTBEAT_READ_QUERY = `SELECT seq::float8 AS seq, at FROM pgreplica.heartbeat WHERE monitor_id = $1`;

/** Creates the heartbeat table; needs CREATE on the database (or run it once as an admin). */
export const HEARTBEAT_SCHEMA_SQL = `
CREATE SCHEMA IF NOT EXISTS pgreplica;
CREATE TABLE IF NOT EXISTS pgreplica.heartbeat (
  monitor_id text PRIMARY KEY,
  seq bigint NOT NULL,
  at timestamptz NOT NULL
);
COMMENT ON TABLE pgreplica.heartbeat IS 'Written by pgreplica-monitor on the primary every probe interval; read back on replicas to measure replication lag in time.'`;

/** Writes this monitor's heartbeat; returns the primary's commit-side timestamp. */
export const HEARTBEAT_WRITE_QUERY = `
INSERT INTO pgreplica.heartbeat (monitor_id, seq, at) VALUES ($1, $2, clock_timestamp())
ON CONFLICT (monitor_id) DO UPDATE SET seq = EXCLUDED.seq, at = EXCLUDED.at
RETURNING at`;
