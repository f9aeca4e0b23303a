/**
 * The feature code and the model loader run in the Supabase Edge runtime (Deno) as well as in Node: everything they
 * import, transitively, must be free of Node APIs and of packages other than zod and TensorFlow.js.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { walkRuntimeImports } from '../testing/imports.js';

const SRC = path.resolve(import.meta.dirname, '..');
const ENTRY_POINTS = ['ml/features/index.ts', 'ml/load-model.ts', 'ml/probe.ts', 'ml/model.ts', 'ml/layers.ts', 'ml/synthetic.ts'];
const ALLOWED_PACKAGES = ['zod', '@tensorflow/tfjs', '@tensorflow/tfjs-backend-wasm'];

describe('modules shared with the Edge runtime', () => {
  it('import no Node APIs and no packages besides zod and TF.js, transitively', () => {
    const problems: string[] = [];
    const seen = walkRuntimeImports(SRC, ENTRY_POINTS, ({ rel, via, packages }) => {
      for (const p of packages) if (!ALLOWED_PACKAGES.includes(p)) problems.push(`${rel} (via ${via}) imports ${p}`);
    });
    expect(problems).toEqual([]);
    // the walk really covered the feature code, the layers and the loader
    expect([...seen]).toEqual(expect.arrayContaining(['ml/features/encode.ts', 'ml/features/rows.ts', 'ml/layers.ts', 'ml/sha256.ts', 'errors.ts']));
  });
});
