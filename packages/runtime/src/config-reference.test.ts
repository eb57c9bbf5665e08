import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ENV_OVERRIDES } from './config.js';
import { renderConfigReference } from './config-reference.js';

const COMMITTED = fileURLToPath(new URL('../../../docs/configuration.md', import.meta.url));

describe('docs/configuration.md', () => {
  it('is what the schema generates (run `npm run docs` and commit the file when this fails)', () => {
    const generated = renderConfigReference();
    const committed = readFileSync(COMMITTED, 'utf8');
    if (committed !== generated) {
      throw new Error('docs/configuration.md is out of date with packages/runtime/src/config-schema.ts: run `npm run docs` and commit docs/configuration.md');
    }
  });

  it('documents every field, environment override and secret', () => {
    const text = renderConfigReference();
    for (const field of ['cluster', 'redis.url', 'redis.sentinels', 'nodes[].slotName', 'database.ssl.caFile', 'failover.durability', 'monitor.thresholds.replayStalledAfterMs', 'worker.hooks.rejoin', 'worker.lockDurationMs']) {
      expect(text).toContain(`| \`${field}\` |`);
    }
    for (const variable of Object.keys(ENV_OVERRIDES)) expect(text).toContain(`| \`${variable}\` |`);
    for (const secret of ['PGREPLICA_DB_PASSWORD', 'PGREPLICA_BUS_KEY', 'PGREPLICA_HTTP_TOKEN']) expect(text).toContain(secret);
    // Every field has a description.
    expect(text).not.toMatch(/\|\s+\|\n/);
  });
});
