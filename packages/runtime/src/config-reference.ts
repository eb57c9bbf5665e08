/**
 * The configuration reference (docs/configuration.md), generated from the
 * zod schema (`z.toJSONSchema`: types, limits, defaults and each field's
 * `.describe()` text), the environment overrides and the secret fields, so
 * the document cannot drift from the code. `npm run docs` writes it; a unit
 * test fails when the committed file differs.
 */
import { z } from 'zod';
import { ENV_OVERRIDES } from './config.js';
import { configFileSchema } from './config-schema.js';

/** The part of a JSON Schema the reference reads. */
interface JsonSchema {
  type?: string;
  description?: string;
  default?: unknown;
  enum?: unknown[];
  pattern?: string;
  minimum?: number;
  exclusiveMinimum?: number;
  maximum?: number;
  minLength?: number;
  minItems?: number;
  items?: JsonSchema;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  anyOf?: JsonSchema[];
}

interface Row {
  path: string;
  type: string;
  fallback: string;
  description: string;
}

const MAX_SAFE = Number.MAX_SAFE_INTEGER;
const cell = (text: string) => text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
const code = (value: unknown) => `\`${typeof value === 'string' ? value : JSON.stringify(value)}\``;

function typeOf(schema: JsonSchema, path: string): string {
  if (schema.enum) return schema.enum.map(code).join(' | ');
  if (schema.type === 'array') {
    const items = schema.items ?? {};
    const of = items.type === 'object' ? 'of objects (below)' : items.enum ? `of ${items.enum.map(code).join(', ')}` : `of ${typeOf(items, path)}`;
    return `list ${of}${schema.minItems ? `, at least ${schema.minItems}` : ''}`;
  }
  if (schema.type === 'integer' || schema.type === 'number') {
    const unit = /Ms$/.test(path) ? ' (ms)' : /Bytes$/.test(path) ? ' (bytes)' : '';
    const limits: string[] = [];
    if (schema.exclusiveMinimum !== undefined) limits.push(`> ${schema.exclusiveMinimum}`);
    if (schema.minimum !== undefined && schema.minimum > -MAX_SAFE) limits.push(`≥ ${schema.minimum}`);
    if (schema.maximum !== undefined && schema.maximum < MAX_SAFE) limits.push(`≤ ${schema.maximum}`);
    return `${schema.type}${unit}${limits.length > 0 ? ` ${limits.join(', ')}` : ''}`;
  }
  if (schema.type === 'string') return schema.pattern ? `string matching ${code(schema.pattern)}` : 'string';
  return schema.type ?? 'any';
}

/** One row per field below `schema` (depth first), sections included. */
function rows(schema: JsonSchema, prefix: string, required: boolean): Row[] {
  const out: Row[] = [];
  if (prefix) {
    const fallback = required ? 'required' : schema.default !== undefined && !(typeof schema.default === 'object' && schema.default !== null && !Array.isArray(schema.default)) ? code(schema.default) : '';
    out.push({ path: prefix, type: schema.type === 'object' ? 'section' : typeOf(schema, prefix), fallback, description: schema.description ?? '' });
  }
  const children = schema.type === 'array' && schema.items?.type === 'object' ? schema.items : schema.type === 'object' ? schema : null;
  if (children?.properties) {
    const base = schema.type === 'array' ? `${prefix}[]` : prefix;
    for (const [name, child] of Object.entries(children.properties)) {
      out.push(...rows(child, base ? `${base}.${name}` : name, children.required?.includes(name) ?? false));
    }
  }
  return out;
}

function table(list: readonly Row[]): string {
  const lines = ['| field | type | default | what |', '| --- | --- | --- | --- |'];
  for (const r of list) lines.push(`| \`${r.path}\` | ${cell(r.type)} | ${cell(r.fallback)} | ${cell(r.description)} |`);
  return lines.join('\n');
}

