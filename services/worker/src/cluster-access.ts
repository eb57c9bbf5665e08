import type { NodeTag } from '@pgreplica/protocol';
import { type NodeSample, NodeProber, type ProbeResult } from '@pgreplica/probe';
import { type Config, databaseSsl, probeConnection } from '@pgreplica/runtime';
import pg from 'pg';

/** A configured node, as the worker reaches it. */
export interface NodeAddress {
  id: string;
  host: string;
  port: number;
  priority: number;
  tags: NodeTag[];
}

/**
 * The worker's own view of the cluster: it re-checks every precondition
 * itself, at run time, over fresh connections (never the monitor's word).
 */
export class ClusterAccess {
  readonly nodes: readonly NodeAddress[];
  readonly #config: Config;

  constructor(config: Config) {
    this.#config = config;
    this.nodes = config.nodes.map((n) => ({ id: n.id, host: n.host, port: n.port, priority: n.priority, tags: n.tags }));
  }

  node(id: string): NodeAddress {
    const node = this.nodes.find((n) => n.id === id);
    if (!node) throw new Error(`unknown node "${id}" (configured: ${this.nodes.map((n) => n.id).join(', ')})`);
    return node;
  }

  #clientConfig(node: NodeAddress): pg.ClientConfig {
    const db = this.#config.database;
    return {
      host: node.host,
      port: node.port,
      user: db.user,
      password: this.#config.databasePassword,
      database: db.database,
      ssl: databaseSsl(this.#config),
      connectionTimeoutMillis: db.connectTimeoutMs,
      statement_timeout: 120_000,
      application_name: 'pgreplica-worker',
    };
  }

  /** Runs statements on a node over a short-lived connection. */
  async withClient<T>(nodeId: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
    const client = new pg.Client(this.#clientConfig(this.node(nodeId)));
    client.on('error', () => {});
    await client.connect();
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

  /** Probes every node now, concurrently, with the monitor's probe code. */
  async probeAll(): Promise<Map<string, ProbeResult>> {
    const connection = probeConnection(this.#config, 'pgreplica-worker');
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
