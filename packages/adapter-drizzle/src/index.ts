import { type ConsistencyToken, type Router, type RouterPool, type RouterPoolOptions, Session } from '@pgreplica/router-client';
import type { DrizzleConfig } from 'drizzle-orm';
import { drizzle, type NodePgDatabase } from 'drizzle-orm/node-postgres';

/** Options of {@link pgreplicaDrizzle}: Drizzle's own config, plus the face's. */
export type PgreplicaDrizzleConfig<TSchema extends Record<string, unknown>> = DrizzleConfig<TSchema> & {
  /** Options of the `pg.Pool` face (`router.asPool()`). @default {} */
  pool?: RouterPoolOptions;
};

/** A Drizzle database over a pgreplica router. */
export type PgreplicaDrizzle<TSchema extends Record<string, unknown> = Record<string, never>> = NodePgDatabase<TSchema> & {
  /** The face Drizzle runs on: `end()` it (or close the router) at shutdown. */
  $client: RouterPool;
  /** The session this database's statements run in; null unless made by `$withSession()`. */
  $session: Session | null;
  /**
   * The same database in a read-your-writes session: its reads see its
   * writes and those `token` stands for (e.g. from a request header);
   * `$session.token` is the token to hand back. Cheap: it shares the
   * router's connections. Without it, statements run in the session of
   * `runWithSession()` (which `pgreplicaMiddleware` sets per request), if any.
   */
  $withSession(token?: ConsistencyToken | Session | null): PgreplicaDrizzle<TSchema>;
};

/**
 * Drizzle (`drizzle-orm/node-postgres`) over `router.asPool()`: queries
 * are routed by the router's classifier (reads to replicas, writes to the
 * primary, retried through a switchover); `db.transaction()` checks a
 * client out, pinned to the primary (`{ accessMode: 'read only' }`: a
 * replica).
 */
export function pgreplicaDrizzle<TSchema extends Record<string, unknown> = Record<string, never>>(router: Router, config: PgreplicaDrizzleConfig<TSchema> = {}): PgreplicaDrizzle<TSchema> {
  const { pool: poolOptions, ...drizzleConfig } = config;
  const make = (session: Session | null, options: RouterPoolOptions): PgreplicaDrizzle<TSchema> => {
    const client = router.asPool(session ? { ...options, session, endRouter: false } : options);
    const db = drizzle({ ...drizzleConfig, client }) as NodePgDatabase<TSchema> & { $client: RouterPool };
    return Object.assign(db, {
      $session: session,
      $withSession: (token?: ConsistencyToken | Session | null) => make(token instanceof Session ? token : router.session(token ?? null), poolOptions ?? {}),
    });
  };
  return make(null, poolOptions ?? {});
}
