import { pgreplicaDialect } from '@pgreplica/adapter-kysely';
import { Kysely, sql } from 'kysely';
import { type AdapterUnderTest, describeAdapter } from './adapter-harness.js';

interface Database {
  ledger: { id: number; note: string | null };
}

const port = sql<number>`inet_server_port()`.as('port');

describeAdapter('kysely', async (router) => {
  const db = new Kysely<Database>({ dialect: pgreplicaDialect(router, { pool: { endRouter: false } }) });
  const orm: AdapterUnderTest = {
    readPort: async () => (await db.selectFrom('ledger').select([port, (eb) => eb.fn.countAll().as('n')]).executeTakeFirstOrThrow()).port,
    insert: async (id) => (await db.insertInto('ledger').values({ id, note: 'kysely' }).returning(port).executeTakeFirstOrThrow()).port,
    insertInTransaction: (id) =>
      db.transaction().execute(async (trx) => {
        await trx.insertInto('ledger').values({ id, note: 'kysely-tx' }).execute();
        return (await trx.selectFrom('ledger').select(port).where('id', '=', id).executeTakeFirstOrThrow()).port;
      }),
    readOnlyTransactionPort: () =>
      db
        .transaction()
        .setAccessMode('read only')
        .execute(async (trx) => (await trx.selectFrom('ledger').select([port, (eb) => eb.fn.countAll().as('n')]).executeTakeFirstOrThrow()).port),
    has: async (id) => (await db.selectFrom('ledger').select('id').where('id', '=', id).execute()).length === 1,
    close: () => db.destroy(),
  };
  return orm;
});
