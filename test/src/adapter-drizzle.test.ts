import { type PgreplicaDrizzle, pgreplicaDrizzle } from '@pgreplica/adapter-drizzle';
import { count, eq, sql } from 'drizzle-orm';
import { integer, pgTable, text } from 'drizzle-orm/pg-core';
import { type AdapterUnderTest, describeAdapter } from './adapter-harness.js';

const ledger = pgTable('ledger', { id: integer('id').primaryKey(), note: text('note') });
const port = sql<number>`inet_server_port()`;

/** The shared checks, in Drizzle's query builder; `has` runs a named prepared statement (prepared on whichever node serves it). */
function drizzleOrm(db: PgreplicaDrizzle): AdapterUnderTest {
  const byId = db.select({ id: ledger.id }).from(ledger).where(eq(ledger.id, sql.placeholder('id'))).prepare('ledger_by_id');
  return {
    readPort: async () => (await db.select({ port, n: count() }).from(ledger))[0]!.port,
    insert: async (id) => (await db.insert(ledger).values({ id, note: 'drizzle' }).returning({ port }))[0]!.port,
    insertInTransaction: (id) =>
      db.transaction(async (tx) => {
        await tx.insert(ledger).values({ id, note: 'drizzle-tx' });
        return (await tx.select({ port }).from(ledger).where(eq(ledger.id, id)))[0]!.port;
      }),
    readOnlyTransactionPort: () => db.transaction(async (tx) => (await tx.select({ port, n: count() }).from(ledger))[0]!.port, { accessMode: 'read only' }),
    has: async (id) => (await byId.execute({ id })).length === 1,
    inRequest: (session, fn) => fn(drizzleOrm(db.$withSession(session))),
    close: async () => {},
  };
}

describeAdapter('drizzle', async (router) => drizzleOrm(pgreplicaDrizzle(router, { pool: { endRouter: false } })));
