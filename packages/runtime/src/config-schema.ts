/**
 * The configuration file's schema (zod), shared by pgreplica-monitor,
 * pgreplica-worker and the pgreplica CLI: what they share at the top level,
 * then one section per program. Every field's `.describe()` text is its
 * documentation: docs/configuration.md is generated from this schema
 * (`npm run docs`; a test fails when it is out of date). One file, over 300
 * lines, because its order is the reference's order.
 */
import { CLUSTER_NAME_PATTERN, NODE_ID_PATTERN, NODE_TAGS, SLOT_NAME_PATTERN } from '@pgreplica/protocol';
import { z } from 'zod';

/** Shortest probe interval accepted: faster probing loads the nodes for no gain. */
export const MIN_PROBE_INTERVAL_MS = 100;

const ms = (what: string) => z.number({ error: `${what} must be a number of milliseconds` }).int().positive();
const bytes = z.number().int().min(0);
const hostPort = z.strictObject({ host: z.string().min(1).describe('Host name or address.'), port: z.number().int().min(1).max(65535).describe('Port.') });

const lagLimits = z.strictObject({
  degradedLagMs: ms('degradedLagMs').optional().describe('Replay lag (time) past which this node is degraded.'),
  unhealthyLagMs: ms('unhealthyLagMs').optional().describe('Replay lag (time) past which this node is unhealthy.'),
  degradedLagBytes: bytes.optional().describe('Replay lag (WAL bytes) past which this node is degraded.'),
  unhealthyLagBytes: bytes.optional().describe('Replay lag (WAL bytes) past which this node is unhealthy.'),
});

const nodeSchema = z.strictObject({
  id: z
    .string()
    .regex(NODE_ID_PATTERN, 'must be 1-63 letters, digits, "_", "." or "-" (it appears in keys and URLs)')
    .describe('Node id: appears in bus events, metrics labels, HTTP check URLs (/nodes/<id>/…) and HAProxy server names.'),
  host: z.string().min(1, 'must name the host or address of the node').describe('Host name or address the monitor, worker and routers connect to.'),
  port: z.number({ error: 'each node needs a port (1-65535)' }).int().min(1).max(65535).describe('PostgreSQL port.'),
  priority: z
    .number()
    .int()
    .default(100)
    .describe('Lower wins: the failover candidate among equally advanced replicas, and the order routers retry reads in (not a read tier).'),
  weight: z.number().min(0).default(1).describe("The node's share of routed reads among replicas of the same status."),
  zone: z.string().min(1).optional().describe('Availability zone or site; carried in the topology for operators and routers.'),
  tags: z
    .array(z.enum(NODE_TAGS))
    .default([])
    .describe('`nofailover`: never promoted automatically (nor made a synchronous standby); `noloadbalance`: takes no routed reads.'),
  lag: lagLimits.optional().describe("Per-node lag limits; the monitor's `monitor.thresholds` apply where absent."),
  slotName: z
    .string()
    .regex(SLOT_NAME_PATTERN, 'must be 1-63 lower-case letters, digits or "_" (a PostgreSQL replication slot name)')
    .optional()
    .describe(
      'The physical replication slot this node streams through as a replica (REPLICA_SLOT_NAME of replica-setup.sh), also its application_name. Default: the id in lower case with other characters as "_".',
    ),
});

const redisTlsSchema = z
  .strictObject({
    caFile: z.string().min(1).optional().describe("PEM file of the CA that signed the Redis servers' certificates (the system's CAs when absent)."),
    servername: z.string().min(1).optional().describe('Name the certificate must hold, when it is not the host dialled (an address, say).'),
  })
  .describe('TLS to Redis, always verified (CA and host name): with a `rediss://` URL, or for every connection of a Sentinel group (sentinels and servers) or a Cluster.');

const redisSchema = z
  .union([
    z
      .strictObject({
        url: z.string().regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL').describe('`redis://host:port[/db]` or `rediss://` (TLS).'),
        tls: redisTlsSchema.optional(),
      })
      .refine((r) => r.tls === undefined || r.url.startsWith('rediss://'), { path: ['tls'], message: 'needs a rediss:// URL (redis.url is redis://, which is not encrypted)' }),
    z.strictObject({
      sentinels: z.array(hostPort).min(1).describe('Redis Sentinel addresses (`[{ host, port }]`).'),
      name: z.string().min(1).describe('Name of the master the sentinels watch.'),
      password: z.string().optional().describe('Password of the Redis master.'),
      db: z.number().int().min(0).optional().describe('Database number.'),
      tls: redisTlsSchema.optional(),
    }),
    z.strictObject({
      cluster: z.array(hostPort).min(1).describe('Redis Cluster seed nodes (`[{ host, port }]`); every key is hash-tagged by cluster.'),
      tls: redisTlsSchema.optional(),
    }),
  ])
  .describe('The bus: one of three forms (a URL, Sentinel, or Redis Cluster).');

