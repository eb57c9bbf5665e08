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

/**
 * Encodes `value` for storage under the Redis key `name`: plain JSON without
 * a key; with one, `{"v": value, "sig": …}` signed over the key name too, so a
 * signed value cannot be copied to another key (another epoch's progress).
 */
export function sealValue(name: string, value: unknown, key: string | Buffer | undefined): string {
  if (key === undefined) return JSON.stringify(value);
  return JSON.stringify({ v: value, sig: computeSignature({ k: name, v: value }, key) });
}

/** A stored value read back: the value, or why it was not trusted (`value` null, `rejection` null: absent). */
export type Opened = { value: unknown; rejection: null } | { value: null; rejection: 'malformed' | 'unsigned' | 'bad-signature' };

/**
 * Decodes a value stored by {@link sealValue} under `name`. With a key, a
 * value that is not sealed, or sealed with another key or for another name,
 * is rejected (written by someone with Redis access but not the key).
 */
export function openValue(name: string, raw: string | null, key: string | Buffer | undefined): Opened {
  if (raw === null) return { value: null, rejection: null };
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    return { value: null, rejection: 'malformed' };
  }
  if (key === undefined) return { value: parsed, rejection: null };
  if (parsed === null || typeof parsed !== 'object' || !('sig' in parsed) || !('v' in parsed)) return { value: null, rejection: 'unsigned' };
  const { v, sig } = parsed as { v: unknown; sig: unknown };
  return hasValidSignature({ k: name, v, sig }, key) ? { value: v, rejection: null } : { value: null, rejection: 'bad-signature' };
}
