/**
 * Conservative SQL classifier for `query()`: decides whether a statement may
 * run on a replica. A hand-written lexer, not a parser: it skips strings,
 * quoted identifiers, dollar quoting and comments, then looks at keywords and
 * function calls. Anything it is unsure of goes to the primary. (Why not
 * PostgreSQL's own parser through `libpg-query`: see the package README —
 * same verdicts on the corpus, ~10× the cost of an uncached call.) Over 300
 * lines because the lexer and the rules walk the same token stream.
 */

/** Why a statement was classified the way it was; a metric label. */
export type ClassifierReason =
  | 'read'
  | 'hint-primary'
  | 'hint-replica'
  | 'write-statement'
  | 'locking-clause'
  | 'select-into'
  | 'data-modifying-cte'
  | 'side-effect-function'
  | 'multiple-statements'
  | 'explain-analyze'
  | 'unterminated'
  | 'unicode-identifier'
  | 'empty';

/** Where a statement may run. */
export interface Classification {
  target: 'replica' | 'primary';
  reason: ClassifierReason;
  /** The offending keyword or function, when there is one. */
  detail?: string;
}

type Token = { kind: 'word'; value: string } | { kind: 'quoted' } | { kind: 'punct'; value: string } | { kind: 'other' };

interface Lexed {
  tokens: Token[];
  /** Routing hints: `primary` from any comment, `replica` only from a comment before the statement's first token. */
  hints: string[];
  unterminated: boolean;
  /** A `U&"…"` identifier: its escapes can spell any name (`U&"pg_advisory\006Cock"`), so the lexer cannot know what it calls. */
  unicodeIdentifier: boolean;
}

const HINT = /pgreplica:(primary|replica)\b/;
const DOLLAR_TAG = /\$([A-Za-z_][A-Za-z0-9_]*)?\$/y;
const WORD_START = /[A-Za-z_\u0080-\uffff]/;
const WORD_PART = /[A-Za-z0-9_$\u0080-\uffff]/;

/**
 * Index just past the quote closing a literal or quoted identifier that
 * starts at `from` (after its opening quote): a doubled quote is part of the
 * text, and with `escapes` (E'…') so is a backslash-escaped character.
 * -1 when it is not closed.
 */
function closingQuote(sql: string, from: number, quote: "'" | '"', escapes: boolean): number {
  let j = from;
  while (j < sql.length) {
    const d = sql[j]!;
    if (escapes && d === '\\') j += 2;
    else if (d === quote) {
      if (sql[j + 1] !== quote) return j + 1;
      j += 2;
    } else j++;
  }
  return -1;
}

/**
 * The hint a comment carries, if any: `primary` wherever it is (the primary
 * is always safe), `replica` only before the statement's first token (a hint
 * at the end could be part of text the app pasted in: `DELETE FROM t /*
 * pgreplica:replica *\/` must not reach a replica).
 */
function noteHint(comment: string, leading: boolean, hints: string[]): void {
  const hint = HINT.exec(comment);
  if (hint && (hint[1] === 'primary' || leading)) hints.push(hint[1]!);
}

/** End of a `--` comment starting at `from`: PostgreSQL ends it at a newline or a carriage return. */
function lineCommentEnd(sql: string, from: number): number {
  for (let j = from; j < sql.length; j++) {
    const d = sql[j];
    if (d === '\n' || d === '\r') return j;
  }
  return sql.length;
}

