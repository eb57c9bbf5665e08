import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import type { FaultKind } from './schedule.js';

/** A write a router had acknowledged: which node took it, and the epoch that node recorded. */
export interface WriteEntry {
  type: 'write';
  router: string;
  id: number;
  sentAt: number;
  at: number;
  node: string;
  epoch: number | null;
  token: string;
}

/** A write that failed (not acknowledged: it may or may not have run). */
export interface WriteFailedEntry {
  type: 'write-failed';
  router: string;
  id: number;
  sentAt: number;
  at: number;
  error: string;
  code: string | null;
}

/** A read of a just-written row with the write's token. */
export interface ReadEntry {
  type: 'read';
  router: string;
  id: number;
  at: number;
  node: string;
  found: boolean;
}

/** A read that failed (an error, not a wrong answer). */
export interface ReadFailedEntry {
  type: 'read-failed';
  router: string;
  id: number;
  at: number;
  error: string;
  code: string | null;
}

/** A fault the orchestrator injected (`start`) or undid (`end`). */
export interface FaultEntry {
  type: 'fault';
  kind: FaultKind;
  /** Index of the step in the schedule. */
  step: number;
  phase: 'start' | 'end';
  at: number;
  detail: string;
}

/** One line of a seed's history. */
export type HistoryEntry = WriteEntry | WriteFailedEntry | ReadEntry | ReadFailedEntry | FaultEntry;

/** Appends one entry to a JSON-lines file. */
export function appendEntry(file: string, entry: HistoryEntry): void {
  appendFileSync(file, `${JSON.stringify(entry)}\n`);
}

/** The entries of JSON-lines files, merged in time order (a torn last line of a killed writer is skipped). */
export function readHistory(files: readonly string[]): HistoryEntry[] {
  const entries: HistoryEntry[] = [];
  for (const file of files) {
    if (!existsSync(file)) continue;
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      if (!line.trim()) continue;
      try {
        entries.push(JSON.parse(line) as HistoryEntry);
      } catch {
        // A line cut short when its writer was stopped.
      }
    }
  }
  return entries.sort((a, b) => a.at - b.at);
}

/** One line per entry, for a report: time relative to `t0`. */
export function formatEntries(entries: readonly HistoryEntry[], t0: number): string {
  return entries
    .map((e) => {
      const t = `+${((e.at - t0) / 1_000).toFixed(3)}s`;
      switch (e.type) {
        case 'fault':
          return `${t} FAULT ${e.phase} ${e.kind} ${e.detail}`;
        case 'write':
          return `${t} ${e.router} write #${e.id} acked by ${e.node} (epoch ${e.epoch}, sent ${e.sentAt - t0} ms)`;
        case 'write-failed':
          return `${t} ${e.router} write #${e.id} FAILED ${e.code ?? ''} ${e.error}`;
        case 'read':
          return `${t} ${e.router} read #${e.id} on ${e.node}: ${e.found ? 'found' : 'MISSING'}`;
        case 'read-failed':
          return `${t} ${e.router} read #${e.id} FAILED ${e.code ?? ''} ${e.error}`;
      }
      return '';
    })
    .join('\n');
}
