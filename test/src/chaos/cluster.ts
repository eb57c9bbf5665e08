import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Monitor } from '@pgreplica/monitor';
import { type BusEvent, busKeys, REMEDIATION_QUEUE, signJob } from '@pgreplica/protocol';
import { type RejoinReport, type Sandbox, signalTree, slotNameOf, startSandbox, startTimeOf, withNodeLock } from '@pgreplica/sandbox';
import { runHook } from '@pgreplica/worker';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { writeConfig } from '../cli-fixture.js';
import { eventually } from '../helpers.js';
import { BusRecorder, startMonitor } from '../monitor-fixture.js';
import { TcpProxy } from '../tcp-proxy.js';
import { clusterConfig, SANDBOX_HOOK, startWorkerProcess, type WorkerProcess, workerEnv } from '../worker-fixture.js';
import type { EpochRecord, FinalState, LossReport } from './checker.js';

const ROUTER_CHILD = fileURLToPath(new URL('./router-child.mjs', import.meta.url));

/** Routers writing at once, each in its own process. */
export const ROUTERS = 2;

/** The workers' durability mode: CHAOS_DURABILITY=synchronous, else the default (async). */
const DURABILITY: 'async' | 'synchronous' = process.env.CHAOS_DURABILITY === 'synchronous' ? 'synchronous' : 'async';

/** The losses the bus reported: a failover's lostBytes > 0 on its old primary, a rejoin's lostTail. */
function lossReportsOf(events: readonly BusEvent[]): LossReport[] {
  return events.flatMap((e): LossReport[] => {
    if (e.type === 'failover.finished' && (e.lostBytes ?? 0) > 0) {
      return [{ node: e.fromId, at: Date.parse(e.at), forkLsn: e.newPrimaryStartLsn, what: `failover.finished: lostBytes ${e.lostBytes} past ${e.newPrimaryStartLsn}` }];
    }
    if (e.type === 'node.rejoined' && e.lostTail) {
      return [{ node: e.nodeId, at: Date.parse(e.at), forkLsn: e.lostTail.fromLsn, what: `node.rejoined: ${e.lostTail.bytes} bytes past the fork ${e.lostTail.fromLsn} discarded` }];
    }
    return [];
  });
}

/** A node's WAL position as a timeline number: what a promotion moves. */
const TIMELINE_SQL = "SELECT ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int AS tl";

/**
 * One seed's cluster: a sandbox (primary + 2 replicas + Redis), an in-process
 * monitor, pgreplica-worker processes and router processes, each party
 * reaching the servers through TCP proxies the seed can cut:
 * * the monitor reaches each node through a "client" proxy, and so do the
 *   routers (they connect to the addresses the monitor publishes);
 * * the workers reach each node through a "worker" proxy (replicas the worker
 *   repoints stream through it too: after a failover a worker↔primary cut
 *   also cuts their WAL receivers);
 * * the routers reach Redis through their own proxy.
 */
export class ChaosCluster {
  readonly sandbox: Sandbox;
  readonly dir: string;
  readonly clientProxies = new Map<string, TcpProxy>();
  readonly workerProxies = new Map<string, TcpProxy>();
  redisProxy!: TcpProxy;
  monitor!: Monitor;
  bus!: BusRecorder;
  readonly workers: WorkerProcess[] = [];
  readonly routers: ChildProcess[] = [];
  #workerConfigPath = '';
  /** Nodes the seed killed and has not started again. */
  readonly #killed = new Set<string>();
  /** Losses reported by the harness's own rejoins of fenced nodes. */
  readonly #healLossReports: LossReport[] = [];
  #redis!: Redis;
  #queue!: Queue;
  /** False once Redis lost events a recorder would have counted (restarted empty). */
  busComplete = true;
  initialEpoch = 1;
  initialTimeline = 1;

  private constructor(sandbox: Sandbox, dir: string) {
    this.sandbox = sandbox;
    this.dir = dir;
  }

