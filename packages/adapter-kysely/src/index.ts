import type { Router, RouterPoolOptions } from '@pgreplica/router-client';
import { PostgresDialect, type PostgresDialectConfig } from 'kysely';

/** Options of {@link pgreplicaDialect}: Kysely's `PostgresDialect` config without `pool`, plus the face's. */
export type PgreplicaDialectConfig = Omit<PostgresDialectConfig, 'pool'> & {
  /**
   * Options of the `pg.Pool` face (`router.asPool()`).
   * @default { checkout: 'reads-first' }
   */
  pool?: RouterPoolOptions;
};

/**
 * Kysely's `PostgresDialect` over `router.asPool()`. Kysely checks a
 * client out for every statement, so the face is made with
 * `checkout: 'reads-first'`: a statement the classifier takes for a read goes
 * to a replica, anything else pins the primary for that checkout.
 * `db.transaction()` is one checkout from `BEGIN` to `COMMIT`: on the
 * primary (`setAccessMode('read only')`: on a replica). Statements run in
 * the session of `runWithSession()` (which `pgreplicaMiddleware` sets per
 * request), if any, or in `pool.session`.
 *
 * `onCreateConnection` runs for every checkout (each is a new client): put
 * per-connection setup in the face's `connect` event instead.
 */
export function pgreplicaDialect(router: Router, config: PgreplicaDialectConfig = {}): PostgresDialect {
  const { pool, ...dialect } = config;
  return new PostgresDialect({ ...dialect, pool: router.asPool({ checkout: 'reads-first', ...pool }) });
}
