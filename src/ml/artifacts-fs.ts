/**
 * Node file-system helpers for model folders: hash files, write a manifest listing them, read and verify one.
 * A model folder is only "complete" when every listed file exists with the listed size and sha256.
 */
import { createHash } from 'node:crypto';
import { createReadStream, readdirSync, readFileSync, statSync, writeFileSync, renameSync } from 'node:fs';
import path from 'node:path';
import { ConfigError, ValidationFailedError } from '../errors.js';
import { MANIFEST_FILE, type ManifestFile, type ModelManifest, ModelManifestSchema } from './artifacts.js';

/** sha256 of a file, streamed (model shards can be large). */
export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  await new Promise<void>((resolve, reject) => {
    createReadStream(file)
      .on('data', (chunk) => hash.update(chunk))
      .on('end', () => resolve())
      .on('error', reject);
  });
  return hash.digest('hex');
}

export function sha256Bytes(bytes: Uint8Array | string): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Every regular file under `dir` (relative POSIX paths, sorted), except manifest.json at the top. */
export function listModelFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const name of readdirSync(path.join(dir, rel)).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      const st = statSync(path.join(dir, r));
      if (st.isDirectory()) walk(r);
      else if (st.isFile() && r !== MANIFEST_FILE) out.push(r);
    }
  };
  walk('');
  return out;
}

/** Size and sha256 of each file. */
export async function describeFiles(dir: string, files: readonly string[] = listModelFiles(dir)): Promise<ManifestFile[]> {
  const out: ManifestFile[] = [];
  for (const f of files) {
    const full = path.join(dir, f);
    out.push({ path: f, size: statSync(full).size, sha256: await sha256File(full) });
  }
  return out;
}

/**
 * Validate and write `manifest.json` atomically (temp file + rename), so a reader never sees half a manifest.
 * Call it last: the manifest is what marks a folder complete.
 */
export function writeManifest(dir: string, manifest: ModelManifest): void {
  const parsed = ModelManifestSchema.safeParse(manifest);
  if (!parsed.success) {
    throw new ValidationFailedError(
      `Refusing to write an invalid manifest: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
      { code: 'MANIFEST_INVALID' },
    );
  }
  const tmp = path.join(dir, `.${MANIFEST_FILE}.tmp-${process.pid}`);
  writeFileSync(tmp, `${JSON.stringify(parsed.data, null, 2)}\n`);
  renameSync(tmp, path.join(dir, MANIFEST_FILE));
}

/** Parse a manifest document; zod problems become one ConfigError listing each (exit 3). */
export function parseManifest(text: string, where: string): ModelManifest {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`${where} is not valid JSON: ${(err as Error).message}`, [], { code: 'MANIFEST_INVALID' });
  }
  const parsed = ModelManifestSchema.safeParse(json);
  if (!parsed.success) {
    throw new ConfigError(
      `${where} is not a valid am-ml model manifest:`,
      parsed.error.issues.map((i) => ({ key: i.path.join('.') || '(root)', message: i.message })),
      { code: 'MANIFEST_INVALID', hint: 'Model folders are written by `am-ml train` and `am-ml export`.' },
    );
  }
  return parsed.data;
}

export function readManifest(dir: string): ModelManifest {
  const file = path.join(dir, MANIFEST_FILE);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    throw new ConfigError(`${dir} has no ${MANIFEST_FILE}; it is not an am-ml model folder.`, [], {
      code: 'MANIFEST_MISSING',
      hint: 'Point at a folder written by `am-ml train` or `am-ml export`.',
    });
  }
  return parseManifest(text, file);
}

export interface FileProblem {
  path: string;
  problem: 'missing' | 'size' | 'sha256';
  expected?: string | number;
  found?: string | number;
}

/** Re-hash every listed file; returns the problems (empty = complete). */
export async function verifyModelFolder(dir: string, manifest: ModelManifest): Promise<FileProblem[]> {
  const problems: FileProblem[] = [];
  for (const f of manifest.files) {
    const full = path.join(dir, f.path);
    let size: number;
    try {
      size = statSync(full).size;
    } catch {
      problems.push({ path: f.path, problem: 'missing' });
      continue;
    }
    if (size !== f.size) {
      problems.push({ path: f.path, problem: 'size', expected: f.size, found: size });
      continue;
    }
    const sha = await sha256File(full);
    if (sha !== f.sha256) problems.push({ path: f.path, problem: 'sha256', expected: f.sha256, found: sha });
  }
  return problems;
}
