import { pgreplicaKnex } from '@pgreplica/adapter-knex';
import { type AdapterUnderTest, describeAdapter } from './adapter-harness.js';

describeAdapter('knex', async (router) => {
  const db = pgreplicaKnex(router);
  const port = db.raw('inet_server_port() AS port');
  const orm: AdapterUnderTest = {
    readPort: async () => (await db('ledger').select(port, db.raw('count(*) AS n')).first()).port,
    insert: async (id) => (await db('ledger').insert({ id, note: 'knex' }).returning(port))[0].port,
    insertInTransaction: (id) =>
      db.transaction(async (trx) => {
        await trx('ledger').insert({ id, note: 'knex-tx' });
        return (await trx('ledger').select(port).where({ id }).first()).port;
      }),
    readOnlyTransactionPort: () => db.transaction(async (trx) => (await trx('ledger').select(port, db.raw('count(*) AS n')).first()).port, { readOnly: true }),
    has: async (id) => (await db('ledger').select('id').where({ id })).length === 1,
    close: () => db.destroy(),
  };
  return orm;
});
