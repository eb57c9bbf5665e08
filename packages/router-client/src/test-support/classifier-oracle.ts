/**
 * Test-only oracle: classifies with PostgreSQL's own parser (libpg-query,
 * WASM) by walking the parse tree. The classifier test checks the lexer
 * against it on the corpus; it is never built into `dist` (the benchmark
 * calls libpg-query itself).
 */
import { isSideEffectFunction } from '../classifier.js';

/**
 * One list of built-in functions with side effects for the lexer and the
 * oracle: the oracle checks the parse (what is a call, where), not the list;
 * the integration test classifier-functions checks the list against a server.
 */
const SIDE_EFFECT = { test: (name: string) => isSideEffectFunction(name.toLowerCase()) };

type Node = Record<string, unknown> | unknown[] | string | number | boolean | null;

function writes(node: Node): boolean {
  if (Array.isArray(node)) return node.some((n) => writes(n as Node));
  if (node === null || typeof node !== 'object') return false;
  for (const [key, value] of Object.entries(node)) {
    if (key === 'InsertStmt' || key === 'UpdateStmt' || key === 'DeleteStmt' || key === 'MergeStmt') return true;
    if ((key === 'lockingClause' && Array.isArray(value) && value.length > 0) || key === 'intoClause') return true;
    if (key === 'FuncCall') {
      const names = ((value as { funcname?: { String?: { sval?: string } }[] }).funcname ?? []).map((n) => n.String?.sval ?? '');
      if (SIDE_EFFECT.test(names.at(-1) ?? '')) return true;
    }
    if (writes(value as Node)) return true;
  }
  return false;
}

let parser: typeof import('libpg-query') | undefined;

/** The target by the parse tree, or null when PostgreSQL cannot parse the text. */
export async function oracleTarget(sql: string): Promise<'replica' | 'primary' | null> {
  parser ??= await import('libpg-query');
  await parser.loadModule();
  let tree: { stmts?: { stmt: Record<string, unknown> }[] };
  try {
    tree = parser.parseSync(sql) as typeof tree;
  } catch {
    return null;
  }
  const stmts = tree.stmts ?? [];
  if (stmts.length !== 1) return 'primary';
  const stmt = stmts[0]!.stmt;
  if (/pgreplica:primary/.test(sql)) return 'primary';
  // The lexer honours a replica hint only in a comment before the statement.
  if (/^\s*(?:\/\*[\s\S]*?pgreplica:replica[\s\S]*?\*\/|--[^\n\r]*pgreplica:replica)/.test(sql)) return 'replica';
  const [kind, body] = Object.entries(stmt)[0] as [string, Record<string, unknown>];
  if (kind === 'VariableShowStmt') return 'replica';
  if (kind === 'ExplainStmt') {
    const options = JSON.stringify(body.options ?? []);
    if (/"defname":"analy[sz]e"/.test(options)) return 'primary';
    return writes(body.query as Node) || !('SelectStmt' in (body.query as object)) ? 'primary' : 'replica';
  }
  if (kind !== 'SelectStmt') return 'primary';
  return writes(stmt as Node) ? 'primary' : 'replica';
}
