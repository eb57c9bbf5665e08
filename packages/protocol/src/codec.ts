import { z } from 'zod';
import { ProtocolError } from './errors.js';
import {
  type BusEvent,
  type BusEventOf,
  type BusEventPayload,
  type BusEventType,
  busEventSchema,
  PROTOCOL_VERSION,
} from './events.js';
import { hasValidSignature, signEvent } from './signing.js';

/** Why {@link parseEvent} dropped a message; each one is a metric label. */
export type EventRejection =
  | 'malformed-json'
  | 'unsupported-version'
  | 'unsigned'
  | 'bad-signature'
  | 'invalid'
  | 'wrong-cluster';

/** Result of {@link parseEvent}. */
export type ParseEventResult =
  | { ok: true; event: BusEvent }
  | { ok: false; rejection: EventRejection; detail: string };

/** Options of {@link parseEvent}. */
export interface ParseEventOptions {
  /** Only events of this cluster are accepted. */
  cluster: string;
  /**
   * Bus signing key. When set, unsigned and badly signed events are rejected.
   * @default undefined (signatures are not checked)
   */
  key?: string | Buffer | undefined;
}

/**
 * Parses and checks one message from the bus. Never throws: a malformed or
 * forged message comes back as a rejection for the caller to count and drop.
 */
export function parseEvent(raw: string | Buffer, options: ParseEventOptions): ParseEventResult {
  let value: unknown;
  try {
    value = JSON.parse(typeof raw === 'string' ? raw : raw.toString('utf8'));
  } catch (err) {
    return { ok: false, rejection: 'malformed-json', detail: (err as Error).message };
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return { ok: false, rejection: 'malformed-json', detail: 'not a JSON object' };
  }
  const record = value as Record<string, unknown>;
  if (record.v !== PROTOCOL_VERSION) {
    return { ok: false, rejection: 'unsupported-version', detail: `v=${JSON.stringify(record.v)}, expected ${PROTOCOL_VERSION}` };
  }
  if (options.key !== undefined) {
    if (record.sig === undefined) return { ok: false, rejection: 'unsigned', detail: 'event has no sig' };
    if (!hasValidSignature(record, options.key)) {
      return { ok: false, rejection: 'bad-signature', detail: 'sig does not match the bus key' };
    }
  }
  const parsed = busEventSchema.safeParse(record);
  if (!parsed.success) {
    return { ok: false, rejection: 'invalid', detail: z.prettifyError(parsed.error) };
  }
  if (parsed.data.cluster !== options.cluster) {
    return { ok: false, rejection: 'wrong-cluster', detail: `cluster ${JSON.stringify(parsed.data.cluster)}` };
  }
  return { ok: true, event: parsed.data };
}

/** Envelope values a publisher supplies for {@link createEvent}. */
export interface EnvelopeInput {
  cluster: string;
  term: number;
  seq: number;
  epoch: number;
  /** @default new Date() */
  at?: Date;
  /** Signs the event when set. */
  key?: string | Buffer | undefined;
}

/**
 * Builds a complete, validated (and, with a key, signed) event.
 * @throws ProtocolError when the result would not pass {@link parseEvent}, so an invalid event is never published.
 */
export function createEvent<T extends BusEventType>(
  type: T,
  payload: BusEventPayload<T>,
  input: EnvelopeInput,
): BusEventOf<T> {
  const unsigned = {
    v: PROTOCOL_VERSION,
    cluster: input.cluster,
    term: input.term,
    seq: input.seq,
    epoch: input.epoch,
    type,
    at: (input.at ?? new Date()).toISOString(),
    ...payload,
  };
  const checked = busEventSchema.safeParse(unsigned);
  if (!checked.success) {
    throw new ProtocolError('invalid-event', `refusing to build an invalid ${type} event: ${z.prettifyError(checked.error)}`);
  }
  const event = input.key === undefined ? unsigned : signEvent(unsigned, input.key);
  return event as unknown as BusEventOf<T>;
}

/** Serializes an event for `PUBLISH` / `XADD`. */
export function encodeEvent(event: BusEvent): string {
  return JSON.stringify(event);
}
