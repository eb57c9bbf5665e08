import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * JSON with object keys sorted at every level and no whitespace, so the same
 * event always yields the same bytes to sign. `undefined` members are left out,
 * as `JSON.stringify` does.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    const text = JSON.stringify(value);
    if (text === undefined) throw new TypeError(`cannot encode ${typeof value} as canonical JSON`);
    return text;
  }
  if (Array.isArray(value)) {
    return `[${value.map((item) => (item === undefined ? 'null' : canonicalJson(item))).join(',')}]`;
  }
  const record = value as Record<string, unknown>;
  const members = Object.keys(record)
    .filter((key) => record[key] !== undefined)
    .sort()
    .map((key) => `${JSON.stringify(key)}:${canonicalJson(record[key])}`);
  return `{${members.join(',')}}`;
}

/** Hex HMAC-SHA256 of the canonical JSON of `event` without its `sig` member. */
export function computeSignature(event: Record<string, unknown>, key: string | Buffer): string {
  const { sig: _ignored, ...unsigned } = event;
  return createHmac('sha256', key).update(canonicalJson(unsigned)).digest('hex');
}

/** Returns a copy of `event` with its `sig` set. */
export function signEvent<T extends Record<string, unknown>>(event: T, key: string | Buffer): T & { sig: string } {
  return { ...event, sig: computeSignature(event, key) };
}

/** Whether `event.sig` is present and matches `key` (constant-time comparison). */
export function hasValidSignature(event: Record<string, unknown>, key: string | Buffer): boolean {
  const sig = event.sig;
  if (typeof sig !== 'string' || !/^[0-9a-f]{64}$/.test(sig)) return false;
  const expected = Buffer.from(computeSignature(event, key), 'hex');
  return timingSafeEqual(expected, Buffer.from(sig, 'hex'));
}
