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
  /** Bearer token every route requires; open when undefined. */
  token: string | undefined;
}

/**
 * A Hono app with a service's common routes: a bearer-token guard on every
 * route when a token is configured, `/health` and `/metrics`. The service
 * adds its own routes to it.
 */
export function createServiceApp(options: ServiceHttpOptions): Hono {
  const app = new Hono();
  const token = options.token;
  if (token !== undefined) {
    app.use('*', async (c, next) => {
      if (!bearerMatches(c.req.header('authorization'), token)) {
        return c.json({ error: 'missing or wrong bearer token' }, 401, { 'www-authenticate': 'Bearer' });
      }
      await next();
      return undefined;
    });
  }
  app.get('/health', (c) => {
    const health = options.health();
    return c.json(health, health.ok ? 200 : 503);
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
