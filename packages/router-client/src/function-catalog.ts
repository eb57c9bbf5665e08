import type { NodeState } from '@pgreplica/protocol';
import type pg from 'pg';
import type { RouterLogger } from './options.js';

/**
 * Names of the `VOLATILE` functions outside `pg_catalog` and
 * `information_schema`: the ones that may write. `STABLE` and `IMMUTABLE`
 * functions cannot (PostgreSQL refuses a write in them), so their calls may
 * run on a replica. A name with a volatile overload in any schema counts.
 */
export const VOLATILE_FUNCTIONS_SQL = `SELECT DISTINCT p.proname AS name
  FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
 WHERE p.provolatile = 'v' AND n.nspname NOT IN ('pg_catalog', 'information_schema')`;

/** How often the catalog is re-read to notice new or changed functions. */
export const FUNCTION_CATALOG_REFRESH_MS = 60_000;
/** Soonest re-read after a signal (a replica refused a statement as a write) or a failed read. */
export const FUNCTION_CATALOG_RETRY_MS = 1_000;

/** What a {@link FunctionCatalog} needs: where the primary is and a pool to it. */
export interface FunctionCatalogSource {
  primary(): NodeState | null;
  pool(node: NodeState): pg.Pool;
}

/**
 * The user functions that may write, read from the primary's catalog at
 * start, every {@link FUNCTION_CATALOG_REFRESH_MS}, and soon after a replica
 * refuses a statement as a write (a function created or changed since the
 * last read). Hands each new set to `onChange` (the classifier cache).
 *
 * Until the first read succeeds the classifier knows only the built-ins and
 * `primaryFunctions`; a write it lets through then is refused by the
 * replica (25006) and re-run on the primary, and triggers a read.
 */
export class FunctionCatalog {
  readonly #source: FunctionCatalogSource;
  readonly #log: RouterLogger;
  readonly #onChange: (names: ReadonlySet<string>) => void;
  #names: ReadonlySet<string> | null = null;
  #key = '';
  #timer: NodeJS.Timeout | undefined;
  #dueAt = 0;
  #loading: Promise<boolean> | undefined;
  #closed = false;

  constructor(source: FunctionCatalogSource, log: RouterLogger, onChange: (names: ReadonlySet<string>) => void) {
    this.#source = source;
    this.#log = log;
    this.#onChange = onChange;
  }

  /** The volatile user functions last read; null before the first read. */
  get names(): ReadonlySet<string> | null {
    return this.#names;
  }

  /** Reads the catalog now (shared with a read in progress); resolves whether it was read. Never rejects. */
  load(): Promise<boolean> {
    if (this.#closed) return Promise.resolve(false);
    this.#loading ??= this.#read().finally(() => {
      this.#loading = undefined;
    });
    return this.#loading;
  }

  /** Re-reads within {@link FUNCTION_CATALOG_RETRY_MS} (unless one is due sooner). */
  refreshSoon(): void {
    this.#schedule(FUNCTION_CATALOG_RETRY_MS);
  }

  async #read(): Promise<boolean> {
    const primary = this.#source.primary();
    try {
      if (!primary) return false;
      const { rows } = await this.#source.pool(primary).query<{ name: string }>(VOLATILE_FUNCTIONS_SQL);
      const names = rows.map((r) => r.name).sort();
      const key = names.join('\0');
      if (this.#names === null || key !== this.#key) {
        this.#names = new Set(names);
        this.#key = key;
        this.#log.debug({ volatileFunctions: names.length }, 'function catalog read');
        this.#onChange(this.#names);
      }
      return true;
    } catch (err) {
      this.#log.warn({ err, nodeId: primary?.id }, 'could not read the function catalog; retrying');
      return false;
    } finally {
      this.#schedule(this.#names === null ? FUNCTION_CATALOG_RETRY_MS : FUNCTION_CATALOG_REFRESH_MS);
    }
  }

  #schedule(ms: number): void {
    if (this.#closed) return;
    const due = Date.now() + ms;
    if (this.#timer && this.#dueAt <= due) return;
    clearTimeout(this.#timer);
    this.#dueAt = due;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.load();
    }, ms);
    this.#timer.unref();
  }

  /** Stops re-reading. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
  }
}
