import { describe, expect, it } from 'vitest';
import { ClassifierCache, classify } from './classifier.js';
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

  it('caches by statement text, bounded', () => {
    const cache = new ClassifierCache(2);
    const first = cache.classify('SELECT 1');
    // A hit returns the cached verdict itself; a miss classifies anew.
    expect(cache.classify('SELECT 1')).toBe(first);
    cache.classify('SELECT 2');
    cache.classify('SELECT 3'); // evicts 'SELECT 1', the oldest
    const again = cache.classify('SELECT 1');
    expect(again).not.toBe(first);
    expect(again).toEqual(first);
  });
});
