import { createRouter, type Router, type RouterOptions } from '@pgreplica/router-client';
import type { Sandbox } from '@pgreplica/sandbox';

/** A router on a sandbox's bus, with short timings for tests. */
export async function startRouter(sandbox: Sandbox, options: Partial<RouterOptions> = {}): Promise<Router> {
  const router = createRouter({
    cluster: 'main',
    redis: sandbox.redis!.url,
    connection: { user: 'postgres', password: sandbox.primary.connectionConfig.password as string, database: 'postgres' },
    staleAfterMs: 3_000,
    ...options,
  });
  router.on('error', () => {});
  await router.ready();
  return router;
}

/** Waits until the router's view satisfies `check`. */
export async function routerSees(router: Router, check: (r: Router) => boolean, timeoutMs = 15_000, what = 'router view'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check(router)) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(router.getTopology().topology?.nodes.map((n) => [n.id, n.role, n.status, n.lagMs]))}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Port → node id. */
export function portMap(sandbox: Sandbox): Map<number, string> {
  return new Map(sandbox.nodes.map((n) => [n.port, n.id]));
}
