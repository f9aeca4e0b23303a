/**
 * Static shape inference over the model tree (no arithmetic): proves that the config and the weight shapes fit
 * together (a Dense kernel's rows must equal its input's features, merged inputs must agree, ...) and yields the
 * output shapes for the manifest. `null` is a free dimension (the batch, or a sequence length).
 */
import { invalidModel } from './errors.js';
import { firstNode, type LayerSpec, type ModelSpec, type TensorRef } from './model-tree.js';

export type Shape = Array<number | null>;

type WeightShape = (layer: string, weight: string) => number[] | undefined;

const prod = (dims: Shape): number | null => (dims.some((d) => d === null) ? null : (dims as number[]).reduce((a, d) => a * d, 1));

function axis(a: unknown, rank: number): number {
  let v = Array.isArray(a) ? Number(a[0]) : a === undefined || a === null ? -1 : Number(a);
  if (v < 0) v += rank;
  return v;
}

function fail(layer: LayerSpec, what: string): never {
  throw invalidModel(`Layer ${layer.name} (${layer.className}): ${what}.`, { code: 'KERAS_WEIGHTS_MISMATCH' });
}

function same(layer: LayerSpec, inputs: Shape[]): Shape {
  const a = inputs[0];
  for (const b of inputs.slice(1)) {
    if (b.length !== a.length || b.some((d, i) => d !== null && a[i] !== null && d !== a[i])) fail(layer, `inputs have shapes [${inputs.map((s) => s.join(', ')).join('] and [')}]`);
  }
  return a;
}

function layerShape(layer: LayerSpec, inputs: Shape[], weightShape: WeightShape): Shape {
  const c = layer.config;
  const x = inputs[0];
  switch (layer.className) {
    case 'Dense': {
      const k = weightShape(layer.name, 'kernel');
      const last = x[x.length - 1];
      if (k && last !== null && k[0] !== last) fail(layer, `its input has ${last} features but the kernel is [${k.join(', ')}]`);
      return [...x.slice(0, -1), Number(c.units)];
    }
    case 'Embedding':
      return [...x, Number(c.output_dim)];
    case 'Flatten':
      return [x[0], prod(x.slice(1))];
    case 'Reshape': {
      const target = (c.target_shape as number[]).map(Number);
      const total = prod(x.slice(1));
      const known = target.filter((d) => d !== -1).reduce((a, d) => a * d, 1);
      const out = target.map((d) => (d === -1 ? (total === null ? null : total / known) : d));
      if (total !== null && prod(out) !== total) fail(layer, `cannot reshape [${x.join(', ')}] to [${target.join(', ')}]`);
      return [x[0], ...out];
    }
    case 'Permute':
      return [x[0], ...(c.dims as number[]).map((d) => x[Number(d)])];
    case 'RepeatVector':
      return [x[0], Number(c.n), ...x.slice(1)];
    case 'Concatenate': {
      const a = axis(c.axis, x.length);
      const out = [...x];
      out[a] = inputs.some((s) => s[a] === null) ? null : inputs.reduce((sum, s) => sum + (s[a] as number), 0);
      return out;
    }
    case 'Dot':
      if (inputs.length !== 2 || inputs[0].length !== 2 || inputs[1].length !== 2) fail(layer, 'Dot is supported on two [batch, features] inputs');
      if (inputs[0][1] !== null && inputs[1][1] !== null && inputs[0][1] !== inputs[1][1]) fail(layer, `inputs have ${inputs[0][1]} and ${inputs[1][1]} features`);
      return [x[0], 1];
    case 'Add':
    case 'Subtract':
    case 'Multiply':
    case 'Average':
    case 'Maximum':
    case 'Minimum':
      return same(layer, inputs);
    case 'GlobalAveragePooling1D':
    case 'GlobalMaxPooling1D':
      if (x.length !== 3) fail(layer, `expects [batch, steps, features], got [${x.join(', ')}]`);
      return c.data_format === 'channels_first' ? [x[0], x[1]] : [x[0], x[2]];
    case 'BatchNormalization':
    case 'LayerNormalization': {
      const g = weightShape(layer.name, 'moving_mean') ?? weightShape(layer.name, 'gamma') ?? weightShape(layer.name, 'beta');
      const a = axis(c.axis, x.length);
      if (g && x[a] !== null && g[0] !== x[a]) fail(layer, `its weights have ${g[0]} values, the input axis ${a} has ${x[a]}`);
      return x;
    }
    default:
      return x; // activations, dropout, normalisations, rescaling: shape-preserving
  }
}

/** Output shapes of `model` (batch dimension null), checking every layer on the way. */
export function inferShapes(model: ModelSpec, weightShape: WeightShape, inputShapes: Shape[] = model.inputSpecs.map((s) => [null, ...s.shape.slice(1)])): Shape[] {
  const byName = new Map(model.layers.map((l) => [l.name, l]));
  const values = new Map<string, Shape[]>();
  model.inputs.forEach(([name, node], i) => values.set(`${name}|${node}`, [inputShapes[i]]));
  const visiting = new Set<string>();
  const resolve = ([name, node, t]: TensorRef): Shape => {
    const key = `${name}|${node}`;
    let out = values.get(key);
    if (!out) {
      if (visiting.has(key)) throw invalidModel(`The graph of ${model.name} has a cycle at ${name}.`);
      visiting.add(key);
      const layer = byName.get(name);
      if (!layer) throw invalidModel(`Model ${model.name} refers to a layer ${name} it does not contain.`);
      const call = layer.calls[node - firstNode(layer)];
      if (!call) throw invalidModel(`Model ${model.name} refers to call ${node} of ${name}, which does not exist (Graph disconnected).`);
      const ins = call.inputs.map(resolve);
      out = layer.model ? inferShapes(layer.model, weightShape, ins) : [layerShape(layer, ins, weightShape)];
      values.set(key, out);
      visiting.delete(key);
    }
    if (!out[t]) throw invalidModel(`Layer ${name} has no output ${t}.`);
    return out[t];
  };
  return model.outputs.map(resolve);
}
