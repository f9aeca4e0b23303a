/**
 * Enforces STYLE.md §2: core modules (ml, dmm, registry, db) import only what their layer may, only ml/tf.ts loads
 * TensorFlow.js, and core code never reads env, prints, or exits. A failure names the file and the import.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { importsOf, withoutComments } from './testing/imports.js';

const SRC = path.resolve(import.meta.dirname);

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  // git keeps no empty folders: an area nobody has written yet is absent from a fresh checkout.
  if (!existsSync(dir)) return out;
  for (const name of readdirSync(dir)) {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) out.push(...sourceFiles(full));
    else if (name.endsWith('.ts') && !name.endsWith('.test.ts')) out.push(full);
  }
  return out;
}

/** The src/ area a relative import lands in (`ml`, `db`, `errors`, `commands`, ...), or the package name. */
function target(file: string, spec: string): { area?: string; pkg?: string; rel?: string } {
  if (!spec.startsWith('.')) {
    const parts = spec.split('/');
    return { pkg: spec.startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0] };
  }
  const abs = path.resolve(path.dirname(file), spec);
  const rel = path.relative(SRC, abs).replace(/\\/g, '/');
  return { area: rel.split('/')[0].replace(/\.(js|ts)$/, ''), rel };
}

const CORE_AREAS = ['ml', 'dmm', 'registry', 'db'] as const;
type Core = (typeof CORE_AREAS)[number];

/** Areas each core layer may import; `typesFrom` may be imported with `import type` only. */
const ALLOWED: Record<Core, { areas: string[]; typesFrom: string[]; packages: (file: string) => string[] }> = {
  ml: {
    areas: ['ml', 'errors'],
    typesFrom: [],
    packages: (f) => ['zod', 'fflate', 'h5wasm', 'node:*', ...(/ml\/tf\.ts$/.test(f) ? ['@tensorflow/tfjs', '@tensorflow/tfjs-backend-wasm'] : [])],
  },
  dmm: { areas: ['dmm', 'errors'], typesFrom: ['db'], packages: () => ['zod', 'node:*'] },
  registry: {
    areas: ['registry', 'errors'],
    typesFrom: ['ml'],
    packages: (f) => [
      'zod',
      'node:*',
      ...(/registry\/backends\/supabase\.ts$/.test(f) ? ['@supabase/supabase-js'] : []),
      // The backend contract suite (STYLE.md §8) is a describe() factory that backend test files call.
      ...(/registry\/contract\.ts$/.test(f) ? ['vitest'] : []),
    ],
  },
  db: {
    areas: ['db', 'errors'],
    typesFrom: ['dmm', 'ml'],
    packages: (f) => [
      'pg',
      'pg-copy-streams',
      '@electric-sql/pglite',
      '@electric-sql/pglite-pgvector',
      'node:*',
      // Contract suites (STYLE.md §8: describeCatalogWriter, describeEmbeddingWriter) are describe() factories.
      ...(/db\/[\w.-]*contract\.ts$/.test(f) ? ['vitest'] : []),
    ],
  },
};

const CLI_LIBS = ['commander', 'ora', 'cli-progress'];

function pkgAllowed(pkg: string, allowed: string[]): boolean {
  return allowed.some((a) => (a === 'node:*' ? pkg.startsWith('node:') : a === pkg));
}

describe('architecture (STYLE.md §2)', () => {
  for (const area of CORE_AREAS) {
    it(`src/${area} imports only what its layer may`, () => {
      const violations: string[] = [];
      for (const file of sourceFiles(path.join(SRC, area))) {
        const code = readFileSync(file, 'utf8');
        const rule = ALLOWED[area];
        for (const ref of importsOf(code)) {
          const t = target(file, ref.spec);
          const where = `${path.relative(SRC, file)} imports '${ref.spec}'`;
          if (t.pkg) {
            if (!pkgAllowed(t.pkg, rule.packages(file))) violations.push(where);
          } else if (t.area && !rule.areas.includes(t.area)) {
            if (!(ref.typeOnly && rule.typesFrom.includes(t.area))) violations.push(where);
          }
        }
      }
      expect(violations).toEqual([]);
    });
  }

  it('core modules never read env, print, exit, or use CLI libraries', () => {
    const violations: string[] = [];
    for (const area of CORE_AREAS) {
      for (const file of sourceFiles(path.join(SRC, area))) {
        const code = withoutComments(readFileSync(file, 'utf8'));
        for (const bad of ['process.env', 'process.stdout', 'process.stderr', 'process.exit', 'console.']) {
          if (code.includes(bad)) violations.push(`${path.relative(SRC, file)} uses ${bad}`);
        }
        for (const ref of importsOf(code)) {
          if (CLI_LIBS.includes(ref.spec)) violations.push(`${path.relative(SRC, file)} imports ${ref.spec}`);
        }
      }
    }
    expect(violations).toEqual([]);
  });

  it('only src/ml/tf.ts imports TensorFlow.js', () => {
    const violations: string[] = [];
    for (const file of sourceFiles(SRC)) {
      if (/src\/ml\/tf\.ts$/.test(file)) continue;
      for (const ref of importsOf(readFileSync(file, 'utf8'))) {
        if (ref.spec.startsWith('@tensorflow/') && !ref.typeOnly) violations.push(`${path.relative(SRC, file)} imports ${ref.spec}`);
      }
    }
    expect(violations).toEqual([]);
  });

  it('the CLI registry imports no command module statically (lazy loading keeps --help fast)', () => {
    const code = readFileSync(path.join(SRC, 'cli.ts'), 'utf8');
    const staticCommandImports = [...code.matchAll(/^\s*import\s+(?!type)[^'"]*from\s+['"]\.\/commands\/[^'"]+['"]/gm)];
    expect(staticCommandImports.map((m) => m[0].trim())).toEqual([]);
    expect(code).not.toMatch(/from\s+['"]\.\/ml\//);
  });
});