const httpSection = (port: number, who: string) =>
  z
    .strictObject({
      host: z.string().min(1).default('127.0.0.1').describe(`Address the ${who} HTTP API listens on.`),
      port: z.number().int().min(0).max(65535).default(port).describe(`Port of the ${who} HTTP API (0: any free port).`),
      tokenEnv: z
        .string()
        .min(1)
        .default('PGREPLICA_HTTP_TOKEN')
        .describe('Environment variable holding a bearer token every request must carry (`Authorization: Bearer …`); the API is open when it is unset or empty.'),
    })
    .prefault({})
    .describe(`The ${who} HTTP API: /health, /metrics${who === 'monitor' ? ', /topology and the per-node checks' : ''}.`);

/** Settings only pgreplica-monitor reads. */
const monitorSection = z
  .strictObject({
    probeIntervalMs: ms('monitor.probeIntervalMs')
      .min(MIN_PROBE_INTERVAL_MS, `must be at least ${MIN_PROBE_INTERVAL_MS}`)
      .default(1_000)
      .describe(`How often every node is probed and judged (an assessment round); at least ${MIN_PROBE_INTERVAL_MS}.`),
    heartbeatMs: ms('monitor.heartbeatMs')
      .default(5_000)
      .describe('A full snapshot goes out at least this often; routers call the bus stale after 3 heartbeats of silence. At least probeIntervalMs.'),
    writeHeartbeat: z
      .boolean()
      .default(true)
      .describe('Write the heartbeat row (pgreplica.heartbeat) on the primary for time lag; needs CREATE and INSERT/UPDATE (see the monitor README). Off: pg_stat_replication.replay_lag.'),
    thresholds: z
      .strictObject({
        degradedLagMs: ms('monitor.thresholds.degradedLagMs').default(5_000).describe('Replay lag (time) past which a replica is degraded. At most unhealthyLagMs.'),
        unhealthyLagMs: ms('monitor.thresholds.unhealthyLagMs').default(30_000).describe('Replay lag (time) past which a replica is unhealthy.'),
        degradedLagBytes: bytes.default(16 * 1024 * 1024).describe('Replay lag (WAL bytes) past which a replica is degraded. At most unhealthyLagBytes.'),
        unhealthyLagBytes: bytes.default(256 * 1024 * 1024).describe('Replay lag (WAL bytes) past which a replica is unhealthy.'),
        rise: z.number().int().min(1).default(2).describe('Better verdicts in a row before a status improves.'),
        fall: z.number().int().min(1).default(3).describe('Worse verdicts in a row before a status worsens (facts one sample proves apply at once).'),
        receiverDownAfterMs: ms('monitor.thresholds.receiverDownAfterMs')
          .default(10_000)
          .describe("A replica whose WAL receiver is not streaming is degraded at once, unhealthy after this long (while its primary is up)."),
        replayStalledAfterMs: ms('monitor.thresholds.replayStalledAfterMs')
          .default(5_000)
          .describe('Received WAL waiting while replay does not move for this long: `replay-stalled`.'),
      })
      .prefault({})
      .describe('Cluster-wide health limits; `nodes[].lag` overrides the lag limits per node.'),
    leader: z
      .strictObject({
        leaseTtlMs: ms('monitor.leader.leaseTtlMs')
          .min(1_000)
          .default(5_000)
          .describe('Lease of the monitor that publishes; a standby takes over when it expires. At least 1000 and twice probeIntervalMs.'),
        ackReplicas: z
          .number()
          .int()
          .min(0)
          .max(5)
          .default(0)
          .describe(
            "Redis replicas that must hold a new lease and term (`WAIT`, up to 1 s) before the monitor publishes under it; at most the replicas the Redis master has connected (none connected: no wait). With Sentinel or Cluster, 1: a term lost with a failed Redis master was never used, so no other monitor can reuse it (docs/operations.md, Redis Sentinel and Cluster). 0: no wait.",
          ),
      })
      .prefault({})
      .describe('Leader election among monitor instances (a Redis lease).'),
    http: httpSection(9187, 'monitor'),
  })
  .prefault({})
  .describe('Settings only pgreplica-monitor reads.');

