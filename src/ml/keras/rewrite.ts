/**
 * Turn a Keras model config into the form tfjs-layers 4.22 loads (spec §3), and refuse what it cannot run (§4).
 *
 * Keras 2 configs are already in that form and pass through, except for layers replaced by am-ml runtime shims.
 * Keras 3 configs get every rewrite of the spec: object wrappers dropped, DTypePolicy objects flattened,
 * `batch_shape` renamed, dict inbound nodes flattened into `[[[layer, node, tensor, kwargs], …]]`, flat
 * input/output triples wrapped, node indices of references to nested models shifted by one (TF.js gives every
 * model an internal node 0; Keras 3 does not), initializers replaced by Zeros (loaded weights overwrite them, and
 * Zeros is cheap at load time), regularizers and constraints dropped, `silu` renamed.
 *
 * Every unsupported layer is collected, so one error can list them all.
 */
import { invalidModel } from './errors.js';
import { isModelClass, isSupportedClass, suggestionFor, tfjsActivation } from './layers.js';
import { type LambdaMapping, recognizeLambda } from './lambda.js';

type Json = Record<string, unknown>;

export interface LayerProblem {
  /** Layer name (nested layers as `outer/inner`). */
  layer: string;
  className: string;
  problem: string;
  suggestion: string;
}

export interface RewriteOptions {
  kerasMajor: 2 | 3;
  /** Explicit Lambda mappings from `--map-lambda` (layer name → shim). */
  lambdaMappings?: ReadonlyMap<string, LambdaMapping>;
}

export interface RewriteResult {
  /** `{class_name, config}` ready for model.json's `modelTopology.model_config`. */
  modelConfig: Json;
  problems: LayerProblem[];
  /** Runtime classes the converted model needs (`UnitNormalization`, …). */
  customLayers: string[];
  /** Lambda layers replaced by a shim, and how they were recognised. */
  lambdas: Array<{ layer: string; as: string; how: string; axis: number; maxInverseNorm: number }>;
}

const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Nested models and argument structures deeper than this are refused (a hostile config would overflow the stack). */
const MAX_NESTING = 32;

export function rewriteModelConfig(raw: Json, opts: RewriteOptions): RewriteResult {
  const state: RewriteResult = { modelConfig: {}, problems: [], customLayers: [], lambdas: [] };
  const usedMappings = new Set<string>();
  const ctx: Ctx = { ...opts, state, usedMappings };
  const className = String(raw.class_name ?? '');
  if (!isModelClass(className)) {
    state.problems.push({
      layer: String((raw.config as Json | undefined)?.name ?? '(model)'),
      className,
      problem: 'the top-level object is not a Sequential or Functional model',
      suggestion: 'export a keras.Model (subclassed models cannot be exported as a layers model; export their Functional towers)',
    });
    return state;
  }
  state.modelConfig = rewriteModel(raw, '', ctx);
  for (const name of opts.lambdaMappings?.keys() ?? []) {
    if (!usedMappings.has(name)) {
      state.problems.push({ layer: name, className: 'Lambda', problem: '--map-lambda names a layer that is not a Lambda in this model', suggestion: 'check the layer name (am-ml export --list-layers shows them)' });
    }
  }
  state.customLayers = [...new Set(state.customLayers)].sort();
  return state;
}

interface Ctx extends RewriteOptions {
  state: RewriteResult;
  usedMappings: Set<string>;
}

/** `scope`: the model's own path in messages ('' for the top-level model, `user_tower` for a nested one). */
function rewriteModel(obj: Json, scope: string, ctx: Ctx): Json {
  if (scope.split('/').length > MAX_NESTING) throw invalidModel(`Models are nested more than ${MAX_NESTING} levels deep (at ${scope}).`);
  const className = String(obj.class_name);
  const config = isObj(obj.config) ? obj.config : {};
  const rawLayers = Array.isArray(config.layers) ? (config.layers as unknown[]) : [];
  const out: Json = {};
  for (const [k, v] of Object.entries(config)) {
    if (k === 'layers' || k === 'build_input_shape') continue;
    if (ctx.kerasMajor === 3 && k === 'dtype') out[k] = dtypeName(v);
    else out[k] = v;
  }
  if (className === 'Sequential') {
    out.layers = rawLayers.map((l) => rewriteLayer(l as Json, scope, ctx, false, new Set()));
  } else {
    const modelNames = new Set(rawLayers.filter((l) => isObj(l) && isModelClass(String(l.class_name))).map((l) => layerName(l as Json)));
    out.layers = rawLayers.map((l) => rewriteLayer(l as Json, scope, ctx, true, modelNames));
    if (ctx.kerasMajor === 3) {
      out.input_layers = tensorList(config.input_layers, modelNames);
      out.output_layers = tensorList(config.output_layers, modelNames);
    }
  }
  return { class_name: className === 'Model' && ctx.kerasMajor === 3 ? 'Functional' : className, config: out };
}

