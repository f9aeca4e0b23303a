/**
 * Writing a training run folder, all or nothing: everything goes into a hidden temporary sibling folder and is
 * renamed into place at the end, after `manifest.json` (which lists every file with size and sha256) is written.
 * A failed or interrupted run leaves no folder at `out`, only a temp folder that is removed on the way out.
 *
 *   <out>/user_tower/model.json + group1-shard*.bin     TF.js layers model of the user tower
 *   <out>/item_tower/model.json + group1-shard*.bin     TF.js layers model of the item tower
 *   <out>/features.json                                 the frozen feature spec
 *   <out>/metrics.json                                  final, validation and per-epoch metrics, gate outcomes
 *   <out>/probe.json                                    probe inputs and expected embeddings
 *   <out>/manifest.json                                 ModelManifest (kind two-tower)
 */
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ConflictError } from '../errors.js';
import { FEATURES_FILE, MANIFEST_SCHEMA_VERSION, METRICS_FILE, type ModelManifest, PROBE_FILE, type TensorSpec } from './artifacts.js';
import { describeFiles, sha256Bytes, writeManifest } from './artifacts-fs.js';
import { type FeatureSpec, serializeFeatureSpec, towerInputSpecs, type TowerName } from './features/index.js';
import { CUSTOM_LAYER_CLASSES } from './layers.js';
import { towerModelFiles } from './model.js';
import type { Probe } from './probe.js';
import type { tf } from './tf.js';

export const TOWER_DIRS: Record<TowerName, string> = { user: 'user_tower', item: 'item_tower' };
export const EMBEDDING_OUTPUT = 'embedding';

export interface RunFolderContent {
  runId: string;
  createdAt: string;
  spec: FeatureSpec;
  models: { user: tf.LayersModel; item: tf.LayersModel };
  dim: number;
  metrics: Record<string, unknown>;
  /** Flat headline metrics for the manifest (`recall@100`, `popularity.recall@100`, …). */
  headline: Record<string, number>;
  probe: Probe;
  amMl: { version: string; gitCommit: string | null };
  tf: { version: string; backend: string };
  data: { source: string; sha256: string; summary: Record<string, unknown> };
  config: Record<string, unknown>;
}

/** Manifest tensor specs of a tower: its inputs in model order and the embedding output. */
export function towerTensorSpecs(spec: FeatureSpec, tower: TowerName, dim: number): { inputs: TensorSpec[]; outputs: TensorSpec[] } {
  return {
    inputs: towerInputSpecs(spec, tower).map((s) => ({ name: s.name, shape: [null, s.width], dtype: s.dtype })),
    outputs: [{ name: EMBEDDING_OUTPUT, shape: [null, dim], dtype: 'float32' }],
  };
}

/** Refuse an existing output folder before any work is done (runs are immutable). */
export function assertRunFolderFree(out: string): void {
  if (existsSync(out)) {
    throw new ConflictError(`The run folder ${out} already exists; runs are never overwritten.`, {
      code: 'RUN_EXISTS',
      hint: 'Choose another --out, or omit it to get a new .am-ml/runs/<runId>.',
    });
  }
}

const json = (v: unknown) => `${JSON.stringify(v, null, 2)}\n`;

export async function writeRunFolder(out: string, c: RunFolderContent): Promise<ModelManifest> {
  assertRunFolderFree(out);
  const parent = path.dirname(out);
  mkdirSync(parent, { recursive: true });
  const tmp = path.join(parent, `.${path.basename(out)}.tmp-${process.pid}-${Date.now()}`);
  mkdirSync(tmp);
  try {
    for (const tower of ['user', 'item'] as const) {
      const dir = path.join(tmp, TOWER_DIRS[tower]);
      mkdirSync(dir);
      for (const [name, bytes] of await towerModelFiles(c.models[tower])) writeFileSync(path.join(dir, name), bytes);
    }
    const featuresText = serializeFeatureSpec(c.spec);
    writeFileSync(path.join(tmp, FEATURES_FILE), featuresText);
    writeFileSync(path.join(tmp, METRICS_FILE), json(c.metrics));
    writeFileSync(path.join(tmp, PROBE_FILE), json(c.probe));
    const manifest: ModelManifest = {
      schemaVersion: MANIFEST_SCHEMA_VERSION,
      kind: 'two-tower',
      runId: c.runId,
      createdAt: c.createdAt,
      amMl: c.amMl,
      tf: c.tf,
      towers: {
        user: { path: TOWER_DIRS.user, ...towerTensorSpecs(c.spec, 'user', c.dim), customLayers: CUSTOM_LAYER_CLASSES },
        item: { path: TOWER_DIRS.item, ...towerTensorSpecs(c.spec, 'item', c.dim), customLayers: CUSTOM_LAYER_CLASSES },
      },
      embeddingDim: c.dim,
      featureSpecSha256: sha256Bytes(featuresText),
      metrics: c.headline,
      data: c.data,
      config: c.config,
      files: await describeFiles(tmp),
    };
    writeManifest(tmp, manifest);
    renameSync(tmp, out);
    return manifest;
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
}
