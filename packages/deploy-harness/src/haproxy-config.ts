import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The operator's HAProxy config, as shipped. */
export const DEPLOY_HAPROXY_CFG = fileURLToPath(new URL('../../../deploy/haproxy/haproxy.cfg', import.meta.url));

/** The listeners of deploy/haproxy/haproxy.cfg. */
export const READ_WRITE_LISTENER = 'postgres_rw';
/** @see READ_WRITE_LISTENER */
export const READ_ONLY_LISTENER = 'postgres_ro';

/** A PostgreSQL server HAProxy forwards to; `id` is the monitor's node id. */
export interface HaproxyNode {
  id: string;
  host: string;
  port: number;
}

/** Where a rendered config points. */
export interface HaproxyConfigOptions {
  nodes: readonly HaproxyNode[];
  /** The monitor's HTTP API (the per-node checks). */
  monitor: { host: string; port: number };
  /** Port of each listener, by name (`postgres_rw`, `postgres_ro`). */
  ports: Readonly<Record<string, number>>;
  /** Address the listeners bind. @default '127.0.0.1' */
  bindHost?: string;
  /** Path of the admin socket (`stats socket`). */
  statsSocket: string;
}

/**
 * deploy/haproxy/haproxy.cfg with only the addresses changed: each listener
 * binds its port on `bindHost`, its `server` lines become one per node (the
 * rest of the template's first server line, checks included, kept), every
 * check goes to `monitor`, and the admin socket moves to `statsSocket`. Every
 * other line is the operator's file as shipped.
 * @throws Error when the template lacks a listener, a bind, server lines or the socket (the file changed shape)
 */
export function renderHaproxyConfig(template: string, options: HaproxyConfigOptions): string {
  const bindHost = options.bindHost ?? '127.0.0.1';
  const out: string[] = [];
  const seen = new Set<string>();
  let section = '';
  let serversWritten = false;
  let socket = false;
  for (const line of template.split('\n')) {
    const head = /^(\S+)\s*(\S*)/.exec(line);
    if (head && line.trim() !== '' && !line.startsWith(' ') && !line.startsWith('\t') && !line.startsWith('#')) {
      section = head[1] === 'listen' ? (head[2] ?? '') : '';
      serversWritten = false;
    }
    const indent = /^\s*/.exec(line)![0];
    const directive = line.trim().split(/\s+/);
    if (directive[0] === 'stats' && directive[1] === 'socket') {
      out.push(`${indent}stats socket ${options.statsSocket} ${directive.slice(3).join(' ')}`.trimEnd());
      socket = true;
    } else if (section && directive[0] === 'bind') {
      const port = options.ports[section];
      if (port === undefined) throw new Error(`no port given for listener ${section}`);
      out.push(`${indent}bind ${bindHost}:${port}`);
      seen.add(section);
    } else if (section && directive[0] === 'server') {
      if (serversWritten) continue;
      serversWritten = true;
      // server <name> <addr> <options…>: keep the options, point the check at the monitor.
      const rest = directive
        .slice(3)
        .join(' ')
        .replace(/\baddr \S+/, `addr ${options.monitor.host}`)
        .replace(/\bport \d+/, `port ${options.monitor.port}`);
      if (!/\bcheck\b/.test(rest) || !/\bport \d+/.test(rest)) throw new Error(`listener ${section}: its server lines have no "check … port" to point at the monitor`);
      for (const node of options.nodes) out.push(`${indent}server ${node.id} ${node.host}:${node.port} ${rest}`);
    } else {
      out.push(line);
    }
  }
  const missing = Object.keys(options.ports).filter((name) => !seen.has(name));
  if (missing.length > 0) throw new Error(`the template has no listener (with a bind line) named ${missing.join(', ')}`);
  if (!socket) throw new Error('the template has no "stats socket" line');
  return out.join('\n');
}

/** {@link renderHaproxyConfig} of deploy/haproxy/haproxy.cfg. */
export function renderDeployHaproxyConfig(options: HaproxyConfigOptions): string {
  return renderHaproxyConfig(readFileSync(DEPLOY_HAPROXY_CFG, 'utf8'), options);
}
