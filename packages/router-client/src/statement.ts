import type pg from 'pg';

/** What the router runs: SQL text, or a node-postgres `QueryConfig` (`text`, `values`, `name`, `rowMode`, `types`…) passed through as it is. */
export type Statement = string | pg.QueryConfig;

/** Whether `value` is SQL text or a `QueryConfig` with a string `text`. */
export function isStatement(value: unknown): value is Statement {
  return typeof value === 'string' || (typeof value === 'object' && value !== null && typeof (value as { text?: unknown }).text === 'string');
}

/** A short description of a bad argument, for an error message. */
export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'object') return `an object without a string text (keys: ${Object.keys(value).slice(0, 5).join(', ') || 'none'})`;
  return typeof value;
}

/** The SQL text of a statement. */
export function statementText(statement: Statement): string {
  return typeof statement === 'string' ? statement : statement.text;
}

/** The leading words of a statement, upper-cased, after comments and whitespace (at most `max`); null when it holds more than one statement. */
function leadingWords(sql: string, max: number): string[] | null {
  let i = 0;
  const n = sql.length;
  const words: string[] = [];
  while (i < n) {
    const c = sql[i]!;
    if (c === '-' && sql[i + 1] === '-') {
      while (i < n && sql[i] !== '\n' && sql[i] !== '\r') i++;
    } else if (c === '/' && sql[i + 1] === '*') {
      let depth = 1;
      i += 2;
      while (i < n && depth > 0) {
        if (sql[i] === '/' && sql[i + 1] === '*') {
          depth++;
          i += 2;
        } else if (sql[i] === '*' && sql[i + 1] === '/') {
          depth--;
          i += 2;
        } else {
          i++;
        }
      }
    } else if (/[A-Za-z_]/.test(c)) {
      const start = i;
      while (i < n && /[A-Za-z0-9_]/.test(sql[i]!)) i++;
      if (words.length < max) words.push(sql.slice(start, i).toUpperCase());
    } else if (c === ';') {
      // Only a trailing semicolon (and comments or whitespace) may follow.
      const rest = sql.slice(i + 1).replace(/--[^\n\r]*|\/\*[\s\S]*?\*\/|\s/g, '');
      return rest === '' ? words : null;
    } else if (/\s|,/.test(c)) {
      i++;
    } else {
      // Anything else (quotes, operators): not a transaction-control statement we recognise.
      return words.length === 0 ? [] : [...words, '?'];
    }
  }
  return words;
}

/**
 * Cheap pre-check on the per-statement path: whether the first character
 * that is not whitespace could start `BEGIN`, `START` or a comment.
 */
function mayBeginTransaction(sql: string): boolean {
  for (let i = 0; i < sql.length; i++) {
    const c = sql.charCodeAt(i);
    if (c === 32 || (c >= 9 && c <= 13)) continue;
    // A comment first (- /): look properly; else the word must be BEGIN or START.
    if (c === 45 || c === 47) return true;
    const word = sql.slice(i, i + 5).toUpperCase();
    return word === 'BEGIN' || word === 'START';
  }
  return false;
}

/** `BEGIN` / `START TRANSACTION`, with whatever modes. */
export function isBegin(sql: string): boolean {
  if (!mayBeginTransaction(sql)) return false;
  const w = leadingWords(sql, 1);
  return w !== null && (w[0] === 'BEGIN' || w[0] === 'START');
}

/**
 * A single `BEGIN … READ ONLY` / `START TRANSACTION … READ ONLY` (any
 * isolation level, `[NOT] DEFERRABLE`): a transaction that cannot write.
 */
export function isReadOnlyBegin(sql: string): boolean {
  if (!mayBeginTransaction(sql)) return false;
  const w = leadingWords(sql, 16);
  if (w === null || w.length === 0) return false;
  let i = 0;
  if (w[0] === 'BEGIN') {
    i = 1;
    if (w[1] === 'WORK' || w[1] === 'TRANSACTION') i = 2;
  } else if (w[0] === 'START' && w[1] === 'TRANSACTION') {
    i = 2;
  } else {
    return false;
  }
  let readOnly = false;
  while (i < w.length) {
    const word = w[i]!;
    if (word === 'READ' && w[i + 1] === 'ONLY') {
      readOnly = true;
      i += 2;
    } else if (word === 'READ' && w[i + 1] === 'WRITE') return false;
    else if (word === 'ISOLATION' && w[i + 1] === 'LEVEL') {
      i += 2;
      if (w[i] === 'SERIALIZABLE') i += 1;
      else if (w[i] === 'REPEATABLE' && w[i + 1] === 'READ') i += 2;
      else if (w[i] === 'READ' && (w[i + 1] === 'COMMITTED' || w[i + 1] === 'UNCOMMITTED')) i += 2;
      else return false;
    } else if (word === 'DEFERRABLE') i += 1;
    else if (word === 'NOT' && w[i + 1] === 'DEFERRABLE') i += 2;
    else return false;
  }
  return readOnly;
}

/** `COMMIT` / `END` (not `AND CHAIN`): ends a transaction by committing it. */
export function isCommit(sql: string): boolean {
  const w = leadingWords(sql, 4);
  return w !== null && (w[0] === 'COMMIT' || w[0] === 'END') && !w.includes('CHAIN') && w[1] !== 'PREPARED';
}

/**
 * A statement that only steers the transaction it runs in and leaves no
 * state in the session after it: `BEGIN`, `COMMIT`, `ROLLBACK`,
 * `SAVEPOINT`, `RELEASE`, `SET TRANSACTION`, `SET LOCAL`, `SET CONSTRAINTS`.
 */
export function isTransactionControl(sql: string): boolean {
  const w = leadingWords(sql, 2);
  if (w === null || w.length === 0) return false;
  switch (w[0]) {
    case 'BEGIN':
    case 'START':
    case 'COMMIT':
    case 'END':
    case 'ROLLBACK':
    case 'ABORT':
    case 'SAVEPOINT':
    case 'RELEASE':
      return true;
    case 'SET':
      return w[1] === 'TRANSACTION' || w[1] === 'LOCAL' || w[1] === 'CONSTRAINTS';
    default:
      return false;
  }
}
