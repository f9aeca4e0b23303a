import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Repository root (tests resolve fixtures from here). */
export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const FIXTURES_DIR = path.join(REPO_ROOT, 'fixtures');

export interface TmpDir {
  path: string;
  /** Path inside the temp dir. */
  join(...parts: string[]): string;
  /** Copy a file or folder from fixtures/ into the temp dir (same relative path unless `to` is given). */
  copyFixture(rel: string, to?: string): string;
  remove(): void;
}

/** A fresh temporary directory; call remove() in afterEach/afterAll. */
export function tmpDir(prefix = 'am-ml-test-'): TmpDir {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  return {
    path: dir,
    join: (...parts) => path.join(dir, ...parts),
    copyFixture(rel, to) {
      const dest = path.join(dir, to ?? rel);
      cpSync(path.join(FIXTURES_DIR, rel), dest, { recursive: true });
      return dest;
    },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