function layerName(l: Json): string {
  const c = isObj(l.config) ? l.config : {};
  return String(l.name ?? c.name ?? '');
}

function rewriteLayer(obj: Json, scope: string, ctx: Ctx, functional: boolean, modelNames: Set<string>): Json {
  const className = String(obj.class_name ?? '');
  const name = layerName(obj);
  const path = scope ? `${scope}/${name}` : name;
  const registered = typeof obj.registered_name === 'string' ? obj.registered_name : null;
  const problem = (p: string, s: string) => ctx.state.problems.push({ layer: path, className: registered && registered !== className ? registered : className, problem: p, suggestion: s });

  let out: Json;
  if (isModelClass(className)) {
    out = rewriteModel(obj, path, ctx);
  } else {
    const custom = registered !== null && registered !== className && registered.includes('>');
    if (custom || !isSupportedClass(className)) {
      if (className === 'Lambda' && !custom) {
        const mapped = lambdaShim(obj, path, name, ctx);
        if (mapped) out = mapped;
        else out = { class_name: className, config: {} };
      } else {
        problem(custom ? 'custom class' : 'unsupported layer', suggestionFor(className, registered));
        out = { class_name: className, config: {} };
      }
    } else {
      out = { class_name: className, config: rewriteLayerConfig(className, isObj(obj.config) ? obj.config : {}, path, ctx, problem) };
      if (className === 'UnitNormalization' || className === 'Subtract') ctx.state.customLayers.push(className);
    }
  }
  if (functional) {
    out.name = name;
    out.inbound_nodes = ctx.kerasMajor === 3 ? inboundNodes(obj.inbound_nodes, modelNames, path, problem) : (obj.inbound_nodes ?? []);
  }
  return out;
}

function lambdaShim(obj: Json, path: string, name: string, ctx: Ctx): Json | undefined {
  const cfg = isObj(obj.config) ? obj.config : {};
  const explicit = ctx.lambdaMappings?.get(name) ?? ctx.lambdaMappings?.get(path);
  let mapping: LambdaMapping | undefined = explicit;
  let how = 'mapped with --map-lambda';
  if (explicit) ctx.usedMappings.add(ctx.lambdaMappings?.has(name) ? name : path);
  if (!mapping) {
    const r = recognizeLambda(cfg);
    if (r.ok) {
      mapping = r.mapping;
      how = r.how;
    } else {
      ctx.state.problems.push({
        layer: path,
        className: 'Lambda',
        problem: `a Python lambda am-ml cannot identify (${r.reason})`,
        suggestion: `if it is an L2 normalisation pass --map-lambda ${name}=l2_normalize:axis=-1; otherwise replace it with a Keras layer (UnitNormalization for L2 normalisation)`,
      });
      return undefined;
    }
  }
  ctx.state.customLayers.push('AmMlL2Normalize');
  ctx.state.lambdas.push({ layer: path, as: `l2_normalize(axis=${mapping.axis}, maxInverseNorm=${mapping.maxInverseNorm})`, how, axis: mapping.axis, maxInverseNorm: mapping.maxInverseNorm });
  return {
    class_name: 'AmMlL2Normalize',
    config: { name, trainable: false, dtype: 'float32', axis: mapping.axis, max_inverse_norm: mapping.maxInverseNorm },
  };
}

