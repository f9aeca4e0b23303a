/**
 * The feature code and the model loader run in the Supabase Edge runtime (Deno) as well as in Node: everything they
 * import, transitively, must be free of Node APIs and of packages other than zod and TensorFlow.js.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = path.resolve(import.meta.dirname, '..');
const ENTRY_POINTS = ['ml/features/index.ts', 'ml/load-model.ts', 'ml/probe.ts', 'ml/model.ts', 'ml/layers.ts', 'ml/synthetic.ts'];
const ALLOWED_PACKAGES = ['zod', '@tensorflow/tfjs', '@tensorflow/tfjs-backend-wasm'];

/** Value imports (type-only imports vanish at runtime) of a source file, resolved to src-relative paths. */
function imports(rel: string): { local: string[]; packages: string[] } {
  const code = readFileSync(path.join(SRC, rel), 'utf8');
  const local: string[] = [];
  const packages: string[] = [];
  const specs = [
    ...[...code.matchAll(/^\s*(?:import|export)\s+(?!type\s)[^'"]*?from\s+['"]([^'"]+)['"]/gm)].map((m) => m[1]),
    ...[...code.matchAll(/^\s*import\s+['"]([^'"]+)['"]/gm)].map((m) => m[1]),
  ];
  for (const spec of specs) {
    if (spec.startsWith('.')) local.push(path.relative(SRC, path.resolve(path.dirname(path.join(SRC, rel)), spec)).replace(/\.js$/, '.ts'));
    else packages.push(spec);
  }
  return { local, packages };
}

describe('modules shared with the Edge runtime', () => {
  it('import no Node APIs and no packages besides zod and TF.js, transitively', () => {
    const seen = new Set<string>();
    const problems: string[] = [];
    const visit = (rel: string, via: string) => {
      if (seen.has(rel)) return;
      seen.add(rel);
      const { local, packages } = imports(rel);
      for (const p of packages) if (!ALLOWED_PACKAGES.includes(p)) problems.push(`${rel} (via ${via}) imports ${p}`);
      for (const l of local) visit(l, rel);
    };
    for (const entry of ENTRY_POINTS) visit(entry, entry);
    expect(problems).toEqual([]);
    // the walk really covered the feature code, the layers and the loader
    expect([...seen]).toEqual(expect.arrayContaining(['ml/features/encode.ts', 'ml/features/rows.ts', 'ml/layers.ts', 'ml/sha256.ts', 'errors.ts']));
  });
});
