/** One step of an ordered shutdown. */
export type ShutdownStep = [name: string, run: () => Promise<unknown>];

/**
 * Runs shutdown steps in order (stop intake, drain, then connections); a
 * step that fails is reported through `onError` and the rest still run.
 */
export async function runShutdownSteps(steps: readonly ShutdownStep[], onError: (err: unknown, step: string) => void): Promise<void> {
  for (const [step, run] of steps) {
    try {
      await run();
    } catch (err) {
      onError(err, step);
    }
  }
}
