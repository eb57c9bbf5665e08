import { describe, expect, it } from 'vitest';
import { checkHistory, type FinalState, type LossReport, lostWrites, reportOf } from './checker.js';
import type { HistoryEntry, WriteEntry } from './history.js';

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
  failovers: [],
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

  it('in async mode passes only the loss that mode trades away: acknowledged by the recorded primary, past the fork a failover away from it reported', () => {
    const acked = (id: number, node: string, at: number, lsn: string): HistoryEntry => ({ ...(write(id, node, at - 5, at) as WriteEntry), token: `v1.1.${lsn}` });
    // #1 on the final primary; #3 acknowledged by p1 at 60 (commit 0/3000100), missing at the end.
    const history = [acked(1, 'p1', 10, '0/3000000'), acked(3, 'p1', 60, '0/3000100'), write(2, 'r1', 110, 120)];
    const failedOver = { failovers: [{ from: 'p1', at: 150 }] };
    const rejoined: LossReport = { node: 'p1', at: 300, forkLsn: '0/3000080', what: 'node.rejoined: lostTail' };
    const rules = (over: Partial<FinalState>, h = history) => checkHistory(h, final({ ...failedOver, ...over }), times).map((v) => v.rule);
    expect(rules({})).toEqual(['acknowledged-write-lost']);
    // Reported by the rejoin of p1 (or the failover's lostBytes) from a fork below the write's commit: passes.
    expect(rules({ lossReports: [rejoined] })).toEqual([]);
    expect(rules({ lossReports: [{ ...rejoined, at: 160, what: 'failover.finished: lostBytes 96' }] })).toEqual([]);
    // A report on another node, from before the write, or from a fork past its commit: not this loss.
    expect(rules({ lossReports: [{ ...rejoined, node: 'r2' }] })).toEqual(['acknowledged-write-lost']);
    expect(rules({ lossReports: [{ ...rejoined, at: 59 }] })).toEqual(['acknowledged-write-lost']);
    expect(rules({ lossReports: [{ ...rejoined, forkLsn: '0/3000100' }] })).toEqual(['acknowledged-write-lost']);
    // No failover replaced p1 (a switchover must lose nothing): not excused.
    expect(rules({ lossReports: [rejoined], failovers: [] })).toEqual(['acknowledged-write-lost']);
    // A write p1 acknowledged after r1's epoch was recorded (a deposed node's write, seed 2): never excused.
    const late = [acked(1, 'p1', 10, '0/3000000'), acked(3, 'p1', 103, '0/3000100'), write(2, 'r1', 110, 120)];
    expect(rules({ lossReports: [rejoined] }, late)).toEqual(['acknowledged-write-lost']);
    // p1 promoted again between the write and the report: the report is of a later tenure.
    const epochs = [...final().epochs, { epoch: 3, primaryId: 'p1', at: 200 }];
    expect(checkHistory(history, final({ ...failedOver, lossReports: [rejoined], epochs, timeline: 3, bus: null }), times).map((v) => v.rule)).toEqual(['acknowledged-write-lost']);
    // A token without a commit position cannot be placed inside a range.
    const unknown = [acked(1, 'p1', 10, '0/3000000'), acked(3, 'p1', 60, 'FFFFFFFF/FFFFFFFF'), write(2, 'r1', 110, 120)];
    expect(rules({ lossReports: [rejoined] }, unknown)).toEqual(['acknowledged-write-lost']);
    // Synchronous durability promises no loss at all: reported or not.
    expect(rules({ durability: 'synchronous', lossReports: [rejoined] })).toEqual(['acknowledged-write-lost']);
    const reported = final({ ...failedOver, lossReports: [rejoined] });
    expect(lostWrites(history, reported).map((w) => [w.id, reportOf(w, reported)?.what])).toEqual([[3, 'node.rejoined: lostTail']]);
  });

  it('flags writes that never came back after the last fault', () => {
    expect(checkHistory([write(1, 'p1', 10)], final(), times).map((v) => v.rule)).toEqual(['writes-not-back']);
  });
});
