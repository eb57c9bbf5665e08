import { timingSafeEqual } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { serve, type ServerType } from '@hono/node-server';
import { Hono } from 'hono';
import type { Registry } from 'prom-client';

/** A listening HTTP server of a service. */
export type HttpServer = ServerType;

/** Whether an `Authorization` header carries `token` (constant-time comparison). */
export function bearerMatches(header: string | undefined, token: string): boolean {
  const given = Buffer.from(header?.startsWith('Bearer ') ? header.slice(7) : '');
  const expected = Buffer.from(token);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/** What every service serves: `/health` (200 or 503) and `/metrics`. */
export interface ServiceHttpOptions {
  /** Liveness details; `ok: false` answers 503. */
  health(): { ok: boolean } & Record<string, unknown>;
  /** The service's own registry (never the global one). */
  registry: Registry;
  /** Bearer token the API requires (see {@link createServiceApp}); open when undefined. */
  token: string | undefined;
  /**
   * Paths that stay open with a token (health checks of load balancers that
   * send no header): they must answer with nothing beyond a verdict.
   */
  openPath?: (path: string) => boolean;
}

/**
 * A Hono app with a service's common routes, `/health` and `/metrics`; the
 * service adds its own. With a token, every route requires it (constant-time
 * comparison) except `/health` — which then answers a caller without the
 * token with its verdict only (`{ ok }`), no detail — and `openPath` ones.
 */
export function createServiceApp(options: ServiceHttpOptions): Hono {
  const app = new Hono();
  const token = options.token;
  const authorized = (header: string | undefined) => token === undefined || bearerMatches(header, token);
  if (token !== undefined) {
    app.use('*', async (c, next) => {
      const path = c.req.path;
      if (path !== '/health' && !options.openPath?.(path) && !authorized(c.req.header('authorization'))) {
        return c.json({ error: 'missing or wrong bearer token' }, 401, { 'www-authenticate': 'Bearer' });
      }
      await next();
      return undefined;
    });
  }
  app.get('/health', (c) => {
    const health = options.health();
    const body = authorized(c.req.header('authorization')) ? health : { ok: health.ok };
    return c.json(body, health.ok ? 200 : 503);
  });
  app.get('/metrics', async (c) => c.text(await options.registry.metrics(), 200, { 'content-type': options.registry.contentType }));
  return app;
}

/** Starts the HTTP server; resolves with it and its bound port. */
export function listen(app: Hono, host: string, port: number): Promise<{ server: HttpServer; port: number }> {
  return new Promise((resolve, reject) => {
    const server = serve({ fetch: app.fetch, hostname: host, port }, (info: AddressInfo) => resolve({ server, port: info.port }));
    server.once('error', reject);
  });
}

/** Closes an HTTP server; resolves once it stopped (immediately when there is none). */
export function closeServer(server: HttpServer | undefined): Promise<void> {
  return new Promise((resolve) => (server ? server.close(() => resolve()) : resolve()));
}
