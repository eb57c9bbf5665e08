#!/usr/bin/env node
/** The `pgreplica` command (see cli.ts for the commands and exit codes). */
import { run } from './cli.js';

run(process.argv.slice(2), {
  out: (t) => process.stdout.write(`${t}\n`),
  err: (t) => process.stderr.write(`${t}\n`),
  env: process.env,
}).then((code) => process.exit(code));
