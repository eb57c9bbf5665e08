export { AuthorityTracker } from './authority-tracker.js';
export { createHttpApp } from './http.js';
export type { HttpState } from './http.js';
export { MonitorMetrics } from './metrics.js';
export { Monitor } from './monitor.js';
export type { MonitorStatus } from './monitor.js';
export { RemediationPlanner } from './remediation-planner.js';
export type { PlannedJob, RemediationPlan } from './remediation-planner.js';
