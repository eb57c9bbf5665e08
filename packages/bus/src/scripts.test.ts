import { readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { loadScript, SCRIPT_NAMES } from './scripts.js';

describe('bus scripts', () => {
  it('has one file per script name and no file without a name', () => {
    const files = readdirSync(new URL('../lua/', import.meta.url)).map((f) => f.replace(/\.lua$/, ''));
    expect(files.sort()).toEqual([...SCRIPT_NAMES].sort());
  });

  it('loads each script with its SHA-1 (the digest EVALSHA uses)', () => {
    for (const name of SCRIPT_NAMES) {
      const script = loadScript(name);
      expect(script.lua).toContain('redis.call');
      expect(script.sha1).toMatch(/^[0-9a-f]{40}$/);
    }
  });
});
