/**
 * Test inputs for a model: seeded, one batch, respecting each input's dtype and, for inputs that feed an
 * Embedding (directly or through reshaping layers and nested models), the embedding's id range [0, input_dim).
 */
import type { ModelSpec } from './model-tree.js';
import type { RefTensor } from './reference.js';
import { mulberry32 } from '../rng.js';

/** Free (None) dimensions other than the batch get this size. */
export const FREE_DIM_SIZE = 4;

/** Layers that pass values through unchanged, so ids stay ids. */
const ID_PRESERVING = new Set(['InputLayer', 'Flatten', 'Reshape', 'Permute', 'RepeatVector', 'Dropout', 'SpatialDropout1D', 'GaussianDropout', 'AlphaDropout']);

/** Smallest input_dim of the Embeddings an input reaches through value-preserving layers, if any. */
export function embeddingRange(model: ModelSpec, inputName: string): number | undefined {
  let min: number | undefined;
  const visit = (m: ModelSpec, start: string, depth: number) => {
    if (depth > 32) return;
    const stack = [start];
    const seen = new Set<string>();
    while (stack.length) {
      const name = stack.pop()!;
      if (seen.has(name)) continue;
      seen.add(name);
      for (const l of m.layers) {
        for (const call of l.calls) {
          const pos = call.inputs.findIndex(([src]) => src === name);
          if (pos < 0) continue;
          if (l.className === 'Embedding') {
            const dim = Number(l.config.input_dim);
            if (Number.isFinite(dim)) min = min === undefined ? dim : Math.min(min, dim);
          } else if (ID_PRESERVING.has(l.className)) {
            stack.push(l.name);
          } else if (l.model) {
            const inner = l.model.inputs[pos];
            if (inner) visit(l.model, inner[0], depth + 1);
          }
        }
      }
    }
  };
  visit(model, inputName, 0);
  return min;
}

export interface GeneratedInput {
  name: string;
  dtype: string;
  /** Ids in [0, idRange) when the input feeds an Embedding. */
  idRange?: number;
  tensor: RefTensor;
}


/** One batch of inputs in `model.inputs` order. */
export function generateInputs(model: ModelSpec, batch: number, seed = 1): GeneratedInput[] {
  const rnd = mulberry32(seed);
  const normal = () => {
    const u = Math.max(rnd(), 1e-12);
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rnd());
  };
  return model.inputSpecs.map((spec) => {
    const shape = spec.shape.map((d, i) => (i === 0 ? batch : (d ?? FREE_DIM_SIZE)));
    const n = shape.reduce((a, d) => a * d, 1);
    const data = new Float64Array(n);
    const idRange = embeddingRange(model, spec.name);
    const isInt = /int|bool/.test(spec.dtype);
    if (idRange !== undefined) {
      // Cover both ends of the id range in the first rows, then random ids.
      for (let i = 0; i < n; i++) data[i] = i === 0 ? 0 : i === 1 ? idRange - 1 : Math.floor(rnd() * idRange);
    } else if (spec.dtype === 'bool') {
      for (let i = 0; i < n; i++) data[i] = rnd() < 0.5 ? 0 : 1;
    } else if (isInt) {
      for (let i = 0; i < n; i++) data[i] = Math.floor(rnd() * 10);
    } else {
      // float32-exact values, so TF.js and the float64 reference see the same numbers.
      for (let i = 0; i < n; i++) data[i] = Math.fround(normal());
    }
    return { name: spec.name, dtype: spec.dtype, idRange, tensor: { shape, data } };
  });
}

