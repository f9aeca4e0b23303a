/**
 * Resolve `--model current|<version>` to a verified local folder. A version is downloaded once into
 * `<cacheDir>/<sha256 of its manifest>/`: the manifest hashes every file, so its own hash names the exact content.
 * A download lands in a temporary folder, every file is checked against the manifest's sha256, and the folder is
 * renamed into place only when complete. A cached folder is re-hashed on every use (models are tens of MB; a
 * silently damaged model is the failure this project exists to prevent) and downloaded again if it fails.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ConflictError, throwIfAborted, ValidationFailedError } from '../errors.js';
import type { ModelManifest } from '../ml/artifacts.js';
import { TRANSFER_CONCURRENCY } from './context.js';
import { sha256Hex, sha256OfFile } from './hash.js';
import { assertId, manifestPath, pointerPath, VERSION_MANIFEST, versionDir } from './paths.js';
import { parsePointer } from './pointer.js';
import { mapLimit } from './pool.js';
import type { ModelStore, ParseManifest } from './types.js';

export type ModelCacheEvent =
  | { kind: 'resolved'; version: string; ref: string }
  | { kind: 'cache-hit'; dir: string }
  | { kind: 'cache-damaged'; dir: string; problem: string }
  | { kind: 'download-start'; version: string; files: number; bytes: number }
  | { kind: 'download-file'; path: string; bytes: number };

export interface ResolveStoredModelOptions {
  store: ModelStore;
  name: string;
  /** `current` or a version id. */
  ref: string;
  cacheDir: string;
  parseManifest: ParseManifest;
  signal?: AbortSignal;
  onProgress?: (e: ModelCacheEvent) => void;
  concurrency?: number;
}

export interface ResolvedModel {
  /** Local folder holding manifest.json and every file it lists, all verified. */
  dir: string;
  manifest: ModelManifest;
  manifestSha256: string;
  name: string;
  version: string;
  source: 'cache' | 'download';
  store: string;
}

async function problemIn(dir: string, manifest: ModelManifest, manifestBytes: Uint8Array): Promise<string | null> {
  try {
    const onDisk = await readFile(path.join(dir, VERSION_MANIFEST));
    if (!Buffer.from(manifestBytes).equals(onDisk)) return 'manifest.json differs';
    for (const f of manifest.files) {
      const file = path.join(dir, f.path);
      if ((await stat(file)).size !== f.size) return `${f.path} has the wrong size`;
      if ((await sha256OfFile(file)) !== f.sha256) return `${f.path} has the wrong sha256`;
    }
    return null;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'a file is missing' : (err as Error).message;
  }
}

export async function resolveStoredModel(opts: ResolveStoredModelOptions): Promise<ResolvedModel> {
  const { store, name } = opts;
  let version = opts.ref;
  let expectedSha: string | undefined;
  if (opts.ref === 'current') {
    const text = await store.readPointer(pointerPath(name), { signal: opts.signal });
    if (text === null) {
      throw new ConflictError(`No ${name} version is current in ${store.url}.`, {
        code: 'NO_CURRENT',
        hint: 'Publish one with `am-ml publish <model-dir>`, or pass --model <dir> to use a local model folder.',
      });
    }
    const pointer = parsePointer(text, `${store.url}/${pointerPath(name)}`);
    version = pointer.current.version;
    expectedSha = pointer.current.manifest.sha256;
  } else {
    assertId(version, 'version', '--model');
  }
  opts.onProgress?.({ kind: 'resolved', version, ref: opts.ref });

  const manifestBytes = await store.getFile(manifestPath(name, version), { signal: opts.signal });
  if (!manifestBytes) {
    throw new ConflictError(`${name} version ${version} is not complete in ${store.url} (no manifest.json).`, {
      code: 'MODEL_VERSION_MISSING',
      hint: 'Run `am-ml models` to see the complete versions.',
      details: { version },
    });
  }
  const manifestSha256 = sha256Hex(manifestBytes);
  if (expectedSha && expectedSha !== manifestSha256) {
    throw new ValidationFailedError(`The manifest of ${name} ${version} does not match the sha256 recorded in current.json.`, {
      code: 'MANIFEST_MISMATCH',
      hint: 'Run `am-ml models verify --repair`.',
      details: { expected: expectedSha, found: manifestSha256 },
    });
  }
  const manifest = opts.parseManifest(new TextDecoder().decode(manifestBytes), `${store.url}/${manifestPath(name, version)}`);
  const result = { manifest, manifestSha256, name, version, store: store.url };
  const finalDir = path.join(opts.cacheDir, manifestSha256);

  if (existsSync(finalDir)) {
    const problem = await problemIn(finalDir, manifest, manifestBytes);
    if (!problem) {
      opts.onProgress?.({ kind: 'cache-hit', dir: finalDir });
      return { ...result, dir: finalDir, source: 'cache' };
    }
    opts.onProgress?.({ kind: 'cache-damaged', dir: finalDir, problem });
    await rm(finalDir, { recursive: true, force: true });
  }

  await mkdir(opts.cacheDir, { recursive: true });
  const tmp = path.join(opts.cacheDir, `.tmp-${randomBytes(6).toString('hex')}`);
  try {
    opts.onProgress?.({ kind: 'download-start', version, files: manifest.files.length, bytes: manifest.files.reduce((s, f) => s + f.size, 0) });
    await mapLimit(manifest.files, opts.concurrency ?? TRANSFER_CONCURRENCY, async (f) => {
      throwIfAborted(opts.signal);
      const body = await store.getFile(`${versionDir(name, version)}/${f.path}`, { signal: opts.signal });
      if (!body) {
        throw new ValidationFailedError(`${name} ${version} is incomplete in ${store.url}: ${f.path} is missing.`, {
          code: 'VERSION_INCOMPLETE',
          hint: 'Run `am-ml models verify --repair`.',
        });
      }
      const sha = sha256Hex(body);
      if (sha !== f.sha256) {
        throw new ValidationFailedError(`${name} ${version}: ${f.path} downloads with sha256 ${sha.slice(0, 12)}…, expected ${f.sha256.slice(0, 12)}….`, {
          code: 'CHECKSUM_MISMATCH',
          hint: 'The stored copy is damaged; run `am-ml models verify --repair`.',
          details: { path: f.path, expected: f.sha256, found: sha },
        });
      }
      const file = path.join(tmp, f.path);
      await mkdir(path.dirname(file), { recursive: true });
      await writeFile(file, body);
      opts.onProgress?.({ kind: 'download-file', path: f.path, bytes: f.size });
    });
    await writeFile(path.join(tmp, VERSION_MANIFEST), manifestBytes);
    try {
      await rename(tmp, finalDir);
    } catch (err) {
      // Another process finished the same download first; its copy is identical by construction.
      if (!existsSync(finalDir)) throw err;
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  return { ...result, dir: finalDir, source: 'download' };
}
