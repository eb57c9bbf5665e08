/** Codes of {@link ProtocolError}. */
export type ProtocolErrorCode = 'invalid-event' | 'invalid-topology' | 'invalid-job';

/** A value that does not follow the bus protocol. */
export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
  readonly code: ProtocolErrorCode;

  constructor(code: ProtocolErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
  }
}
