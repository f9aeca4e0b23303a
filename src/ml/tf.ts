/**
 * The only module that imports TensorFlow.js. Commands that do not need TF (`sync-dmm`, `models`, `rollback`,
 * `doctor --no-tf`) never import anything under `src/ml/` that reaches this file.
 *
 * Backend choice: `@tensorflow/tfjs-node` (native libtensorflow) when the user has it installed, else the WASM
 * backend (SIMD, one thread in Node), else the pure-JS CPU backend. tfjs-node is an optional dependency: its
 * install script downloads libtensorflow and fails softly where that host is unreachable.
 *
 * Importing this module has no Node-only side effects (the backends load inside `initTf`), so code shared with
 * the Edge runtime (`src/ml/runtime/`) may import `tf` from here.
 */
import * as tf from '@tensorflow/tfjs';

export { tf };
export type Tf = typeof tf;

export type BackendChoice = 'auto' | 'node' | 'wasm' | 'cpu';
export const BACKEND_CHOICES: readonly BackendChoice[] = ['auto', 'node', 'wasm', 'cpu'];

/** TF.js backend names as the engine knows them. */
export type TfBackendName = 'tensorflow' | 'wasm' | 'cpu';

export interface TfInfo {
  backend: TfBackendName;
  native: boolean;
  /** @tensorflow/tfjs version actually loaded. */
  version: string;
  /** Why a faster backend was not used (tfjs-node missing, wasm failed to initialise). */
  notes: string[];
}

// A string, not a literal import: tfjs-node is usually not installed and must not be resolved at build time.
const TFJS_NODE_PACKAGE = '@tensorflow/tfjs-node';

let nodeBindingTried: Promise<string | undefined> | undefined;

/** Try to load tfjs-node once; returns a reason string when it is unavailable. */
function tryLoadNodeBinding(): Promise<string | undefined> {
  nodeBindingTried ??= (async () => {
    try {
      await import(TFJS_NODE_PACKAGE);
    } catch (err) {
      const code = (err as { code?: string }).code;
      return code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND'
        ? `${TFJS_NODE_PACKAGE} is not installed`
        : `${TFJS_NODE_PACKAGE} failed to load: ${(err as Error).message.split('\n')[0]}`;
    }
    if (!tf.findBackendFactory('tensorflow')) {
      // tfjs-node registered its backend in a different copy of tfjs-core (version mismatch, not deduplicated).
      return `${TFJS_NODE_PACKAGE} is installed but uses another copy of @tensorflow/tfjs-core; align versions with 'npm dedupe'`;
    }
    return undefined;
  })();
  return nodeBindingTried;
}

const WASM_BACKEND_PACKAGE = '@tensorflow/tfjs-backend-wasm';

async function trySetBackend(name: TfBackendName): Promise<string | undefined> {
  try {
    if (name === 'wasm' && !tf.findBackendFactory('wasm')) await import(WASM_BACKEND_PACKAGE);
    if (!tf.findBackendFactory(name)) return `backend ${name} is not registered`;
    const ok = await tf.setBackend(name);
    if (!ok) return `backend ${name} failed to initialise`;
    await tf.ready();
    return undefined;
  } catch (err) {
    return `backend ${name} failed to initialise: ${(err as Error).message}`;
  }
}

export class BackendUnavailableError extends Error {
  constructor(
    readonly requested: BackendChoice,
    readonly reason: string,
  ) {
    super(`The TF.js backend '${requested}' is not available: ${reason}.`);
    this.name = 'BackendUnavailableError';
  }
}

/**
 * Select and initialise a backend. `auto` prefers native, then wasm, then cpu. An explicit choice that cannot be
 * had throws `BackendUnavailableError` (commands turn it into a usage or config error with a hint).
 */
export async function initTf(choice: BackendChoice = 'auto'): Promise<TfInfo> {
  // PROD mode silences tfjs's "install the node backend" console banner and skips debug-only checks.
  tf.enableProdMode();
  const notes: string[] = [];
  const order: TfBackendName[] =
    choice === 'auto' ? ['tensorflow', 'wasm', 'cpu'] : [choice === 'node' ? 'tensorflow' : choice];
  for (const name of order) {
    let reason: string | undefined;
    if (name === 'tensorflow') reason = await tryLoadNodeBinding();
    reason ??= await trySetBackend(name);
    if (reason === undefined) {
      return { backend: name, native: name === 'tensorflow', version: tf.version.tfjs, notes };
    }
    if (choice !== 'auto') throw new BackendUnavailableError(choice, reason);
    notes.push(reason);
  }
  throw new BackendUnavailableError(choice, notes.join('; '));
}

/** The active backend, without changing it. */
export function activeBackend(): string {
  return tf.getBackend();
}
