/**
 * PostgreSQL log sequence numbers (`pg_lsn`), as text (`16/B374D848`) and as
 * 64-bit integers. Numbers past 2^53 lose precision, so arithmetic is on bigint.
 */

import { z } from 'zod';

const HALF = '[0-9A-Fa-f]{1,8}';

/** The `pg_lsn` text pattern without anchors, for formats that embed an LSN (read-your-writes tokens). */
export const LSN_PATTERN_SOURCE = `${HALF}/${HALF}`;

const LSN_PATTERN = new RegExp(`^(${HALF})/(${HALF})$`);

/** Schema of an LSN in text form, for every message that carries one. */
export const lsnSchema = z.string().refine((text) => LSN_PATTERN.test(text), { message: 'must be a PostgreSQL LSN such as "0/3000060"' });

/** Schema of a timestamp in ISO 8601 form with an offset, as every message writes them. */
export const isoTimeSchema = z.iso.datetime({ offset: true });

/** Whether `text` is a well-formed `pg_lsn` literal such as `0/3000060`. */
export function isLsn(text: string): boolean {
  return LSN_PATTERN.test(text);
}

/**
 * Parses a `pg_lsn` literal into a 64-bit position.
 * @throws RangeError naming the bad value when `text` is not an LSN.
 */
export function lsnToBigInt(text: string): bigint {
  const match = LSN_PATTERN.exec(text);
  if (!match) {
    throw new RangeError(`not a PostgreSQL LSN: ${JSON.stringify(text)} (expected hex "X/Y", e.g. "0/3000060")`);
  }
  return (BigInt(`0x${match[1]}`) << 32n) | BigInt(`0x${match[2]}`);
}

/** Formats a 64-bit position the way PostgreSQL prints `pg_lsn`. */
export function bigIntToLsn(position: bigint): string {
  if (position < 0n || position > 0xffffffffffffffffn) {
    throw new RangeError(`LSN position out of range: ${position}`);
  }
  const high = (position >> 32n).toString(16).toUpperCase();
  const low = (position & 0xffffffffn).toString(16).toUpperCase();
  return `${high}/${low}`;
}

/** Compares two LSNs: negative when `a` is behind `b`, 0 when equal, positive when ahead. */
export function compareLsn(a: string, b: string): number {
  const diff = lsnToBigInt(a) - lsnToBigInt(b);
  return diff === 0n ? 0 : diff < 0n ? -1 : 1;
}

/** Bytes of WAL from `behind` to `ahead` (`pg_wal_lsn_diff(ahead, behind)`); negative when reversed. */
export function lsnDiffBytes(ahead: string, behind: string): number {
  return Number(lsnToBigInt(ahead) - lsnToBigInt(behind));
}
