/**
 * An independent forward pass in plain TypeScript (float64) over the model tree and the weights read from the
 * source file. It shares nothing with TF.js, so agreeing with it is evidence that the conversion (config rewrites,
 * weight naming, custom layers) is right. It implements exactly the layers `layers.ts` accepts, with Keras'
 * definitions (not TF.js's).
 */
import { invalidModel } from './errors.js';
import { firstNode, type LayerSpec, type ModelSpec, type TensorRef } from './model-tree.js';

export interface RefTensor {
  /** Batch first. */
  shape: number[];
  data: Float64Array;
}

/** Called with every layer call's outputs: `path` is `outer/inner`, `node` the TF.js node index. */
export type LayerOutputSink = (path: string, node: number, outputs: RefTensor[], inputs: RefTensor[]) => void;

/** Weights by TF.js name (`layer/weight`), as float arrays with shapes. */
export type WeightLookup = (layerName: string, weight: string) => { shape: number[]; data: ArrayLike<number> } | undefined;

type Cfg = Record<string, unknown>;

const size = (shape: readonly number[]) => shape.reduce((a, d) => a * d, 1);

function tensor(shape: number[], data?: Float64Array): RefTensor {
  return { shape, data: data ?? new Float64Array(size(shape)) };
}

function axisOf(axis: unknown, rank: number, dflt = -1): number {
  let a = Array.isArray(axis) ? Number(axis[0]) : axis === undefined || axis === null ? dflt : Number(axis);
  if (a < 0) a += rank;
  if (!Number.isInteger(a) || a < 0 || a >= rank) throw invalidModel(`Axis ${String(axis)} is out of range for a rank-${rank} tensor.`);
  return a;
}

// ---------------------------------------------------------------------------------------------------------------
// Activations (Keras definitions)
// ---------------------------------------------------------------------------------------------------------------

/** erf with |error| < 1.2e-7 (Numerical Recipes' erfc Chebyshev fit), enough next to float32 rounding. */
function erf(x: number): number {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const r =
    t *
    Math.exp(
      -z * z -
        1.26551223 +
        t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
    );
  return x >= 0 ? 1 - r : r - 1;
}

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));
const softplus = (x: number) => (x > 30 ? x : Math.log1p(Math.exp(x)));

function activate(name: string, t: RefTensor): RefTensor {
  const d = t.data;
  const out = new Float64Array(d.length);
  const f: ((x: number) => number) | undefined = {
    linear: (x: number) => x,
    relu: (x: number) => (x > 0 ? x : 0),
    relu6: (x: number) => Math.min(6, Math.max(0, x)),
    elu: (x: number) => (x > 0 ? x : Math.expm1(x)),
    selu: (x: number) => 1.0507009873554805 * (x > 0 ? x : 1.6732632423543772 * Math.expm1(x)),
    sigmoid,
    hard_sigmoid: (x: number) => Math.min(1, Math.max(0, 0.2 * x + 0.5)),
    softplus,
    softsign: (x: number) => x / (1 + Math.abs(x)),
    tanh: Math.tanh,
    swish: (x: number) => x * sigmoid(x),
    mish: (x: number) => x * Math.tanh(softplus(x)),
    gelu: (x: number) => 0.5 * x * (1 + erf(x / Math.SQRT2)),
  }[name];
  if (name === 'softmax') return softmax(t, t.shape.length - 1);
  if (!f) throw invalidModel(`The reference pass has no activation '${name}'.`);
  for (let i = 0; i < d.length; i++) out[i] = f(d[i]);
  return { shape: [...t.shape], data: out };
}

/** Iterate over every 1-D slice along `axis`: calls fn(baseIndex, stride, length). */
function forEachLine(shape: readonly number[], axis: number, fn: (base: number, stride: number, n: number) => void): void {
  const n = shape[axis];
  const stride = size(shape.slice(axis + 1));
  const outer = size(shape.slice(0, axis));
  for (let o = 0; o < outer; o++) for (let i = 0; i < stride; i++) fn(o * n * stride + i, stride, n);
}

function softmax(t: RefTensor, axis: number): RefTensor {
  const out = new Float64Array(t.data.length);
  forEachLine(t.shape, axis, (base, stride, n) => {
    let max = -Infinity;
    for (let k = 0; k < n; k++) max = Math.max(max, t.data[base + k * stride]);
    let sum = 0;
    for (let k = 0; k < n; k++) sum += out[base + k * stride] = Math.exp(t.data[base + k * stride] - max);
    for (let k = 0; k < n; k++) out[base + k * stride] /= sum;
  });
  return { shape: [...t.shape], data: out };
}

