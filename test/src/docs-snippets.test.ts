import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, relative } from 'node:path';
import { resolveConfig } from '@pgreplica/runtime';
import { afterAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { allCodeBlocks, type CodeBlock, docFiles, INSTALL_DIR, REPO, repoPath, shellCommands, where } from './markdown-blocks.js';
import { mergeConfig } from './monitor-fixture.js';

// Static checks of every code block in README.md, docs/ and the package
// READMEs (docs-sandbox.test.ts runs the SQL and the read-only pgreplica
// commands against a local cluster).
const blocks = allCodeBlocks();
const byLang = (...langs: string[]) => blocks.filter((b) => langs.includes(b.lang));

/** Programs the docs may run: pgreplica's own (checked in depth) and system tools. */
const PROGRAMS = new Set([
  'pgreplica', 'pgreplica-monitor', 'pgreplica-worker', 'pgreplica-sandbox', 'replica-setup.sh', 'check.sh', 'npm', 'node',
  'cd', 'printf', 'echo', 'chmod', 'chown', 'install', 'ln', 'cp', 'mkdir', 'touch', 'cat', 'curl', 'socat', 'git', 'redis-cli',
  'systemctl', 'systemd-analyze', 'systemd-sysusers', 'journalctl', 'haproxy', 'promtool',
  'psql', 'pg_ctlcluster', 'pg_rewind', 'pg_basebackup', 'pg_ctl',
]);

const helpCache = new Map<string, string>();
function help(program: string, args: string[]): string {
  const key = [program, ...args].join(' ');
  if (!helpCache.has(key)) {
    const run = spawnSync(program, [...args, '--help'], { cwd: REPO, encoding: 'utf8' });
    helpCache.set(key, `${run.stdout}${run.stderr}`);
  }
  return helpCache.get(key)!;
}
const CLI = join(REPO, 'packages/cli/bin/pgreplica.mjs');
const rootScripts = (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;

/** Flags (--x, -x) among `words`. */
const flags = (words: string[]) => words.filter((w) => /^--?[a-z]/.test(w) && w !== '--').map((w) => w.split('=')[0]!);
const missingFlags = (words: string[], usage: string) => flags(words).filter((f) => !new RegExp(`(^|[\\s,\\[])${f}\\b`, 'm').test(usage));

/** What is wrong with one shell block; empty when nothing. */
function shellProblems(block: CodeBlock): string[] {
  const problems: string[] = [];
  const syntax = spawnSync('bash', ['-n'], { input: block.code, encoding: 'utf8' });
  if (syntax.status !== 0) return [`bash -n: ${syntax.stderr.trim()}`];
  // Relative paths are relative to the Markdown file's folder until a `cd`.
  let cwd: string | null = join(REPO, dirname(block.file));
  for (const { words, raw } of shellCommands(block.code)) {
    const [program = '', ...args] = words;
    const name = basename(program);
    if (!PROGRAMS.has(name)) problems.push(`unknown command "${program}" (a typo? else add it to PROGRAMS in ${basename(import.meta.url)})`);
    // Paths into this repository exist (also inside quoted strings).
    const paths = [...words, ...(raw.match(new RegExp(`${INSTALL_DIR}/[^\\s'"]+`, 'g')) ?? [])];
    for (const word of paths) {
      const path = repoPath(word, cwd);
      if (path && !existsSync(path)) problems.push(`no such file in the repository: ${word}`);
    }
    if (name === 'cd') cwd = args[0] ? repoPath(args[0]) : null;
    else if (name === 'pgreplica') {
      const rest = [...args];
      while (rest[0] === '--config' || rest[0] === '-c') rest.splice(0, 2);
      const sub = rest[0] ?? '';
      const top = help('node', [CLI]);
      if (!new RegExp(`^\\s+${sub}\\b`, 'm').test(top)) problems.push(`pgreplica has no command "${sub}"`);
      else for (const f of missingFlags(rest.slice(1), help('node', [CLI, sub]))) problems.push(`pgreplica ${sub} has no option ${f}`);
    } else if (name === 'pgreplica-monitor' || name === 'pgreplica-worker') {
      const main = join(REPO, 'services', name.replace('pgreplica-', ''), 'dist/main.js');
      for (const f of missingFlags(args, help('node', [main]))) problems.push(`${name} has no option ${f}`);
    } else if (name === 'replica-setup.sh') {
      for (const f of missingFlags(args.slice(0, args.findIndex((a) => !a.startsWith('-')) >>> 0), help('bash', [join(REPO, 'deploy/postgres/replica-setup.sh')]))) {
        problems.push(`replica-setup.sh has no option ${f}`);
      }
    } else if (name === 'npm') {
      const [verb, script, ...more] = args;
      if (verb === 'run' && (!script || !(script in rootScripts))) problems.push(`package.json has no script "${script}"`);
      if ((verb === 'start' || verb === 'test') && !(verb in rootScripts)) problems.push(`package.json has no script "${verb}"`);
      if (verb === 'start' && script === '--') {
        for (const f of missingFlags(more, help('node', [join(REPO, 'scripts/local-cluster.mjs')]))) problems.push(`npm start has no option ${f}`);
      }
    }
  }
  return problems;
}

describe('code blocks of the docs', () => {
  it('links: every relative link points at a file inside the repository (users never see anything outside it)', () => {
    const broken: string[] = [];
    for (const file of docFiles()) {
      const text = readFileSync(join(REPO, file), 'utf8').replace(/```[\s\S]*?```/g, '');
      for (const [, target] of text.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) {
        if (/^(https?:|mailto:|#)/.test(target!)) continue;
        const path = join(REPO, dirname(file), decodeURIComponent(target!.split('#')[0]!));
        if (relative(REPO, path).startsWith('..')) broken.push(`${file}: ${target} leads outside the repository`);
        else if (!existsSync(path)) broken.push(`${file}: ${target} does not exist`);
      }
    }
    expect(broken).toEqual([]);
  });

  it('are of a kind the tests check (SQL says where it runs)', () => {
    expect(blocks.length).toBeGreaterThan(20);
    for (const b of blocks) {
      expect(['', 'text', 'sh', 'bash', 'ts', 'typescript', 'sql', 'yaml'], `${where(b)}: language "${b.lang}"`).toContain(b.lang);
      if (b.lang === 'sql') expect(['primary', 'replica'], `${where(b)}: tag a sql block "primary" or "replica"`).toContain(b.tags[0]);
    }
  });

  it('shell: valid syntax, known commands, pgreplica commands and flags, npm scripts and repository paths that exist', () => {
    const shell = byLang('sh', 'bash');
    expect(shell.length).toBeGreaterThan(10);
    const problems = shell.flatMap((b) => shellProblems(b).map((p) => `${where(b)}: ${p}`));
    expect(problems).toEqual([]);
  });

  it('catches a wrong command, flag, script or path', () => {
    const fake = (code: string) => shellProblems({ file: 'docs/x.md', line: 1, lang: 'sh', tags: [], code });
    expect(fake('pgreplica --config /etc/pgreplica/monitor.yaml statuss')).toEqual(['pgreplica has no command "statuss"']);
    expect(fake('pgreplica --config /etc/pgreplica/monitor.yaml switchover --to r1 --max-pause 5')).toEqual(['pgreplica switchover has no option --max-pause']);
    expect(fake('npm run doc')).toEqual(['package.json has no script "doc"']);
    expect(fake('cat deploy/haproxy/haproxy.conf')).toEqual(['no such file in the repository: deploy/haproxy/haproxy.conf']);
    expect(fake('systemctll start x')[0]).toMatch(/unknown command "systemctll"/);
    expect(fake('echo "unclosed')[0]).toMatch(/bash -n/);
  });

  describe('TypeScript', () => {
    const dir = join(REPO, 'test/node_modules/.cache');
    mkdirSync(dir, { recursive: true });
    const scratch = mkdtempSync(join(dir, 'doc-snippets-'));
    afterAll(() => rmSync(scratch, { recursive: true, force: true }));

    it('type-checks every block against the built packages (strict)', () => {
      const ts = byLang('ts', 'typescript');
      expect(ts.length).toBeGreaterThanOrEqual(5);
      const origin = new Map<string, CodeBlock>();
      ts.forEach((b, i) => {
        const file = `snippet-${i}.mts`;
        origin.set(file, b);
        writeFileSync(join(scratch, file), `${b.code}\nexport {};\n`);
      });
      writeFileSync(
        join(scratch, 'tsconfig.json'),
        JSON.stringify({
          compilerOptions: { target: 'ES2022', lib: ['ES2022'], module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noUncheckedIndexedAccess: true, noEmit: true, skipLibCheck: true, types: ['node'] },
          include: ['*.mts'],
        }),
      );
      const run = spawnSync(join(REPO, 'node_modules/.bin/tsc'), ['-p', scratch], { cwd: scratch, encoding: 'utf8' });
      const errors = `${run.stdout}${run.stderr}`
        .split('\n')
        .filter((l) => /error TS/.test(l))
        .map((l) => {
          const m = /(snippet-\d+\.mts)\((\d+),\d+\): (.*)$/.exec(l);
          const b = m ? origin.get(m[1]!) : undefined;
          return b ? `${b.file}:${b.line + Number(m![2])}: ${m![3]}` : l;
        });
      expect(errors).toEqual([]);
      expect(run.status).toBe(0);
    });
  });

  it('YAML: every block validates against the config schema (a fragment merged into deploy/monitor/monitor.example.yaml, its redis section replacing the example\'s)', () => {
    const example = parseYaml(readFileSync(join(REPO, 'deploy/monitor/monitor.example.yaml'), 'utf8')) as Record<string, unknown>;
    const yaml = byLang('yaml');
    expect(yaml.length).toBeGreaterThan(0);
    for (const b of [{ file: 'deploy/monitor/monitor.example.yaml', line: 1, lang: 'yaml', tags: [], code: '{}' }, ...yaml]) {
      const fragment = parseYaml(b.code) as Record<string, unknown>;
      // A fragment's redis section replaces the example's: its three forms (url, sentinels, cluster) exclude each other.
      const base = 'redis' in fragment ? { ...example, redis: {} } : example;
      const config = 'cluster' in fragment ? fragment : mergeConfig(base, fragment);
      expect(() => resolveConfig(config, {}, where(b))).not.toThrow();
    }
  });
});

// The CLI's help must exist for the checks above to mean anything.
execFileSync('node', [CLI, '--help'], { stdio: 'ignore' });
