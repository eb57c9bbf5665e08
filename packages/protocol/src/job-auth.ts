import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import type { JobName } from './jobs.js';
import { isoTimeSchema } from './lsn.js';
import { computeSignature, hasValidSignature } from './signing.js';

/**
 * Proof that a job was enqueued by a holder of the bus key (the monitor or the
 * CLI): an HMAC over the job name, its payload, an expiry and a nonce. The
 * worker runs a job only with a valid, unexpired proof whose nonce it has not
 * seen, so someone who can write to Redis cannot forge, alter or replay one.
 */
export const jobAuthSchema = z.strictObject({
  exp: isoTimeSchema,
  nonce: z.string().regex(/^[0-9a-f]{32}$/),
  sig: z.string().regex(/^[0-9a-f]{64}$/),
});

/** @see jobAuthSchema */
export type JobAuth = z.infer<typeof jobAuthSchema>;

/** How long a signed job may wait in the queue before the worker refuses it. */
export const JOB_AUTH_TTL_MS = 15 * 60_000;

/** Why a worker refused a job's proof; each is a metric label. */
export type JobAuthRejection = 'unsigned' | 'bad-signature' | 'expired';

function signedPart(name: string, payload: Record<string, unknown>, exp: string, nonce: string): Record<string, unknown> {
  const { auth: _auth, ...data } = payload;
  return { name, data, exp, nonce };
}

/** Returns `payload` with an `auth` proof when there is a key (unchanged without one). */
export function signJob<T extends Record<string, unknown>>(name: JobName, payload: T, key: string | Buffer | undefined, now = Date.now(), ttlMs = JOB_AUTH_TTL_MS): T {
  if (key === undefined) return payload;
  const exp = new Date(now + ttlMs).toISOString();
  const nonce = randomBytes(16).toString('hex');
  const sig = computeSignature(signedPart(name, payload, exp, nonce), key);
  return { ...payload, auth: { exp, nonce, sig } };
}

/**
 * Checks a job's proof (the caller then claims its nonce once). Without a
 * key every job passes; with one, a job must carry a proof for exactly this
 * name and payload that has not expired.
 */
export function checkJobAuth(name: string, payload: Record<string, unknown>, key: string | Buffer | undefined, now = Date.now()): JobAuthRejection | null {
  if (key === undefined) return null;
  const auth = jobAuthSchema.safeParse(payload.auth);
  if (!auth.success) return 'unsigned';
  const { exp, nonce, sig } = auth.data;
  if (!hasValidSignature({ ...signedPart(name, payload, exp, nonce), sig }, key)) return 'bad-signature';
  return Date.parse(exp) < now ? 'expired' : null;
}
