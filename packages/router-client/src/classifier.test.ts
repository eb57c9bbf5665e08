import { describe, expect, it } from 'vitest';
import { ClassifierCache, classify } from './classifier.js';
import { FunctionCatalog } from './function-catalog.js';
import { CORPUS } from './test-support/classifier-corpus.js';
import { oracleTarget } from './test-support/classifier-oracle.js';

describe('classifier corpus', () => {
  it('has at least 150 statements', () => {
    expect(CORPUS.length).toBeGreaterThanOrEqual(150);
  });

  it.each(CORPUS.map(([sql, target]) => [JSON.stringify(sql).slice(0, 90), sql, target] as const))('%s', (_label, sql, target) => {
    expect(classify(sql).target).toBe(target);
  });

  it("agrees with PostgreSQL's own parser (libpg-query) on every statement it can parse", async () => {
    const disagreements: string[] = [];
    let parsed = 0;
    for (const [sql] of CORPUS) {
      const oracle = await oracleTarget(sql);
      if (oracle === null) continue;
      parsed++;
      const mine = classify(sql).target;
      // The lexer may be more careful than the parser (primary where the parser says replica), never less.
      if (oracle === 'primary' && mine === 'replica') disagreements.push(`${sql} -> lexer ${mine}, parser ${oracle}`);
    }
    expect(parsed).toBeGreaterThan(140);
    expect(disagreements).toEqual([]);
  });
});

describe('classify details', () => {
  it('says why', () => {
    expect(classify('SELECT * FROM t FOR UPDATE')).toMatchObject({ reason: 'locking-clause', detail: 'for update' });
    expect(classify('SELECT nextval(\'s\')')).toMatchObject({ reason: 'side-effect-function', detail: 'nextval' });
    expect(classify('WITH d AS (DELETE FROM t) SELECT 1')).toMatchObject({ reason: 'data-modifying-cte', detail: 'delete' });
    expect(classify('SELECT 1')).toEqual({ target: 'replica', reason: 'read' });
  });

  it('sends user functions named as writing to the primary', () => {
    expect(classify('SELECT archive_old_rows()', { primaryFunctions: new Set(['archive_old_rows']) })).toMatchObject({ target: 'primary', detail: 'archive_old_rows' });
  });

  it('caches by statement text, bounded by entries', () => {
    const cache = new ClassifierCache(4);
    const first = cache.classify('SELECT 1');
    // A hit returns the cached verdict itself; a miss classifies anew.
    expect(cache.classify('SELECT 1')).toBe(first);
    for (let i = 2; i <= 6; i++) cache.classify(`SELECT ${i}`);
    expect(cache.size).toBeLessThanOrEqual(4);
    const again = cache.classify('SELECT 1');
    expect(again).not.toBe(first);
    expect(again).toEqual(first);
  });

  it('bounds the cache by bytes, not only entries: 10,000 large statements do not stay', () => {
    const cache = new ClassifierCache(10_000, { maxBytes: 1024 * 1024 });
    const filler = 'x'.repeat(100_000);
    for (let i = 0; i < 200; i++) cache.classify(`SELECT '${filler}' AS v${i}`);
    // 200 × ~200 kB of text would be 40 MB; the bound keeps a few.
    expect(cache.size).toBeLessThanOrEqual(5);
    // A statement larger than a quarter of the bound is classified, never kept.
    cache.classify(`SELECT '${'y'.repeat(300_000)}'`);
    expect(cache.size).toBeLessThanOrEqual(5);
  });

  it('keeps a verdict that is used while new texts stream through (a hit in the old generation moves it back)', () => {
    const cache = new ClassifierCache(100);
    const hot = cache.classify('SELECT * FROM users WHERE id = $1');
    for (let i = 0; i < 1_000; i++) {
      cache.classify(`SELECT ${i}`);
      expect(cache.classify('SELECT * FROM users WHERE id = $1')).toBe(hot);
    }
  });

  it('setOptions drops cached verdicts that the new options would change', () => {
    const cache = new ClassifierCache();
    expect(cache.classify('SELECT create_order($1)').target).toBe('replica');
    cache.setOptions({ primaryFunctions: new Set(['create_order']) });
    expect(cache.classify('SELECT create_order($1)')).toMatchObject({ target: 'primary', reason: 'side-effect-function', detail: 'create_order' });
  });
});

describe('routing hints and identifiers', () => {
  it('honours a replica hint only in a leading comment; a primary hint anywhere', () => {
    expect(classify('/* pgreplica:replica */ SELECT f()')).toMatchObject({ target: 'replica', reason: 'hint-replica' });
    expect(classify('DELETE FROM t /* pgreplica:replica */')).toMatchObject({ target: 'primary', reason: 'write-statement' });
    expect(classify('SELECT 1 -- pgreplica:primary')).toMatchObject({ target: 'primary', reason: 'hint-primary' });
  });

  it('ends a -- comment at a carriage return, as PostgreSQL does', () => {
    expect(classify('SELECT 1 --x\r; DELETE FROM t')).toMatchObject({ target: 'primary', reason: 'multiple-statements' });
  });

  it('treats U&"…" identifiers as unsure', () => {
    expect(classify('SELECT U&"pg_advisory\\006Cock"(42)')).toMatchObject({ target: 'primary', reason: 'unicode-identifier' });
  });
});

describe('FunctionCatalog', () => {
  const primary = { id: 'p1', host: '127.0.0.1', port: 1 } as never;

  it("hands the primary's volatile user functions to the classifier; stable and immutable ones stay reads", async () => {
    const queries: string[] = [];
    const pool = {
      query: async (sql: string) => {
        queries.push(sql);
        return { rows: [{ name: 'create_order' }, { name: 'Audit' }] };
      },
    };
    const cache = new ClassifierCache();
    const catalog = new FunctionCatalog({ primary: () => primary, pool: () => pool as never }, silent, (names) => cache.setOptions({ primaryFunctions: names }));
    try {
      expect(await catalog.load()).toBe(true);
      expect(queries[0]).toMatch(/provolatile = 'v'/);
      expect(cache.classify('SELECT create_order($1)').target).toBe('primary');
      expect(cache.classify('SELECT public.create_order($1)').target).toBe('primary');
      expect(cache.classify('SELECT "Audit"()').target).toBe('primary');
      expect(cache.classify('SELECT order_total($1)').target).toBe('replica');
    } finally {
      catalog.close();
    }
  });

  it('never rejects: a failed read is retried later, and without a primary nothing is read', async () => {
    const catalog = new FunctionCatalog({ primary: () => null, pool: () => ({}) as never }, silent, () => {});
    expect(await catalog.load()).toBe(false);
    catalog.close();
    const failing = new FunctionCatalog({ primary: () => primary, pool: () => ({ query: async () => Promise.reject(new Error('boom')) }) as never }, silent, () => {});
    expect(await failing.load()).toBe(false);
    expect(failing.names).toBeNull();
    failing.close();
  });
});

const silent = { debug() {}, info() {}, warn() {}, error() {} };
