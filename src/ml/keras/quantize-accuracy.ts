/**
 * The accuracy change of a quantized export, without TF.js: the reference pass runs once with the float32 source
 * weights and once with the weights as the quantized shards decode, on the same generated inputs.
 */
import type { KerasConversion } from './convert.js';
import { generateInputs } from './inputs.js';
import { type RefTensor, runReference } from './reference.js';
import { decodeWeights } from './tfjs-format.js';

export interface OutputAccuracy {
  name: string;
  maxAbsDiff: number;
  /** Largest |Δ| relative to the output's RMS. */
  maxRelDiff: number;
  /** Per-row cosine for [batch, d ≥ 2] outputs. */
  minCosine?: number;
}

export const QUANTIZATION_PROBE_BATCH = 8;

function compare(name: string, a: RefTensor, b: RefTensor): OutputAccuracy {
  let maxAbs = 0;
  let ss = 0;
  for (let i = 0; i < b.data.length; i++) {
    maxAbs = Math.max(maxAbs, Math.abs(a.data[i] - b.data[i]));
    ss += b.data[i] * b.data[i];
  }
  const rms = Math.sqrt(ss / Math.max(1, b.data.length));
  const out: OutputAccuracy = { name, maxAbsDiff: maxAbs, maxRelDiff: maxAbs / Math.max(rms, 1e-12) };
  const [rows, dim] = b.shape;
  if (b.shape.length === 2 && dim >= 2) {
    let min = 1;
    for (let r = 0; r < rows; r++) {
      let ab = 0;
      let aa = 0;
      let bb = 0;
      for (let k = 0; k < dim; k++) {
        ab += a.data[r * dim + k] * b.data[r * dim + k];
        aa += a.data[r * dim + k] ** 2;
        bb += b.data[r * dim + k] ** 2;
      }
      min = Math.min(min, aa === 0 && bb === 0 ? 1 : ab / Math.sqrt(aa * bb));
    }
    out.minCosine = min;
  }
  return out;
}

/** Per-output change caused by quantization; undefined when the conversion is not quantized. */
export function quantizationAccuracy(c: KerasConversion, batch = QUANTIZATION_PROBE_BATCH): OutputAccuracy[] | undefined {
  if (!c.encoded.quantization) return undefined;
  const inputs = generateInputs(c.tree, batch, 3).map((g) => g.tensor);
  const exact = new Map(c.weights.map((w) => [w.name, w]));
  const dequantized = decodeWeights(c.encoded.entries, c.encoded.bytes);
  const shapes = new Map(c.weights.map((w) => [w.name, w.shape]));
  const ref = runReference(c.tree, inputs, (l, w) => exact.get(`${l}/${w}`));
  const q = runReference(c.tree, inputs, (l, w) => {
    const data = dequantized.get(`${l}/${w}`);
    return data ? { shape: shapes.get(`${l}/${w}`)!, data } : undefined;
  });
  return c.tree.outputs.map(([name], i) => compare(name, q[i], ref[i]));
}
