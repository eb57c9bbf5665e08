import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRouter, type Router, type RouterOptions } from '@pgreplica/router-client';
import { createApp } from './app.js';
import { CREATE_ITEMS } from './schema.js';

/** What {@link startServer} needs. */
export interface ExampleServerOptions {
  /** The router's options (cluster, redis, connection, …). */
  router: RouterOptions;
  /** Port to listen on (0: any free one). @default 0 */
  port?: number;
  /** Address to listen on. @default '127.0.0.1' */
  host?: string;
  /** Where problems go. @default console.error */
  log?: (message: string) => void;
}

/** A running example server. */
export interface ExampleServer {
  url: string;
  router: Router;
  /** Graceful: stops accepting, lets requests in flight finish (at most `graceMs`), then closes the router. Idempotent. */
  close(graceMs?: number): Promise<void>;
}

/** Starts the router, creates the table, listens. */
export async function startServer(options: ExampleServerOptions): Promise<ExampleServer> {
  const log = options.log ?? ((m: string) => console.error(m));
  const router = createRouter(options.router);
  // As with pg.Pool: an idle connection's error must be heard, or it would crash the process.
  router.on('error', (err) => log(`database: ${err.message}`));
  await router.ready();
  await router.write(CREATE_ITEMS);
  const server: Server = createApp(router).listen(options.port ?? 0, options.host ?? '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  const { address, port } = server.address() as AddressInfo;
  let closing: Promise<void> | undefined;
  return {
    url: `http://${address}:${port}`,
    router,
    close: (graceMs = 10_000) =>
      (closing ??= (async () => {
        // 1. stop intake; idle keep-alive sockets go at once, busy ones when their response is out.
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        // 2. drain under a deadline.
        const deadline = new Promise<void>((resolve) => setTimeout(resolve, graceMs).unref());
        await Promise.race([closed, deadline]);
        server.closeAllConnections();
        // 3. the database last.
        await router.close();
      })()),
  };
}
