export { buildProgram, CliError, run } from './cli.js';
export type { CliIo } from './cli.js';
