/**
 * Write a conversion as a model folder: `model.json`, the shards and `manifest.json` (kind `keras-export`), so
 * that `am-ml publish` can take the folder as it is. Everything is written into a hidden temporary sibling folder,
 * checked (the optional `beforeCommit` hook runs validation there), and only then renamed into place: a failure or
 * an interruption leaves no partial output folder.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { throwIfAborted, UsageError } from '../../errors.js';
import { makeRunId, type ModelManifest } from '../artifacts.js';
import { describeFiles, writeManifest } from '../artifacts-fs.js';
import type { ExportEvent, KerasConversion } from './convert.js';

export interface WriteExportOptions {
  outDir: string;
  /** Replace an existing non-empty output folder. */
  force?: boolean;
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

/** Refuse an output path that exists as a file, or as a non-empty folder without `force`. Call before converting. */
export function checkOutDir(outDir: string, force = false): void {
  if (!existsSync(outDir)) return;
  const st = statSync(outDir);
  if (!st.isDirectory()) throw new UsageError(`--out ${outDir} exists and is not a folder.`, { hint: 'Choose a new folder name.' });
  if (readdirSync(outDir).length > 0 && !force) {
    throw new UsageError(`--out ${outDir} already exists and is not empty.`, { hint: 'Choose a new folder, or pass --force to replace it.' });
  }
}

export async function writeExportFolder(conversion: KerasConversion, opts: WriteExportOptions): Promise<WriteExportResult> {
  const emit = opts.onProgress ?? (() => {});
  const outDir = path.resolve(opts.outDir);
  checkOutDir(outDir, opts.force);
  const parent = path.dirname(outDir);
  mkdirSync(parent, { recursive: true });
  const tag = `${process.pid}-${randomBytes(4).toString('hex')}`;
  const tmp = path.join(parent, `.${path.basename(outDir)}.tmp-${tag}`);
  mkdirSync(tmp);
  try {
    emit({ kind: 'phase', phase: 'write', detail: outDir });
    const modelJsonText = `${JSON.stringify(conversion.modelJson)}\n`;
    writeFileSync(path.join(tmp, 'model.json'), modelJsonText);
    emit({ kind: 'file', path: 'model.json', bytes: Buffer.byteLength(modelJsonText) });
    for (const shard of conversion.shards) {
      throwIfAborted(opts.signal, `Nothing was written to ${outDir}.`);
      writeFileSync(path.join(tmp, shard.name), shard.data);
      emit({ kind: 'file', path: shard.name, bytes: shard.data.length });
    }
    const files = await describeFiles(tmp);
    const now = (opts.now ?? (() => new Date()))();
    const main = conversion.source.files[0];
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
