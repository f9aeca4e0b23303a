/**
 * Write a conversion as a model folder: `model.json`, the shards and `manifest.json` (kind `keras-export`), so
 * that `am-ml publish` can take the folder as it is. Everything is written into a hidden temporary sibling folder,
 * checked (the optional `beforeCommit` hook runs validation there), and only then renamed into place: a failure or
 * an interruption leaves no partial output folder.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { throwIfAborted, UsageError } from '../../errors.js';
import { MANIFEST_FILE, makeRunId, type ModelManifest } from '../artifacts.js';
import { writeManifest } from '../artifacts-fs.js';
import { type ExportEvent, finalModelJson, type KerasConversion, resolvedSourceFiles } from './convert.js';
import { sha256Hex } from './source.js';

export interface WriteExportOptions {
  outDir: string;
  /** Replace an existing model folder. */
  force?: boolean;
  /** Refuse output folders that would swallow these (see checkOutDir). */
  guard?: { cwd?: string; inputs?: string[] };
  amMl: { version: string; gitCommit: string | null };
  /** Runs on the complete temporary folder before it is moved into place; throw to abort the export. */
  beforeCommit?: (tmpDir: string) => Promise<void>;
  /** Extra manifest fields (tf backend used by validation, export config). */
  manifestExtras?: Pick<ModelManifest, 'tf' | 'config' | 'metrics'>;
  onProgress?: (e: ExportEvent) => void;
  signal?: AbortSignal;
  now?: () => Date;
}

export interface WriteExportResult {
  outDir: string;
  files: Array<{ path: string; size: number; sha256: string }>;
  manifest: ModelManifest;
}

/**
 * Refuse an output path that exists as a file, or as a non-empty folder without `force`. `--force` only replaces
 * a folder that holds a model (model.json or manifest.json), never the working directory, one of its parents, or a
 * folder holding an input file: replacing means deleting. Call before converting.
 */
export function checkOutDir(outDir: string, force = false, guard: { cwd?: string; inputs?: string[] } = {}): void {
  const out = path.resolve(outDir);
  const within = (child: string, parent: string) => {
    const rel = path.relative(parent, child);
    return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
  };
  if (path.parse(out).root === out) throw new UsageError(`--out ${outDir} is a filesystem root.`, { hint: 'Choose a new folder for the export.' });
  if (guard.cwd && within(path.resolve(guard.cwd), out)) {
    throw new UsageError(`--out ${outDir} is the working directory or one of its parents.`, { hint: 'Choose a new folder for the export.' });
  }
  for (const input of guard.inputs ?? []) {
    if (within(path.resolve(input), out)) throw new UsageError(`--out ${outDir} holds the input ${input}.`, { hint: 'Write the export to a folder of its own.' });
  }
  if (!existsSync(out)) return;
  const st = statSync(out);
  if (!st.isDirectory()) throw new UsageError(`--out ${outDir} exists and is not a folder.`, { hint: 'Choose a new folder name.' });
  const entries = readdirSync(out);
  if (entries.length === 0) return;
  if (!force) throw new UsageError(`--out ${outDir} already exists and is not empty.`, { hint: 'Choose a new folder, or pass --force to replace it.' });
  if (!entries.includes('model.json') && !entries.includes(MANIFEST_FILE)) {
    throw new UsageError(`--out ${outDir} is not a model folder (no model.json or manifest.json); --force only replaces model folders.`, {
      hint: 'Choose a new folder, or empty this one yourself.',
    });
  }
}

export async function writeExportFolder(conversion: KerasConversion, opts: WriteExportOptions): Promise<WriteExportResult> {
  const emit = opts.onProgress ?? (() => {});
  const outDir = path.resolve(opts.outDir);
  checkOutDir(outDir, opts.force, opts.guard);
  const parent = path.dirname(outDir);
  mkdirSync(parent, { recursive: true });
  const tag = `${process.pid}-${randomBytes(4).toString('hex')}`;
  const tmp = path.join(parent, `.${path.basename(outDir)}.tmp-${tag}`);
  mkdirSync(tmp);
  try {
    emit({ kind: 'phase', phase: 'write', detail: outDir });
    // Shards first: they do not depend on the source file's hash, which may still be computing on the pool.
    // Each buffer is hashed from memory (thread pool) while it is written: the manifest lists the sha256 of the
    // bytes written, without reading the files back.
    const written: Array<{ path: string; size: number; sha256: Promise<string> }> = [];
    const put = async (name: string, data: Uint8Array) => {
      throwIfAborted(opts.signal, `Nothing was written to ${outDir}.`);
      written.push({ path: name, size: data.length, sha256: sha256Hex(data) });
      await writeFile(path.join(tmp, name), data);
      emit({ kind: 'file', path: name, bytes: data.length });
    };
    // Shards are written concurrently (the writes and the hashes share the thread pool).
    await Promise.all(conversion.shards.map((shard) => put(shard.name, shard.data)));
    const modelJson = await finalModelJson(conversion);
    await put('model.json', new Uint8Array(Buffer.from(`${JSON.stringify(modelJson)}\n`)));
    const files = (await Promise.all(written.map(async (f) => ({ path: f.path, size: f.size, sha256: await f.sha256 })))).sort((a, b) => (a.path < b.path ? -1 : 1));
    const main = (await resolvedSourceFiles(conversion))[0];
    const now = (opts.now ?? (() => new Date()))();
    const manifest: ModelManifest = {
      schemaVersion: 1,
      kind: 'keras-export',
      runId: makeRunId(now),
      createdAt: now.toISOString(),
      amMl: opts.amMl,
      ...(opts.manifestExtras?.tf ? { tf: opts.manifestExtras.tf } : {}),
      towers: {
        [conversion.modelName]: {
          path: '.',
          inputs: conversion.inputs,
          outputs: conversion.outputs,
          customLayers: conversion.customLayers,
        },
      },
      ...(conversion.outputs.length === 1 && typeof conversion.outputs[0].shape[1] === 'number' && conversion.outputs[0].shape.length === 2
        ? { embeddingDim: conversion.outputs[0].shape[1] as number }
        : {}),
      ...(opts.manifestExtras?.metrics ? { metrics: opts.manifestExtras.metrics } : {}),
      config: {
        ...(opts.manifestExtras?.config ?? {}),
        ...(conversion.tower ? { tower: conversion.tower } : {}),
      },
      source: {
        file: path.basename(main.path),
        sha256: main.sha256,
        format: conversion.source.format,
        kerasVersion: conversion.source.kerasVersion,
      },
      files,
    };
    writeManifest(tmp, manifest);
    if (opts.beforeCommit) {
      emit({ kind: 'phase', phase: 'validate' });
      await opts.beforeCommit(tmp);
    }
    throwIfAborted(opts.signal, `Nothing was written to ${outDir}.`);
    if (existsSync(outDir)) {
      // --force: move the old folder aside first, so there is never a moment without a complete folder.
      const old = path.join(parent, `.${path.basename(outDir)}.old-${tag}`);
      renameSync(outDir, old);
      renameSync(tmp, outDir);
      rmSync(old, { recursive: true, force: true });
    } else {
      renameSync(tmp, outDir);
    }
    return { outDir, files, manifest };
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
}