/** Splits SQL into tokens, dropping what cannot carry a keyword (literals, comments). */
export function lex(sql: string): Lexed {
  const tokens: Token[] = [];
  const hints: string[] = [];
  let unicodeIdentifier = false;
  let i = 0;
  const n = sql.length;
  while (i < n) {
    const c = sql[i]!;
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r' || c === '\f') {
      i++;
    } else if (c === '-' && sql[i + 1] === '-') {
      const end = lineCommentEnd(sql, i + 2);
      noteHint(sql.slice(i, end), tokens.length === 0, hints);
      i = end;
    } else if (c === '/' && sql[i + 1] === '*') {
      // Block comments nest in PostgreSQL.
      let depth = 1;
      let j = i + 2;
      while (j < n && depth > 0) {
        if (sql[j] === '/' && sql[j + 1] === '*') {
          depth++;
          j += 2;
        } else if (sql[j] === '*' && sql[j + 1] === '/') {
          depth--;
          j += 2;
        } else j++;
      }
      if (depth > 0) return { tokens, hints, unterminated: true, unicodeIdentifier };
      noteHint(sql.slice(i, j), tokens.length === 0, hints);
      i = j;
    } else if (c === "'" || ((c === 'E' || c === 'e') && sql[i + 1] === "'")) {
      const escapes = c !== "'";
      const end = closingQuote(sql, escapes ? i + 2 : i + 1, "'", escapes);
      if (end === -1) return { tokens, hints, unterminated: true, unicodeIdentifier };
      tokens.push({ kind: 'quoted' });
      i = end;
    } else if (c === '"') {
      const end = closingQuote(sql, i + 1, '"', false);
      if (end === -1) return { tokens, hints, unterminated: true, unicodeIdentifier };
      // A quoted identifier is a name, never a keyword; as a function name it still matters.
      tokens.push({ kind: 'word', value: `"${sql.slice(i + 1, end - 1).replaceAll('""', '"')}` });
      i = end;
    } else if (c === '$') {
      DOLLAR_TAG.lastIndex = i;
      const tag = DOLLAR_TAG.exec(sql);
      if (tag) {
        const end = sql.indexOf(tag[0], i + tag[0].length);
        if (end === -1) return { tokens, hints, unterminated: true, unicodeIdentifier };
        tokens.push({ kind: 'quoted' });
        i = end + tag[0].length;
      } else {
        // $1 parameter.
        let j = i + 1;
        while (j < n && sql[j]! >= '0' && sql[j]! <= '9') j++;
        tokens.push({ kind: 'other' });
        i = j === i + 1 ? i + 1 : j;
      }
    } else if (WORD_START.test(c)) {
      let j = i + 1;
      while (j < n && WORD_PART.test(sql[j]!)) j++;
      // U&"…": a quoted identifier whose escapes can spell any name.
      if (j === i + 1 && (c === 'U' || c === 'u') && sql[j] === '&' && sql[j + 1] === '"') {
        unicodeIdentifier = true;
        i = j + 1;
        continue;
      }
      // U&'…' and B'…'/X'…' literals: the prefix is not a word.
      if (sql[j] === "'" || (sql[j] === '&' && sql[j + 1] === "'")) {
        i = sql[j] === '&' ? j + 1 : j;
        continue;
      }
      tokens.push({ kind: 'word', value: sql.slice(i, j).toLowerCase() });
      i = j;
    } else if (c >= '0' && c <= '9') {
      let j = i + 1;
      while (j < n && /[0-9.eE_xXoObBa-fA-F]/.test(sql[j]!)) j++;
      tokens.push({ kind: 'other' });
      i = j;
    } else if (c === '(' || c === ')' || c === ';' || c === ',' || c === '.' || c === '[' || c === ']') {
      tokens.push({ kind: 'punct', value: c });
      i++;
    } else {
      tokens.push({ kind: 'punct', value: c });
      i++;
    }
  }
  return { tokens, hints, unterminated: false, unicodeIdentifier };
}

/** Statements that may run on a replica when nothing else in them says otherwise. */
const READ_STARTS = new Set(['select', 'with', 'values', 'table', 'show', 'explain', '(']);

/** Keywords that make any statement containing them a write (CTEs included). */
const WRITE_KEYWORDS = new Set(['insert', 'update', 'delete', 'merge', 'truncate', 'copy', 'call', 'lock']);

/**
 * Built-in functions (pg_catalog, PostgreSQL 15–18) that write, take locks,
 * change the session or fail on a standby: calls go to the primary. Schema
 * prefixes are ignored. Every name exists on a real server (an integration
 * test checks it). Deliberately absent: `pg_sleep*` (waiting is not a write),
 * `query_to_xml*` (their SPI is read-only: "INSERT is not allowed in a
 * non-volatile function"), `pg_read_binary_file` and `pg_xact_commit_timestamp*`
 * (reads). Your own functions that write are found in the catalog (see
 * `FunctionCatalog`) or named in `primaryFunctions`.
 */
