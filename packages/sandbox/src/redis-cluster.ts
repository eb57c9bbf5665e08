import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { SandboxError } from './errors.js';
import { pollUntil } from './poll.js';
import { freePort } from './ports.js';
import { parseInfo } from './redis-call.js';
import { RedisServer } from './redis-server.js';

/** Options of a sandbox's Redis Cluster (`startSandbox({ redis: 'cluster' })`). */
export interface RedisClusterOptions {
  /**
   * Primaries; the 16384 slots are split evenly between them.
   * @default 3
   */
  primaries?: number;
  /**
   * Replicas of each primary (what `CLUSTER FAILOVER` promotes).
   * @default 1
   */
  replicasPerPrimary?: number;
  /**
   * `cluster-node-timeout`: how long a node may be silent before the others think it failed.
   * @default 3_000
   */
  nodeTimeoutMs?: number;
}

/** Defaults of {@link RedisClusterOptions}. */
export const DEFAULT_REDIS_CLUSTER_OPTIONS = { primaries: 3, replicasPerPrimary: 1, nodeTimeoutMs: 3_000 } as const;

/** Number of hash slots of a Redis Cluster. */
const SLOTS = 16_384;

/** One line of `CLUSTER NODES`, as a node sees it. */
export interface ClusterNodeView {
  id: string;
  port: number;
  flags: string[];
  /** Id of its primary; null for a primary. */
  primaryId: string | null;
  /** Slot ranges `[first, last]` it serves. */
  slots: [number, number][];
}

function parseNodes(text: string): ClusterNodeView[] {
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => {
      const [id = '', address = '', flags = '', primary = '-', , , , , ...slots] = line.trim().split(' ');
      return {
        id,
        port: Number(/:(\d+)@/.exec(address)?.[1] ?? 0),
        flags: flags.split(','),
        primaryId: primary === '-' ? null : primary,
        // "[…->-…]" entries are slots being migrated: not served yet.
        slots: slots.filter((s) => !s.startsWith('[')).map((s) => {
          const [first, last = first] = s.split('-').map(Number);
          return [first!, last!] as [number, number];
        }),
      };
    });
}


/** The primary serving `slot` in a view. */
function ownerOf(view: readonly ClusterNodeView[], slot: number): ClusterNodeView | undefined {
  return view.find((n) => n.flags.includes('master') && n.slots.some(([first, last]) => slot >= first && slot <= last));
}

/**
 * A Redis Cluster on 127.0.0.1: primaries sharing the slots, each with its
 * replicas, built with CLUSTER ADDSLOTSRANGE / MEET / REPLICATE (no
 * redis-cli needed), keeping no data on disk (only each node's nodes.conf).
 * Plain TCP, no ACL.
 */
export class RedisClusterGroup {
  /** Every node, the primaries first as built (CLUSTER FAILOVER changes who is primary: see {@link shardOf}). */
  readonly servers: readonly RedisServer[];
  readonly #ids = new Map<RedisServer, string>();

  /** @internal use `startSandbox({ redis: 'cluster' })` */
  constructor(servers: RedisServer[]) {
    this.servers = servers;
  }

  /** pgreplica's `redis` config for this Cluster (every node a seed). */
  get target(): { cluster: { host: string; port: number }[] } {
    return { cluster: this.servers.map((s) => ({ host: s.host, port: s.port })) };
  }

  /** The node's cluster id. */
  async idOf(server: RedisServer): Promise<string> {
    let id = this.#ids.get(server);
    if (id === undefined) {
      id = String(await server.call('CLUSTER', 'MYID'));
      this.#ids.set(server, id);
    }
    return id;
  }

  /** The cluster as `server` (default: the first one running) sees it. */
  async view(server: RedisServer | undefined = this.servers.find((s) => s.running)): Promise<ClusterNodeView[]> {
    if (!server) throw new SandboxError('command-failed', 'no node of the cluster runs');
    return parseNodes(String(await server.call('CLUSTER', 'NODES')));
  }

  /** The hash slot of a key (`{main}` of `pgreplica:{main}:…`). */
  async slotOf(key: string): Promise<number> {
    const server = this.servers.find((s) => s.running);
    if (!server) throw new SandboxError('command-failed', 'no node of the cluster runs');
    return Number(await server.call('CLUSTER', 'KEYSLOT', key));
  }

  /** The primary serving `slot` and its replicas, as the first running node sees it. */
  async shardOf(slot: number): Promise<{ primary: RedisServer; replicas: RedisServer[] }> {
    const view = await this.view();
    const owner = ownerOf(view, slot);
    const byPort = (port: number) => this.servers.find((s) => s.port === port);
    const primary = owner ? byPort(owner.port) : undefined;
    if (!owner || !primary) throw new SandboxError('command-failed', `no primary serves slot ${slot}`);
    const replicas = view.filter((n) => n.primaryId === owner.id).map((n) => byPort(n.port)).filter((s): s is RedisServer => s !== undefined);
    return { primary, replicas };
  }

  /**
   * Moves `slot` (with the rest of its primary's slots) to a replica of its
   * primary with `CLUSTER FAILOVER` on that replica (the coordinated manual
   * failover: the replica first catches up with the primary, which stops
   * taking writes meanwhile), and waits until every running node agrees.
   * Resolves with the new primary.
   */
  async failover(slot: number, timeoutMs = 30_000): Promise<RedisServer> {
    const { primary, replicas } = await this.shardOf(slot);
    const replica = replicas.find((r) => r.running);
    if (!replica) throw new SandboxError('command-failed', `primary 127.0.0.1:${primary.port} of slot ${slot} has no running replica`);
    await replica.call('CLUSTER', 'FAILOVER');
    await pollUntil(`127.0.0.1:${replica.port} serving slot ${slot} in every node's view`, timeoutMs, async () => {
      for (const server of this.servers.filter((s) => s.running)) {
        if (ownerOf(await this.view(server), slot)?.port !== replica.port) return undefined;
      }
      return true;
    });
    await this.waitForOk(timeoutMs);
    return replica;
  }

