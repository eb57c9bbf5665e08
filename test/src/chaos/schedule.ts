/**
 * The fault schedule of one chaos seed, drawn from a seeded PRNG (never
 * `Math.random`): the same seed gives the same schedule, so a failing seed
 * replays with `npm run chaos -- --seed N`.
 */

/** Every fault the chaos suite injects. */
export const FAULT_KINDS = [
  'kill-primary',
  'kill-replica',
  'stop-primary',
  'restart-primary',
  'cut-monitor-primary',
  'cut-worker-primary',
  'cut-router-redis',
  'cut-replication',
  'redis-restart-empty',
  'worker-killed-mid-job',
  'duplicate-promote',
  'switchover-during-failure',
] as const;
/** @see FAULT_KINDS */
export type FaultKind = (typeof FAULT_KINDS)[number];

/** How often each kind is drawn (the primary's death most). */
const WEIGHTS: Record<FaultKind, number> = {
  'kill-primary': 4,
  'kill-replica': 1,
  'stop-primary': 3,
  'restart-primary': 1,
  'cut-monitor-primary': 2,
  'cut-worker-primary': 1,
  'cut-router-redis': 2,
  'cut-replication': 1,
  'redis-restart-empty': 2,
  'worker-killed-mid-job': 2,
  'duplicate-promote': 2,
  'switchover-during-failure': 2,
};

/** One fault of a schedule. */
export interface FaultStep {
  kind: FaultKind;
  /** Wait before injecting it, after the previous step ended. */
  delayMs: number;
  /** How long the fault lasts (a kill: until the node is started again). */
  holdMs: number;
  /** Which replica (0 or 1) a replica-targeted fault or a switchover picks. */
  replica: 0 | 1;
  /** Switchover only: what fails during it — the primary killed, or the other replica. */
  during: 'kill-primary' | 'kill-other-replica';
}

/** The schedule of one seed. */
export interface Schedule {
  seed: number;
  /** Worker processes running at once (2: concurrent jobs on one queue). */
  workers: 1 | 2;
  steps: FaultStep[];
}

/** mulberry32: a small, fast 32-bit PRNG; returns floats in [0, 1). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** Draws the schedule of `seed`: one or two faults, each with its delay and duration. */
export function drawSchedule(seed: number): Schedule {
  const random = prng(seed);
  const between = (min: number, max: number) => Math.round(min + random() * (max - min));
  const total = FAULT_KINDS.reduce((sum, k) => sum + WEIGHTS[k], 0);
  const pick = (): FaultKind => {
    let r = random() * total;
    for (const k of FAULT_KINDS) {
      r -= WEIGHTS[k];
      if (r < 0) return k;
    }
    return 'kill-primary';
  };
  const workers = random() < 0.35 ? 2 : 1;
  const count = random() < 0.4 ? 2 : 1;
  const steps: FaultStep[] = Array.from({ length: count }, () => ({
    kind: pick(),
    delayMs: between(300, 1_500),
    holdMs: between(1_500, 8_000),
    replica: random() < 0.5 ? 0 : 1,
    during: random() < 0.5 ? 'kill-primary' : 'kill-other-replica',
  }));
  // Concurrent jobs need a second worker.
  const needsTwo = steps.some((s) => s.kind === 'duplicate-promote');
  return { seed, workers: needsTwo ? 2 : workers, steps };
}
