/** Codes of {@link SandboxError}. */
export type SandboxErrorCode =
  | 'binary-not-found'
  | 'command-failed'
  | 'start-failed'
  | 'timeout'
  | 'closed'
  | 'invalid-option';

/** A sandbox operation that failed; `cause` holds the underlying error. */
export class SandboxError extends Error {
  override readonly name = 'SandboxError';
  readonly code: SandboxErrorCode;

  constructor(code: SandboxErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
  }
}
