import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { DEPLOY_HAPROXY_CFG, renderDeployHaproxyConfig, renderHaproxyConfig } from './haproxy-config.js';
import { requireTool, ToolMissingError } from './tools.js';

const options = {
  nodes: [
    { id: 'p1', host: '127.0.0.1', port: 15432 },
    { id: 'r1', host: '127.0.0.1', port: 15433 },
  ],
  monitor: { host: '127.0.0.1', port: 19187 },
  ports: { postgres_rw: 15000, postgres_ro: 15001 },
  statsSocket: '/tmp/x/admin.sock',
};

describe('renderHaproxyConfig', () => {
  it('changes only addresses: binds, one server per node with the checks kept, the monitor, the socket', () => {
    const rendered = renderDeployHaproxyConfig(options);
    expect(rendered).toContain('bind 127.0.0.1:15000');
    expect(rendered).toContain('bind 127.0.0.1:15001');
    expect(rendered).toContain('stats socket /tmp/x/admin.sock mode 600 level admin');
    expect(rendered).toContain('server p1 127.0.0.1:15432 check addr 127.0.0.1 port 19187');
    expect(rendered.match(/^\s+server /gm)).toHaveLength(4);
    expect(rendered).not.toContain('10.0.1.');
    // Everything else is the shipped file.
    const kept = (text: string) => text.split('\n').filter((l) => !/^\s*(bind|server|stats socket) /.test(l));
    expect(kept(rendered)).toEqual(kept(readFileSync(DEPLOY_HAPROXY_CFG, 'utf8')));
  });

  it('fails loudly when the file changes shape', () => {
    expect(() => renderHaproxyConfig('global\n    maxconn 1\n', options)).toThrow(/no listener .* named postgres_rw, postgres_ro/);
    expect(() => renderHaproxyConfig('global\n    stats socket /s\nlisten postgres_rw\n    bind *:1\n    server a 1.1.1.1:1\n', { ...options, ports: { postgres_rw: 1 } })).toThrow(/no "check … port"/);
  });
});

describe('requireTool', () => {
  it('names the Debian package of a missing program', () => {
    expect(() => requireTool('pgreplica-no-such-tool', 'some-package')).toThrow(ToolMissingError);
    expect(() => requireTool('pgreplica-no-such-tool', 'some-package')).toThrow(/apt-get install some-package/);
  });
});
