/**
 * The rewritten (TF.js-form) model config as a tree that the weight mapping, the reference forward pass and tower
 * extraction walk: models hold layers, layers hold their calls (inbound nodes), nested models hold their own tree.
 *
 * Node indices follow TF.js: a nested model's node 0 is its own internal node, so its calls are nodes 1, 2, …;
 * a plain layer's calls are nodes 0, 1, ….
 */
import { invalidModel } from './errors.js';
import { isModelClass } from './layers.js';

type Json = Record<string, unknown>;

/** `[layer name, node index, tensor index]`. */
export type TensorRef = [string, number, number];

export interface LayerSpec {
  className: string;
  name: string;
  config: Json;
  /** One entry per call: the tensors passed in, and keyword arguments. */
  calls: Array<{ inputs: TensorRef[]; kwargs: Json }>;
  /** For nested Sequential/Functional layers. */
  model?: ModelSpec;
}

export interface InputSpec {
  name: string;
  /** Batch dimension first, null where free. */
  shape: Array<number | null>;
  dtype: string;
}

export interface ModelSpec {
  kind: 'Sequential' | 'Functional';
  name: string;
  layers: LayerSpec[];
  inputs: TensorRef[];
  outputs: TensorRef[];
  /** Input layers' shapes and dtypes, in `inputs` order. */
  inputSpecs: InputSpec[];
}

const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** First call's node index of a layer in TF.js numbering. */
export function firstNode(layer: LayerSpec): number {
  return layer.model ? 1 : 0;
}

export function parseModelTree(modelConfig: Json): ModelSpec {
  return parseModel(modelConfig, 0);
}

function parseModel(obj: Json, depth: number): ModelSpec {
  if (depth > 32) throw invalidModel('Models are nested more than 32 levels deep.');
  const className = String(obj.class_name);
  const config = isObj(obj.config) ? obj.config : {};
  const name = String(config.name ?? 'model');
  const rawLayers = Array.isArray(config.layers) ? (config.layers as Json[]) : [];
  if (className === 'Sequential') return parseSequential(name, rawLayers, depth);
  const layers: LayerSpec[] = rawLayers.map((l) => {
    const cls = String(l.class_name);
    const lcfg = isObj(l.config) ? l.config : {};
    const lname = String(l.name ?? lcfg.name);
    const nodes = Array.isArray(l.inbound_nodes) ? (l.inbound_nodes as unknown[]) : [];
    const calls = nodes.map((n) => {
      const refs = Array.isArray(n) ? (n as unknown[]) : [];
      const inputs: TensorRef[] = [];
      let kwargs: Json = {};
      for (const r of refs) {
        if (!Array.isArray(r) || typeof r[0] !== 'string') throw invalidModel(`Layer ${lname} has a malformed inbound node.`);
        inputs.push([r[0], Number(r[1]), Number(r[2])]);
        if (isObj(r[3])) kwargs = r[3];
      }
      return { inputs, kwargs };
    });
    const spec: LayerSpec = { className: cls, name: lname, config: lcfg, calls };
    if (isModelClass(cls)) spec.model = parseModel(l, depth + 1);
    return spec;
  });
  const triples = (v: unknown): TensorRef[] => (Array.isArray(v) ? (v as unknown[]) : []).map((t) => {
    if (!Array.isArray(t) || typeof t[0] !== 'string') throw invalidModel(`Model ${name} has a malformed input_layers/output_layers entry.`);
    return [t[0], Number(t[1]), Number(t[2])] as TensorRef;
  });
  const inputs = triples(config.input_layers);
  const outputs = triples(config.output_layers);
  const byName = new Map(layers.map((l) => [l.name, l]));
  const inputSpecs = inputs.map(([ln]) => {
    const l = byName.get(ln);
    if (!l || l.className !== 'InputLayer') throw invalidModel(`Model ${name} lists ${ln} as an input, but it is not an InputLayer of the model.`);
    return inputSpecOf(l.name, l.config);
  });
  return { kind: 'Functional', name, layers, inputs, outputs, inputSpecs };
}

function inputSpecOf(name: string, cfg: Json): InputSpec {
  const shape = (cfg.batch_input_shape ?? cfg.batch_shape) as Array<number | null> | undefined;
  const inputShape = cfg.input_shape as Array<number | null> | undefined;
  const full = shape ?? (inputShape ? [null, ...inputShape] : undefined);
  if (!Array.isArray(full)) throw invalidModel(`Input ${name} has no shape in the config (batch_input_shape).`);
  return { name, shape: full.map((d) => (d === null || d === undefined ? null : Number(d))), dtype: typeof cfg.dtype === 'string' ? cfg.dtype : 'float32' };
}

/** A Sequential as a chain: each layer takes the previous layer's output. */
function parseSequential(name: string, rawLayers: Json[], depth: number): ModelSpec {
  if (rawLayers.length === 0) throw invalidModel(`Sequential model ${name} has no layers.`);
  let input: InputSpec;
  let rest = rawLayers;
  const first = rawLayers[0];
  const firstCfg = isObj(first.config) ? first.config : {};
  if (first.class_name === 'InputLayer') {
    input = inputSpecOf(String(firstCfg.name ?? `${name}_input`), firstCfg);
    rest = rawLayers.slice(1);
  } else {
    // Keras 2 Sequential without an InputLayer: the first layer carries batch_input_shape; TF.js names the input
    // `<first layer>_input`.
    input = inputSpecOf(`${String(firstCfg.name)}_input`, firstCfg);
    const dtypeFromLayer = typeof firstCfg.dtype === 'string' ? firstCfg.dtype : 'float32';
    input.dtype = dtypeFromLayer;
  }
  const inputLayer: LayerSpec = { className: 'InputLayer', name: input.name, config: { batch_input_shape: input.shape, dtype: input.dtype, name: input.name }, calls: [] };
  const layers: LayerSpec[] = [inputLayer];
  let prev: TensorRef = [input.name, 0, 0];
  for (const l of rest) {
    const cls = String(l.class_name);
    const lcfg = isObj(l.config) ? l.config : {};
    const lname = String(lcfg.name ?? l.name);
    const spec: LayerSpec = { className: cls, name: lname, config: lcfg, calls: [{ inputs: [prev], kwargs: {} }] };
    if (isModelClass(cls)) spec.model = parseModel(l, depth + 1);
    layers.push(spec);
    prev = [lname, firstNode(spec), 0];
  }
  return { kind: 'Sequential', name, layers, inputs: [[input.name, 0, 0]], outputs: [prev], inputSpecs: [input] };
}

/** Every layer with a path (`outer/inner`), depth first in config order; nested models are listed before their layers. */
export function flattenLayers(model: ModelSpec, prefix = ''): Array<{ path: string; layer: LayerSpec; owner: ModelSpec }> {
  const out: Array<{ path: string; layer: LayerSpec; owner: ModelSpec }> = [];
  for (const layer of model.layers) {
    const p = prefix ? `${prefix}/${layer.name}` : layer.name;
    out.push({ path: p, layer, owner: model });
    if (layer.model) out.push(...flattenLayers(layer.model, p));
  }
  return out;
}
