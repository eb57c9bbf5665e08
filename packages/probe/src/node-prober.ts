/**
 * Probes one PostgreSQL node over a kept connection: role, positions, WAL
 * receiver, standbys, slots, the pgreplica epoch and heartbeat, each round
 * bounded by a statement timeout. A little over 300 lines because the
 * connection's life (connect, timeout, reconnect, close) and the decoding of
 * each query's row belong together.
 */
import pg from 'pg';
import { EPOCH_STATE_QUERY, NODE_QUERY, PGREPLICA_STATE_QUERY, SLOTS_QUERY, STANDBYS_QUERY } from './queries.js';
import type { EpochRow, NodeSample, ProbeFailure, ProbeResult, SlotInfo, StandbyInfo, WalReceiverInfo } from './types.js';

/** Where a node listens. */
export interface ProbeTarget {
  id: string;
  host: string;
  port: number;
}

/** How the prober connects; shared by every node of a cluster. */
export interface ProbeConnectionOptions {
  user: string;
  /** Kept out of logs: the prober never prints it. */
  password?: string | undefined;
  database: string;
  ssl?: pg.ClientConfig['ssl'];
  /**
   * Time allowed to open a connection.
   * @default 2000
   */
  connectTimeoutMs?: number;
  /**
   * Time allowed for one probe's queries, enforced on the server (statement_timeout) and the client.
   * @default 3000
   */
  statementTimeoutMs?: number;
  /**
   * application_name of the probe connections.
   * @default 'pgreplica-probe'
   */
  applicationName?: string;
  /** Reads this monitor's heartbeat row on every probe. */
  heartbeatId?: string | undefined;
}

/** Defaults of {@link ProbeConnectionOptions}. */
export const DEFAULT_PROBE_OPTIONS = {
  connectTimeoutMs: 2_000,
  statementTimeoutMs: 3_000,
  applicationName: 'pgreplica-probe',
} as const;

const AUTH_CODES = new Set(['28P01', '28000', '3D000']);
/** pgreplica's tables do not exist (yet) on the node. */
const MISSING_STATE = new Set(['42P01', '3F000']);

/** Whether a connection error says the database refuses connections (`ALLOW_CONNECTIONS false`: a fenced node). */
export function isFencedError(err: unknown): boolean {
  const e = err as { code?: string; message?: string } | null;
  return e?.code === '55000' && /not currently accepting connections/.test(e.message ?? '');
}

function classify(err: unknown, timedOut: boolean): ProbeFailure {
  if (timedOut) return 'timeout';
  const e = err as { code?: string; message?: string };
  if (isFencedError(err)) return 'fenced';
  if (e.code && AUTH_CODES.has(e.code)) return 'auth';
  if (e.code === '57014') return 'timeout';
  if (e.code === 'ECONNREFUSED' || e.code === 'ECONNRESET' || e.code === 'EHOSTUNREACH' || e.code === 'ENOTFOUND') return 'unreachable';
  if (/timeout/i.test(e.message ?? '')) return 'timeout';
  if (/terminated|ended|closed|not queryable/i.test(e.message ?? '')) return 'unreachable';
  if (e.code && /^[0-9A-Z]{5}$/.test(e.code)) return 'error';
  return 'unreachable';
}

const num = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

/** An epoch record from its JSON form. */
function epochRow(r: Record<string, unknown>): EpochRow {
  return {
    epoch: Number(r.epoch),
    primaryId: String(r.primary_id),
    systemIdentifier: String(r.system_identifier),
    cause: String(r.cause),
    previousPrimaryId: (r.previous_primary_id as string | null) ?? null,
    at: String(r.at),
    sig: (r.sig as string | null) ?? null,
  };
}
/** pgreplica's state from a row of {@link PGREPLICA_STATE_QUERY} or {@link EPOCH_STATE_QUERY}. */
function stateOf(row: unknown): Pick<NodeSample, 'heartbeat' | 'epoch' | 'termFloor' | 'stateError'> {
  const r = row as { heartbeat: { seq: number; at: string } | null; epoch: Record<string, unknown> | null; term: number | null };
  return {
    heartbeat: r.heartbeat ? { seq: Number(r.heartbeat.seq), at: new Date(r.heartbeat.at) } : null,
    epoch: r.epoch ? epochRow(r.epoch) : null,
    termFloor: num(r.term),
    stateError: null,
  };
}
const date = (v: unknown): Date | null => (v === null || v === undefined ? null : new Date(v as string));

