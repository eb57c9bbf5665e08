import { compareLsn, isLsn } from '@pgreplica/protocol';
import { RouterError } from './errors.js';

/**
 * A read-your-writes token: the WAL position a write committed at, with the
 * epoch it was written in. A string so it crosses process boundaries (an HTTP
 * header, a job payload): `v1.<epoch>.<lsn>`, e.g. `v1.3.0/3000060`.
 */
export type ConsistencyToken = string;

/** A decoded {@link ConsistencyToken}. */
export interface DecodedToken {
  epoch: number;
  lsn: string;
}

/** The form of a {@link ConsistencyToken}: `v1.<epoch>.<lsn>`, capturing epoch and LSN. */
export const TOKEN_PATTERN = /^v1\.(\d{1,15})\.([0-9A-Fa-f]{1,8}\/[0-9A-Fa-f]{1,8})$/;

/** Encodes a token. */
export function encodeToken(token: DecodedToken): ConsistencyToken {
  return `v1.${token.epoch}.${token.lsn.toUpperCase()}`;
}

/**
 * Decodes a token from a caller (it may come from another service).
 * @throws RouterError (`invalid-token`) naming the expected format.
 */
export function decodeToken(token: string): DecodedToken {
  const match = TOKEN_PATTERN.exec(token.trim());
  if (!match || !isLsn(match[2]!)) {
    throw new RouterError('invalid-token', `not a pgreplica consistency token: ${JSON.stringify(token.slice(0, 40))} (expected "v1.<epoch>.<lsn>")`);
  }
  return { epoch: Number(match[1]), lsn: match[2]!.toUpperCase() };
}

/** The later of two tokens (by LSN; LSNs keep growing across a promotion). */
export function laterToken(a: DecodedToken | null, b: DecodedToken | null): DecodedToken | null {
  if (!a) return b;
  if (!b) return a;
  return compareLsn(a.lsn, b.lsn) >= 0 ? a : b;
}
