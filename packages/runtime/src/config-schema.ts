/**
 * The configuration file's schema (zod), shared by pgreplica-monitor,
 * pgreplica-worker and the pgreplica CLI: what they share at the top level,
 * then one section per program.
 */
import { CLUSTER_NAME_PATTERN, NODE_ID_PATTERN, NODE_TAGS, SLOT_NAME_PATTERN } from '@pgreplica/protocol';
import { z } from 'zod';

/** Shortest probe interval accepted: faster probing loads the nodes for no gain. */
export const MIN_PROBE_INTERVAL_MS = 100;

const ms = (what: string) => z.number({ error: `${what} must be a number of milliseconds` }).int().positive();
const bytes = z.number().int().min(0);
const hostPort = z.strictObject({ host: z.string().min(1), port: z.number().int().min(1).max(65535) });

const lagLimits = z.strictObject({
  degradedLagMs: ms('degradedLagMs').optional(),
  unhealthyLagMs: ms('unhealthyLagMs').optional(),
  degradedLagBytes: bytes.optional(),
  unhealthyLagBytes: bytes.optional(),
});

const nodeSchema = z.strictObject({
  id: z.string().regex(NODE_ID_PATTERN, 'must be 1-63 letters, digits, "_", "." or "-" (it appears in keys and URLs)'),
  host: z.string().min(1, 'must name the host or address of the node'),
  port: z.number({ error: 'each node needs a port (1-65535)' }).int().min(1).max(65535),
  priority: z.number().int().default(100),
  weight: z.number().min(0).default(1),
  zone: z.string().min(1).optional(),
  tags: z.array(z.enum(NODE_TAGS)).default([]),
  /** Per-node lag limits; the cluster's `thresholds` apply where absent. */
  lag: lagLimits.optional(),
  /**
   * The physical replication slot this node streams through when it is a
   * replica (REPLICA_SLOT_NAME of replica-setup.sh). Default: the id in lower
   * case with other characters as "_".
   */
  slotName: z.string().regex(SLOT_NAME_PATTERN, 'must be 1-63 lower-case letters, digits or "_" (a PostgreSQL replication slot name)').optional(),
});

/**
 * TLS to Redis, always verified (CA and host name): with a `rediss://` URL,
 * or for every connection of a Sentinel group (sentinels and servers) or a
 * Cluster. Without `caFile` the system's CAs apply.
 */
const redisTlsSchema = z.strictObject({
  /** PEM file of the CA that signed the Redis servers' certificates. */
  caFile: z.string().min(1).optional(),
  /** Name the certificate must hold, when it is not the host dialled (an address, say). */
  servername: z.string().min(1).optional(),
});

