/**
 * `am-ml/edge` runs in Supabase Edge Functions (Deno): everything it imports, transitively, must be free of Node
 * APIs and Node globals, and of packages other than zod and TF.js. It may use the registry's pure pointer and path
 * modules (the pointer format has one implementation), never a registry backend, the database or the CLI.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { walkRuntimeImports, withoutComments } from '../testing/imports.js';

const SRC = path.resolve(import.meta.dirname, '..');
const ALLOWED_PACKAGES = ['zod', '@tensorflow/tfjs', '@tensorflow/tfjs-backend-wasm'];
const ALLOWED_AREAS = ['edge', 'ml', 'registry', 'errors.ts'];
const ALLOWED_REGISTRY = ['registry/pointer.ts', 'registry/paths.ts'];
const NODE_ONLY = /\bprocess\.|\bBuffer\b|__dirname|__filename|\brequire\(|import\.meta\.(url|dirname|filename)/;

describe('am-ml/edge', () => {
  it('imports no Node APIs, no Node globals and no packages besides zod and TF.js, transitively', () => {
    const problems: string[] = [];
    const seen = walkRuntimeImports(SRC, ['edge/index.ts'], ({ rel, via, code, packages, local }) => {
      const bare = withoutComments(code);
      if (NODE_ONLY.test(bare)) problems.push(`${rel} (via ${via}) uses ${NODE_ONLY.exec(bare)![0]}`);
      for (const p of packages) if (!ALLOWED_PACKAGES.includes(p)) problems.push(`${rel} (via ${via}) imports ${p}`);
      for (const target of local) {
        if (!ALLOWED_AREAS.includes(target.split('/')[0])) problems.push(`${rel} imports ${target}`);
        if (target.startsWith('registry/') && !ALLOWED_REGISTRY.includes(target)) problems.push(`${rel} imports ${target} (only the pointer format)`);
      }
    });
    expect(problems).toEqual([]);
    // the walk covered the loader, the feature code, the layers and the pointer format
    expect([...seen]).toEqual(expect.arrayContaining(['ml/load-model.ts', 'ml/features/rows.ts', 'ml/layers.ts', 'ml/runtime/index.ts', 'registry/pointer.ts', 'edge/store.ts']));
  });

  it('is a package export next to am-ml/runtime', () => {
    const pkg = JSON.parse(readFileSync(path.join(SRC, '..', 'package.json'), 'utf8'));
    expect(pkg.exports['./edge']).toEqual({ types: './dist/edge/index.d.ts', default: './dist/edge/index.js' });
  });
});
