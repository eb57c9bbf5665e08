import { describe, expect, it } from 'vitest';
import { applyVerdict, initialHealth, lagVerdict, type TrackedHealth, type Verdict, DEFAULT_HEALTH_THRESHOLDS as T } from './health.js';

const healthy: Verdict = { status: 'healthy', reason: 'ok', immediate: false };
const down: Verdict = { status: 'unhealthy', reason: 'unreachable', immediate: false };
const slow: Verdict = { status: 'degraded', reason: 'lagging', immediate: false };
const t0 = new Date('2026-01-01T00:00:00Z');
const at = (s: number) => new Date(t0.getTime() + s * 1000);

function run(start: TrackedHealth, verdicts: Verdict[]): TrackedHealth[] {
  const out: TrackedHealth[] = [];
  let h = start;
  verdicts.forEach((v, i) => {
    h = applyVerdict(h, v, { rise: 2, fall: 3 }, at(i + 1));
    out.push(h);
  });
  return out;
}

describe('applyVerdict', () => {
  it('adopts the first verdict at once', () => {
    const [h] = run(initialHealth(t0), [slow]);
    expect(h).toMatchObject({ status: 'degraded', reason: 'lagging' });
  });

  it('needs fall worse verdicts in a row to worsen, and one good one resets the count', () => {
    const start = run(initialHealth(t0), [healthy]).at(-1)!;
    const statuses = run(start, [down, down, healthy, down, down, down]).map((h) => h.status);
    expect(statuses).toEqual(['healthy', 'healthy', 'healthy', 'healthy', 'healthy', 'unhealthy']);
  });

  it('lands on the mildest verdict of a mixed worse streak', () => {
    const start = run(initialHealth(t0), [healthy]).at(-1)!;
    expect(run(start, [down, slow, down]).at(-1)).toMatchObject({ status: 'degraded', reason: 'lagging' });
  });

  it('needs rise better verdicts to improve', () => {
    const start = run(initialHealth(t0), [down]).at(-1)!;
    expect(run(start, [healthy, healthy]).map((h) => h.status)).toEqual(['unhealthy', 'healthy']);
  });

  it('applies an immediate verdict at once and records when the status changed', () => {
    const start = run(initialHealth(t0), [healthy]).at(-1)!;
    const [h] = run(start, [{ status: 'unhealthy', reason: 'second-primary', immediate: true }]);
    expect(h).toMatchObject({ status: 'unhealthy', reason: 'second-primary', since: at(1) });
  });

  it('keeps since when only the reason changes', () => {
    const start = run(initialHealth(t0), [down]).at(-1)!;
    const [h] = run(start, [{ status: 'unhealthy', reason: 'timeout', immediate: false }]);
    expect(h).toMatchObject({ reason: 'timeout', since: start.since });
  });
});

describe('lagVerdict', () => {
  it('grades lag in time and bytes against the limits', () => {
    expect(lagVerdict(0, 0, T).status).toBe('healthy');
    expect(lagVerdict(null, null, T).status).toBe('healthy');
    expect(lagVerdict(T.degradedLagMs, 0, T).status).toBe('degraded');
    expect(lagVerdict(0, T.unhealthyLagBytes, T).status).toBe('unhealthy');
    expect(lagVerdict(T.unhealthyLagMs + 1, 0, T)).toMatchObject({ status: 'unhealthy', reason: 'lagging' });
  });
});
