/**
 * Real Deno for tests: the binary the `deno` devDependency ships (platform package `@deno/<target>`), and the
 * example Edge Functions served by `examples/supabase/dev/serve-functions.ts` on 127.0.0.1, started and stopped
 * inside the test. Deno resolves `npm:` imports from the project's node_modules (`--node-modules-dir=manual`);
 * DENO_DIR is a fresh folder and the npm registry points at a dead loopback port, so a run that tried to download
 * anything would fail instead of passing by network.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { REPO_ROOT } from './tmp-dir.js';

const require = createRequire(import.meta.url);

/** Path of the deno executable (linked by the package's postinstall, or found in its platform package). */
export function denoBinary(): string {
  const api = require('deno/install_api.cjs') as { runInstall(): string };
  return api.runInstall();
}

export const FUNCTIONS_DIR = path.join(REPO_ROOT, 'examples/supabase/functions');
const HARNESS = path.join(REPO_ROOT, 'examples/supabase/dev/serve-functions.ts');

/** Environment for a Deno child: nothing inherited but PATH and HOME, offline npm, a private cache. */
export function denoEnv(denoDir: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? denoDir,
    DENO_DIR: denoDir,
    DENO_NO_UPDATE_CHECK: '1',
    NO_COLOR: '1',
    NPM_CONFIG_REGISTRY: 'http://127.0.0.1:9/',
    ...extra,
  };
}

/** `deno <args>` with the import map of the example functions (their deno.json files are identical). */
export function denoArgs(command: 'run' | 'check', rest: string[]): string[] {
  const config = path.join(FUNCTIONS_DIR, 'embed-user/deno.json');
  return [command, '--node-modules-dir=manual', '--config', config, ...(command === 'run' ? ['--allow-env', '--allow-net=127.0.0.1', `--allow-read=${REPO_ROOT}`] : []), ...rest];
}

export interface ServedFunctions {
  /** `http://127.0.0.1:<port>`; functions at `/functions/v1/<name>`. */
  url: string;
  /** Everything the process printed so far (stdout + stderr). */
  output(): string;
  stop(): Promise<void>;
}

/** Start the named functions in one Deno process (each with its own embedder, as separate Supabase workers). */
export function serveFunctions(names: string[], opts: { denoDir: string; env: Record<string, string> }): Promise<ServedFunctions> {
  const child: ChildProcess = spawn(denoBinary(), denoArgs('run', [HARNESS, ...names]), { cwd: REPO_ROOT, env: denoEnv(opts.denoDir, opts.env), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      void stop();
      reject(new Error(`Deno did not start serving within 120 s:\n${out}`));
    }, 120_000);
    const onData = (chunk: Buffer) => {
      out += chunk.toString('utf8');
      const m = /\{"listening":(\d+)\}/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ url: `http://127.0.0.1:${m[1]}`, output: () => out, stop });
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`Deno exited with ${code} before serving:\n${out}`));
    });
  });
}