function l2(t: RefTensor, axes: number[], maxInverseNorm: number): RefTensor {
  if (axes.length !== 1) {
    // Several axes: normalise over their product (they must be trailing and contiguous in practice).
    const sorted = [...axes].sort((a, b) => a - b);
    for (let i = 1; i < sorted.length; i++) if (sorted[i] !== sorted[i - 1] + 1) throw invalidModel('Normalising over non-adjacent axes is not supported.');
    const merged = [...t.shape.slice(0, sorted[0]), size(t.shape.slice(sorted[0], sorted[sorted.length - 1] + 1)), ...t.shape.slice(sorted[sorted.length - 1] + 1)];
    const r = l2({ shape: merged, data: t.data }, [sorted[0]], maxInverseNorm);
    return { shape: [...t.shape], data: r.data };
  }
  const out = new Float64Array(t.data.length);
  forEachLine(t.shape, axes[0], (base, stride, n) => {
    let ss = 0;
    for (let k = 0; k < n; k++) ss += t.data[base + k * stride] ** 2;
    const inv = Math.min(1 / Math.sqrt(ss), maxInverseNorm);
    for (let k = 0; k < n; k++) out[base + k * stride] = t.data[base + k * stride] * inv;
  });
  return { shape: [...t.shape], data: out };
}

function elementwise(inputs: RefTensor[], op: (a: number, b: number) => number, name: string): RefTensor {
  const first = inputs[0];
  for (const t of inputs) {
    if (t.shape.join() !== first.shape.join()) throw invalidModel(`${name} received shapes ${inputs.map((x) => `[${x.shape.join(', ')}]`).join(' and ')}; the reference pass needs equal shapes.`);
  }
  const out = Float64Array.from(first.data);
  for (const t of inputs.slice(1)) for (let i = 0; i < out.length; i++) out[i] = op(out[i], t.data[i]);
  return { shape: [...first.shape], data: out };
}

// ---------------------------------------------------------------------------------------------------------------
// Layers
// ---------------------------------------------------------------------------------------------------------------

function weight(layer: LayerSpec, name: string, lookup: WeightLookup): { shape: number[]; data: ArrayLike<number> } {
  const w = lookup(layer.name, name);
  if (!w) throw invalidModel(`The reference pass found no weight ${layer.name}/${name}.`);
  return w;
}

function dense(x: RefTensor, layer: LayerSpec, lookup: WeightLookup): RefTensor {
  const k = weight(layer, 'kernel', lookup);
  const [inDim, units] = k.shape;
  const last = x.shape[x.shape.length - 1];
  if (last !== inDim) throw invalidModel(`Layer ${layer.name}: input has ${last} features but the kernel is [${k.shape.join(', ')}].`, { code: 'KERAS_WEIGHTS_MISMATCH' });
  const rows = x.data.length / inDim;
  const out = new Float64Array(rows * units);
  const kd = k.data;
  for (let r = 0; r < rows; r++) {
    const o = r * units;
    for (let i = 0; i < inDim; i++) {
      const xv = x.data[r * inDim + i];
      if (xv === 0) continue;
      const kr = i * units;
      for (let u = 0; u < units; u++) out[o + u] += xv * kd[kr + u];
    }
  }
  if (layer.config.use_bias !== false) {
    const b = weight(layer, 'bias', lookup).data;
    for (let r = 0; r < rows; r++) for (let u = 0; u < units; u++) out[r * units + u] += b[u];
  }
  const y = { shape: [...x.shape.slice(0, -1), units], data: out };
  return activate(String(layer.config.activation ?? 'linear'), y);
}

function embedding(x: RefTensor, layer: LayerSpec, lookup: WeightLookup): RefTensor {
  const e = weight(layer, 'embeddings', lookup);
  const [inputDim, outDim] = e.shape;
  const out = new Float64Array(x.data.length * outDim);
  for (let i = 0; i < x.data.length; i++) {
    const id = Math.trunc(x.data[i]);
    if (!(id >= 0 && id < inputDim)) throw invalidModel(`Layer ${layer.name}: id ${x.data[i]} is outside [0, ${inputDim}).`);
    for (let j = 0; j < outDim; j++) out[i * outDim + j] = e.data[id * outDim + j];
  }
  return { shape: [...x.shape, outDim], data: out };
}

