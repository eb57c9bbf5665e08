import { describe, expect, it } from 'vitest';
import { createEvent, encodeEvent, parseEvent } from './codec.js';
import { ProtocolError } from './errors.js';
import type { Topology } from './node.js';
import { canonicalJson, signEvent } from './signing.js';

const topology: Topology = {
  cluster: 'main',
  epoch: 3,
  primaryId: 'p1',
  systemIdentifier: '7312345678901234567',
  observedAt: '2026-01-01T00:00:00.000Z',
  nodes: [
    {
      id: 'p1',
      host: '127.0.0.1',
      port: 5433,
      role: 'primary',
      status: 'healthy',
      reason: 'ok',
      priority: 0,
      weight: 1,
      tags: [],
      lagBytes: 0,
      lagMs: 0,
      replayLsn: null,
      receiveLsn: null,
      timeline: 1,
      lastCheckAt: '2026-01-01T00:00:00.000Z',
      since: '2026-01-01T00:00:00.000Z',
      consecutiveFailures: 0,
    },
  ],
};

const envelope = { cluster: 'main', term: 2, seq: 7, epoch: 3, at: new Date('2026-01-01T00:00:01Z') };

describe('createEvent / parseEvent', () => {
  it('round-trips an unsigned event when no key is configured', () => {
    const event = createEvent('snapshot', { topology }, envelope);
    const result = parseEvent(encodeEvent(event), { cluster: 'main' });
    expect(result).toEqual({ ok: true, event });
  });

  it('round-trips a signed event and rejects a tampered one', () => {
    const event = createEvent('primary.changed', { fromId: 'p1', toId: 'r1', cause: 'failover' }, { ...envelope, key: 'k1' });
    expect(event.sig).toMatch(/^[0-9a-f]{64}$/);
    expect(parseEvent(encodeEvent(event), { cluster: 'main', key: 'k1' }).ok).toBe(true);

    const forged = { ...event, toId: 'evil' };
    expect(parseEvent(JSON.stringify(forged), { cluster: 'main', key: 'k1' })).toMatchObject({ ok: false, rejection: 'bad-signature' });
    expect(parseEvent(encodeEvent(event), { cluster: 'main', key: 'other-key' })).toMatchObject({ ok: false, rejection: 'bad-signature' });
  });

  it('rejects an unsigned event when a key is configured', () => {
    const event = createEvent('primary.changed', { fromId: 'p1', toId: 'r1', cause: 'manual' }, envelope);
    expect(parseEvent(encodeEvent(event), { cluster: 'main', key: 'k1' })).toMatchObject({ ok: false, rejection: 'unsigned' });
  });

  it('accepts a signature whatever the key order of the JSON text', () => {
    const event = createEvent('slot.dropped', { slotName: 's1', dryRun: false, retainedBytesBefore: 10, retainedBytesAfter: 0 }, { ...envelope, key: 'k' });
    const reordered = Object.fromEntries(Object.entries(event).reverse());
    expect(JSON.stringify(reordered)).not.toBe(JSON.stringify(event));
    expect(parseEvent(JSON.stringify(reordered), { cluster: 'main', key: 'k' }).ok).toBe(true);
  });

  it.each([
    ['not json', '{', 'malformed-json'],
    ['an array', '[1]', 'malformed-json'],
    ['a future version', JSON.stringify({ v: 2, type: 'snapshot' }), 'unsupported-version'],
    ['an unknown type', JSON.stringify({ v: 1, cluster: 'main', term: 0, seq: 0, epoch: 0, at: '2026-01-01T00:00:00Z', type: 'nope' }), 'invalid'],
    ['a negative seq', JSON.stringify({ v: 1, cluster: 'main', term: 0, seq: -1, epoch: 0, at: '2026-01-01T00:00:00Z', type: 'primary.changed', fromId: null, toId: 'r1', cause: 'manual' }), 'invalid'],
    ['an unknown field', JSON.stringify({ v: 1, cluster: 'main', term: 0, seq: 0, epoch: 0, at: '2026-01-01T00:00:00Z', type: 'primary.changed', fromId: null, toId: 'r1', cause: 'manual', extra: 1 }), 'invalid'],
    ['another cluster', JSON.stringify({ v: 1, cluster: 'other', term: 0, seq: 0, epoch: 0, at: '2026-01-01T00:00:00Z', type: 'primary.changed', fromId: null, toId: 'r1', cause: 'manual' }), 'wrong-cluster'],
  ])('rejects %s', (_label, raw, rejection) => {
    expect(parseEvent(raw, { cluster: 'main' })).toMatchObject({ ok: false, rejection });
  });

  it('refuses to build an event that would not validate', () => {
    expect(() =>
      createEvent('slot.dropped', { slotName: '', dryRun: true, retainedBytesBefore: null, retainedBytesAfter: null }, envelope),
    ).toThrow(ProtocolError);
  });

  it('names the failing field in an invalid node', () => {
    const bad = createEvent('snapshot', { topology }, envelope);
    const raw = JSON.stringify({ ...bad, topology: { ...topology, nodes: [{ ...topology.nodes[0], port: 70000 }] } });
    const result = parseEvent(raw, { cluster: 'main' });
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.detail).toContain('port');
  });
});

describe('canonicalJson', () => {
  it('sorts keys at every level and drops undefined members', () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { z: 1, y: 2 }], c: undefined } })).toBe('{"a":{"d":[1,{"y":2,"z":1}]},"b":1}');
  });

  it('signs identically regardless of property order', () => {
    expect(signEvent({ a: 1, b: 2 }, 'k').sig).toBe(signEvent({ b: 2, a: 1 }, 'k').sig);
  });
});
