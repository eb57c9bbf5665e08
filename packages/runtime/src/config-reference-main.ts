#!/usr/bin/env node
/**
 * `npm run docs`: writes the configuration reference (docs/configuration.md
 * of the repository) from the schema. Usage: config-reference-main.js <file>
 */
import { writeFileSync } from 'node:fs';
import { renderConfigReference } from './config-reference.js';

const target = process.argv[2];
if (!target) {
  process.stderr.write('usage: config-reference-main.js <file.md>\n');
  process.exit(2);
}
writeFileSync(target, renderConfigReference());
process.stdout.write(`wrote ${target}\n`);