const redisSchema = z.union([
  z
    .strictObject({ url: z.string().regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL'), tls: redisTlsSchema.optional() })
    .refine((r) => r.tls === undefined || r.url.startsWith('rediss://'), { path: ['tls'], message: 'needs a rediss:// URL (redis.url is redis://, which is not encrypted)' }),
  z.strictObject({
    sentinels: z.array(hostPort).min(1),
    name: z.string().min(1),
    password: z.string().optional(),
    db: z.number().int().min(0).optional(),
    tls: redisTlsSchema.optional(),
  }),
  z.strictObject({ cluster: z.array(hostPort).min(1), tls: redisTlsSchema.optional() }),
]);

const httpSection = (port: number) =>
  z
    .strictObject({
      host: z.string().min(1).default('127.0.0.1'),
      port: z.number().int().min(0).max(65535).default(port),
      /** Environment variable holding a bearer token the HTTP API requires; open when unset. */
      tokenEnv: z.string().min(1).default('PGREPLICA_HTTP_TOKEN'),
    })
    .prefault({});

/** Settings only pgreplica-monitor reads. */
const monitorSection = z
  .strictObject({
    probeIntervalMs: ms('monitor.probeIntervalMs').min(MIN_PROBE_INTERVAL_MS, `must be at least ${MIN_PROBE_INTERVAL_MS}`).default(1_000),
    /** A full snapshot goes out at least this often. */
    heartbeatMs: ms('monitor.heartbeatMs').default(5_000),
    /** Write the heartbeat row on the primary (needs CREATE and INSERT/UPDATE; see README). */
    writeHeartbeat: z.boolean().default(true),
    thresholds: z
      .strictObject({
        degradedLagMs: ms('monitor.thresholds.degradedLagMs').default(5_000),
        unhealthyLagMs: ms('monitor.thresholds.unhealthyLagMs').default(30_000),
        degradedLagBytes: bytes.default(16 * 1024 * 1024),
        unhealthyLagBytes: bytes.default(256 * 1024 * 1024),
        rise: z.number().int().min(1).default(2),
        fall: z.number().int().min(1).default(3),
        receiverDownAfterMs: ms('monitor.thresholds.receiverDownAfterMs').default(10_000),
        replayStalledAfterMs: ms('monitor.thresholds.replayStalledAfterMs').default(5_000),
      })
      .prefault({}),
    leader: z.strictObject({ leaseTtlMs: ms('monitor.leader.leaseTtlMs').min(1_000).default(5_000) }).prefault({}),
    http: httpSection(9187),
  })
  .prefault({});

/** Settings only pgreplica-worker reads. */
const workerSection = z
  .strictObject({
    http: httpSection(9188),
    /** Role replicas stream as, written into primary_conninfo when the worker repoints them. */
    replication: z
      .strictObject({
        user: z.string().min(1).default('replicator'),
        passwordEnv: z.string().min(1).default('PGREPLICA_REPLICATION_PASSWORD'),
        passwordFile: z.string().min(1).optional(),
        /**
         * libpq `sslmode` written into primary_conninfo (`verify-full` to check CA
         * and host name). Unset: the replica's current setting is kept.
         */
        sslmode: z.enum(['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full']).optional(),
        /** libpq `sslrootcert`, a path on the database hosts. Unset: the replica's current setting is kept. */
        sslrootcert: z.string().min(1).optional(),
      })
      .prefault({}),
    /**
     * Shell commands for what needs host access (never an implied SSH). Each gets
     * PGREPLICA_NODE_ID, PGREPLICA_NODE_HOST, PGREPLICA_NODE_PORT and, where it applies,
     * PGREPLICA_PRIMARY_ID, PGREPLICA_PRIMARY_HOST, PGREPLICA_PRIMARY_PORT in its environment.
     */
    hooks: z
      .strictObject({
        /** Fence a node (stop it, cut its network…). Without it, fencing is soft: read-only + sessions terminated. */
        fence: z.string().min(1).optional(),
        /** Stop the old primary during a switchover (so its last WAL reaches the candidate). */
        stop: z.string().min(1).optional(),
        /** Make the old primary a replica of the new one and start it (switchover; pg_rewind where needed). */
        rejoin: z.string().min(1).optional(),
        timeoutMs: ms('worker.hooks.timeoutMs').default(60_000),
      })
      .prefault({}),
    /**
     * Rejoin a deposed primary (fenced, or writable with an older epoch) as a
     * replica once it is reachable again, through the rejoin hook (pg_rewind,
     * else a new clone). Off by default in production: it discards the WAL the
     * node wrote past the fork (the hook keeps it aside and the
     * `node.rejoined` event reports it). `pgreplica rejoin <node>` does it by hand.
     */
    autoRejoin: z.boolean().default(false),
    /** At most one automatic failover per window. */
    flapWindowMs: ms('worker.flapWindowMs').default(10 * 60_000),
    /** How long a candidate may take to replay what it received (failover) or the old primary's last LSN (switchover). */
    catchupTimeoutMs: ms('worker.catchupTimeoutMs').default(30_000),
    /** How long repointed replicas may take to stream from the new primary. */
    repointTimeoutMs: ms('worker.repointTimeoutMs').default(30_000),
    /**
     * How often BullMQ looks for jobs whose worker died. With `lockDurationMs`
     * it bounds how long a worker killed mid-failover delays the failover.
     */
    stalledIntervalMs: ms('worker.stalledIntervalMs').default(1_000),
    /**
     * Lock of a running job, renewed every half of it while the job runs; a job
     * whose worker stops renewing it is re-delivered (it resumes from its
     * recorded progress, fenced by the change lock).
     */
    lockDurationMs: ms('worker.lockDurationMs').default(3_000),
  })
  .prefault({});

/**
 * The file's shape: what every program shares (cluster, Redis, nodes,
 * database, bus, failover and slot policy), then a section per program.
 * Secrets are never in it: they come from the environment or files.
 */
export const configFileSchema = z
  .strictObject({
    cluster: z.string().regex(CLUSTER_NAME_PATTERN, 'must be 1-63 letters, digits, "_", "." or "-"'),
    /** Name of this instance (leadership, heartbeat row, Redis connection names). */
    instanceId: z.string().regex(/^[A-Za-z0-9_.:-]{1,100}$/).optional(),
    redis: redisSchema,
    nodes: z.array(nodeSchema).min(1, 'list at least the primary'),
    database: z.strictObject({
      user: z.string().min(1),
      database: z.string().min(1).default('postgres'),
      /** Environment variable holding the password. */
      passwordEnv: z.string().min(1).default('PGREPLICA_DB_PASSWORD'),
      /** File holding the password (first line), e.g. a mounted secret. */
      passwordFile: z.string().min(1).optional(),
      ssl: z
        .strictObject({
          rejectUnauthorized: z.boolean().default(true),
          caFile: z.string().min(1).optional(),
          servername: z.string().optional(),
        })
        .optional(),
      connectTimeoutMs: ms('database.connectTimeoutMs').default(2_000),
      statementTimeoutMs: ms('database.statementTimeoutMs').default(3_000),
    }),
    failover: z
      .strictObject({
        policy: z.enum(['auto', 'manual']).default('manual'),
        /** How long the primary must have been unhealthy (unreachable or timing out) before a failover. */
        failoverAfterMs: ms('failover.failoverAfterMs').default(2_000),
        maxLagOnFailoverBytes: bytes.default(16 * 1024 * 1024),
        /**
         * A replica whose receiver heard from the primary this recently is a witness
         * that it lives (never less than half the replica's wal_receiver_timeout plus
         * a probe interval: an idle primary leaves a healthy receiver silent that long).
         */
        witnessFreshMs: ms('failover.witnessFreshMs').default(5_000),
        /**
         * `async`: replicas follow as fast as they can; a kill -9 of the primary can
         * lose the tail they had not received (reported as lostBytes).
         * `synchronous`: the worker keeps `synchronous_standby_names = 'ANY 1 (…)'`
         * over the replicas streaming from the primary (dropping dead ones so writes
         * do not block), and a failover promotes only one of them, never one that
         * may miss an acknowledged commit.
         */
        durability: z.enum(['async', 'synchronous']).default('async'),
      })
      .prefault({}),
    slots: z
      .strictObject({
        maxRetainedBytes: bytes.default(1024 * 1024 * 1024),
        inactiveGraceMs: ms('slots.inactiveGraceMs').default(10 * 60_000),
      })
      .prefault({}),
    bus: z
      .strictObject({
        /** Environment variable holding the HMAC key that signs events; unsigned when unset. */
        keyEnv: z.string().min(1).default('PGREPLICA_BUS_KEY'),
        keyFile: z.string().min(1).optional(),
        streamMaxLen: z.number().int().min(100).default(10_000),
      })
      .prefault({}),
    monitor: monitorSection,
    worker: workerSection,
  })
  .superRefine((c, ctx) => {
    const m = c.monitor;
    if (m.thresholds.degradedLagMs > m.thresholds.unhealthyLagMs) {
      ctx.addIssue({ code: 'custom', path: ['monitor', 'thresholds', 'degradedLagMs'], message: 'must not exceed monitor.thresholds.unhealthyLagMs' });
    }
    if (m.thresholds.degradedLagBytes > m.thresholds.unhealthyLagBytes) {
      ctx.addIssue({ code: 'custom', path: ['monitor', 'thresholds', 'degradedLagBytes'], message: 'must not exceed monitor.thresholds.unhealthyLagBytes' });
    }
    if (m.heartbeatMs < m.probeIntervalMs) {
      ctx.addIssue({ code: 'custom', path: ['monitor', 'heartbeatMs'], message: `must be at least monitor.probeIntervalMs (${m.probeIntervalMs})` });
    }
    if (m.leader.leaseTtlMs < 2 * m.probeIntervalMs) {
      ctx.addIssue({ code: 'custom', path: ['monitor', 'leader', 'leaseTtlMs'], message: `must be at least twice monitor.probeIntervalMs (${2 * m.probeIntervalMs}) so the lease is renewed in time` });
    }
  });

/** The validated file. */
export type ConfigFile = z.infer<typeof configFileSchema>;

