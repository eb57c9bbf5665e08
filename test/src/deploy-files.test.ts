import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { type ExportedMetric, exportedSeries, promqlSelectors, TARGET_LABELS } from './exported-metrics.js';

/** Grafana's reference to the dashboard's data source variable. */
const DATASOURCE_UID = ['$', '{datasource}'].join('');
const DEPLOY = fileURLToPath(new URL('../../deploy/', import.meta.url));
const read = (path: string) => readFileSync(`${DEPLOY}${path}`, 'utf8');

let series: Map<string, ExportedMetric>;
beforeAll(async () => {
  series = await exportedSeries();
});

/** Problems with `expr`: metrics no program exports, labels its metric does not have. */
function unknownNames(expr: string): string[] {
  return promqlSelectors(expr).flatMap(({ metric, labels }) => {
    const exported = series.get(metric);
    if (!exported) return [`metric ${metric}`];
    return labels.filter((l) => !exported.labelNames.includes(l) && !TARGET_LABELS.includes(l)).map((l) => `label ${l} of ${metric}`);
  });
}

describe('deploy/ with the real tools', () => {
  it('passes deploy/check.sh: haproxy -c, promtool check and test rules, systemd-analyze verify and security, systemd-sysusers', () => {
    const run = spawnSync('bash', [`${DEPLOY}check.sh`], { encoding: 'utf8', timeout: 60_000 });
    // Exit 3: a tool is missing; the output names its Debian package.
    expect(run.status, `${run.stdout}\n${run.stderr}`).toBe(0);
  });
});

describe('deploy/prometheus', () => {
  const rules = parseYaml(read('prometheus/pgreplica.rules.yml')) as { groups: { rules: { alert: string; expr: string }[] }[] };
  const all = rules.groups.flatMap((g) => g.rules);

  it('names only metrics and labels the monitor, the worker or the router exports', () => {
    expect(all.length).toBeGreaterThanOrEqual(12);
    for (const rule of all) expect(unknownNames(rule.expr), rule.alert).toEqual([]);
  });

  it('tests every alert, on series shaped like the exported ones', () => {
    const tests = parseYaml(read('prometheus/pgreplica.rules.test.yml')) as {
      tests: { input_series: { series: string }[]; alert_rule_test: { alertname: string; exp_alerts: unknown[] }[] }[];
    };
    const firing = new Set(tests.tests.flatMap((t) => t.alert_rule_test.filter((a) => a.exp_alerts.length > 0).map((a) => a.alertname)));
    expect([...firing].sort()).toEqual(all.map((r) => r.alert).sort());
    for (const input of tests.tests.flatMap((t) => t.input_series)) expect(unknownNames(input.series), input.series).toEqual([]);
  });
});

describe('deploy/grafana/pgreplica.json', () => {
  interface Target {
    refId: string;
    expr: string;
    datasource?: { uid: string };
  }
  interface Panel {
    id: number;
    type: string;
    title: string;
    gridPos: { h: number; w: number; x: number; y: number };
    datasource?: { type: string; uid: string };
    targets?: Target[];
  }
  const dashboard = JSON.parse(read('grafana/pgreplica.json')) as {
    uid: string;
    title: string;
    schemaVersion: number;
    panels: Panel[];
    templating: { list: { name: string; type: string; query: unknown; definition?: string }[] };
    annotations: { list: { name: string; expr: string }[] };
  };
  const panels = dashboard.panels.filter((p) => p.type !== 'row');
  const exprs = [
    ...panels.flatMap((p) => (p.targets ?? []).map((t) => ({ where: `panel "${p.title}" ${t.refId}`, expr: t.expr }))),
    ...dashboard.annotations.list.map((a) => ({ where: `annotation "${a.name}"`, expr: a.expr })),
    ...dashboard.templating.list.flatMap((v) => (v.definition ? [{ where: `variable ${v.name}`, expr: v.definition.replace(/^label_values\(([^,]+),.*$/, '$1') }] : [])),
  ];

  it('is a dashboard Grafana imports: uid, title, schema, a Prometheus data source variable', () => {
    expect(dashboard.uid).toBe('pgreplica');
    expect(dashboard.title).toBeTruthy();
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(36);
    expect(dashboard.templating.list).toContainEqual(expect.objectContaining({ name: 'datasource', type: 'datasource', query: 'prometheus' }));
  });

  it('has panels with unique ids, inside the 24-column grid, not overlapping, each querying the data source variable', () => {
    const ids = dashboard.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    const cells = new Set<string>();
    for (const p of dashboard.panels) {
      const { x, y, w, h } = p.gridPos;
      expect(x >= 0 && w > 0 && x + w <= 24 && h > 0 && y >= 0, `${p.title} gridPos`).toBe(true);
      for (let i = x; i < x + w; i++) {
        for (let j = y; j < y + h; j++) {
          expect(cells.has(`${i},${j}`), `${p.title} overlaps another panel`).toBe(false);
          cells.add(`${i},${j}`);
        }
      }
    }
    for (const p of panels) {
      expect(p.title, `panel ${p.id}`).toBeTruthy();
      expect(p.datasource, p.title).toEqual({ type: 'prometheus', uid: DATASOURCE_UID });
      expect(p.targets?.length, p.title).toBeGreaterThan(0);
      const refIds = p.targets!.map((t) => t.refId);
      expect(new Set(refIds).size, p.title).toBe(refIds.length);
    }
  });

  it('queries only metrics and labels the code exports (every expression parses)', () => {
    for (const { where, expr } of exprs) expect(unknownNames(expr), where).toEqual([]);
  });

  it('shows every pgreplica metric the monitor, the worker and the router export', () => {
    const shown = new Set(exprs.flatMap(({ expr }) => promqlSelectors(expr).map((s) => series.get(s.metric)?.name)));
    const missing = [...new Set([...series.values()].map((m) => m.name))].filter((name) => name.startsWith('pgreplica_') && !shown.has(name));
    expect(missing, 'add a panel for these').toEqual([]);
  });
});
