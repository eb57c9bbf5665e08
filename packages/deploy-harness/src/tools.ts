import { accessSync, constants } from 'node:fs';
import { join } from 'node:path';

/** A program a check needs is not installed; the message names the Debian package. */
export class ToolMissingError extends Error {
  override readonly name = 'ToolMissingError';
  readonly program: string;
  readonly debianPackage: string;

  constructor(program: string, debianPackage: string) {
    super(
      `${program} is not installed: apt-get install ${debianPackage} (as root, node scripts/bootstrap.mjs installs it; npm test runs the bootstrap)`,
    );
    this.program = program;
    this.debianPackage = debianPackage;
  }
}

/** Where Debian puts programs that may not be on a non-root PATH. */
const SBIN_DIRS = ['/usr/local/sbin', '/usr/sbin', '/sbin'];

/**
 * The absolute path of `program` (PATH, then the sbin directories).
 * @throws ToolMissingError naming `debianPackage` when it is not installed
 */
export function requireTool(program: string, debianPackage: string): string {
  const dirs = [...(process.env.PATH ?? '').split(':').filter(Boolean), ...SBIN_DIRS];
  for (const dir of dirs) {
    const path = join(dir, program);
    try {
      accessSync(path, constants.X_OK);
      return path;
    } catch {
      // not here
    }
  }
  throw new ToolMissingError(program, debianPackage);
}
