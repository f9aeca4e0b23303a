/**
 * The towers as TF.js layers models: construction from the feature spec and trained parameters, and conversion
 * to and from the files of a tower folder (`model.json` + weight shards) without `file://` handlers (which need the
 * native binding): `tf.io.withSaveHandler` on the way out, `tf.io.fromMemory` on the way in. No Node APIs.
 *
 * Layer graph per tower (names are stable; `load-model.ts` checks them):
 *   inputs (towerInputSpecs order) → `<bag>_bag` (AmMlWeightedBag) per bag → `concat` (with `numeric`)
 *   → `dense_1` … `dense_h` (ReLU) → `dense_out` (linear, `dim`) → `l2_normalize` (AmMlL2Normalize)
 */
import { concatBytes } from './bytes.js';
import { type FeatureSpec, type TowerInputSpec, type TowerName, towerBags, towerInputSpecs } from './features/index.js';
import { AmMlL2Normalize, L2_MAX_INVERSE_NORM, WeightedBag } from './layers.js';
import { tf } from './tf.js';
import type { TowerArch, TowerParams } from './tower.js';

/** TF.js's conventional shard size; also keeps every file far below the 50 MiB storage limit (app-schema §5). */
export const SHARD_SIZE_BYTES = 4 * 1024 * 1024;
export const MODEL_JSON = 'model.json';

export interface ModelConfig {
  /** Hidden layer widths of both towers. */
  hidden: number[];
  /** Output embedding dimension. */
  dim: number;
}

export function towerArch(spec: FeatureSpec, tower: TowerName, cfg: ModelConfig): TowerArch {
  const inputs = towerInputSpecs(spec, tower);
  return {
    bags: towerBags(spec, tower),
    numericWidth: inputs[inputs.length - 1].width,
    hidden: cfg.hidden,
    outputDim: cfg.dim,
  };
}

/** Build the layers model of a tower; with `params`, load them (strictly: every layer's shapes must match). */
export function buildTowerModel(spec: FeatureSpec, tower: TowerName, arch: TowerArch, params?: TowerParams): tf.LayersModel {
  const specs: TowerInputSpec[] = towerInputSpecs(spec, tower);
  const inputs = specs.map((s) => tf.input({ shape: [s.width], dtype: s.dtype, name: s.name }));
  const parts: tf.SymbolicTensor[] = [];
  arch.bags.forEach((b, i) => {
    const layer = new WeightedBag({ name: `${b.name}_bag`, vocabularySize: b.vocabularySize, embeddingDim: b.embeddingDim });
    parts.push(layer.apply([inputs[2 * i], inputs[2 * i + 1]]) as tf.SymbolicTensor);
  });
  parts.push(inputs[inputs.length - 1]);
  let x = tf.layers.concatenate({ name: 'concat', axis: -1 }).apply(parts) as tf.SymbolicTensor;
  arch.hidden.forEach((units, k) => {
    x = tf.layers.dense({ name: `dense_${k + 1}`, units, activation: 'relu' }).apply(x) as tf.SymbolicTensor;
  });
  x = tf.layers.dense({ name: 'dense_out', units: arch.outputDim, activation: 'linear' }).apply(x) as tf.SymbolicTensor;
  const out = new AmMlL2Normalize({ name: 'l2_normalize', axis: -1, maxInverseNorm: L2_MAX_INVERSE_NORM }).apply(x) as tf.SymbolicTensor;
  const model = tf.model({ inputs, outputs: out, name: `${tower}_tower` });
  if (params) setTowerWeights(model, arch, params);
  return model;
}

/** Copy trained parameters into the model's layers. */
export function setTowerWeights(model: tf.LayersModel, arch: TowerArch, params: TowerParams): void {
  tf.tidy(() => {
    arch.bags.forEach((b, i) => {
      model.getLayer(`${b.name}_bag`).setWeights([tf.tensor2d(params.tables[i], [b.vocabularySize, b.embeddingDim])]);
    });
    const widths = [arch.bags.reduce((s, b) => s + b.embeddingDim, 0) + arch.numericWidth, ...arch.hidden, arch.outputDim];
    const names = [...arch.hidden.map((_, k) => `dense_${k + 1}`), 'dense_out'];
    names.forEach((name, k) => {
      model.getLayer(name).setWeights([tf.tensor2d(params.kernels[k], [widths[k], widths[k + 1]]), tf.tensor1d(params.biases[k])]);
    });
  });
}