export const SIDE_EFFECT_FUNCTIONS: ReadonlySet<string> = new Set([
  'nextval',
  'setval',
  'currval',
  'lastval',
  'pg_notify',
  'set_config',
  'txid_current',
  'txid_current_if_assigned',
  'pg_current_xact_id',
  'pg_current_xact_id_if_assigned',
  'pg_current_wal_lsn',
  'pg_current_wal_insert_lsn',
  'pg_current_wal_flush_lsn',
  'pg_switch_wal',
  'pg_create_restore_point',
  'pg_reload_conf',
  'pg_rotate_logfile',
  'pg_terminate_backend',
  'pg_cancel_backend',
  'pg_promote',
  'pg_backup_start',
  'pg_backup_stop',
  'pg_import_system_collations',
]);

/** Name prefixes of built-in function families with side effects (each matches functions of pg_catalog). */
export const SIDE_EFFECT_PREFIXES: readonly string[] = [
  'pg_advisory_',
  'pg_try_advisory_',
  'lo_',
  'pg_create_',
  'pg_drop_',
  'pg_replication_',
  'pg_stat_reset',
  'pg_log_',
  'pg_logical_emit',
  'pg_copy_',
  'pg_wal_replay_',
];

/** Prefixes of extension functions that write and may sit in pg_catalog (dblink, adminpack), out of the catalog's reach. */
export const EXTENSION_SIDE_EFFECT_PREFIXES: readonly string[] = ['dblink', 'pg_file_'];

/** Whether a called function (lower case, no schema) is a built-in with side effects. */
export function isSideEffectFunction(name: string): boolean {
  return SIDE_EFFECT_FUNCTIONS.has(name) || SIDE_EFFECT_PREFIXES.some((p) => name.startsWith(p)) || EXTENSION_SIDE_EFFECT_PREFIXES.some((p) => name.startsWith(p));
}

/** Options of {@link classify}. */
export interface ClassifyOptions {
  /**
   * More function names (no schema) that must run on the primary, e.g. your
   * own that write: lower case for unquoted calls, as spelled for quoted
   * ones (`"MyFunc"`). The router adds the `VOLATILE` functions of its
   * function catalog here.
   */
  primaryFunctions?: ReadonlySet<string>;
}

/** Classifies one SQL text. Pure; see {@link ClassifierCache} for the cached version. */
export function classify(sql: string, options: ClassifyOptions = {}): Classification {
  const { tokens, hints, unterminated, unicodeIdentifier } = lex(sql);
  if (hints.includes('primary')) return { target: 'primary', reason: 'hint-primary' };
  if (hints.includes('replica')) return { target: 'replica', reason: 'hint-replica' };
  if (unterminated) return { target: 'primary', reason: 'unterminated' };
  if (unicodeIdentifier) return { target: 'primary', reason: 'unicode-identifier' };

  // Trailing semicolons are fine; anything after one is a second statement.
  let end = tokens.length;
  while (end > 0 && tokens[end - 1]!.kind === 'punct' && (tokens[end - 1] as { value: string }).value === ';') end--;
  const body = tokens.slice(0, end);
  if (body.length === 0) return { target: 'primary', reason: 'empty' };
  if (body.some((t) => t.kind === 'punct' && t.value === ';')) return { target: 'primary', reason: 'multiple-statements' };

  const first = body[0]!;
  const start = first.kind === 'word' ? first.value : first.kind === 'punct' ? first.value : '';
  if (!READ_STARTS.has(start)) return { target: 'primary', reason: 'write-statement', detail: start };

  let words = body;
  if (start === 'explain') {
    // EXPLAIN ANALYZE executes the statement.
    const rest = body.slice(1);
    if (rest.some((t) => t.kind === 'word' && (t.value === 'analyze' || t.value === 'analyse'))) {
      return { target: 'primary', reason: 'explain-analyze' };
    }
    words = rest;
  }

  for (let i = 0; i < words.length; i++) {
    const t = words[i]!;
    if (t.kind !== 'word') continue;
    const v = t.value;
    const next = words[i + 1];
    const nextWord = next?.kind === 'word' ? next.value : undefined;
    if (v === 'for' && (nextWord === 'update' || nextWord === 'share' || nextWord === 'no' || nextWord === 'key')) {
      return { target: 'primary', reason: 'locking-clause', detail: `for ${nextWord}` };
    }
    if (v === 'into') return { target: 'primary', reason: 'select-into' };
    if (WRITE_KEYWORDS.has(v) && !(next?.kind === 'punct' && next.value === '(')) {
      return { target: 'primary', reason: start === 'with' ? 'data-modifying-cte' : 'write-statement', detail: v };
    }
    if (next?.kind === 'punct' && next.value === '(') {
      const name = v.startsWith('"') ? v.slice(1) : v;
      if (isSideEffectFunction(name) || options.primaryFunctions?.has(name)) {
        return { target: 'primary', reason: 'side-effect-function', detail: name };
      }
    }
  }
  return { target: 'replica', reason: 'read' };
}