const INTRO = `# Configuration reference

<!-- Generated from packages/runtime/src/config-schema.ts and config.ts by \`npm run docs\`: do not edit by hand. A unit test fails when this file is out of date. -->

One file, YAML or JSON, read by \`pgreplica-monitor\`, \`pgreplica-worker\` and
the \`pgreplica\` CLI (\`--config <file>\`): what they share at the top level,
then a section per program (\`monitor\`, \`worker\`). An annotated example is
[\`deploy/monitor/monitor.example.yaml\`](../deploy/monitor/monitor.example.yaml).

The file is validated before any connection opens, and every problem is
reported at once with the field and the fix (the programs exit with code 2):
unknown fields and wrong types, values out of range, and these rules across
fields — node ids and slot names are unique; \`monitor.thresholds.degradedLag*\`
do not exceed \`unhealthyLag*\`; \`monitor.heartbeatMs\` is at least
\`monitor.probeIntervalMs\`; \`monitor.leader.leaseTtlMs\` is at least twice
\`monitor.probeIntervalMs\`; the bus key has at least 16 characters; a
\`…File\` secret exists and is not empty.

Secrets never go in the file: each comes from an environment variable or a
file the config names (see [Secrets](#secrets)).`;

/** docs/configuration.md, from the schema. */
export function renderConfigReference(): string {
  const schema = z.toJSONSchema(configFileSchema, { io: 'input', unrepresentable: 'any' }) as JsonSchema;
  const properties = schema.properties ?? {};
  const sections: string[] = [INTRO, '## Fields'];

  const topLevel = Object.entries(properties).filter(([, s]) => s.type !== 'object' && !s.anyOf && s.type !== 'array');
  sections.push('### Top level', table(topLevel.flatMap(([name, s]) => rows(s, name, schema.required?.includes(name) ?? false))));

  for (const [name, s] of Object.entries(properties)) {
    if (s.anyOf) {
      const forms = s.anyOf.map((form, i) => `${i + 1}. ${Object.keys(form.properties ?? {}).map((k) => `\`${k}\``).join(', ')}\n\n${table(rows(form, name, false).slice(1))}`);
      sections.push(`### \`${name}\``, `${s.description ?? ''} Required. One of:`, forms.join('\n\n'));
    } else if (s.type === 'object' || s.type === 'array') {
      const all = rows(s, name, schema.required?.includes(name) ?? false);
      sections.push(`### \`${s.type === 'array' ? `${name}[]` : name}\``, `${all[0]!.description}${all[0]!.fallback === 'required' ? ' Required.' : ''}`, table(all.slice(1)));
    }
  }

  sections.push(
    '## Environment variables',
    'Each overrides one field of the file (an empty value counts as unset); numbers must be whole numbers.',
    ['| variable | overrides |', '| --- | --- |', ...Object.entries(ENV_OVERRIDES).map(([variable, path]) => `| \`${variable}\` | \`${path}\`${path === 'redis.url' ? ' (replaces the whole `redis` section)' : ''} |`)].join('\n'),
    'Also: `LOG_LEVEL` sets the pino log level of the monitor and the worker (default `info`); `PGREPLICA_CONFIG` is the CLI\'s `--config` when the option is not given.',
  );

  // Secrets: every `…Env` field, with its `…File` sibling where there is one.
  const secrets: string[] = ['| secret | environment variable (field: default) | or a file |', '| --- | --- | --- |'];
  const walk = (s: JsonSchema, path: string) => {
    for (const [key, child] of Object.entries(s.properties ?? {})) {
      const here = path ? `${path}.${key}` : key;
      if (key.endsWith('Env') && child.type === 'string') {
        const file = `${key.slice(0, -3)}File`;
        const what = here.startsWith('database') ? 'database password' : here.startsWith('bus') ? 'bus HMAC key' : here.includes('replication') ? 'replication password' : `${here.split('.')[0]} HTTP bearer token`;
        secrets.push(`| ${what} | \`${here}\`: \`${String(child.default)}\` | ${s.properties?.[file] ? `\`${path}.${file}\`` : '—'} |`);
      }
      walk(child.type === 'array' ? (child.items ?? {}) : child, here);
    }
  };
  walk(schema, '');
  sections.push(
    '## Secrets',
    'The file names where each secret is, never the secret. A file (first line) wins over the variable. Passwords, keys and tokens are redacted from every log line.',
    secrets.join('\n'),
    "Redis credentials are part of `redis` (a `redis://:password@host` URL, or `redis.password` with Sentinel): to keep them out of the file, give the URL in `PGREPLICA_REDIS_URL`.",
  );
  return `${sections.join('\n\n')}\n`;
}