/** The files of a tower folder: `model.json` and its weight shards, as bytes (paths relative to the folder). */
export async function towerModelFiles(model: tf.LayersModel): Promise<Map<string, Uint8Array>> {
  let artifacts: tf.io.ModelArtifacts | undefined;
  await model.save(
    tf.io.withSaveHandler(async (a) => {
      artifacts = a;
      return { modelArtifactsInfo: { dateSaved: new Date(0), modelTopologyType: 'JSON' } };
    }),
  );
  if (!artifacts?.weightSpecs || !artifacts.weightData) throw new Error('TF.js returned no weights when saving the tower');
  const weightData = concatWeightData(artifacts.weightData);
  const shards: Uint8Array[] = [];
  for (let o = 0; o < weightData.byteLength || shards.length === 0; o += SHARD_SIZE_BYTES) {
    shards.push(weightData.subarray(o, Math.min(weightData.byteLength, o + SHARD_SIZE_BYTES)));
  }
  const paths = shards.map((_, i) => `group1-shard${i + 1}of${shards.length}.bin`);
  const modelJson = {
    format: 'layers-model',
    generatedBy: `TensorFlow.js tfjs-layers v${tf.version_layers}`,
    convertedBy: null,
    modelTopology: artifacts.modelTopology,
    weightsManifest: [{ paths, weights: artifacts.weightSpecs }],
  };
  const files = new Map<string, Uint8Array>();
  files.set(MODEL_JSON, new TextEncoder().encode(`${JSON.stringify(modelJson)}\n`));
  shards.forEach((s, i) => files.set(paths[i], s));
  return files;
}

function concatWeightData(data: ArrayBuffer | ArrayBuffer[]): Uint8Array {
  return Array.isArray(data) ? concatBytes(data.map((b) => new Uint8Array(b))) : new Uint8Array(data);
}

/** The parts of a parsed `model.json` that loading needs. */
export interface TowerModelJson {
  format?: string;
  modelTopology: object;
  weightsManifest: { paths: string[]; weights: tf.io.WeightsManifestEntry[] }[];
}

/**
 * Rebuild a tower from its `model.json` and shard bytes, strictly: TF.js refuses missing or extra weights, and the
 * byte count must equal what the weight specs describe (a truncated or padded shard is an error, never zeros).
 */
export async function loadTowerFromBytes(modelJson: TowerModelJson, shards: readonly Uint8Array[]): Promise<tf.LayersModel> {
  const specs = modelJson.weightsManifest.flatMap((g) => g.weights);
  const total = shards.reduce((s, b) => s + b.byteLength, 0);
  const expected = specs.reduce((s, w) => s + w.shape.reduce((a, d) => a * d, 1) * bytesPerElement(w.dtype), 0);
  if (total !== expected) {
    throw new Error(`weight shards hold ${total} bytes but model.json describes ${expected}`);
  }
  const weightData = concatBytes(shards);
  return tf.loadLayersModel(
    tf.io.fromMemory({ modelTopology: modelJson.modelTopology, weightSpecs: specs, weightData: weightData.buffer }),
    { strict: true },
  );
}

function bytesPerElement(dtype: string): number {
  if (dtype === 'float32' || dtype === 'int32') return 4;
  if (dtype === 'bool') return 1;
  throw new Error(`unsupported weight dtype ${dtype}`);
}

/** Run a tower on built inputs (features/rows.ts) and return the embeddings, row-major. */
export function predictTower(model: tf.LayersModel, arrays: readonly { dtype: string; shape: [number, number]; data: Int32Array | Float32Array }[]): Float32Array {
  const out = tf.tidy(() => {
    const xs = arrays.map((a) => tf.tensor(a.data, a.shape, a.dtype as 'int32' | 'float32'));
    // One batch: predict() otherwise slices the input into batches of 32 (4× slower end to end at 4096 rows).
    return model.predict(xs, { batchSize: Math.max(1, arrays[0]?.shape[0] ?? 1) }) as tf.Tensor;
  });
  try {
    return out.dataSync() as Float32Array;
  } finally {
    out.dispose();
  }
}

export { towerInputSpecs };