  /** Starts everything; on failure stops what started and throws. */
  static async start(dir: string, workers: number): Promise<ChaosCluster> {
    const sandbox = await startSandbox({ replicas: 2 });
    const cluster = new ChaosCluster(sandbox, dir);
    try {
      await cluster.#start(workers);
      return cluster;
    } catch (err) {
      await cluster.close();
      throw err;
    }
  }

  async #start(workers: number): Promise<void> {
    const sandbox = this.sandbox;
    for (const n of sandbox.nodes) {
      this.clientProxies.set(n.id, await TcpProxy.start(n.port));
      this.workerProxies.set(n.id, await TcpProxy.start(n.port));
    }
    this.redisProxy = await TcpProxy.start(sandbox.redis!.port);
    await sandbox.primary.query('CREATE TABLE chaos_ledger (id bigint PRIMARY KEY, router text NOT NULL)');
    const base = clusterConfig(sandbox);
    const baseWorker = base.worker as { hooks: Record<string, unknown> };
    const fence = `touch '${this.dir}/fenced-'"$PGREPLICA_NODE_ID" && node ${SANDBOX_HOOK} kill`;
    // CHAOS_FENCE=soft: no fence hook, the worker fences softly (connections refused) as without host access.
    const hooks = process.env.CHAOS_FENCE === 'soft' ? baseWorker.hooks : { ...baseWorker.hooks, fence };
    const worker = { ...baseWorker, hooks, autoRejoin: true, flapWindowMs: 1_000, lockDurationMs: 3_000 };
    const nodesVia = (proxies: Map<string, TcpProxy>) => sandbox.nodes.map((n, i) => ({ id: n.id, host: n.host, port: proxies.get(n.id)!.port, priority: i }));
    // CHAOS_DURABILITY=synchronous: ANY 1 quorum commit, and only a synchronous standby is promoted.
    const failover = { ...(base.failover as object), durability: DURABILITY };
    this.#workerConfigPath = writeConfig(this.dir, 'worker.json', { ...base, failover, nodes: nodesVia(this.workerProxies), worker });
    this.bus = await BusRecorder.start(sandbox.redis!.url);
    this.monitor = await startMonitor(sandbox, { nodes: nodesVia(this.clientProxies), failover, worker });
    this.#redis = new Redis(sandbox.redis!.url, { maxRetriesPerRequest: null });
    this.#redis.on('error', () => {});
    this.#queue = new Queue(REMEDIATION_QUEUE, { connection: this.#redis, prefix: busKeys('main').queuePrefix });
    this.#queue.on('error', () => {});
    await eventually(() => this.monitor.topology?.nodes.every((n) => n.status === 'healthy') === true, 20_000, 'all nodes healthy');
    for (let i = 0; i < workers; i++) await this.startWorker();
    const [row] = await sandbox.primary.query<{ epoch: number; tl: number }>(`SELECT (SELECT max(epoch)::int FROM pgreplica.epoch) AS epoch, (${TIMELINE_SQL}) AS tl`);
    this.initialEpoch = row?.epoch ?? 1;
    this.initialTimeline = row?.tl ?? 1;
    for (let i = 0; i < ROUTERS; i++) await this.#startRouter(i);
  }

  /** Starts one more pgreplica-worker process. */
  async startWorker(): Promise<WorkerProcess> {
    const worker = await startWorkerProcess(this.sandbox, this.#workerConfigPath);
    this.workers.push(worker);
    return worker;
  }

  async #startRouter(i: number): Promise<void> {
    const url = new URL(this.sandbox.redis!.url);
    url.port = String(this.redisProxy.port);
    const child = spawn(process.execPath, [ROUTER_CHILD], {
      env: {
        ...process.env,
        CHAOS_ROUTER: `router${i + 1}`,
        CHAOS_HISTORY: this.routerHistory(i),
        CHAOS_REDIS_URL: url.toString(),
        CHAOS_PASSWORD: this.sandbox.primary.connectionConfig.password as string,
        CHAOS_PORTS: JSON.stringify(Object.fromEntries(this.sandbox.nodes.map((n) => [n.port, n.id]))),
        CHAOS_ID_BASE: String((i + 1) * 1_000_000),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.routers.push(child);
    let output = '';
    child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    await eventually(() => {
      if (child.exitCode !== null) throw new Error(`router ${i + 1} exited: ${output}`);
      return output.includes('router ready');
    }, 15_000, `router ${i + 1} ready`).catch((err: Error) => {
      throw new Error(`${err.message}: ${output.slice(-1_000)}`);
    });
  }

  /** The history file of router `i`. */
  routerHistory(i: number): string {
    return join(this.dir, `router${i + 1}.jsonl`);
  }

  /** The primary as the monitor sees it (the epoch's record). */
  get primaryId(): string {
    return this.monitor.topology?.primaryId ?? this.sandbox.primary.id;
  }

  /** The current epoch as the monitor sees it. */
  get epoch(): number {
    return this.monitor.topology?.epoch ?? this.initialEpoch;
  }

  /** The nodes other than the primary, in id order. */
  get replicaIds(): string[] {
    return this.sandbox.nodes.map((n) => n.id).filter((id) => id !== this.primaryId);
  }

  /** Adds a signed job to the remediation queue, as the CLI does. */
  async enqueue(name: 'promote' | 'switchover', data: Record<string, unknown>, id: string): Promise<void> {
    await this.#queue.add(name, signJob(name, data as never, undefined), { jobId: id, attempts: 1, removeOnComplete: 1000, removeOnFail: 1000 });
  }

  /** Whether the workers' fence hook powered the node off. */
  fenced(nodeId: string): boolean {
    return existsSync(join(this.dir, `fenced-${nodeId}`));
  }

  /** Crashes a node (kill -9 of every process) as a fault: it is the seed's to start again. */
  async kill(nodeId: string): Promise<void> {
    this.#killed.add(nodeId);
    await this.sandbox.node(nodeId).kill();
  }

  /** Restarts a node (`pg_ctl restart -m fast`) as a fault, under its lock like any start. */
  async restart(nodeId: string): Promise<void> {
    await withNodeLock(this.sandbox.baseDir, nodeId, () => this.sandbox.node(nodeId).restart());
  }

  /** Starts a node the seed killed, unless the fence hook powered it off meanwhile (it stays off until {@link heal}). Returns what it did. */
  async startUnlessFenced(nodeId: string): Promise<string> {
    if (this.fenced(nodeId)) return `${nodeId} stays down: fenced (powered off) by the worker's hook`;
    // The hook's kill is a no-op on a node still starting: clients are kept off (its client
    // proxy cut) until the start is over and the marker checked again, so that a fence that
    // raced the start still wins before anyone writes there, as a power-off would.
    const proxy = this.clientProxies.get(nodeId)!;
    const node = this.sandbox.node(nodeId);
    // Under the node's lock, as a service manager runs a unit's jobs: never between a rejoin's stop and its rewind.
    return withNodeLock(this.sandbox.baseDir, nodeId, async () => {
      proxy.cutOff();
      try {
        try {
          await node.start();
        } catch (err) {
          // The fence hook's power-off killed it while pg_ctl waited for it (seed 13): it stays off.
          if (this.fenced(nodeId)) return `${nodeId} killed while it started: fenced by the worker's hook`;
          throw err;
        }
        this.#killed.delete(nodeId);
        if (this.fenced(nodeId)) {
          await node.kill();
          return `${nodeId} killed again: fenced by the worker's hook while it started`;
        }
      } finally {
        proxy.restore();
      }
      return `${nodeId} started again`;
    });
  }

  /** SIGCONT to a node the seed stopped, unless the fence hook killed it meanwhile. */
  resume(nodeId: string): string {
    const node = this.sandbox.node(nodeId);
    if (!node.running) return `${nodeId} is gone: fenced (killed) by the worker's hook`;
    node.resume();
    return `SIGCONT ${nodeId}`;
  }

  /** The one node that takes writes, once there is one. */
  async #writablePrimary(timeoutMs: number): Promise<string | null> {
    const deadline = Date.now() + timeoutMs;
    do {
      const state = await this.state(false).catch(() => null);
      if (state?.writable.length === 1) return state.writable[0]!;
      await new Promise((resolve) => setTimeout(resolve, 250));
    } while (Date.now() < deadline);
    return null;
  }

  /**
   * Undoes every fault still in place: proxies through, nodes resumed, killed
   * nodes started — and a node the fence hook powered off brought back as a
   * standby of the primary (the sandbox's rejoin hook: pg_rewind, else a new
   * base backup), as an operator would after the incident.
   */
  async heal(): Promise<void> {
    for (const p of [...this.clientProxies.values(), ...this.workerProxies.values(), this.redisProxy]) p.restore();
    for (const n of this.sandbox.nodes) {
      if (n.running) n.resume();
      // Only what the seed killed: a node a switchover's stop hook stopped is the worker's to rejoin.
      else if (this.#killed.has(n.id)) await this.startUnlessFenced(n.id).catch(() => {});
    }
    for (const n of this.sandbox.nodes) {
      if (n.running || !this.fenced(n.id)) continue;
      const primaryId = await this.#writablePrimary(30_000);
      if (!primaryId) break;
      // As the worker's rejoin job does: the node's slot on the primary first, or the standby never streams.
      await this.sandbox
        .node(primaryId)
        .query('SELECT pg_create_physical_replication_slot($1, true) WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)', [slotNameOf(n.id)]);
      const env = { ...process.env, ...workerEnv(this.sandbox), PGREPLICA_NODE_ID: n.id, PGREPLICA_PRIMARY_ID: primaryId };
      const reportFile = join(this.dir, `rejoin-${n.id}-${Date.now()}.json`);
      // As the worker runs it: its own process group, killed whole if it overruns (a base backup must not outlive it).
      const hookEnv = Object.fromEntries(Object.entries({ ...env, PGREPLICA_REPORT_FILE: reportFile }).filter((e): e is [string, string] => e[1] !== undefined));
      const run = await runHook(`'${process.execPath}' '${SANDBOX_HOOK}' rejoin`, hookEnv, 330_000);
      if (run.exitCode !== 0) throw new Error(`sandbox hook rejoin ${run.timedOut ? 'timed out' : `exited ${run.exitCode}`}: ${run.output.trim().slice(-500)}`);
      // The hook's report: what pg_rewind threw away past the fork, as a worker's rejoin publishes it.
      const report = JSON.parse(readFileSync(reportFile, 'utf8')) as RejoinReport;
      if (report.lostTail) {
        const { bytes, fromLsn, toLsn } = report.lostTail;
        this.#healLossReports.push({ node: n.id, at: Date.now(), forkLsn: fromLsn, what: `rejoined by the operator (harness): ${bytes} bytes past the fork ${fromLsn}..${toLsn} discarded` });
      }
      rmSync(join(this.dir, `fenced-${n.id}`), { force: true });
    }
    if (!this.sandbox.redis!.running) await this.sandbox.redis!.start();
    if (this.workers.every((w) => w.child.exitCode !== null || w.child.signalCode !== null)) await this.startWorker();
  }

  /** What the servers say now; `withLedger` also reads the final primary's ledger. */
  async state(withLedger: boolean): Promise<FinalState> {
    const writable: string[] = [];
    for (const n of this.sandbox.nodes) {
      const rows = await n.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r').catch(() => null);
      if (rows?.[0]?.r === false) writable.push(n.id);
    }
    const streaming: Record<string, boolean> = {};
    const final: FinalState = {
      writable,
      streaming,
      ledgerIds: new Set(),
      epochs: [],
      timeline: 0,
      initialTimeline: this.initialTimeline,
      initialEpoch: this.initialEpoch,
      bus: null,
      durability: DURABILITY,
      lossReports: [...this.#healLossReports, ...lossReportsOf(this.bus.events)],
      failovers: this.bus.events.flatMap((e) => (e.type === 'failover.finished' ? [{ from: e.fromId, at: Date.parse(e.at) }] : [])),
    };
    if (writable.length !== 1) return final;
    const primary = this.sandbox.node(writable[0]!);
    const standbys = await primary.query<{ name: string }>("SELECT application_name AS name FROM pg_stat_replication WHERE state = 'streaming'");
    for (const n of this.sandbox.nodes) streaming[n.id] = n.id === primary.id || standbys.some((s) => s.name === slotNameOf(n.id));
    final.epochs = (await primary.query<{ epoch: number; primary_id: string; at: number }>('SELECT epoch::int AS epoch, primary_id, (extract(epoch FROM at) * 1000)::float8 AS at FROM pgreplica.epoch ORDER BY epoch')).map(
      (r): EpochRecord => ({ epoch: r.epoch, primaryId: r.primary_id, at: r.at }),
    );
    final.timeline = (await primary.query<{ tl: number }>(TIMELINE_SQL))[0]?.tl ?? 0;
    if (this.busComplete) {
      const count = (type: string) => this.bus.events.filter((e) => e.type === type && (e.type !== 'switchover.finished' || e.ok)).length;
      final.bus = { primaryChanged: count('primary.changed'), promotions: count('failover.finished') + count('switchover.finished') };
    }
    if (withLedger) final.ledgerIds = new Set((await primary.query<{ id: string }>('SELECT id::text FROM chaos_ledger')).map((r) => Number(r.id)));
    return final;
  }

  /** Stops the routers (SIGTERM: each records its last write), SIGKILL after 5 s. */
  async stopRouters(): Promise<void> {
    await Promise.all(
      this.routers.map(async (child) => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
        await exited;
        clearTimeout(timer);
      }),
    );
  }

  /** Stops everything this seed started, whatever state it is in. */
  async close(): Promise<void> {
    for (const r of this.routers) r.kill('SIGKILL');
    // A worker's hook (a rejoin's pg_rewind or base backup) outlives a SIGKILL to the
    // worker alone and would keep writing into a data directory being removed; so does
    // the hook of a worker the seed killed earlier, which the node locks name.
    const owners = this.workers.flatMap((w) => (w.child.pid === undefined ? [] : [w.child.pid]));
    const locks = join(this.sandbox.baseDir, 'locks');
    for (const f of existsSync(locks) ? readdirSync(locks) : []) {
      if (!f.endsWith('.lock')) continue;
      const [pid, started] = readFileSync(join(locks, f), 'utf8').trim().split(' ');
      // Only the process the lock names (its start time too), never one that reused its pid.
      if (pid && started && Number(pid) !== process.pid && startTimeOf(Number(pid)) === started) owners.push(Number(pid));
    }
    for (const owner of owners) {
      // Stopped first, so that none forks a child between the reading of the tree and the kill.
      signalTree(owner, 'SIGSTOP');
      signalTree(owner, 'SIGKILL');
      signalTree(owner, 'SIGCONT');
    }
    for (const w of this.workers) w.child.kill('SIGKILL');
    for (const n of this.sandbox.nodes) if (n.running) n.resume();
    await this.monitor?.close().catch(() => {});
    await this.#queue?.close().catch(() => {});
    this.#redis?.disconnect();
    await this.bus?.close();
    for (const p of [...this.clientProxies.values(), ...this.workerProxies.values(), this.redisProxy]) await p?.close().catch(() => {});
    await this.sandbox.stop('immediate');
  }
}
