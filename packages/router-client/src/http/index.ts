/**
 * Framework-agnostic HTTP helpers: carry a session's read-your-writes token
 * from request to response, and a health handler. Works with Node's
 * `http` objects and anything shaped like them (Express, Fastify's raw req/res).
 */
import type { Router } from '../router.js';
import type { NodeMetrics } from '../router-types.js';
import type { Session } from '../session.js';
import { runWithSession } from '../session-context.js';
import { TOKEN_PATTERN } from '../tokens.js';

/** Header carrying the token by default. */
export const TOKEN_HEADER = 'x-pgreplica-token';

/** The minimum of a request these helpers read. */
export interface RequestLike {
  headers: Record<string, string | string[] | undefined>;
}

/** The minimum of a response these helpers write. */
export interface ResponseLike {
  setHeader(name: string, value: string): unknown;
  headersSent?: boolean;
}

/** The token a request carries, or null (a malformed one is ignored, not trusted). */
export function readToken(req: RequestLike, header = TOKEN_HEADER): string | null {
  const raw = req.headers[header.toLowerCase()];
  const value = Array.isArray(raw) ? raw[0] : raw;
  return value && TOKEN_PATTERN.test(value.trim()) ? value.trim() : null;
}

/** Puts the session's token on the response (before the body is sent). */
export function attachToken(res: ResponseLike, session: Session, header = TOKEN_HEADER): void {
  if (session.token && !res.headersSent) res.setHeader(header, session.token);
}

/** A session for this request, continuing from the token the client sent. */
export function sessionFor(router: Router, req: RequestLike, header = TOKEN_HEADER): Session {
  return router.session(readToken(req, header));
}

/**
 * Express-style middleware: `req.db` is a session that sees the caller's
 * earlier writes; the new token goes out in the response header when the
 * handler writes the head. The rest of the request runs in that session
 * (`runWithSession()`), so an ORM over `router.asPool()` reads its writes too.
 */
export function pgreplicaMiddleware(router: Router, header = TOKEN_HEADER) {
  return (req: RequestLike & { db?: Session }, res: ResponseLike & { writeHead?: (...args: never[]) => unknown }, next: () => void): void => {
    const session = sessionFor(router, req, header);
    req.db = session;
    const original = res.writeHead?.bind(res);
    if (original) {
      res.writeHead = ((...args: never[]) => {
        attachToken(res, session, header);
        return original(...args);
      }) as typeof res.writeHead;
    }
    runWithSession(session, next);
  };
}

/** Body of {@link healthHandler}. */
export interface DatabaseHealth {
  ok: boolean;
  epoch: number;
  topologyAgeMs: number | null;
  fallback: boolean;
  write: { nodeId: string | null; target: string | null };
  read: { nodeId: string | null; target: string | null; reason: string };
  nodes: NodeMetrics[];
}

/** The database's health as this router sees it; `ok` is false without a primary. Targets carry no password. */
export function databaseHealth(router: Router): DatabaseHealth {
  const { ageMs, fallback, epoch } = router.getTopology();
  const write = router.getWriteTarget();
  const read = router.getReadTarget();
  return {
    ok: write.nodeId !== null,
    epoch,
    topologyAgeMs: Number.isFinite(ageMs) ? ageMs : null,
    fallback,
    write: { nodeId: write.nodeId, target: write.target },
    read: { nodeId: read.nodeId, target: read.target, reason: read.reason },
    nodes: router.getMetrics(),
  };
}

/** A `(req, res)` handler for `/health/database`: 200 with a primary, else 503, JSON body. */
export function healthHandler(router: Router) {
  return (_req: unknown, res: ResponseLike & { statusCode?: number; end(body: string): unknown }): void => {
    const health = databaseHealth(router);
    res.statusCode = health.ok ? 200 : 503;
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(health));
  };
}
