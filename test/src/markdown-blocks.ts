import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository's root. */
export const REPO = fileURLToPath(new URL('../../', import.meta.url));

/** Where the docs say pgreplica is installed (a checkout): mapped to this repository. */
export const INSTALL_DIR = '/opt/pgreplica';

/** The Markdown the tests check: README.md, docs/*.md and every package's and deploy folder's README. */
export function docFiles(): string[] {
  const files = ['README.md'];
  const md = (dir: string) => (existsSync(join(REPO, dir)) ? readdirSync(join(REPO, dir)).filter((f) => f.endsWith('.md')).map((f) => `${dir}/${f}`) : []);
  files.push(...md('docs'));
  for (const parent of ['packages', 'services', 'deploy']) {
    for (const dir of readdirSync(join(REPO, parent), { withFileTypes: true })) {
      if (dir.isDirectory() && existsSync(join(REPO, parent, dir.name, 'README.md'))) files.push(`${parent}/${dir.name}/README.md`);
    }
  }
  return files.sort();
}

/** A fenced code block of a Markdown file. */
export interface CodeBlock {
  /** Path from the repository root. */
  file: string;
  /** Line of the opening fence (1-based). */
  line: number;
  /** First word of the info string (`sh`, `ts`, `sql`…), '' for none. */
  lang: string;
  /** The rest of the info string (`sql primary` → ['primary']). */
  tags: string[];
  code: string;
}

/** Every fenced block (```), in order. */
export function codeBlocks(file: string): CodeBlock[] {
  const lines = readFileSync(join(REPO, file), 'utf8').split('\n');
  const blocks: CodeBlock[] = [];
  let open: { line: number; indent: number; info: string[]; body: string[] } | null = null;
  lines.forEach((text, i) => {
    const fence = /^( {0,3})```(.*)$/.exec(text);
    if (!open && fence) {
      open = { line: i + 1, indent: fence[1]!.length, info: fence[2]!.trim().split(/\s+/).filter(Boolean), body: [] };
    } else if (open && fence && fence[2]!.trim() === '') {
      blocks.push({ file, line: open.line, lang: open.info[0] ?? '', tags: open.info.slice(1), code: open.body.join('\n') });
      open = null;
    } else if (open) {
      open.body.push(text.slice(Math.min(open.indent, /^ */.exec(text)![0].length)));
    }
  });
  if (open) throw new Error(`${file}:${(open as { line: number }).line}: unclosed code block`);
  return blocks;
}

/** Every block of every checked file. */
export function allCodeBlocks(): CodeBlock[] {
  return docFiles().flatMap(codeBlocks);
}

/** `file:line` of a block, for messages. */
export const where = (block: CodeBlock) => `${block.file}:${block.line}`;

/** A path of the docs as it is in this repository (`/opt/pgreplica/x` → `<repo>/x`), or null for a path outside it. */
export function repoPath(path: string, cwd: string | null = null): string | null {
  if (path.startsWith(`${INSTALL_DIR}/`) || path === INSTALL_DIR) return join(REPO, relative(INSTALL_DIR, path));
  if (/^(\.\/)?(deploy|docs|packages|services|scripts|bench|test)\//.test(path)) return join(REPO, path);
  if (cwd && !path.startsWith('/') && /\.(ya?ml|sh|json|cfg|conf|service|md)$/.test(path)) return join(cwd, path);
  return null;
}

/** One simple command of a shell block: its words (quotes removed), after env assignments, sudo and env. */
export interface ShellCommand {
  words: string[];
  /** The words as written (for paths inside quoted strings). */
  raw: string;
}

/** Splits a shell block into simple commands (a small tokenizer: quotes, escapes, comments, && || ; | and continuations). */
export function shellCommands(code: string): ShellCommand[] {
  const text = code.replace(/\\\n/g, ' ');
  const commands: ShellCommand[] = [];
  let words: string[] = [];
  let word: string | null = null;
  let raw = '';
  const endWord = () => {
    if (word !== null) words.push(word);
    word = null;
  };
  const endCommand = () => {
    endWord();
    if (words.length > 0) commands.push({ words: strip(words), raw: raw.trim() });
    words = [];
    raw = '';
  };
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === "'" || c === '"') {
      const close = text.indexOf(c, i + 1);
      if (close < 0) throw new Error(`unclosed ${c} in: ${text.slice(i, i + 40)}`);
      word = (word ?? '') + text.slice(i + 1, close);
      raw += text.slice(i, close + 1);
      i = close;
      continue;
    }
    if (c === '#' && word === null) {
      const eol = text.indexOf('\n', i);
      i = eol < 0 ? text.length : eol - 1;
      continue;
    }
    if (c === '\n' || c === ';' || c === '|' || (c === '&' && text[i + 1] === '&')) {
      if (c === '&' || (c === '|' && text[i + 1] === '|')) i++;
      endCommand();
      continue;
    }
    raw += c;
    if (c === ' ' || c === '\t') endWord();
    else if (c === '>' || c === '<') {
      // A redirection: skip its target.
      endWord();
      const target = /^\s*(\S+)/.exec(text.slice(i + 1));
      i += target ? target[0].length : 0;
    } else word = (word ?? '') + c;
  }
  endCommand();
  return commands;
}

/** Drops leading VAR=value assignments, `sudo [-u user]` and `env [VAR=value…]`. */
function strip(words: string[]): string[] {
  let rest = words;
  for (;;) {
    if (rest[0] && /^[A-Za-z_][A-Za-z0-9_]*=/.test(rest[0])) rest = rest.slice(1);
    else if (rest[0] === 'sudo') rest = rest[1] === '-u' ? rest.slice(3) : rest.slice(1);
    else if (rest[0] === 'env' || rest[0] === 'exec') rest = rest.slice(1);
    else return rest;
  }
}