/** Settings only pgreplica-worker reads. */
const workerSection = z
  .strictObject({
    http: httpSection(9188, 'worker'),
    replication: z
      .strictObject({
        user: z.string().min(1).default('replicator').describe('Replication role written into primary_conninfo when the worker repoints a replica.'),
        passfile: z
          .string()
          .min(1)
          .optional()
          .describe(
            "libpq passfile holding the replication role's password, a path on the database hosts, written into primary_conninfo. Unset: the replica's current one is kept (replica-setup.sh writes <data dir>.pgpass). The password itself never travels: the worker's ALTER SYSTEM would put it in the server log and pg_stat_activity.",
          ),
        sslmode: z
          .enum(['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'])
          .optional()
          .describe("libpq `sslmode` written into primary_conninfo (`verify-full` checks CA and host name). Unset: the replica's current setting is kept."),
        sslrootcert: z.string().min(1).optional().describe("libpq `sslrootcert`, a path on the database hosts. Unset: the replica's current setting is kept."),
      })
      .prefault({})
      .describe('The role replicas stream as (repointing after a failover or switchover).'),
    hooks: z
      .strictObject({
        fence: z
          .string()
          .min(1)
          .optional()
          .describe('Fences a node (stop it, cut its network…). Without it, fencing is soft: its databases refuse connections (ALLOW_CONNECTIONS false) and its sessions are terminated.'),
        stop: z.string().min(1).optional().describe('Stops the old primary during a switchover (so its last WAL reaches the candidate).'),
        rejoin: z
          .string()
          .min(1)
          .optional()
          .describe('Makes the old primary a replica of the new one and starts it (switchover; pg_rewind where needed). Without it the old primary stays fenced.'),
        timeoutMs: ms('worker.hooks.timeoutMs').default(60_000).describe('How long a hook may run before it is killed and counted as failed.'),
        passEnv: z
          .array(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name'))
          .default([])
          .describe(
            "Names of the worker's environment variables a hook also gets (e.g. SSH_AUTH_SOCK, KUBECONFIG). Hooks get PATH, HOME, LANG, LC_*, TZ, TMPDIR and the PGREPLICA_NODE_* / PGREPLICA_PRIMARY_* variables, nothing else: never the database password, the bus key or an HTTP token (naming one of those is refused).",
          ),
      })
      .prefault({})
      .describe(
        'Shell commands (`/bin/sh -c`) for what needs host access, never an implied SSH. Each gets PGREPLICA_NODE_ID, PGREPLICA_NODE_HOST, PGREPLICA_NODE_PORT and, for rejoin, PGREPLICA_PRIMARY_ID, PGREPLICA_PRIMARY_HOST, PGREPLICA_PRIMARY_PORT.',
      ),
    autoRejoin: z
      .boolean()
      .default(false)
      .describe(
        'Rejoins a deposed primary (fenced, or writable with an older epoch) as a replica once it is reachable again, through the rejoin hook (pg_rewind, else a new clone). Off by default in production: it discards the WAL the node wrote past the fork (the hook keeps it aside and the node.rejoined event reports it). `pgreplica rejoin <node>` does it by hand.',
      ),
    flapWindowMs: ms('worker.flapWindowMs').default(10 * 60_000).describe('At most one automatic failover per window (a manual `pgreplica promote` is not limited).'),
    catchupTimeoutMs: ms('worker.catchupTimeoutMs')
      .default(30_000)
      .describe("How long a candidate may take to replay what it received (failover) or the old primary's last LSN (switchover)."),
    repointTimeoutMs: ms('worker.repointTimeoutMs').default(30_000).describe('How long repointed replicas may take to stream from the new primary.'),
    stalledIntervalMs: ms('worker.stalledIntervalMs')
      .default(1_000)
      .describe('How often BullMQ looks for jobs whose worker died. With lockDurationMs it bounds how long a worker killed mid-failover delays the failover.'),
    lockDurationMs: ms('worker.lockDurationMs')
      .default(3_000)
      .describe("Lock of a running job, renewed every half of it; a job whose worker stops renewing it is re-delivered and resumes from its recorded progress."),
  })
  .prefault({})
  .describe('Settings only pgreplica-worker reads.');

/**
 * The file's shape: what every program shares (cluster, Redis, nodes,
 * database, bus, failover and slot policy), then a section per program.
 * Secrets are never in it: they come from the environment or files.
 */
export const configFileSchema = z
  .strictObject({
    cluster: z.string().regex(CLUSTER_NAME_PATTERN, 'must be 1-63 letters, digits, "_", "." or "-"').describe('Cluster name; every Redis key is `pgreplica:{<cluster>}:…`.'),
    instanceId: z
      .string()
      .regex(/^[A-Za-z0-9_.:-]{1,100}$/)
      .optional()
      .describe('Name of this instance (leadership, heartbeat row, Redis connection names). Default: `<hostname>:<pid>`.'),
    redis: redisSchema,
    nodes: z.array(nodeSchema).min(1, 'list at least the primary').describe('Every PostgreSQL server of the cluster, primary and replicas; ids and slot names must be unique.'),
    database: z
      .strictObject({
        user: z.string().min(1).describe('Role the monitor, worker and CLI connect as (pg_monitor for the monitor; the worker needs superuser or pg_promote, ALTER SYSTEM and slot rights).'),
        database: z.string().min(1).default('postgres').describe('Database they connect to (pgreplica keeps its tables in its `pgreplica` schema).'),
        passwordEnv: z.string().min(1).default('PGREPLICA_DB_PASSWORD').describe('Environment variable holding the password.'),
        passwordFile: z.string().min(1).optional().describe('File holding the password (first line), e.g. a mounted secret; wins over passwordEnv.'),
        ssl: z
          .strictObject({
            rejectUnauthorized: z.boolean().default(true).describe("Verify the server's certificate."),
            caFile: z.string().min(1).optional().describe('CA certificate (PEM) to verify it with.'),
            servername: z.string().optional().describe('Name to verify the certificate against (and send as SNI), when it differs from the host.'),
          })
          .optional()
          .describe('TLS to PostgreSQL; plain TCP when absent.'),
        connectTimeoutMs: ms('database.connectTimeoutMs').default(2_000).describe('Connect deadline of probes and jobs.'),
        statementTimeoutMs: ms('database.statementTimeoutMs').default(3_000).describe('Statement deadline of probes and jobs.'),
      })
      .describe('How the monitor, the worker and the CLI connect to every node.'),
    failover: z
      .strictObject({
        policy: z.enum(['auto', 'manual']).default('manual').describe('`auto`: the monitor enqueues promote jobs when the primary is dead; `manual`: only `pgreplica promote`.'),
        failoverAfterMs: ms('failover.failoverAfterMs')
          .default(2_000)
          .describe('How long the primary must have been unhealthy (unreachable or timing out, after `fall` probes) before a failover.'),
        maxLagOnFailoverBytes: bytes
          .default(16 * 1024 * 1024)
          .describe('A replica further behind the most advanced one than this is not a failover candidate.'),
        witnessFreshMs: ms('failover.witnessFreshMs')
          .default(5_000)
          .describe(
            "A replica whose receiver heard from the primary this recently is a witness that it lives and vetoes the failover (never less than half the replica's wal_receiver_timeout plus a probe interval: an idle primary leaves a healthy receiver silent that long).",
          ),
        durability: z
          .enum(['async', 'synchronous'])
          .default('async')
          .describe(
            "`async`: replicas follow as fast as they can; a kill -9 of the primary can lose the tail they had not received (reported as lostBytes). `synchronous`: the worker keeps synchronous_standby_names = 'ANY 1 (…)' over the replicas streaming from the primary (dropping dead ones so writes do not block), and a failover promotes only one of them, never one that may miss an acknowledged commit.",
          ),
      })
      .prefault({})
      .describe('When and how a failover happens.'),
    slots: z
      .strictObject({
        maxRetainedBytes: bytes.default(1024 * 1024 * 1024).describe('An inactive slot retaining more WAL than this is dropped by slot-cleanup …'),
        inactiveGraceMs: ms('slots.inactiveGraceMs').default(10 * 60_000).describe('… once it has been inactive this long (never an active slot, nor one whose replica is reachable).'),
      })
      .prefault({})
      .describe('Replication slot cleanup on the primary.'),
    bus: z
      .strictObject({
        keyEnv: z
          .string()
          .min(1)
          .default('PGREPLICA_BUS_KEY')
          .describe('Environment variable holding the HMAC key (at least 16 characters) that signs bus events; unsigned when unset.'),
        keyFile: z.string().min(1).optional().describe('File holding the HMAC key (first line); wins over keyEnv.'),
        streamMaxLen: z.number().int().min(100).default(10_000).describe('Events kept in the audit stream (`pgreplica events`).'),
      })
      .prefault({})
      .describe('The Redis bus.'),
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