function normalization(x: RefTensor, layer: LayerSpec, lookup: WeightLookup, kind: 'batch' | 'layer'): RefTensor {
  const rank = x.shape.length;
  const c = layer.config;
  const eps = Number(c.epsilon ?? (kind === 'batch' ? 1e-3 : 1e-3));
  const out = new Float64Array(x.data.length);
  const scale = c.scale !== false;
  const center = c.center !== false;
  if (kind === 'batch') {
    const axis = axisOf(c.axis, rank);
    const mean = weight(layer, 'moving_mean', lookup).data;
    const variance = weight(layer, 'moving_variance', lookup).data;
    const gamma = scale ? weight(layer, 'gamma', lookup).data : undefined;
    const beta = center ? weight(layer, 'beta', lookup).data : undefined;
    const stride = size(x.shape.slice(axis + 1));
    const n = x.shape[axis];
    for (let i = 0; i < x.data.length; i++) {
      const ch = Math.floor(i / stride) % n;
      let v = (x.data[i] - mean[ch]) / Math.sqrt(variance[ch] + eps);
      if (gamma) v *= gamma[ch];
      if (beta) v += beta[ch];
      out[i] = v;
    }
    return { shape: [...x.shape], data: out };
  }
  const axes = (Array.isArray(c.axis) ? c.axis : [c.axis ?? -1]).map((a) => axisOf(a, rank));
  if (axes.length !== 1 || axes[0] !== rank - 1) throw invalidModel(`Layer ${layer.name}: the reference pass supports LayerNormalization over the last axis only.`);
  const gamma = scale ? weight(layer, 'gamma', lookup).data : undefined;
  const beta = center ? weight(layer, 'beta', lookup).data : undefined;
  forEachLine(x.shape, rank - 1, (base, _stride, n) => {
    let mean = 0;
    for (let k = 0; k < n; k++) mean += x.data[base + k];
    mean /= n;
    let v = 0;
    for (let k = 0; k < n; k++) v += (x.data[base + k] - mean) ** 2;
    v /= n;
    const inv = 1 / Math.sqrt(v + eps);
    for (let k = 0; k < n; k++) {
      let y = (x.data[base + k] - mean) * inv;
      if (gamma) y *= gamma[k];
      if (beta) y += beta[k];
      out[base + k] = y;
    }
  });
  return { shape: [...x.shape], data: out };
}

function concatenate(inputs: RefTensor[], axisCfg: unknown): RefTensor {
  const rank = inputs[0].shape.length;
  const axis = axisOf(axisCfg, rank);
  const outShape = [...inputs[0].shape];
  outShape[axis] = inputs.reduce((a, t) => a + t.shape[axis], 0);
  for (const t of inputs) {
    if (t.shape.length !== rank || t.shape.some((d, i) => i !== axis && d !== inputs[0].shape[i])) {
      throw invalidModel(`Concatenate received incompatible shapes ${inputs.map((x) => `[${x.shape.join(', ')}]`).join(', ')}.`);
    }
  }
  const out = new Float64Array(size(outShape));
  const outer = size(outShape.slice(0, axis));
  const inner = size(outShape.slice(axis + 1));
  let offset = 0;
  for (const t of inputs) {
    const block = t.shape[axis] * inner;
    for (let o = 0; o < outer; o++) out.set(t.data.subarray(o * block, (o + 1) * block), o * outShape[axis] * inner + offset * inner);
    offset += t.shape[axis];
  }
  return { shape: outShape, data: out };
}

function dot(inputs: RefTensor[], c: Cfg): RefTensor {
  let [a, b] = inputs;
  if (a.shape.length !== 2 || b.shape.length !== 2) throw invalidModel('The reference pass supports Dot on [batch, features] inputs only.');
  const axes = Array.isArray(c.axes) ? (c.axes as number[]) : [Number(c.axes ?? -1), Number(c.axes ?? -1)];
  if (axes.map((x, i) => axisOf(x, inputs[i].shape.length)).some((x) => x !== 1)) throw invalidModel('The reference pass supports Dot over the feature axis only.');
  if (c.normalize === true) {
    a = l2(a, [1], 1e6); // tf.nn.l2_normalize with epsilon 1e-12
    b = l2(b, [1], 1e6);
  }
  const [batch, n] = a.shape;
  if (b.shape[1] !== n) throw invalidModel(`Dot received [${a.shape.join(', ')}] and [${b.shape.join(', ')}].`);
  const out = new Float64Array(batch);
  for (let r = 0; r < batch; r++) {
    let s = 0;
    for (let k = 0; k < n; k++) s += a.data[r * n + k] * b.data[r * n + k];
    out[r] = s;
  }
  return { shape: [batch, 1], data: out };
}

