/**
 * Test fixture generator: writes a tiny model folder of the shape `am-ml train` (kind `two-tower`) or
 * `am-ml export` (kind `keras-export`) produce: TF.js layers-model towers (`model.json` + one float32 weight shard
 * each, a single Dense layer with seeded weights), the side files of a training run, and a valid `manifest.json`
 * written with `ml/artifacts-fs.ts`. Different seeds give different bytes, so two runs are two distinct versions.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { FEATURES_FILE, type ModelManifest, METRICS_FILE, PROBE_FILE } from '../ml/artifacts.js';
import { describeFiles, sha256File, writeManifest } from '../ml/artifacts-fs.js';
import { AMML_VERSION } from '../version.js';
import { mulberry32 } from '../ml/rng.js';

export interface ModelFolderOptions {
  kind?: 'two-tower' | 'keras-export';
  /** Seeds the weights and the run id. @default 1 */
  seed?: number;
  inputDim?: number;
  /** Embedding (Dense output) dimension. @default 4 */
  dim?: number;
  /** Flat metrics for manifest.metrics and metrics.json. @default recall@100 0.3, ndcg@10 0.1 */
  metrics?: Record<string, number>;
  runId?: string;
}

function writeDenseTower(dir: string, towerName: string, inputDim: number, dim: number, rand: () => number): void {
  mkdirSync(dir, { recursive: true });
  const weights = new Float32Array(inputDim * dim + dim).map(() => rand() * 2 - 1);
  const modelJson = {
    format: 'layers-model',
    generatedBy: 'am-ml test fixture (src/testing/model-folder.ts)',
    convertedBy: null,
    modelTopology: {
      class_name: 'Sequential',
      config: {
        name: towerName,
        layers: [
          {
            class_name: 'Dense',
            config: { name: `${towerName}_dense`, units: dim, activation: 'linear', use_bias: true, dtype: 'float32', batch_input_shape: [null, inputDim] },
          },
        ],
      },
      keras_version: 'tfjs-layers 4.22.0',
      backend: 'tensor_flow.js',
    },
    weightsManifest: [
      {
        paths: ['group1-shard1of1.bin'],
        weights: [
          { name: `${towerName}_dense/kernel`, shape: [inputDim, dim], dtype: 'float32' },
          { name: `${towerName}_dense/bias`, shape: [dim], dtype: 'float32' },
        ],
      },
    ],
  };
  writeFileSync(path.join(dir, 'model.json'), JSON.stringify(modelJson));
  writeFileSync(path.join(dir, 'group1-shard1of1.bin'), new Uint8Array(weights.buffer));
}

const tower = (p: string, inputDim: number, dim: number) => ({
  path: p,
  inputs: [{ name: 'features', shape: [null, inputDim], dtype: 'float32' as const }],
  outputs: [{ name: 'embedding', shape: [null, dim], dtype: 'float32' as const }],
  customLayers: [],
});

/** Write the folder (created if needed) and return its manifest. */
export async function writeModelFolder(dir: string, opts: ModelFolderOptions = {}): Promise<ModelManifest> {
  const seed = opts.seed ?? 1;
  const kind = opts.kind ?? 'two-tower';
  const inputDim = opts.inputDim ?? 8;
  const dim = opts.dim ?? 4;
  const rand = mulberry32(seed);
  const metrics = opts.metrics ?? { 'recall@100': 0.3, 'ndcg@10': 0.1 };
  const runId = opts.runId ?? `20260101T0000${String(seed % 60).padStart(2, '0')}Z`;
  mkdirSync(dir, { recursive: true });
  let manifest: ModelManifest;
  const common = {
    schemaVersion: 1 as const,
    runId,
    createdAt: new Date(Date.UTC(2026, 0, 1, 0, 0, seed % 60)).toISOString(),
    amMl: { version: AMML_VERSION, gitCommit: null },
    embeddingDim: dim,
    metrics,
  };
  if (kind === 'two-tower') {
    writeDenseTower(path.join(dir, 'user'), 'user_tower', inputDim, dim, rand);
    writeDenseTower(path.join(dir, 'item'), 'item_tower', inputDim, dim, rand);
    writeFileSync(path.join(dir, FEATURES_FILE), JSON.stringify({ schemaVersion: 1, seed, user: ['liked_genres'], item: ['genres', 'maker'] }));
    writeFileSync(path.join(dir, METRICS_FILE), JSON.stringify(metrics));
    writeFileSync(path.join(dir, PROBE_FILE), JSON.stringify({ inputs: [[...Array(inputDim)].map(() => 0.5)], seed }));
    manifest = {
      ...common,
      kind,
      towers: { user: tower('user', inputDim, dim), item: tower('item', inputDim, dim) },
      featureSpecSha256: await sha256File(path.join(dir, FEATURES_FILE)),
      files: await describeFiles(dir),
    };
  } else {
    writeDenseTower(path.join(dir, 'model'), 'model', inputDim, dim, rand);
    manifest = {
      ...common,
      kind,
      towers: { model: tower('model', inputDim, dim) },
      source: { file: 'two_tower_model.h5', sha256: 'a'.repeat(64), format: 'h5', kerasVersion: '2.15.0' },
      files: await describeFiles(dir),
    };
  }
  writeManifest(dir, manifest);
  return manifest;
}
