/**
 * Golden outputs for a trained tower from an independent forward pass, for `am-ml validate <tower> --golden <file>`.
 *
 * A run trained by `am-ml train` is already a TF.js layers model, so there is no Keras source to validate it
 * against. What can still go wrong between training and serving is the saved artifact: the layer graph TF.js
 * rebuilds from `model.json` (custom layers, input order, activations, normalisation) and the weights it reads from
 * the shards. This module recomputes the tower the way the trainer computed it while optimising (`tower.ts`: weighted
 * bags, dense layers, L2 normalisation, with the pure-JS matmul), with parameters decoded straight from the tower
 * folder's shard bytes, never through TF.js. `validate` then loads the folder with TF.js (strict weights, tensor
 * leak check) and compares its outputs with these. Pure module (no Node APIs, no TF.js).
 */
import type { GoldenFile } from './keras/golden.js';
import { towerBags, type FeatureSpec, type InputArray, type TowerName, towerInputSpecs } from './features/index.js';
import { jsMatMul } from './kernels/matmul.js';
import { type TowerArch, type TowerBatch, type TowerParams, TowerTrainer } from './tower.js';

/** The parts of a tower's `model.json` and its concatenated shard bytes that this needs. */
export interface TowerWeightsSource {
  weightsManifest: { paths: string[]; weights: { name: string; shape: number[]; dtype: string }[] }[];
  /** Every shard, concatenated in manifest order. */
  weightData: Uint8Array;
}

/** Output layer name of every tower (model.ts). */
export const TOWER_OUTPUT_NAME = 'l2_normalize';

/** Decode the float32 weights by name, in manifest order, checking that the byte count is exactly right. */
function decodeWeights(src: TowerWeightsSource): Map<string, { shape: number[]; data: Float32Array }> {
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  const bytes = src.weightData;
  let offset = 0;
  for (const w of src.weightsManifest.flatMap((g) => g.weights)) {
    if (w.dtype !== 'float32') throw new Error(`weight ${w.name} is ${w.dtype}; trained towers hold float32 weights only`);
    const n = w.shape.reduce((a, d) => a * d, 1);
    if (offset + 4 * n > bytes.byteLength) throw new Error(`the shards end before weight ${w.name} (needs ${4 * n} bytes at ${offset})`);
    // Copy: the shard bytes need not be 4-byte aligned inside their buffer.
    const data = new Float32Array(n);
    new Uint8Array(data.buffer).set(bytes.subarray(offset, offset + 4 * n));
    out.set(w.name, { shape: w.shape, data });
    offset += 4 * n;
  }
  if (offset !== bytes.byteLength) throw new Error(`the shards hold ${bytes.byteLength} bytes but the weights need ${offset}`);
  return out;
}

/**
 * The tower's architecture (from the feature spec and the weight shapes) and its parameters (from the shard bytes).
 * Throws when a weight the architecture needs is missing or has another shape.
 */
export function towerFromWeights(spec: FeatureSpec, tower: TowerName, src: TowerWeightsSource): { arch: TowerArch; params: TowerParams } {
  const weights = decodeWeights(src);
  const need = (name: string, shape?: number[]) => {
    const w = weights.get(name);
    if (!w) throw new Error(`the ${tower} tower has no weight ${name}`);
    if (shape && w.shape.join('x') !== shape.join('x')) throw new Error(`weight ${name} has shape [${w.shape}], expected [${shape}]`);
    return w;
  };
  const bags = towerBags(spec, tower);
  const tables = bags.map((b) => need(`${b.name}_bag/embeddings`, [b.vocabularySize, b.embeddingDim]).data);
  const specs = towerInputSpecs(spec, tower);
  const numericWidth = specs[specs.length - 1].width;
  const hidden: number[] = [];
  for (let k = 1; weights.has(`dense_${k}/kernel`); k++) hidden.push(need(`dense_${k}/kernel`).shape[1]);
  const out = need('dense_out/kernel');
  const arch: TowerArch = { bags, numericWidth, hidden, outputDim: out.shape[1] };
  const widths = [bags.reduce((s, b) => s + b.embeddingDim, 0) + numericWidth, ...hidden, arch.outputDim];
  const names = [...hidden.map((_, k) => `dense_${k + 1}`), 'dense_out'];
  const kernels = names.map((n, k) => need(`${n}/kernel`, [widths[k], widths[k + 1]]).data);
  const biases = names.map((n, k) => need(`${n}/bias`, [widths[k + 1]]).data);
  return { arch, params: { tables, kernels, biases } };
}

/** Tower input arrays (features/rows.ts layout) as the trainer's batch view. */
function batchOf(arrays: readonly InputArray[]): TowerBatch {
  const bags = arrays.slice(0, -1);
  const numeric = arrays[arrays.length - 1];
  return {
    bagIdx: bags.filter((_, i) => i % 2 === 0).map((a) => a.data as Int32Array),
    bagW: bags.filter((_, i) => i % 2 === 1).map((a) => a.data as Float32Array),
    bagLen: bags.filter((_, i) => i % 2 === 0).map((a) => a.shape[1]),
    numeric: numeric.data as Float32Array,
    numericWidth: numeric.shape[1],
  };
}

const rowsOf = (data: ArrayLike<number>, cols: number): number[][] =>
  Array.from({ length: data.length / cols }, (_, r) => Array.from({ length: cols }, (_, c) => data[r * cols + c]));

/**
 * A golden file for one tower: `inputs` (built with the frozen feature spec) and the outputs of the trainer's own
 * forward pass over the weights in `src`.
 */
export function towerGolden(spec: FeatureSpec, tower: TowerName, src: TowerWeightsSource, inputs: readonly InputArray[], generator: string): GoldenFile {
  const expected = towerInputSpecs(spec, tower).map((s) => s.name);
  const found = inputs.map((a) => a.name);
  if (expected.join(',') !== found.join(',')) throw new Error(`inputs ${found.join(',')} are not the ${tower} tower's inputs ${expected.join(',')}`);
  const { arch, params } = towerFromWeights(spec, tower, src);
  const rows = inputs[0].shape[0];
  const trainer = new TowerTrainer(arch, params, jsMatMul());
  const z = trainer.forward(batchOf(inputs), rows).slice(0, rows * arch.outputDim);
  return {
    inputs: Object.fromEntries(inputs.map((a) => [a.name, rowsOf(a.data, a.shape[1])])),
    input_order: found,
    outputs: [rowsOf(z, arch.outputDim)],
    output_names: [TOWER_OUTPUT_NAME],
    generator,
  };
}
