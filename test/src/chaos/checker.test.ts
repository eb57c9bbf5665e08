import { describe, expect, it } from 'vitest';
import { checkHistory, type FinalState, lostWrites, reportOf } from './checker.js';
import type { HistoryEntry } from './history.js';

const final = (over: Partial<FinalState> = {}): FinalState => ({
  writable: ['r1'],
  streaming: { p1: true, r1: true, r2: true },
  ledgerIds: new Set([1, 2]),
  epochs: [
    { epoch: 1, primaryId: 'p1', at: 0 },
    { epoch: 2, primaryId: 'r1', at: 100 },
  ],
  timeline: 2,
  initialTimeline: 1,
  initialEpoch: 1,
  bus: { primaryChanged: 1, promotions: 1 },
  durability: 'async',
  lossReports: [],
  ...over,
});
const write = (id: number, node: string, sentAt: number, at = sentAt + 5): HistoryEntry => ({ type: 'write', router: 'router1', id, sentAt, at, node, epoch: null, token: 'v1.1.0/0' });
const times = { healedAt: 50, endAt: 1_000 };

describe('chaos checker', () => {
  it('passes a clean history', () => {
    expect(checkHistory([write(1, 'p1', 10), write(2, 'r1', 90, 120)], final(), times)).toEqual([]);
  });

  it('a write held by the router until the new primary recorded its epoch is not on a deposed node', () => {
    expect(checkHistory([write(1, 'p1', 10), write(2, 'r1', 60, 150)], final(), times)).toEqual([]);
  });

  it('flags a write the old primary took after the new epoch was recorded, and one missing at the end', () => {
    const rules = checkHistory([write(1, 'p1', 10), write(2, 'r1', 110), write(3, 'p1', 120)], final(), times).map((v) => v.rule);
    expect(rules).toEqual(['acknowledged-write-lost', 'write-on-deposed-node']);
  });

  it('writes the old primary takes once promoted again, before its new epoch is recorded, are not on a deposed node', () => {
    const epochs = [...final().epochs, { epoch: 3, primaryId: 'p1', at: 200 }];
    const history = [write(1, 'p1', 10), write(2, 'p1', 190, 195)];
    expect(checkHistory(history, final({ writable: ['p1'], epochs, timeline: 3, bus: { primaryChanged: 2, promotions: 2 } }), times)).toEqual([]);
    // The same write missing at the end: lost, and, not being on the new primary's history, a write on a deposed node.
    expect(checkHistory(history, final({ writable: ['p1'], epochs, timeline: 3, bus: { primaryChanged: 2, promotions: 2 }, ledgerIds: new Set([1]) }), times).map((v) => v.rule)).toEqual(['acknowledged-write-lost', 'write-on-deposed-node']);
  });

  it('flags a token read that missed, two writable nodes, a node not streaming, promotions that do not match epochs', () => {
    const miss: HistoryEntry = { type: 'read', router: 'router1', id: 1, at: 20, node: 'r2', found: false };
    expect(checkHistory([write(1, 'p1', 60), miss], final(), times).map((v) => v.rule)).toEqual(['token-read-missed']);
    expect(checkHistory([write(1, 'p1', 60)], final({ writable: ['p1', 'r1'] }), times).map((v) => v.rule)).toEqual(['not-one-primary']);
    expect(checkHistory([write(1, 'p1', 60)], final({ streaming: { p1: false, r1: true, r2: true } }), times).map((v) => v.rule)).toEqual(['not-streaming']);
    expect(checkHistory([write(1, 'p1', 60)], final({ timeline: 3 }), times).map((v) => v.rule)).toEqual(['promotions-vs-epochs']);
    expect(checkHistory([write(1, 'p1', 60)], final({ bus: { primaryChanged: 2, promotions: 1 } }), times).map((v) => v.rule)).toEqual(['promotions-vs-epochs']);
  });

  it('in async mode a lost write is a violation unless a loss was reported on its node after it was acknowledged', () => {
    const history = [write(1, 'p1', 10), write(3, 'p1', 40, 45), write(2, 'r1', 90, 120)];
    const lost = (over: Partial<FinalState>) => checkHistory(history, final(over), times).map((v) => v.rule);
    expect(lost({})).toEqual(['acknowledged-write-lost']);
    // Reported by a rejoin of p1 that discarded its tail, or by the failover's lostBytes.
    expect(lost({ lossReports: [{ node: 'p1', at: 300, what: 'node.rejoined: lostTail' }] })).toEqual([]);
    // Reported on another node, or before the write was acknowledged: not this loss's report.
    expect(lost({ lossReports: [{ node: 'r2', at: 300, what: 'node.rejoined: lostTail' }] })).toEqual(['acknowledged-write-lost']);
    expect(lost({ lossReports: [{ node: 'p1', at: 44, what: 'failover.finished: lostBytes 96' }] })).toEqual(['acknowledged-write-lost']);
    // Synchronous durability promises no loss at all: reported or not.
    expect(lost({ durability: 'synchronous', lossReports: [{ node: 'p1', at: 300, what: 'node.rejoined: lostTail' }] })).toEqual(['acknowledged-write-lost']);
    const reported = final({ lossReports: [{ node: 'p1', at: 300, what: 'x' }] });
    expect(lostWrites(history, reported).map((w) => [w.id, reportOf(w, reported)?.what])).toEqual([[3, 'x']]);
  });

  it('flags writes that never came back after the last fault', () => {
    expect(checkHistory([write(1, 'p1', 10)], final(), times).map((v) => v.rule)).toEqual(['writes-not-back']);
  });
});
