import { MonitorMetrics } from '@pgreplica/monitor';
import { createRouter } from '@pgreplica/router-client';
import { createLogger, resolveConfig } from '@pgreplica/runtime';
import { RemediationWorker } from '@pgreplica/worker';
import { parser } from '@prometheus-io/lezer-promql';
import { Registry } from 'prom-client';

/** A metric a pgreplica program exports, as PromQL sees it. */
export interface ExportedMetric {
  /** Which program's registry holds it. */
  program: 'monitor' | 'worker' | 'router';
  /** The registered name (a histogram's series add _bucket, _sum, _count). */
  name: string;
  type: string;
  labelNames: readonly string[];
}

/**
 * Every series name the monitor, the worker and the router export, from
 * their real registries (process and Node.js defaults included), mapped to
 * its metric.
 */
export async function exportedSeries(): Promise<Map<string, ExportedMetric>> {
  const monitor = new MonitorMetrics().registry;
  const config = resolveConfig({ cluster: 'metrics', redis: { url: 'redis://127.0.0.1:1' }, nodes: [{ id: 'n1', host: '127.0.0.1', port: 1 }], database: { user: 'x' } }, {});
  const worker = new RemediationWorker(config, createLogger('silent')).registry;
  const router = new Registry();
  const db = createRouter({ cluster: 'metrics', connection: {}, nodes: [{ id: 'n1', host: '127.0.0.1', port: 1, role: 'primary' }], registry: router, functionCatalog: false });
  db.on('error', () => {});
  await db.close();
  const series = new Map<string, ExportedMetric>();
  for (const [program, registry] of [['monitor', monitor], ['worker', worker], ['router', router]] as const) {
    for (const metric of registry.getMetricsAsArray() as unknown as { name: string; type: string; labelNames?: string[] }[]) {
      const entry: ExportedMetric = { program, name: metric.name, type: metric.type, labelNames: metric.labelNames ?? [] };
      const names = metric.type === 'histogram' ? ['_bucket', '_sum', '_count'].map((s) => metric.name + s) : metric.type === 'summary' ? [metric.name, `${metric.name}_sum`, `${metric.name}_count`] : [metric.name];
      for (const name of names) if (!series.has(name)) series.set(name, entry);
    }
  }
  return series;
}

/** Grafana's variables, replaced by values PromQL accepts. */
function withoutGrafanaVariables(expr: string): string {
  return expr.replace(/\$__(rate_interval|interval|range)\b/g, '5m').replace(/\$\{?\w+\}?/g, 'x');
}

/** A series selector of an expression: its metric name and the label names it matches on. */
export interface Selector {
  metric: string;
  labels: string[];
}

/**
 * The selectors of a PromQL expression (Grafana variables allowed), by
 * Prometheus's own grammar (@prometheus-io/lezer-promql).
 * @throws Error when the expression does not parse
 */
export function promqlSelectors(expr: string): Selector[] {
  const text = withoutGrafanaVariables(expr);
  const tree = parser.parse(text);
  const selectors: Selector[] = [];
  let error: number | null = null;
  tree.iterate({
    enter(node) {
      if (node.type.isError && error === null) error = node.from;
      if (node.name !== 'VectorSelector') return;
      const identifier = node.node.getChild('Identifier');
      const labels: string[] = [];
      let metric = identifier ? text.slice(identifier.from, identifier.to) : '';
      const matchers = node.node.getChild('LabelMatchers');
      for (let m = matchers?.firstChild ?? null; m; m = m.nextSibling) {
        const name = m.getChild('LabelName');
        if (!name) continue;
        const label = text.slice(name.from, name.to);
        const value = m.getChild('StringLiteral');
        if (label === '__name__' && value) metric = text.slice(value.from + 1, value.to - 1);
        else labels.push(label);
      }
      selectors.push({ metric, labels });
    },
  });
  if (error !== null) throw new Error(`PromQL does not parse at ${error}: ${expr}`);
  return selectors;
}

/** Labels Prometheus adds to every scraped series. */
export const TARGET_LABELS = ['job', 'instance'];
