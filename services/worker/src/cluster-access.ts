import { type ProbeConnectionOptions, type NodeSample, NodeProber, type ProbeResult } from '@pgreplica/probe';
import type { NodeTag } from '@pgreplica/protocol';
import { type Config, databaseSsl, probeConnection } from '@pgreplica/runtime';
import pg from 'pg';

/** A configured node, as the worker reaches it. */
export interface NodeAddress {
  id: string;
  host: string;
  port: number;
  priority: number;
  tags: NodeTag[];
  /** The physical slot it streams through as a replica. */
  slotName: string;
}

/**
 * Deadline of the worker's run-time checks of the nodes (connect, then the
 * probe's statements). Short: a hung primary must cost the failover about a
 * second here, not the monitor's probe deadline.
 */
export const DECISION_PROBE_TIMEOUT_MS = 1_000;

/**
 * The worker's own view of the cluster: it re-checks every precondition
 * itself, at run time, over fresh connections (never the monitor's word).
 */
export class ClusterAccess {
  readonly nodes: readonly NodeAddress[];
  readonly #config: Config;

  constructor(config: Config) {
    this.#config = config;
    this.nodes = config.nodes.map((n) => ({ id: n.id, host: n.host, port: n.port, priority: n.priority, tags: n.tags, slotName: n.slotName }));
  }

  node(id: string): NodeAddress {
    const node = this.nodes.find((n) => n.id === id);
    if (!node) throw new Error(`unknown node "${id}" (configured: ${this.nodes.map((n) => n.id).join(', ')})`);
    return node;
  }

  #clientConfig(node: NodeAddress, database?: string): pg.ClientConfig {
    const db = this.#config.database;
    return {
      host: node.host,
      port: node.port,
      user: db.user,
      password: this.#config.databasePassword,
      database: database ?? db.database,
      ssl: databaseSsl(this.#config),
      connectionTimeoutMillis: db.connectTimeoutMs,
      statement_timeout: 120_000,
      application_name: 'pgreplica-worker',
    };
  }

  /** Opens a connection to a node (to the configured database unless `database`); the caller ends it. */
  async connect(nodeId: string, database?: string): Promise<pg.Client> {
    const client = new pg.Client(this.#clientConfig(this.node(nodeId), database));
    client.on('error', () => {});
    await client.connect();
    return client;
  }

  /** Runs statements on a node over a short-lived connection. */
  async withClient<T>(nodeId: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
    const client = await this.connect(nodeId);
    try {
      return await fn(client);
    } finally {
      await client.end().catch(() => {});
    }
  }

  /** One statement on a node. */
  async query<R extends pg.QueryResultRow = pg.QueryResultRow>(nodeId: string, sql: string, params: unknown[] = []): Promise<R[]> {
    return this.withClient(nodeId, async (c) => (await c.query<R>(sql, params)).rows);
  }

  /**
   * Probes every node now, concurrently, with the monitor's probe code.
   * `fast`: the short deadline of a run-time decision ({@link DECISION_PROBE_TIMEOUT_MS}).
   */
  async probeAll(options: { fast?: boolean } = {}): Promise<Map<string, ProbeResult>> {
    const connection: ProbeConnectionOptions = probeConnection(this.#config, 'pgreplica-worker');
    if (options.fast) Object.assign(connection, { connectTimeoutMs: DECISION_PROBE_TIMEOUT_MS, statementTimeoutMs: DECISION_PROBE_TIMEOUT_MS });
    const probers = this.nodes.map((n) => new NodeProber(n, connection));
    try {
      const results = await Promise.all(probers.map((p) => p.probe()));
      return new Map(results.map((r) => [r.nodeId, r]));
    } finally {
      await Promise.all(probers.map((p) => p.close()));
    }
  }
}

/** The sample of a probe that answered, else null. */
export function sampleOf(result: ProbeResult | undefined): NodeSample | null {
  return result?.ok ? result.sample : null;
}
