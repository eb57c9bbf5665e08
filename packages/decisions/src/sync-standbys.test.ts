import { describe, expect, it } from 'vitest';
import { synchronousStandbyNames, syncCandidates } from './sync-standbys.js';

describe('synchronous standbys', () => {
  it('names ANY 1 of the standbys, quoted, or nothing', () => {
    expect(synchronousStandbyNames(['r2', 'db"x'])).toBe('ANY 1 ("db""x", "r2")');
    expect(synchronousStandbyNames([])).toBe('');
  });

  it('allows only recorded members, all reachable or past what the missing ones had', () => {
    const record = { members: ['r1', 'r2'], floorLsn: null };
    expect(syncCandidates({ record, reachable: new Map([['r1', '0/500'], ['r2', '0/400'], ['r3', '0/900']]), lastKnown: new Map() })).toEqual({ ok: true, allowed: ['r1', 'r2'] });
    // r2 is gone; it had received 0/450: r1 (0/500) is safe, a lagging r1 is not.
    expect(syncCandidates({ record, reachable: new Map([['r1', '0/500']]), lastKnown: new Map([['r2', '0/450']]) })).toEqual({ ok: true, allowed: ['r1'] });
    expect(syncCandidates({ record, reachable: new Map([['r1', '0/400']]), lastKnown: new Map([['r2', '0/450']]) })).toMatchObject({ ok: false, reason: expect.stringMatching(/^sync-behind/) });
    expect(syncCandidates({ record, reachable: new Map([['r3', '0/900']]), lastKnown: new Map() })).toMatchObject({ ok: false, reason: expect.stringMatching(/^sync-unreachable/) });
  });

  it('refuses without a record, or when no replica was synchronous, and honours the floor', () => {
    expect(syncCandidates({ record: null, reachable: new Map([['r1', '0/1']]), lastKnown: new Map() })).toMatchObject({ ok: false });
    expect(syncCandidates({ record: { members: [], floorLsn: null }, reachable: new Map([['r1', '0/1']]), lastKnown: new Map() })).toMatchObject({ ok: false, reason: expect.stringMatching(/^sync-none/) });
    expect(syncCandidates({ record: { members: ['r1'], floorLsn: '0/600' }, reachable: new Map([['r1', '0/500']]), lastKnown: new Map() })).toMatchObject({ ok: false, reason: expect.stringMatching(/^sync-behind/) });
  });
});
