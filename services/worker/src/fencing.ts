import type pg from 'pg';
import type { JobContext } from './context.js';
import { nodeEnv, runHook } from './hooks.js';
import { hookEnv } from './hook-env.js';

/** What a fence did, so it can be reported and undone. */
export interface FenceOutcome {
  /** `hook`: the fence hook ran; `databases`: ALLOW_CONNECTIONS false on these databases. */
  kind: 'hook' | 'databases';
  databases: string[];
  terminated: number;
}

const CLIENT_BACKENDS = `backend_type = 'client backend' AND pid <> pg_backend_pid()`;

/**
 * Refuses every new connection to every database of a node
 * (`ALTER DATABASE … ALLOW_CONNECTIONS false`: what PostgreSQL enforces for
 * every role, superusers included — unlike `default_transaction_read_only`,
 * which any session can override). PostgreSQL will not close the database a
 * session is in, so two sessions in two databases close each other's, then
 * everything else. It replicates: only for a node nothing follows any more.
 * It lasts until the node rejoins as a replica (pg_rewind or a re-clone
 * takes the new primary's catalog). Returns the databases it closed.
 * @throws when the node has a single database that allows connections
 */
export async function closeDatabases(ctx: JobContext, nodeId: string, held?: pg.Client): Promise<string[]> {
  const first = held ?? (await ctx.cluster.connect(nodeId));
  let second: pg.Client | undefined;
  try {
    // Our own commits must not wait for a synchronous standby that may be gone, and a node a
    // switchover drained (or an older soft fence) is read-only by default: not for us.
    await first.query('SET synchronous_commit = local; SET default_transaction_read_only = off');
    const { rows } = await first.query<{ datname: string; current: boolean }>('SELECT datname, datname = current_database() AS current FROM pg_database WHERE datallowconn ORDER BY datname <> $1, datname', ['template1']);
    const own = rows.find((r) => r.current)?.datname;
    const other = rows.find((r) => !r.current)?.datname;
    if (!own || !other) throw new Error(`cannot fence ${nodeId} by its databases: it has a single database that allows connections; configure a fence hook`);
    second = await ctx.cluster.connect(nodeId, other);
    await second.query('SET synchronous_commit = local; SET default_transaction_read_only = off');
    const closed: string[] = [];
    for (const { datname } of rows) {
      const session = datname === own ? second : first;
      await session.query(`ALTER DATABASE ${session.escapeIdentifier(datname)} ALLOW_CONNECTIONS false`);
      closed.push(datname);
    }
    return closed;
  } finally {
    await second?.end().catch(() => {});
    if (!held) await first.end().catch(() => {});
  }
}

/** Terminates every client session but the caller's; returns how many. */
export async function terminateClientSessions(client: pg.Client): Promise<number> {
  const { rows } = await client.query<{ n: number }>(`SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE ${CLIENT_BACKENDS}`);
  return rows[0]?.n ?? 0;
}

/** Client sessions with a transaction open, the caller's excluded. */
export async function openTransactions(client: pg.Client): Promise<number> {
  const { rows } = await client.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE ${CLIENT_BACKENDS} AND xact_start IS NOT NULL`);
  return rows[0]?.n ?? 0;
}

/**
 * Fences a node so that it accepts no write from any client until it rejoins
 * as a replica: the fence hook when one is configured (host access: stop it,
 * cut it off), else its databases closed to new connections and every client
 * session terminated. Records each change in `ctx.changed`.
 * @throws when the hook fails or the node cannot be reached
 */
export async function fenceNode(ctx: JobContext, nodeId: string): Promise<FenceOutcome> {
  const hook = ctx.config.worker.hooks.fence;
  if (hook) {
    // Stopped at shutdown: fencing is idempotent, the job's next run fences again.
    const run = await runHook(hook, hookEnv(ctx.config, nodeEnv('NODE', ctx.cluster.node(nodeId))), ctx.config.worker.hooks.timeoutMs, ctx.signal);
    if (run.aborted) throw new Error(`worker shutting down: the fence hook for ${nodeId} was stopped`);
    if (run.exitCode !== 0) throw new Error(`fence hook failed for ${nodeId} (exit ${run.exitCode}${run.timedOut ? ', timed out' : ''}): ${run.output.trim().slice(-500)}`);
    ctx.changed.push(`ran the fence hook for ${nodeId}`);
    return { kind: 'hook', databases: [], terminated: 0 };
  }
  return ctx.cluster.withClient(nodeId, async (client) => {
    const databases = await closeDatabases(ctx, nodeId, client);
    ctx.changed.push(`fenced ${nodeId}: databases ${databases.join(', ')} refuse connections (ALLOW_CONNECTIONS false)`);
    const terminated = await terminateClientSessions(client);
    ctx.changed.push(`terminated ${terminated} client session(s) on ${nodeId}`);
    return { kind: 'databases', databases, terminated };
  });
}