/** Default bound of the classification cache, in statements. */
export const DEFAULT_CLASSIFIER_CACHE_SIZE = 10_000;
/** Default bound of the classification cache, in bytes of statement text (UTF-16) plus a per-entry overhead. */
export const DEFAULT_CLASSIFIER_CACHE_BYTES = 4 * 1024 * 1024;
/** What one cached entry costs besides its text: the map slot and the verdict. */
const ENTRY_OVERHEAD_BYTES = 64;

/** Options of {@link ClassifierCache}. */
export interface ClassifierCacheOptions extends ClassifyOptions {
  /** Bound on the cached statements' text (2 bytes a character) plus a small overhead per entry. @default 4 MiB */
  maxBytes?: number;
}

/**
 * {@link classify} with a cache keyed by statement text (parameterized
 * statements repeat; literals in the text defeat the cache, which is why an
 * uncached call must stay cheap). Bounded by entries and by bytes.
 *
 * Two generations instead of an LRU list: new verdicts go into the young map;
 * when it holds half the bound, the old map is dropped whole and the young
 * one becomes old (a hit there moves the entry back to young). Eviction is
 * O(1) and a miss is two lookups plus an insert — never the O(n) walk over
 * deleted slots that `map.keys().next()` costs on a churning Map.
 */
export class ClassifierCache {
  #young = new Map<string, Classification>();
  #old = new Map<string, Classification>();
  #youngBytes = 0;
  readonly #maxEntries: number;
  readonly #maxBytes: number;
  #options: ClassifyOptions;

  constructor(maxEntries = DEFAULT_CLASSIFIER_CACHE_SIZE, options: ClassifierCacheOptions = {}) {
    this.#maxEntries = maxEntries;
    this.#maxBytes = options.maxBytes ?? DEFAULT_CLASSIFIER_CACHE_BYTES;
    this.#options = options;
  }

  /** Entries cached now (both generations). */
  get size(): number {
    return this.#young.size + this.#old.size;
  }

  /** Classifies with new options from now on (e.g. the router's function catalog changed); drops every cached verdict. */
  setOptions(options: ClassifyOptions): void {
    this.#options = options;
    this.#young = new Map();
    this.#old = new Map();
    this.#youngBytes = 0;
  }

  classify(sql: string): Classification {
    const young = this.#young.get(sql);
    if (young) return young;
    const old = this.#old.get(sql);
    const result = old ?? classify(sql, this.#options);
    const bytes = sql.length * 2 + ENTRY_OVERHEAD_BYTES;
    // A statement over a quarter of the bound would flush half the cache by itself: classify it, keep nothing.
    if (bytes > this.#maxBytes / 4) return result;
    if (this.#young.size >= this.#maxEntries / 2 || this.#youngBytes + bytes > this.#maxBytes / 2) {
      this.#old = this.#young;
      this.#young = new Map();
      this.#youngBytes = 0;
    }
    this.#young.set(sql, result);
    this.#youngBytes += bytes;
    return result;
  }
}