/**
 * Probes one PostgreSQL node over a persistent connection. A probe that fails
 * or exceeds its deadline drops the connection (a hung server keeps a socket
 * that never answers), and the next probe reconnects. Never throws.
 */
export class NodeProber {
  readonly target: ProbeTarget;
  readonly #options: Required<Omit<ProbeConnectionOptions, 'password' | 'ssl' | 'heartbeatId'>> & ProbeConnectionOptions;
  #client: pg.Client | undefined;
  #inFlight: Promise<ProbeResult> | undefined;
  #closed = false;

  constructor(target: ProbeTarget, options: ProbeConnectionOptions) {
    this.target = target;
    this.#options = { ...DEFAULT_PROBE_OPTIONS, ...options };
  }

  /** Deadline of one probe: connecting plus the queries. */
  get deadlineMs(): number {
    return this.#options.connectTimeoutMs + this.#options.statementTimeoutMs;
  }

  /**
   * Probes the node. If the previous probe is still running (a hung node), it
   * is not started twice: the caller gets that probe's eventual result.
   */
  probe(): Promise<ProbeResult> {
    this.#inFlight ??= this.#probe().finally(() => {
      this.#inFlight = undefined;
    });
    return this.#inFlight;
  }

  async #probe(): Promise<ProbeResult> {
    const startedAt = new Date();
    const started = performance.now();
    let timer: NodeJS.Timeout | undefined;
    let timedOut = false;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        timedOut = true;
        reject(new Error(`probe of ${this.target.id} exceeded ${this.deadlineMs} ms`));
      }, this.deadlineMs);
      timer.unref?.();
    });
    try {
      const sample = await Promise.race([this.#run(), deadline]);
      return { ok: true, nodeId: this.target.id, startedAt, durationMs: performance.now() - started, sample };
    } catch (err) {
      this.#drop();
      return {
        ok: false,
        nodeId: this.target.id,
        startedAt,
        durationMs: performance.now() - started,
        failure: classify(err, timedOut),
        error: (err as Error).message,
      };
    } finally {
      clearTimeout(timer);
    }
  }

  async #connect(): Promise<pg.Client> {
    if (this.#client) return this.#client;
    if (this.#closed) throw new Error('prober closed');
    const client = new pg.Client({
      host: this.target.host,
      port: this.target.port,
      user: this.#options.user,
      password: this.#options.password,
      database: this.#options.database,
      ssl: this.#options.ssl,
      connectionTimeoutMillis: this.#options.connectTimeoutMs,
      statement_timeout: this.#options.statementTimeoutMs,
      application_name: this.#options.applicationName,
      keepAlive: true,
    });
    // A dropped connection surfaces on the next query; the listener keeps the process alive.
    client.on('error', () => this.#drop());
    this.#client = client;
    try {
      await client.connect();
    } catch (err) {
      this.#drop();
      throw err;
    }
    return client;
  }

  async #run(): Promise<NodeSample> {
    const client = await this.#connect();
    const { rows } = await client.query(NODE_QUERY);
    const row = rows[0] as Record<string, unknown>;
    const inRecovery = row.in_recovery === true;
    const receiver = row.wal_receiver as Record<string, unknown> | null;
    const walReceiver: WalReceiverInfo | null = receiver
      ? {
          status: String(receiver.status),
          receivedTimeline: num(receiver.received_tli),
          lastMsgReceiptAt: date(receiver.last_msg_receipt_time),
          senderHost: (receiver.sender_host as string | null) ?? null,
          senderPort: num(receiver.sender_port),
          slotName: (receiver.slot_name as string | null) ?? null,
        }
      : null;

    let standbys: StandbyInfo[] = [];
    let slots: SlotInfo[] = [];
    if (!inRecovery) {
      const [standbyRows, slotRows] = [(await client.query(STANDBYS_QUERY)).rows, (await client.query(SLOTS_QUERY)).rows];
      standbys = standbyRows.map((r: Record<string, unknown>) => ({
        pid: Number(r.pid),
        applicationName: String(r.application_name ?? ''),
        clientAddr: (r.client_addr as string | null) ?? null,
        state: String(r.state ?? 'unknown'),
        syncState: String(r.sync_state ?? 'unknown'),
        sentLsn: (r.sent_lsn as string | null) ?? null,
        writeLsn: (r.write_lsn as string | null) ?? null,
        flushLsn: (r.flush_lsn as string | null) ?? null,
        replayLsn: (r.replay_lsn as string | null) ?? null,
        writeLagMs: num(r.write_lag_ms),
        flushLagMs: num(r.flush_lag_ms),
        replayLagMs: num(r.replay_lag_ms),
        replayLagBytes: num(r.replay_lag_bytes),
        slotName: (r.slot_name as string | null) ?? null,
      }));
      slots = slotRows.map((r: Record<string, unknown>) => ({
        slotName: String(r.slot_name),
        slotType: String(r.slot_type),
        active: r.active === true,
        activePid: num(r.active_pid),
        walStatus: (r.wal_status as string | null) ?? null,
        safeWalSizeBytes: num(r.safe_wal_size),
        retainedBytes: num(r.retained_bytes),
      }));
    }

    const state = await this.#readState(client);

    return {
      inRecovery,
      systemIdentifier: String(row.system_identifier),
      timeline: num(row.timeline),
      currentLsn: (row.current_lsn as string | null) ?? null,
      receiveLsn: (row.receive_lsn as string | null) ?? null,
      replayLsn: (row.replay_lsn as string | null) ?? null,
      replayPaused: row.replay_paused === true,
      lastReplayAt: date(row.last_replay_at),
      serverNow: new Date(row.server_now as string),
      walReceiver,
      ...state,
      walReceiverTimeoutMs: num(row.wal_receiver_timeout_ms),
      synchronousStandbyNames: String(row.synchronous_standby_names ?? ''),
      defaultReadOnly: row.default_read_only === true,
      standbys,
      slots,
    };
  }

  /**
   * Reads pgreplica's own state on the node: the heartbeat row, the latest
   * epoch record and the term floor. Missing tables mean none yet; any other
   * SQL error (a missing grant, a recovery conflict) is recorded, never a
   * reason to call the node unreachable, and one on the heartbeat table does
   * not hide the epoch and the term (read again without it). A lost
   * connection still fails the probe.
   */
  async #readState(client: pg.Client): Promise<Pick<NodeSample, 'heartbeat' | 'epoch' | 'termFloor' | 'stateError'>> {
    const none = { heartbeat: null, epoch: null, termFloor: null, stateError: null };
    const sqlState = (err: unknown): string => {
      const code = (err as { code?: string }).code;
      if (code === undefined || !/^[0-9A-Z]{5}$/.test(code)) throw err;
      return code;
    };
    try {
      return stateOf((await client.query(PGREPLICA_STATE_QUERY, [this.#options.heartbeatId ?? null])).rows[0]);
    } catch (err) {
      const code = sqlState(err);
      if (MISSING_STATE.has(code)) return none;
      const stateError = `${code}: ${(err as Error).message}`;
      try {
        return { ...stateOf((await client.query(EPOCH_STATE_QUERY)).rows[0]), stateError };
      } catch (again) {
        return MISSING_STATE.has(sqlState(again)) ? { ...none, stateError } : { ...none, stateError: `${stateError}; ${(again as Error).message}` };
      }
    }
  }

  /** Runs a statement on the probe connection (the heartbeat writer uses it on the primary). */
  async query<R extends pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<pg.QueryResult<R>> {
    const client = await this.#connect();
    try {
      return await client.query<R>(sql, params);
    } catch (err) {
      if (!(err as { code?: string }).code) this.#drop();
      throw err;
    }
  }

  #drop(): void {
    const client = this.#client;
    this.#client = undefined;
    if (!client) return;
    // end() waits for the server, which may be frozen: destroy the socket instead.
    (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
    client.end().catch(() => {});
  }

  /** Closes the connection; later probes fail. Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#inFlight?.catch(() => {});
    this.#drop();
  }
}
