/** Build facts recorded in manifests and run summaries (app-schema §7.20: every run traceable). */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const PACKAGE_ROOT = fileURLToPath(new URL('..', import.meta.url));

export const AMML_VERSION: string = (() => {
  try {
    return JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version as string;
  } catch {
    return '0.0.0';
  }
})();

let commit: string | null | undefined;

/** The git commit am-ml runs from (a clone), or null when installed from a package. */
export function amMlGitCommit(): string | null {
  if (commit !== undefined) return commit;
  try {
    const head = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: PACKAGE_ROOT, stdio: ['ignore', 'pipe', 'ignore'] })
      .toString()
      .trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], {
      cwd: PACKAGE_ROOT,
      stdio: ['ignore', 'pipe', 'ignore'],
    })
      .toString()
      .trim();
    commit = /^[0-9a-f]{40}$/.test(head) ? `${head}${dirty ? '-dirty' : ''}` : null;
  } catch {
    commit = null;
  }
  return commit;
}
