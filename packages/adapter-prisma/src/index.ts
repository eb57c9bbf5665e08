import type { Router, RouterPoolOptions } from '@pgreplica/router-client';
import { PrismaPg } from '@prisma/adapter-pg';

/** Options of {@link pgreplicaPrisma}: `@prisma/adapter-pg`'s options, plus the face's. */
export type PgreplicaPrismaOptions = NonNullable<ConstructorParameters<typeof PrismaPg>[1]> & {
  /** Options of the `pg.Pool` face (`router.asPool()`). @default {} */
  pool?: RouterPoolOptions;
};

/**
 * Prisma's driver adapter for PostgreSQL (`@prisma/adapter-pg`) over
 * `router.asPool()`: pass it as `new PrismaClient({ adapter })`. Queries
 * outside a transaction run through the face's `query()` — routed by the
 * router's classifier: reads to replicas, writes to the primary, retried
 * through a switchover; `$transaction()` checks a client out: `BEGIN`
 * pins it to the primary. Statements run in the session of
 * `runWithSession()` (which `pgreplicaMiddleware` sets per request), if
 * any, or in `pool.session`.
 */
export function pgreplicaPrisma(router: Router, options: PgreplicaPrismaOptions = {}): PrismaPg {
  const { pool, ...adapterOptions } = options;
  return new PrismaPg(router.asPool(pool), adapterOptions);
}