function reshape(x: RefTensor, target: number[]): RefTensor {
  const total = size(x.shape.slice(1));
  const known = target.filter((d) => d !== -1).reduce((a, d) => a * d, 1);
  const shape = target.map((d) => (d === -1 ? total / known : d));
  if (size(shape) !== total) throw invalidModel(`Cannot reshape [${x.shape.join(', ')}] to [${target.join(', ')}].`);
  return { shape: [x.shape[0], ...shape], data: x.data };
}

function permute(x: RefTensor, dims: number[]): RefTensor {
  const perm = [0, ...dims];
  const outShape = perm.map((p) => x.shape[p]);
  const inStrides = x.shape.map((_, i) => size(x.shape.slice(i + 1)));
  const out = new Float64Array(x.data.length);
  const idx = new Array(outShape.length).fill(0);
  for (let o = 0; o < out.length; o++) {
    let src = 0;
    for (let d = 0; d < perm.length; d++) src += idx[d] * inStrides[perm[d]];
    out[o] = x.data[src];
    for (let d = outShape.length - 1; d >= 0; d--) {
      if (++idx[d] < outShape[d]) break;
      idx[d] = 0;
    }
  }
  return { shape: outShape, data: out };
}

function pool1d(x: RefTensor, c: Cfg, kind: 'avg' | 'max'): RefTensor {
  if (x.shape.length !== 3) throw invalidModel('Global pooling 1D expects [batch, steps, features].');
  const channelsFirst = c.data_format === 'channels_first';
  const axis = channelsFirst ? 2 : 1;
  const keep = channelsFirst ? 1 : 2;
  const [b] = x.shape;
  const n = x.shape[axis];
  const f = x.shape[keep];
  const out = new Float64Array(b * f);
  for (let i = 0; i < b; i++) {
    for (let j = 0; j < f; j++) {
      let acc = kind === 'avg' ? 0 : -Infinity;
      for (let s = 0; s < n; s++) {
        const v = channelsFirst ? x.data[i * f * n + j * n + s] : x.data[i * n * f + s * f + j];
        acc = kind === 'avg' ? acc + v : Math.max(acc, v);
      }
      out[i * f + j] = kind === 'avg' ? acc / n : acc;
    }
  }
  return { shape: [b, f], data: out };
}

function applyLayer(layer: LayerSpec, inputs: RefTensor[], lookup: WeightLookup): RefTensor {
  const c = layer.config;
  const x = inputs[0];
  const map = (fn: (v: number) => number): RefTensor => ({ shape: [...x.shape], data: x.data.map(fn) });
  switch (layer.className) {
    case 'InputLayer':
    case 'Dropout':
    case 'SpatialDropout1D':
    case 'GaussianDropout':
    case 'GaussianNoise':
    case 'AlphaDropout':
      return x; // inference: identity
    case 'Dense':
      return dense(x, layer, lookup);
    case 'Embedding':
      return embedding(x, layer, lookup);
    case 'BatchNormalization':
      return normalization(x, layer, lookup, 'batch');
    case 'LayerNormalization':
      return normalization(x, layer, lookup, 'layer');
    case 'PReLU': {
      // alpha has the feature shape with shared axes of size 1; broadcast it over the batch and shared axes.
      const alpha = weight(layer, 'alpha', lookup);
      const fshape = x.shape.slice(1);
      if (alpha.shape.length !== fshape.length) throw invalidModel(`Layer ${layer.name}: alpha is [${alpha.shape.join(', ')}], input features [${fshape.join(', ')}].`);
      const featureSize = size(fshape);
      const aStrides = alpha.shape.map((_, i) => size(alpha.shape.slice(i + 1)));
      const out = new Float64Array(x.data.length);
      for (let i = 0; i < x.data.length; i++) {
        const v = x.data[i];
        if (v > 0) {
          out[i] = v;
          continue;
        }
        let f = i % featureSize;
        let ai = 0;
        for (let d = fshape.length - 1; d >= 0; d--) {
          const idx = f % fshape[d];
          f = Math.floor(f / fshape[d]);
          if (alpha.shape[d] !== 1) ai += idx * aStrides[d];
        }
        out[i] = v * alpha.data[ai];
      }
      return { shape: [...x.shape], data: out };
    }
    case 'Flatten':
      return { shape: [x.shape[0], size(x.shape.slice(1))], data: x.data };
    case 'Reshape':
      return reshape(x, (c.target_shape as number[]).map(Number));
    case 'Permute':
      return permute(x, (c.dims as number[]).map(Number));
    case 'RepeatVector': {
      const n = Number(c.n);
      const [b, d] = x.shape;
      const out = new Float64Array(b * n * d);
      for (let i = 0; i < b; i++) for (let r = 0; r < n; r++) out.set(x.data.subarray(i * d, (i + 1) * d), (i * n + r) * d);
      return { shape: [b, n, d], data: out };
    }
    case 'Activation':
      return activate(String(c.activation), x);
    case 'ReLU': {
      const max = c.max_value === null || c.max_value === undefined ? Infinity : Number(c.max_value);
      return map((v) => Math.min(max, Math.max(0, v)));
    }
    case 'LeakyReLU': {
      const a = Number(c.alpha ?? c.negative_slope ?? 0.3);
      return map((v) => (v > 0 ? v : a * v));
    }
    case 'ELU': {
      const a = Number(c.alpha ?? 1);
      return map((v) => (v > 0 ? v : a * Math.expm1(v)));
    }
    case 'Softmax':
      return softmax(x, axisOf(c.axis, x.shape.length));
    case 'Rescaling': {
      const s = Number(c.scale ?? 1);
      const o = Number(c.offset ?? 0);
      return map((v) => v * s + o);
    }
    case 'UnitNormalization': {
      const axes = (Array.isArray(c.axis) ? c.axis : [c.axis ?? -1]).map((a) => axisOf(a, x.shape.length));
      return l2(x, axes, 1e12);
    }
    case 'AmMlL2Normalize':
      return l2(x, [axisOf(c.axis, x.shape.length)], Number(c.max_inverse_norm));
    case 'Concatenate':
      return concatenate(inputs, c.axis);
    case 'Dot':
      return dot(inputs, c);
    case 'Add':
      return elementwise(inputs, (a, b) => a + b, 'Add');
    case 'Subtract':
      return elementwise(inputs, (a, b) => a - b, 'Subtract');
    case 'Multiply':
      return elementwise(inputs, (a, b) => a * b, 'Multiply');
    case 'Maximum':
      return elementwise(inputs, Math.max, 'Maximum');
    case 'Minimum':
      return elementwise(inputs, Math.min, 'Minimum');
    case 'Average': {
      const s = elementwise(inputs, (a, b) => a + b, 'Average');
      return { shape: s.shape, data: s.data.map((v) => v / inputs.length) };
    }
    case 'GlobalAveragePooling1D':
      return pool1d(x, c, 'avg');
    case 'GlobalMaxPooling1D':
      return pool1d(x, c, 'max');
    default:
      throw invalidModel(`The reference pass has no implementation of ${layer.className} (layer ${layer.name}).`);
  }
}