/** A Keras 3 dtype (string or DTypePolicy object) as the dtype name TF.js expects. */
function dtypeName(v: unknown): unknown {
  let name = v;
  if (isObj(v)) name = isObj(v.config) ? v.config.name : v.class_name;
  if (typeof name !== 'string') return v;
  // Mixed-precision policies compute in float16 but keep float32 variables; TF.js runs float32.
  if (name.startsWith('mixed_')) return 'float32';
  return name;
}

function rewriteLayerConfig(className: string, config: Json, path: string, ctx: Ctx, problem: (p: string, s: string) => void): Json {
  const out: Json = {};
  const k3 = ctx.kerasMajor === 3;
  for (const [k, v] of Object.entries(config)) {
    if (!k3) {
      // Keras 2 configs load as they are; only tf.keras mixed-precision Policy objects need flattening.
      out[k] = k === 'dtype' && isObj(v) ? dtypeName(v) : v;
      continue;
    }
    if (k === 'dtype') out[k] = dtypeName(v);
    else if (k.endsWith('_initializer')) out[k] = v === null ? null : { class_name: 'Zeros', config: {} };
    else if (k.endsWith('_regularizer') || k.endsWith('_constraint')) out[k] = null;
    else if (k === 'batch_shape' && className === 'InputLayer') out.batch_input_shape = v;
    else if ((k === 'optional' || k === 'ragged') && className === 'InputLayer') continue;
    else if (k === 'lora_rank' || k === 'lora_alpha' || k === 'quantization_config' || k === 'synchronized') continue;
    else out[k] = v;
  }
  // Checks that apply to both Keras majors: anything TF.js would silently compute differently.
  if (typeof config.activation === 'string' || isObj(config.activation)) {
    const act = typeof config.activation === 'string' ? config.activation : String(config.activation.class_name ?? config.activation.registered_name ?? 'custom');
    const mapped = typeof config.activation === 'string' ? tfjsActivation(act, ctx.kerasMajor) : undefined;
    if (!mapped) problem(`activation '${act}' has no TF.js equivalent`, act === 'leaky_relu' ? 'use a LeakyReLU layer' : 'use one of linear, relu, relu6, elu, selu, sigmoid, softmax, softplus, softsign, tanh, swish/silu, mish, gelu');
    else out.activation = mapped;
  }
  if (config.quantization_config !== undefined && config.quantization_config !== null) {
    problem('quantized layer (quantization_config is set)', 'export the float model; quantized kernels compute differently');
  }
  if (typeof config.lora_rank === 'number' && config.lora_rank > 0) problem('LoRA-enabled layer', 'merge the LoRA weights (layer.enable_lora off after merging) before export');
  const dtype = dtypeName(config.dtype);
  if (typeof dtype === 'string' && /^(u?int(8|4)|float8|int4)/.test(dtype) && className !== 'InputLayer') problem(`quantized dtype policy '${dtype}'`, 'export the float model');
  if (className === 'LayerNormalization' && config.rms_scaling === true) problem('rms_scaling: true is not what TF.js LayerNormalization computes', 'use a standard LayerNormalization');
  if (className === 'ReLU') {
    const slope = Number(config.negative_slope ?? 0);
    const threshold = Number(config.threshold ?? 0);
    if (slope !== 0 || threshold !== 0) problem('ReLU with negative_slope or threshold', 'use LeakyReLU, or a plain ReLU');
    delete out.negative_slope;
    delete out.threshold;
  }
  if (className === 'LeakyReLU' && k3 && config.negative_slope !== undefined) {
    out.alpha = config.negative_slope;
    delete out.negative_slope;
  }
  if (className === 'ELU' && config.alpha !== undefined && Number(config.alpha) !== 1) {
    problem(`ELU with alpha=${String(config.alpha)} (tfjs-layers 4.22 only implements alpha=1.0)`, "use ELU(alpha=1.0) or activation='elu'");
  }
  if (className === 'Dot' && Array.isArray(config.axes) && config.axes.length !== 2) problem('Dot with more than two axes', 'use axes of one int or a pair');
  if ((className === 'Rescaling') && (Array.isArray(config.scale) || Array.isArray(config.offset))) problem('Rescaling with per-channel scale/offset', 'use scalar scale and offset');
  if ((className === 'GlobalAveragePooling1D' || className === 'GlobalMaxPooling1D') && config.keepdims === true) problem('keepdims: true', 'pool without keepdims and Reshape after');
  if (className === 'InputLayer') {
    if (config.sparse === true) problem('sparse input', 'use a dense input');
    // TF.js tensors are float32, int32, bool or string: narrow the rest (ids fit int32; weights are float32 anyway).
    const d = dtypeName(config.dtype);
    if (typeof d === 'string') {
      if (/^u?int(8|16|64)$|^uint32$/.test(d)) out.dtype = 'int32';
      else if (/^(float16|float64|bfloat16)$/.test(d)) out.dtype = 'float32';
      else if (d === 'string') problem('string input', 'do string lookups in TypeScript and feed ids to the model');
    }
  }
  void path;
  return out;
}

