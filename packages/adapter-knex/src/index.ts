import type { Router, RouterPool, RouterPoolOptions } from '@pgreplica/router-client';
import knexFactory, { type Knex } from 'knex';

/** Options of {@link pgreplicaKnex}: Knex's config without `client`, `connection`, `connectionPool` and `pool`, plus the face's. */
export type PgreplicaKnexConfig = Omit<Knex.Config, 'client' | 'connection' | 'connectionPool' | 'pool'> & {
  /**
   * Options of the `pg.Pool` face (`router.asPool()`).
   * @default { checkout: 'reads-first', endRouter: false }
   */
  pool?: RouterPoolOptions;
};

/** A Knex instance over a pgreplica router, with the face it runs on. */
export type PgreplicaKnex = Knex & {
  /** The face Knex runs on. `knex.destroy()` does not end an external pool: close the router (or `end()` this) at shutdown. */
  readonly $pool: RouterPool;
};

/**
 * Knex's `pg` client with `router.asPool()` as its `connectionPool` (a
 * native `pg.Pool`, Knex 3.2+). Knex checks a client out for every query,
 * so the face is made with `checkout: 'reads-first'`: a query the
 * classifier takes for a read goes to a replica, anything else pins the
 * primary for that checkout; `knex.transaction()` is one checkout from
 * `BEGIN` to `COMMIT` on the primary (`{ readOnly: true }`: on a replica).
 * Statements run in the session of `runWithSession()` (which
 * `pgreplicaMiddleware` sets per request), if any, or in `pool.session`.
 */
export function pgreplicaKnex(router: Router, config: PgreplicaKnexConfig = {}): PgreplicaKnex {
  const { pool: poolOptions, ...knexConfig } = config;
  const pool = router.asPool({ checkout: 'reads-first', endRouter: false, ...poolOptions });
  const db = knexFactory({ ...knexConfig, client: 'pg', connectionPool: pool } as Knex.Config);
  return Object.assign(db, { $pool: pool });
}
