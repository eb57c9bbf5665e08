import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pgreplicaPrisma } from '@pgreplica/adapter-prisma';
import type { PrismaPg } from '@prisma/adapter-pg';
import { type AdapterUnderTest, describeAdapter } from './adapter-harness.js';

const TEST_DIR = fileURLToPath(new URL('..', import.meta.url));

/** The part of the generated client the test uses. */
interface LedgerClient {
  ledger: {
    create(args: { data: { id: number; note: string } }): Promise<unknown>;
    findUnique(args: { where: { id: number } }): Promise<{ id: number } | null>;
  };
  $queryRawUnsafe<T>(sql: string, ...values: unknown[]): Promise<T>;
  $transaction<T>(fn: (tx: LedgerClient) => Promise<T>): Promise<T>;
  $disconnect(): Promise<void>;
}

/**
 * `prisma generate` writes the client (TypeScript) to test/generated/prisma.
 * The CLI fetches the schema engine before any command from the network,
 * which is out of reach here; `generate` never runs it (the schema is read
 * by a WebAssembly module shipped in the package), so the variable points
 * at a stand-in that fails if it ever is run. The runtime needs no engine
 * binary at all: the query compiler is WebAssembly, the driver is the adapter.
 */
function generateClient(): void {
  const dir = mkdtempSync(join(tmpdir(), 'pgreplica-prisma-'));
  const standIn = join(dir, 'no-schema-engine');
  writeFileSync(standIn, '#!/bin/sh\necho "schema-engine is not used by prisma generate" >&2\nexit 1\n');
  chmodSync(standIn, 0o755);
  try {
    const run = spawnSync(join(TEST_DIR, '../node_modules/.bin/prisma'), ['generate', '--schema', 'prisma/schema.prisma'], {
      cwd: TEST_DIR,
      encoding: 'utf8',
      env: { ...process.env, PRISMA_SCHEMA_ENGINE_BINARY: standIn, PRISMA_HIDE_UPDATE_MESSAGE: '1', CHECKPOINT_DISABLE: '1' },
      timeout: 120_000,
    });
    if (run.status !== 0) throw new Error(`prisma generate failed (${run.status}): ${run.stderr}${run.stdout}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describeAdapter('prisma', async (router) => {
  generateClient();
  const { PrismaClient } = (await import(join(TEST_DIR, 'generated/prisma/client.ts'))) as { PrismaClient: new (options: { adapter: PrismaPg }) => LedgerClient };
  const prisma = new PrismaClient({ adapter: pgreplicaPrisma(router, { pool: { endRouter: false } }) });
  const port = async (client: LedgerClient, sql: string, ...values: unknown[]) => (await client.$queryRawUnsafe<{ port: number }[]>(sql, ...values))[0]!.port;
  const orm: AdapterUnderTest = {
    readPort: () => port(prisma, 'SELECT inet_server_port() AS port FROM (SELECT count(*) FROM ledger) AS c'),
    insert: (id) => port(prisma, "INSERT INTO ledger (id, note) VALUES ($1, 'prisma') RETURNING inet_server_port() AS port", id),
    insertInTransaction: (id) =>
      prisma.$transaction(async (tx) => {
        await tx.ledger.create({ data: { id, note: 'prisma-tx' } });
        return port(tx, 'SELECT inet_server_port() AS port FROM ledger WHERE id = $1', id);
      }),
    has: async (id) => (await prisma.ledger.findUnique({ where: { id } })) !== null,
    close: () => prisma.$disconnect(),
  };
  return orm;
});
