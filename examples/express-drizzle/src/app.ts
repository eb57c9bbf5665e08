import { type PgreplicaDrizzle, pgreplicaDrizzle } from '@pgreplica/adapter-drizzle';
import type { Router } from '@pgreplica/router-client';
import { healthHandler, pgreplicaMiddleware, TOKEN_HEADER } from '@pgreplica/router-client/http';
import { desc, eq, sql } from 'drizzle-orm';
import express, { type Express, type NextFunction, type Request, type Response } from 'express';
import { items } from './schema.js';

/** Which server ran a statement (the example shows routing; a real app would not ask). */
const servedBy = sql<number>`inet_server_port()`;

/**
 * The app: one Drizzle database over the router, shared by every request.
 * `pgreplicaMiddleware` runs each request in a read-your-writes session
 * continued from the `x-pgreplica-token` header and sends the new token
 * back in it, so a client that sends it on reads its own writes — on
 * whichever replica has them, or the primary.
 */
export function createApp(router: Router, db: PgreplicaDrizzle = pgreplicaDrizzle(router)): Express {
  const app = express();
  app.disable('x-powered-by');
  app.use(express.json({ limit: '16kb' }));
  app.get('/health/database', healthHandler(router));
  app.use(pgreplicaMiddleware(router));

  app.post('/items', async (req: Request, res: Response) => {
    const name = typeof req.body?.name === 'string' ? req.body.name.trim() : '';
    if (name === '' || name.length > 200) {
      res.status(400).json({ error: 'body.name must be a non-empty string of at most 200 characters' });
      return;
    }
    const [item] = await db.insert(items).values({ name }).returning({ id: items.id, name: items.name, servedBy });
    res.status(201).json(item);
  });

  app.get('/items/:id', async (req: Request, res: Response) => {
    const id = Number(req.params.id);
    if (!Number.isInteger(id) || id < 1) {
      res.status(400).json({ error: 'id must be a positive integer' });
      return;
    }
    const [item] = await db.select({ id: items.id, name: items.name, servedBy }).from(items).where(eq(items.id, id));
    if (!item) res.status(404).json({ error: `no item ${id}` });
    else res.json(item);
  });

  app.get('/items', async (_req: Request, res: Response) => {
    res.json(await db.select({ id: items.id, name: items.name }).from(items).orderBy(desc(items.id)).limit(20));
  });

  app.use((err: Error, req: Request, res: Response, _next: NextFunction) => {
    // Drizzle wraps the driver's error ("Failed query: …"); the cause says what went wrong.
    const cause = err.cause instanceof Error ? err.cause.message : undefined;
    console.error(`${req.method} ${req.path}: ${err.message}${cause ? ` (cause: ${cause})` : ''}`);
    res.status(503).json({ error: 'database unavailable', detail: cause ?? err.message });
  });
  return app;
}

export { TOKEN_HEADER };
