import { z } from 'zod';
import { isoTimeSchema } from './lsn.js';

/**
 * Value of the `…:primary` key: the primary of the current epoch. Written once
 * at bootstrap (epoch 1) and then only together with an epoch bump (failover,
 * switchover), so `(epoch, primaryId)` never disagree. The monitor judges
 * every other writable node a second primary.
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
});

/** @see primaryRecordSchema */
export type PrimaryRecord = z.infer<typeof primaryRecordSchema>;

/** Parses the `…:primary` key; null when absent or not valid (the caller logs it). */
export function parsePrimaryRecord(raw: string | null): PrimaryRecord | null {
  if (raw === null) return null;
  try {
    const parsed = primaryRecordSchema.safeParse(JSON.parse(raw));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}
