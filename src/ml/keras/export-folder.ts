/**
 * Write a conversion as a model folder: `model.json`, the shards and `manifest.json` (kind `keras-export`), so
 * that `am-ml publish` can take the folder as it is. Everything is written into a hidden temporary sibling folder,
 * checked (the optional `beforeCommit` hook runs validation there), and only then renamed into place: a failure or
 * an interruption leaves no partial output folder.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import path from 'node:path';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { throwIfAborted, UsageError } from '../../errors.js';
import { MANIFEST_FILE, makeRunId, type ModelManifest } from '../artifacts.js';
import { writeManifest } from '../artifacts-fs.js';
import { type ExportEvent, finalModelJson, type KerasConversion, resolvedSourceFiles } from './convert.js';
import { sha256OfPieces, startHashJobs } from './parallel-sha256.js';

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

/** Write a new file from pieces (views into the source bytes), completing partial writes. */
function writePieces(file: string, pieces: readonly Uint8Array[]): void {
  const fd = openSync(file, 'wx');
  try {
    for (const piece of pieces) {
      for (let at = 0; at < piece.byteLength; ) at += writeSync(fd, piece, at, piece.byteLength - at);
    }
  } finally {
    closeSync(fd);
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
    // The manifest lists the sha256 of the bytes written, hashed from memory rather than read back. The shard hash
    // jobs start now: the worker takes them once it has hashed the source file, and this thread joins in when the
    // shards are on disk (parallel-sha256.ts).
    const hashing = startHashJobs(conversion.shards.map((s) => s.pieces));
    for (const shard of conversion.shards) {
      throwIfAborted(opts.signal, `Nothing was written to ${outDir}.`);
      writePieces(path.join(tmp, shard.name), shard.pieces);
      emit({ kind: 'file', path: shard.name, bytes: shard.size });
      // Synchronous writes of views (no copy); the pause between shards lets an interrupt be noticed.
      await yieldToEventLoop();
    }
    const shardHashes = await hashing.finish();
    const modelJsonBytes = new Uint8Array(Buffer.from(`${JSON.stringify(await finalModelJson(conversion))}\n`));
    throwIfAborted(opts.signal, `Nothing was written to ${outDir}.`);
    writePieces(path.join(tmp, 'model.json'), [modelJsonBytes]);
    emit({ kind: 'file', path: 'model.json', bytes: modelJsonBytes.length });
    const files = [
      ...conversion.shards.map((shard, i) => ({ path: shard.name, size: shard.size, sha256: shardHashes[i] })),
      { path: 'model.json', size: modelJsonBytes.length, sha256: sha256OfPieces([modelJsonBytes]) },
    ].sort((a, b) => (a.path < b.path ? -1 : 1));
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