/** Run `model` on `inputs` (in `model.inputs` order); returns the outputs in `model.outputs` order. */
export function runReference(model: ModelSpec, inputs: RefTensor[], lookup: WeightLookup, sink?: LayerOutputSink, prefix = ''): RefTensor[] {
  if (inputs.length !== model.inputs.length) throw invalidModel(`Model ${model.name} takes ${model.inputs.length} inputs, got ${inputs.length}.`);
  const byName = new Map(model.layers.map((l) => [l.name, l]));
  const values = new Map<string, RefTensor[]>();
  model.inputs.forEach(([name, node], i) => {
    values.set(`${name}|${node}`, [inputs[i]]);
    sink?.(prefix ? `${prefix}/${name}` : name, node, [inputs[i]], [inputs[i]]);
  });
  const resolving = new Set<string>();
  const resolve = ([name, node, t]: TensorRef): RefTensor => {
    const key = `${name}|${node}`;
    let outs = values.get(key);
    if (!outs) {
      if (resolving.has(key)) throw invalidModel(`The graph of ${model.name} has a cycle at ${name}.`);
      resolving.add(key);
      const layer = byName.get(name);
      if (!layer) throw invalidModel(`Model ${model.name} refers to a layer ${name} it does not contain.`);
      const call = layer.calls[node - firstNode(layer)];
      if (!call) throw invalidModel(`Model ${model.name} refers to call ${node} of ${name}, which does not exist (Graph disconnected).`);
      const ins = call.inputs.map(resolve);
      const path = prefix ? `${prefix}/${name}` : name;
      // Layers inside a nested model are reported per call: `tower/...` for its first call, `tower@2/...` after.
      outs = layer.model ? runReference(layer.model, ins, lookup, sink, node <= 1 ? path : `${path}@${node}`) : [applyLayer(layer, ins, lookup)];
      values.set(key, outs);
      resolving.delete(key);
      sink?.(path, node, outs, ins);
    }
    const out = outs[t];
    if (!out) throw invalidModel(`Layer ${name} has no output ${t}.`);
    return out;
  };
  return model.outputs.map(resolve);
}

export { tensor as refTensor };