/** Keras 3 `input_layers`/`output_layers`: a flat triple, a list of triples, or a dict/nested structure of them. */
function tensorList(v: unknown, modelNames: Set<string>): unknown[] {
  const out: unknown[] = [];
  let depth = 0;
  const visit = (x: unknown) => {
    if (++depth > MAX_NESTING * 4) throw invalidModel('input_layers/output_layers nest too deeply.');
    try {
      visitInner(x);
    } finally {
      depth--;
    }
  };
  const visitInner = (x: unknown) => {
    if (Array.isArray(x) && x.length === 3 && typeof x[0] === 'string' && typeof x[1] === 'number' && typeof x[2] === 'number') {
      out.push([x[0], modelNames.has(x[0]) ? x[1] + 1 : x[1], x[2]]);
    } else if (Array.isArray(x)) x.forEach(visit);
    // Keras flattens dict structures in sorted key order (keras.tree.flatten): model.inputs/outputs follow it.
    else if (isObj(x)) Object.keys(x).sort().forEach((k) => visit(x[k]));
  };
  visit(v);
  return out;
}

/** Keras 3 `[{args, kwargs}]` nodes → TF.js `[[[layer, node, tensor, kwargs], …], …]`. */
function inboundNodes(nodes: unknown, modelNames: Set<string>, path: string, problem: (p: string, s: string) => void): unknown[] {
  if (!Array.isArray(nodes)) return [];
  return nodes.map((node) => {
    if (Array.isArray(node)) return node; // already Keras 2 form
    if (!isObj(node)) return [];
    const refs: Array<[string, number, number]> = [];
    let depth = 0;
    const collect = (x: unknown): void => {
      if (++depth > MAX_NESTING * 4) throw invalidModel(`Layer ${path}: its call arguments nest too deeply.`);
      try {
        collectInner(x);
      } finally {
        depth--;
      }
    };
    const collectInner = (x: unknown) => {
      if (isObj(x) && x.class_name === '__keras_tensor__' && isObj(x.config) && Array.isArray(x.config.keras_history)) {
        const [layer, nodeIndex, tensorIndex] = x.config.keras_history as [string, number, number];
        refs.push([layer, modelNames.has(layer) ? nodeIndex + 1 : nodeIndex, tensorIndex]);
      } else if (Array.isArray(x)) x.forEach(collect);
      else if (isObj(x)) Object.values(x).forEach(collect);
    };
    collect(node.args);
    const kwargs: Json = {};
    for (const [k, v] of Object.entries(isObj(node.kwargs) ? node.kwargs : {})) {
      const tensorsInside: unknown[] = [];
      JSON.stringify(v, (_key, val) => {
        if (isObj(val) && val.class_name === '__keras_tensor__') tensorsInside.push(val);
        return val;
      });
      if (tensorsInside.length) {
        problem(`a layer call passes a tensor as keyword argument '${k}'`, 'pass tensors positionally');
        continue;
      }
      if (k === 'mask' && JSON.stringify(v).replace(/null|\[|\]|,/g, '') === '') continue; // no masks: nothing to say
      if (k === 'training' && v === true) {
        problem('called with training=True (e.g. Monte-Carlo dropout)', 'call the layer without training=True for an inference model');
        continue;
      }
      kwargs[k] = v;
    }
    return refs.map(([l, n, t]) => [l, n, t, kwargs]);
  });
}

export type { Json };
