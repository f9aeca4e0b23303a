#!/usr/bin/env node
/**
 * Copy `am-ml/edge` (built by `npm run build` into dist/) into a Supabase functions folder, so Edge Functions can
 * import it without am-ml being published to a registry:
 *
 *   npm run build && node scripts/vendor-edge.mjs [<out-dir>]
 *   # default <out-dir>: examples/supabase/functions/_shared/am-ml
 *   # for the app:       node scripts/vendor-edge.mjs ../app/supabase/functions/_shared/am-ml
 *
 * What is copied: every module `dist/edge/index.js` imports, transitively (the same tree Node runs; relative
 * paths kept), with its `.d.ts`, plus whatever those declarations import, so `deno check` sees real types. Each `.js`
 * gets a `// @ts-self-types` line pointing at its declarations (Deno does not pair `x.js` with `x.d.ts` on its
 * own); source-map comments are dropped. `@tensorflow/tfjs` and `zod` stay bare imports: the function's
 * deno.json maps them to npm packages. The folder is replaced as a whole, and a VERSION file records what was copied.
 *
 * No bundler: the files are tsc's output, so what runs in Deno is byte for byte what the Node tests load.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const DIST = path.join(ROOT, 'dist');
const ENTRY = 'edge/index.js';
const DEFAULT_OUT = path.join(ROOT, 'examples/supabase/functions/_shared/am-ml');

/** Relative specifiers of a file: value imports only for .js, every import for .d.ts. */
function relativeImports(file, withTypes) {
  const code = readFileSync(file, 'utf8');
  const specs = [
    ...[...code.matchAll(/^\s*(?:import|export)\s+(type\s+)?[^'"]*?from\s+['"]([^'"]+)['"]/gm)].filter((m) => withTypes || !m[1]).map((m) => m[2]),
    ...[...code.matchAll(/^\s*import\s+['"]([^'"]+)['"]/gm)].map((m) => m[1]),
    ...[...code.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g)].map((m) => m[1]),
  ];
  return specs.filter((s) => s.startsWith('.'));
}

/** dist-relative module paths (`ml/tf.js`) reachable from the entry. */
export function edgeModules() {
  const seen = new Set();
  const visit = (rel) => {
    if (seen.has(rel)) return;
    const js = path.join(DIST, rel);
    if (!existsSync(js)) throw new Error(`${path.relative(ROOT, js)} is missing: run npm run build first.`);
    seen.add(rel);
    const dts = js.replace(/\.js$/, '.d.ts');
    const next = [...relativeImports(js, false), ...(existsSync(dts) ? relativeImports(dts, true) : [])];
    for (const spec of next) visit(path.posix.normalize(path.posix.join(path.posix.dirname(rel), spec)));
  };
  visit(ENTRY);
  return [...seen].sort();
}

export function vendorEdge(outDir = DEFAULT_OUT) {
  const out = path.resolve(outDir);
  const tmp = `${out}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  const modules = edgeModules();
  let bytes = 0;
  for (const rel of modules) {
    const js = path.join(DIST, rel);
    const dts = js.replace(/\.js$/, '.d.ts');
    const target = path.join(tmp, rel);
    mkdirSync(path.dirname(target), { recursive: true });
    let code = readFileSync(js, 'utf8').replace(/^\/\/# sourceMappingURL=.*$/m, '');
    if (existsSync(dts)) {
      code = `// @ts-self-types="./${path.basename(dts)}"\n${code}`;
      const types = readFileSync(dts, 'utf8').replace(/^\/\/# sourceMappingURL=.*$/m, '');
      writeFileSync(target.replace(/\.js$/, '.d.ts'), types);
      bytes += types.length;
    }
    writeFileSync(target, code);
    bytes += code.length;
  }
  const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
  writeFileSync(
    path.join(tmp, 'VERSION'),
    `am-ml ${pkg.version} edge runtime, copied from dist/ by scripts/vendor-edge.mjs.\nEntry: edge/index.js. Needs @tensorflow/tfjs ${pkg.dependencies['@tensorflow/tfjs']} and zod ${pkg.dependencies.zod} in the import map.\n`,
  );
  rmSync(out, { recursive: true, force: true });
  mkdirSync(path.dirname(out), { recursive: true });
  renameSync(tmp, out);
  return { out, files: modules.length, bytes };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const r = vendorEdge(process.argv[2]);
  console.log(`Copied ${r.files} modules (${Math.round(r.bytes / 1024)} KiB) of am-ml/edge into ${path.relative(process.cwd(), r.out) || '.'}`);
}
