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

/**
 * The LSN of a primary-only token: a write that committed, but whose commit
 * position could not be read (the connection died after the commit, or the
 * position query failed). No replica reports this position, so only the
 * primary serves a read that must see the write. It is a valid LSN, so the
 * token keeps the `v1.<epoch>.<lsn>` form every router version decodes
 * (an older one checks the replicas, finds none that replayed it, and reads
 * on the primary).
 */
export const PRIMARY_ONLY_LSN = 'FFFFFFFF/FFFFFFFF';

/** A token for a write of `epoch` that committed at a position the router could not read: only the primary satisfies it. */
export function primaryOnlyToken(epoch: number): DecodedToken {
  return { epoch, lsn: PRIMARY_ONLY_LSN };
}

/** Whether `token` is a {@link primaryOnlyToken}. */
export function isPrimaryOnlyToken(token: DecodedToken): boolean {
  return token.lsn === PRIMARY_ONLY_LSN;
}

/**
 * The later of two tokens: by LSN (LSNs keep growing across a promotion).
 * A primary-only token stands for an unknown position in its epoch: it wins
 * over tokens of its own or an earlier epoch, and yields to a token of a
 * later epoch — the new primary either received that write before it was
 * promoted (so its positions are beyond it) or never did (so no node will
 * ever show it). Of two primary-only tokens, the later epoch wins.
 */
export function laterToken(a: DecodedToken | null, b: DecodedToken | null): DecodedToken | null {
  if (!a) return b;
  if (!b) return a;
  const aUnknown = isPrimaryOnlyToken(a);
  const bUnknown = isPrimaryOnlyToken(b);
  if (aUnknown && bUnknown) return a.epoch >= b.epoch ? a : b;
  if (aUnknown) return b.epoch > a.epoch ? b : a;
  if (bUnknown) return a.epoch > b.epoch ? a : b;
  return compareLsn(a.lsn, b.lsn) >= 0 ? a : b;
}
