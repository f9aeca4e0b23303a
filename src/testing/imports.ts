/**
 * What a TypeScript source file imports, for the tests that check the import rules (architecture.test.ts, the two
 * Edge purity walks). Regex-based: it relies on the one formatting the sources follow (one import per statement
 * start, string specifiers).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';

export interface ImportRef {
  spec: string;
  /** `import type` / `export type`: gone from the JavaScript that runs. */
  typeOnly: boolean;
}

/** Static, side-effect and dynamic import specifiers. */
export function importsOf(code: string): ImportRef[] {
  const refs: ImportRef[] = [];
  for (const m of code.matchAll(/^\s*(import|export)\s+(type\s+)?[^'"]*?from\s+['"]([^'"]+)['"]/gm)) refs.push({ spec: m[3], typeOnly: Boolean(m[2]) });
  for (const m of code.matchAll(/^\s*import\s+['"]([^'"]+)['"]/gm)) refs.push({ spec: m[1], typeOnly: false });
  for (const m of code.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g)) refs.push({ spec: m[1], typeOnly: false });
  return refs;
}

export function withoutComments(code: string): string {
  return code.replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, '');
}

export interface WalkedFile {
  /** Path relative to the source root (`ml/layers.ts`). */
  rel: string;
  /** The file that imported it (itself for an entry point). */
  via: string;
  code: string;
  /** Packages it imports at runtime. */
  packages: string[];
  /** Source files it imports at runtime, relative to the root, `.ts`. */
  local: string[];
}

/**
 * Every source file reachable from `entries` through runtime (not type-only) imports, each visited once; `onFile`
 * sees each with its imports. Returns the files visited.
 */
export function walkRuntimeImports(root: string, entries: string[], onFile: (f: WalkedFile) => void): Set<string> {
  const seen = new Set<string>();
  const visit = (rel: string, via: string) => {
    if (seen.has(rel)) return;
    seen.add(rel);
    const code = readFileSync(path.join(root, rel), 'utf8');
    const packages: string[] = [];
    const local: string[] = [];
    for (const ref of importsOf(code)) {
      if (ref.typeOnly) continue;
      if (ref.spec.startsWith('.')) local.push(path.relative(root, path.resolve(path.dirname(path.join(root, rel)), ref.spec)).replace(/\\/g, '/').replace(/\.js$/, '.ts'));
      else packages.push(ref.spec);
    }
    onFile({ rel, via, code, packages, local });
    for (const l of local) visit(l, rel);
  };
  for (const entry of entries) visit(entry, entry);
  return seen;
}
