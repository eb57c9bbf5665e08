import { z } from 'zod';
import { isoTimeSchema } from './lsn.js';
import { hasValidSignature, signEvent } from './signing.js';

/**
 * Value of the `…:primary` key: the primary of the current epoch. Written once
 * at bootstrap (epoch 1) and then only together with an epoch bump (failover,
 * switchover), so `(epoch, primaryId)` never disagree. The monitor judges
 * every other writable node a second primary. The durable copy is each
 * node's `pgreplica.epoch` table; with a bus key, both are signed.
 */
export const primaryRecordSchema = z.strictObject({
  epoch: z.number().int().min(1),
  primaryId: z.string().min(1),
  /** The cluster's system identifier, decimal. */
  systemIdentifier: z.string().regex(/^\d+$/),
  at: isoTimeSchema,
  cause: z.enum(['bootstrap', 'failover', 'switchover', 'manual']),
  /** The primary of the previous epoch: if it takes writes again, it is a stale primary. */
  previousPrimaryId: z.string().min(1).optional(),
  /** HMAC-SHA256 over the canonical JSON of the record without `sig`, with the bus key. */
  sig: z.string().regex(/^[0-9a-f]{64}$/).optional(),
});

/** @see primaryRecordSchema */
export type PrimaryRecord = z.infer<typeof primaryRecordSchema>;

/** Why a stored authority value was not trusted; each is a metric label. */
export type AuthorityRejection = 'malformed' | 'unsigned' | 'bad-signature';

/** A stored value read back: the value, or why it is not trusted (null: absent). */
export type Checked<T> = { value: T | null; rejection: AuthorityRejection | null };

/** A record signed with `key` (returned unchanged without a key). */
export function signRecord<T extends Record<string, unknown>>(record: T, key: string | Buffer | undefined): T {
  if (key === undefined) return record;
  const { sig: _old, ...unsigned } = record;
  return signEvent(unsigned, key) as unknown as T;
}

/** Whether a parsed value carries a valid signature for `key` (any value passes without a key). */
function checkSignature(value: Record<string, unknown>, key: string | Buffer | undefined): AuthorityRejection | null {
  if (key === undefined) return null;
  if (value.sig === undefined) return 'unsigned';
  return hasValidSignature(value, key) ? null : 'bad-signature';
}

/**
 * Parses the `…:primary` key. With a bus key, an unsigned or badly signed
 * record is rejected: someone who can write to Redis but does not hold the
 * key must not be able to name the primary.
 */
export function readPrimaryRecord(raw: string | null, key?: string | Buffer): Checked<PrimaryRecord> {
  if (raw === null) return { value: null, rejection: null };
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    return { value: null, rejection: 'malformed' };
  }
  const parsed = primaryRecordSchema.safeParse(value);
  if (!parsed.success) return { value: null, rejection: 'malformed' };
  const rejection = checkSignature(parsed.data, key);
  return rejection ? { value: null, rejection } : { value: parsed.data, rejection: null };
}

/** Parses the `…:primary` key; null when absent, not valid, or (with a key) not signed right. */
export function parsePrimaryRecord(raw: string | null, key?: string | Buffer): PrimaryRecord | null {
  return readPrimaryRecord(raw, key).value;
}

/** The value of the `…:paused` key: who paused automatic remediation, when; signed with a bus key. */
export const pauseRecordSchema = z.strictObject({
  at: isoTimeSchema,
  by: z.string().min(1),
  sig: z.string().regex(/^[0-9a-f]{64}$/).optional(),
});

/** @see pauseRecordSchema */
export type PauseRecord = z.infer<typeof pauseRecordSchema>;

/**
 * Parses the `…:paused` key. With a bus key, only a signed value pauses: an
 * unsigned one (someone with Redis access but no key) is rejected, so it can
 * neither stop automatic failover nor — a value nobody can remove short of
 * the key — confuse an operator.
 */
export function readPauseRecord(raw: string | null, key?: string | Buffer): Checked<PauseRecord> {
  if (raw === null) return { value: null, rejection: null };
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    // A bare timestamp (older versions) counts as unsigned.
    return key === undefined ? { value: { at: new Date(0).toISOString(), by: 'unknown' }, rejection: null } : { value: null, rejection: 'unsigned' };
  }
  const parsed = pauseRecordSchema.safeParse(value);
  if (!parsed.success) return { value: null, rejection: 'malformed' };
  const rejection = checkSignature(parsed.data, key);
  return rejection ? { value: null, rejection } : { value: parsed.data, rejection: null };
}

/** Verifies a record read from a node's `pgreplica.epoch` row (signed like the bus record). */
export function checkRecordSignature(record: PrimaryRecord, key: string | Buffer | undefined): AuthorityRejection | null {
  return checkSignature(record, key);
}
