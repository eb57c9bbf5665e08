// One chaos router, run as its own process (`node router-child.mjs`): writes
// rows with unique ids through @pgreplica/router-client and reads each one back
// with its read-your-writes token, appending every outcome to a JSON-lines
// history file. Plain JavaScript: the test workspace is not compiled, and a
// child process needs a file node runs as is. Configured by environment:
// CHAOS_ROUTER, CHAOS_HISTORY, CHAOS_REDIS_URL, CHAOS_PASSWORD, CHAOS_PORTS
// (JSON: server port -> node id), CHAOS_ID_BASE. SIGTERM stops it.
import { appendFileSync } from 'node:fs';
import { createRouter } from '@pgreplica/router-client';

const env = process.env;
const router = env.CHAOS_ROUTER ?? 'router';
const historyFile = env.CHAOS_HISTORY ?? '';
/** @type {Record<string, string>} */
const ports = JSON.parse(env.CHAOS_PORTS ?? '{}');
let next = Number(env.CHAOS_ID_BASE ?? '0');
let running = true;

/** @param {Record<string, unknown>} entry */
const record = (entry) => appendFileSync(historyFile, `${JSON.stringify({ router, ...entry })}\n`);
/** @param {unknown} err */
const describe = (err) => {
  const e = /** @type {{ code?: string; message?: string }} */ (err);
  return { error: String(e?.message ?? err).slice(0, 200), code: e?.code ?? null };
};

const db = createRouter({
  cluster: 'main',
  redis: env.CHAOS_REDIS_URL,
  connection: { user: 'postgres', password: env.CHAOS_PASSWORD, database: 'postgres' },
  staleAfterMs: 3_000,
  maxWritePauseMs: 10_000,
  // A write in flight to a hung primary ends as an unacknowledged failure instead of hanging the loop.
  pool: { max: 2, query_timeout: 3_000, connectionTimeoutMillis: 2_000 },
});
db.on('error', () => {});
process.on('SIGTERM', () => {
  running = false;
});
// The orchestrator died without stopping us (killed): stop too, instead of writing to a dead cluster.
const parent = process.ppid;
setInterval(() => {
  if (process.ppid !== parent) process.exit(0);
}, 1_000).unref();

await db.ready();
process.stdout.write('router ready\n');
while (running) {
  const id = ++next;
  const sentAt = Date.now();
  try {
    const result = await db.write(
      'INSERT INTO chaos_ledger (id, router) VALUES ($1, $2) RETURNING inet_server_port() AS port, (SELECT max(epoch)::int FROM pgreplica.epoch) AS epoch',
      [id, router],
    );
    const row = result.rows[0] ?? {};
    const node = ports[String(row.port)] ?? `port ${row.port}`;
    record({ type: 'write', id, sentAt, at: Date.now(), node, epoch: row.epoch ?? null, token: result.token });
    try {
      const read = await db.read('SELECT inet_server_port() AS port, count(*)::int AS n FROM chaos_ledger WHERE id = $1', [id], { after: result.token });
      const r = read.rows[0] ?? {};
      record({ type: 'read', id, at: Date.now(), node: ports[String(r.port)] ?? `port ${r.port}`, found: r.n === 1 });
    } catch (err) {
      record({ type: 'read-failed', id, at: Date.now(), ...describe(err) });
    }
  } catch (err) {
    record({ type: 'write-failed', id, sentAt, at: Date.now(), ...describe(err) });
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await new Promise((resolve) => setTimeout(resolve, 20));
}
await db.close().catch(() => {});
process.exit(0);