  /**
   * Waits until every running node reports `cluster_state:ok`, knows every
   * node (none in handshake), every replica's link to its primary is up, and
   * all of them agree on who serves which slot.
   */
  async waitForOk(timeoutMs = 30_000): Promise<void> {
    const running = this.servers.filter((s) => s.running);
    await pollUntil('the Redis Cluster settled', timeoutMs, async () => {
      let owners: string | undefined;
      for (const server of running) {
        if (parseInfo(await server.call('CLUSTER', 'INFO')).cluster_state !== 'ok') return undefined;
        const view = await this.view(server);
        if (view.length !== this.servers.length || view.some((n) => n.flags.some((f) => f === 'handshake' || f === 'noaddr'))) return undefined;
        const theirs = JSON.stringify(view.filter((n) => n.flags.includes('master')).map((n) => [n.port, n.slots]).sort());
        if (owners !== undefined && owners !== theirs) return undefined;
        owners = theirs;
        const info = parseInfo(await server.call('INFO', 'replication'));
        if (info.role === 'slave' && info.master_link_status !== 'up') return undefined;
      }
      return true;
    });
  }

  /** Stops every node (SIGTERM, then SIGKILL). Never throws; resolves with what failed. */
  async stop(): Promise<unknown[]> {
    const errors: unknown[] = [];
    await Promise.all(this.servers.map((s) => s.stop().catch((err: unknown) => errors.push(err))));
    return errors;
  }
}

/**
 * Starts a Redis Cluster of `primaries` primaries with `replicasPerPrimary`
 * replicas each in `dir`, and waits until it serves every slot.
 * @param onStart called with each node's port and pid after every start (the sandbox's manifest)
 */
export async function startRedisClusterGroup(
  binary: string,
  dir: string,
  logDir: string,
  options: RedisClusterOptions,
  onStart: (port: number, pid: number) => void,
): Promise<RedisClusterGroup> {
  const o = { ...DEFAULT_REDIS_CLUSTER_OPTIONS, ...options };
  if (!Number.isInteger(o.primaries) || o.primaries < 3 || o.primaries > 6) throw new SandboxError('invalid-option', `cluster primaries must be an integer from 3 to 6, got ${o.primaries}`);
  if (!Number.isInteger(o.replicasPerPrimary) || o.replicasPerPrimary < 0 || o.replicasPerPrimary > 2) {
    throw new SandboxError('invalid-option', `cluster replicasPerPrimary must be an integer from 0 to 2, got ${o.replicasPerPrimary}`);
  }
  const servers: RedisServer[] = [];
  const busPorts = new Map<RedisServer, number>();
  for (let i = 0; i < o.primaries * (1 + o.replicasPerPrimary); i++) {
    const port = await freePort();
    // The cluster bus port is chosen too: the default (port + 10000) may be taken, or in the kernel's ephemeral range.
    const busPort = await freePort();
    const serverDir = join(dir, `redis-cluster-${port}`);
    mkdirSync(serverDir, { mode: 0o700 });
    // shutdown-timeout 0: a stopping primary does not wait for replicas that stop with it.
    const config = ['shutdown-timeout 0', 'cluster-enabled yes', 'cluster-config-file nodes.conf', `cluster-node-timeout ${o.nodeTimeoutMs}`, `cluster-port ${busPort}`];
    const server = new RedisServer(binary, port, serverDir, join(logDir, `redis-cluster-${port}.log`), {}, { config, onStart: (pid) => onStart(port, pid) });
    servers.push(server);
    busPorts.set(server, busPort);
  }
  const group = new RedisClusterGroup(servers);
  try {
    await Promise.all(servers.map((s) => s.start()));
    const ids = await Promise.all(servers.map((s) => group.idOf(s)));
    const primaries = servers.slice(0, o.primaries);
    // Distinct config epochs up front, as redis-cli does: no collision to resolve later.
    await Promise.all(servers.map((s, i) => s.call('CLUSTER', 'SET-CONFIG-EPOCH', i + 1)));
    await Promise.all(
      primaries.map((s, i) => s.call('CLUSTER', 'ADDSLOTSRANGE', Math.floor((i * SLOTS) / o.primaries), Math.floor(((i + 1) * SLOTS) / o.primaries) - 1)),
    );
    const first = servers[0]!;
    await Promise.all(servers.slice(1).map((s) => s.call('CLUSTER', 'MEET', first.host, first.port, busPorts.get(first)!)));
    await pollUntil('every cluster node knows the others', 30_000, async () => {
      for (const server of servers) {
        const view = await group.view(server);
        if (view.length !== servers.length || view.some((n) => n.flags.some((f) => f === 'handshake' || f === 'noaddr'))) return undefined;
      }
      return true;
    });
    await Promise.all(servers.slice(o.primaries).map((s, i) => s.call('CLUSTER', 'REPLICATE', ids[i % o.primaries]!)));
    await pollUntil('every replica known as one by every node', 30_000, async () => {
      for (const server of servers) {
        const view = await group.view(server);
        if (view.filter((n) => n.primaryId !== null).length !== servers.length - o.primaries) return undefined;
      }
      return true;
    });
    await group.waitForOk(30_000);
  } catch (err) {
    await group.stop();
    throw err;
  }
  return group;
}
