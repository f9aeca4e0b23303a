/**
 * Prove a TF.js model folder equal to its Keras source without Python (spec §7):
 *
 * 1. weights round trip: every weight in the shards equals its source dataset (bit for bit unless quantized), and
 *    the names match one to one: every source weight used exactly once;
 * 2. strict load in TF.js (unknown or missing weights, unknown classes fail here);
 * 3. input/output shapes and dtypes against the model config;
 * 4. an independent float64 reference forward pass (plain TypeScript over the source weights) on generated inputs
 *    that respect dtypes and embedding id ranges, compared with TF.js layer by layer; the first failing layer is
 *    reported (inside nested models too);
 * 5. golden files from the training side, when given;
 * 6. no tensor leaks: tf.memory().numTensors is the same after load, predict and dispose as before.
 *
 * Tolerance: |tfjs − ref| ≤ atol + rtol·|ref| elementwise, rtol = tolerance × depth factor and
 * atol = tolerance/10 × max(1, rms(ref)); the depth factor is max(1, weighted layers on the path / 4), so shallow
 * towers get exactly the tolerance and deep stacks a proportionally larger one (float32 error accumulates with
 * depth, tfjs#3122). Embedding outputs ([batch, d ≥ 8]) must also have cosine ≥ 1 − tolerance per row and the same
 * nearest neighbours within the batch.
 */
import { invalidModel } from './keras/errors.js';
import { generateInputs } from './keras/inputs.js';
import type { KerasConversion } from './keras/convert.js';
import type { LayerSpec, ModelSpec } from './keras/model-tree.js';
import { type RefTensor, runReference } from './keras/reference.js';
import type { LoadedGolden } from './keras/golden.js';
import { decodeWeights, encodeWeights, type QuantizeDtype } from './keras/tfjs-format.js';
import type { TfjsFolder } from './keras/tfjs-folder.js';
import { loadTfjsFolder } from './keras/tfjs-load.js';
import { disposeLayersModel } from './runtime/index.js';
import type { MappedWeight } from './keras/weights.js';
import { tf } from './tf.js';

export const DEFAULT_TOLERANCE = 1e-4;
export const DEFAULT_VALIDATION_BATCH = 16;
/** Minimum cosine per row for quantized exports' embedding outputs, by quantization dtype. */
export const QUANTIZED_MIN_COSINE: Record<QuantizeDtype, number> = { float16: 0.9999, uint8: 0.99 };
/** Largest error relative to the output's RMS for quantized exports' non-embedding outputs. */
export const QUANTIZED_MAX_REL_RMS: Record<QuantizeDtype, number> = { float16: 1e-2, uint8: 5e-2 };

type Tensor = ReturnType<typeof tf.tensor>;
type LayersModel = Awaited<ReturnType<typeof loadTfjsFolder>>;

export interface TensorDiff {
  name: string;
  shape: number[];
  maxAbsDiff: number;
  /** Largest |a − b| / max(|b|, rms(b)). */
  maxRelDiff: number;
  /** Elementwise bound used: atol + rtol·|b|. */
  atol: number;
  rtol: number;
  /** Multi-index of the first element over the bound. */
  firstFailingIndex?: number[];
  expected?: number;
  found?: number;
  /** Rows of [batch, d ≥ 8] outputs. */
  minCosine?: number;
  /** Nearest neighbours within the batch agree (ties aside). */
  topKAgreement?: boolean;
  pass: boolean;
}

export interface LayerDiff {
  layer: string;
  node: number;
  maxAbsDiff: number;
  maxRelDiff: number;
  pass: boolean;
}

export interface ValidationReport {
  ok: boolean;
  backend: string;
  tolerance: number;
  weights: {
    /** Weights in model.json. */
    count: number;
    /** Source weights mapped into this model. */
    sourceCount: number;
    /** Round trip: exact unless quantized (then the largest dequantization error). */
    exact: boolean;
    maxAbsError: number;
    ok: boolean;
  };
  strictLoad: boolean;
  shapes: { ok: boolean; problems: string[] };
  reference?: {
    batch: number;
    seed: number;
    inputs: Array<{ name: string; shape: number[]; dtype: string; idRange?: number }>;
    outputs: TensorDiff[];
    layersCompared: number;
    firstFailingLayer?: LayerDiff;
    /** For quantized exports: outputs are compared with the accuracy thresholds instead. */
    quantized?: QuantizeDtype;
  };
  golden: Array<{ file: string; outputs: TensorDiff[]; ok: boolean }>;
  /**
   * Tensor counts: before loading, after loading, after one warm-up prediction (tfjs-layers caches a few scalar
   * constants globally on first use), after all predictions (must equal afterWarmup: nothing leaks per call), and
   * after dispose (must be back to `before`, up to the constants tfjs cached during the warm-up).
   */
  tensorLeak: { before: number; afterLoad: number; afterWarmup: number; afterPredictions: number; after: number; cachedByTfjs: number; ok: boolean };
  durationMs: number;
}

export interface ValidateModelOptions {
  folder: TfjsFolder;
  /** The model tree of the exported model (from the Keras source). Needed for the reference pass. */
  tree?: ModelSpec;
  /** Source weights of the exported model (float32, before quantization). */
  sourceWeights?: MappedWeight[];
  goldens?: LoadedGolden[];
  /** @default 1e-4 */
  tolerance?: number;
  /** @default 16 */
  batch?: number;
  seed?: number;
  /** Check the round trip and reference with accuracy thresholds for this quantization. */
  quantized?: QuantizeDtype;
}

// ---------------------------------------------------------------------------------------------------------------
// Comparison
// ---------------------------------------------------------------------------------------------------------------

function unravel(i: number, shape: number[]): number[] {
  const idx: number[] = [];
  for (let d = shape.length - 1; d >= 0; d--) {
    idx.unshift(i % shape[d]);
    i = Math.floor(i / shape[d]);
  }
  return idx;
}

function rms(a: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * a[i];
  return a.length ? Math.sqrt(s / a.length) : 0;
}

/** Compare `found` (TF.js) with `expected` (reference or golden). */
export function compareTensors(name: string, found: ArrayLike<number>, expected: RefTensor, tolerance: number, depthFactor = 1, quantized?: QuantizeDtype): TensorDiff {
  const b = expected.data;
  const scale = Math.max(1, rms(b));
  const rtol = tolerance * depthFactor;
  const atol = (tolerance / 10) * depthFactor * scale;
  const diff: TensorDiff = { name, shape: expected.shape, maxAbsDiff: 0, maxRelDiff: 0, atol, rtol, pass: true };
  if (found.length !== b.length) {
    return { ...diff, maxAbsDiff: Infinity, maxRelDiff: Infinity, pass: false, firstFailingIndex: [], expected: b.length, found: found.length };
  }
  const denomFloor = Math.max(rms(b), 1e-12);
  for (let i = 0; i < b.length; i++) {
    const a = found[i];
    const d = Math.abs(a - b[i]);
    const bad = Number.isNaN(a) || Number.isNaN(b[i]) || !(d <= atol + rtol * Math.abs(b[i]));
    if (d > diff.maxAbsDiff || Number.isNaN(d)) diff.maxAbsDiff = Number.isNaN(d) ? Infinity : d;
    const rel = d / Math.max(Math.abs(b[i]), denomFloor);
    if (rel > diff.maxRelDiff || Number.isNaN(rel)) diff.maxRelDiff = Number.isNaN(rel) ? Infinity : rel;
    if (bad && diff.pass && !quantized) {
      diff.pass = false;
      diff.firstFailingIndex = unravel(i, expected.shape);
      diff.expected = b[i];
      diff.found = a;
    }
  }
  const [rows, dim] = expected.shape;
  if (expected.shape.length === 2 && dim >= 8) {
    let minCos = 1;
    for (let r = 0; r < rows; r++) {
      let ab = 0;
      let aa = 0;
      let bb = 0;
      for (let k = 0; k < dim; k++) {
        const x = found[r * dim + k];
        const y = b[r * dim + k];
        ab += x * y;
        aa += x * x;
        bb += y * y;
      }
      const cos = aa === 0 && bb === 0 ? 1 : ab / Math.sqrt(aa * bb);
      if (!(cos >= minCos)) minCos = Number.isNaN(cos) ? -1 : cos;
    }
    diff.minCosine = minCos;
    diff.topKAgreement = topKAgree(found, b, rows, dim, scale * scale * dim * 1e-6);
    const cosFloor = quantized ? QUANTIZED_MIN_COSINE[quantized] : 1 - tolerance;
    if (minCos < cosFloor || (!quantized && !diff.topKAgreement)) diff.pass = false;
  } else if (quantized) {
    diff.pass = diff.maxAbsDiff / Math.max(rms(b), 1e-12) <= QUANTIZED_MAX_REL_RMS[quantized];
  }
  return diff;
}

/** For each row, the k most similar other rows (dot product) must be the same set; near-ties are skipped. */
function topKAgree(a: ArrayLike<number>, b: ArrayLike<number>, rows: number, dim: number, tieGap: number): boolean {
  if (rows < 3) return true;
  const k = Math.min(5, rows - 1);
  const scores = (m: ArrayLike<number>, r: number) =>
    Array.from({ length: rows }, (_, j) => {
      let s = 0;
      for (let d = 0; d < dim; d++) s += m[r * dim + d] * m[j * dim + d];
      return { j, s };
    })
      .filter((x) => x.j !== r)
      .sort((x, y) => y.s - x.s);
  for (let r = 0; r < rows; r++) {
    const ref = scores(b, r);
    if (k < ref.length && ref[k - 1].s - ref[k].s < tieGap) continue; // a tie at the cut: either set is right
    const want = new Set(ref.slice(0, k).map((x) => x.j));
    const got = scores(a, r).slice(0, k);
    if (!got.every((x) => want.has(x.j))) return false;
  }
  return true;
}

/** Weighted layers on the longest path to each layer (for the depth-scaled tolerance). */
function depthOf(model: ModelSpec): Map<string, number> {
  const weighted = (l: LayerSpec): number => (l.model ? Math.max(0, ...[...depthOf(l.model).values()]) : ['Dense', 'Embedding', 'BatchNormalization', 'LayerNormalization', 'PReLU'].includes(l.className) ? 1 : 0);
  const byName = new Map(model.layers.map((l) => [l.name, l]));
  const memo = new Map<string, number>();
  const visit = (name: string, guard: number): number => {
    if (memo.has(name)) return memo.get(name)!;
    const l = byName.get(name);
    if (!l || guard > 10_000) return 0;
    const up = Math.max(0, ...l.calls.flatMap((c) => c.inputs.map(([src]) => visit(src, guard + 1))));
    const d = up + weighted(l);
    memo.set(name, d);
    return d;
  };
  for (const l of model.layers) visit(l.name, 0);
  return memo;
}

const depthFactorOf = (depth: number) => Math.max(1, depth / 4);

// ---------------------------------------------------------------------------------------------------------------
// TF.js helpers
// ---------------------------------------------------------------------------------------------------------------

function toTfInputs(model: LayersModel, tensors: RefTensor[]): Tensor[] {
  return model.inputs.map((inp, i) => {
    const t = tensors[i];
    const dtype = inp.dtype === 'int32' ? 'int32' : inp.dtype === 'bool' ? 'bool' : 'float32';
    return tf.tensor(dtype === 'float32' ? Float32Array.from(t.data) : Int32Array.from(t.data), t.shape, dtype);
  });
}

/** Outputs of every layer call of `model` (excluding inputs) for the given inputs, keyed `name|node`. */
function tfLayerOutputs(model: LayersModel, xs: Tensor[]): Map<string, Float32Array> {
  const keys: string[] = [];
  const outputs: ReturnType<typeof tf.input>[] = [];
  for (const layer of model.layers) {
    if (layer.getClassName() === 'InputLayer') continue;
    const nodes = (layer as unknown as { inboundNodes: unknown[] }).inboundNodes.length;
    for (let n = 0; n < nodes; n++) {
      let out: ReturnType<typeof tf.input> | ReturnType<typeof tf.input>[];
      try {
        out = layer.getOutputAt(n) as ReturnType<typeof tf.input>;
      } catch {
        continue;
      }
      if (Array.isArray(out)) continue;
      // Node 0 of a nested model is its internal graph, not a call in this model.
      if (out.sourceLayer !== layer) continue;
      keys.push(`${layer.name}|${n}`);
      outputs.push(out);
    }
  }
  const result = new Map<string, Float32Array>();
  if (!outputs.length) return result;
  const probe = tf.model({ inputs: model.inputs, outputs });
  const ys = tf.tidy(() => run(probe as unknown as LayersModel, xs));
  ys.forEach((y, i) => {
    result.set(keys[i], Float32Array.from(y.dataSync()));
    y.dispose();
  });
  return result;
}

/** True when some input has no feature axis (`Input(shape=())`): LayersModel.predict() cannot take it. */
export function hasRank1Input(model: { inputs: Array<{ shape: unknown[] }> }): boolean {
  return model.inputs.some((i) => i.shape.length === 1);
}

/**
 * Run the model as the app would: `predict()`. tfjs-layers' predict() turns 1-D inputs into [batch, 1] and then
 * rejects them, so models with a rank-1 input run through `apply()` (inference mode) instead.
 */
function run(model: LayersModel, xs: Tensor[]): Tensor[] {
  const x = xs.length === 1 ? xs[0] : xs;
  const r = hasRank1Input(model) ? model.apply(x, { training: false }) : model.predict(x);
  return (Array.isArray(r) ? r : [r]) as Tensor[];
}

function predict(model: LayersModel, xs: Tensor[]): Float32Array[] {
  const ys = tf.tidy(() => run(model, xs));
  const out = ys.map((y) => Float32Array.from(y.dataSync()));
  ys.forEach((y) => y.dispose());
  return out;
}

// ---------------------------------------------------------------------------------------------------------------

function checkWeights(folder: TfjsFolder, sourceWeights: MappedWeight[] | undefined, quantized?: QuantizeDtype): ValidationReport['weights'] {
  const entries = folder.modelJson.weightsManifest.flatMap((g) => g.weights);
  const decoded = decodeWeights(entries, folder.weightData);
  const report = { count: entries.length, sourceCount: sourceWeights?.length ?? entries.length, exact: !quantized, maxAbsError: 0, ok: true };
  if (!sourceWeights) return report;
  const names = new Set(entries.map((e) => e.name));
  const problems: string[] = [];
  for (const w of sourceWeights) {
    const e = entries.find((x) => x.name === w.name);
    const got = decoded.get(w.name);
    if (!e || !got) {
      problems.push(`${w.name} (from ${w.source}) is not in model.json`);
      continue;
    }
    names.delete(w.name);
    if (e.shape.join() !== w.shape.join()) problems.push(`${w.name}: shape [${e.shape.join(', ')}] in model.json, [${w.shape.join(', ')}] in the source`);
    if (e.dtype !== 'float32') problems.push(`${w.name}: dtype ${e.dtype}, expected float32`);
    if (got.length !== w.data.length) continue;
    if (!quantized) {
      const a = new Uint32Array(got.buffer, got.byteOffset, got.length);
      const b = new Uint32Array(w.data.buffer.slice(w.data.byteOffset, w.data.byteOffset + w.data.byteLength));
      for (let i = 0; i < a.length; i++) {
        if (a[i] !== b[i]) {
          problems.push(`${w.name}[${i}] is ${got[i]} in the shards but ${w.data[i]} in ${w.source}`);
          break;
        }
      }
    } else {
      let maxErr = 0;
      let range = 0;
      for (let i = 0; i < got.length; i++) {
        maxErr = Math.max(maxErr, Math.abs(got[i] - w.data[i]));
        range = Math.max(range, Math.abs(w.data[i]));
      }
      report.maxAbsError = Math.max(report.maxAbsError, maxErr);
      // float16 keeps 11 significant bits; uint8 is within one step of (max − min)/255 ≤ 2·max|w|/255.
      const bound = quantized === 'float16' ? range * 2 ** -11 + 1e-7 : (2 * range) / 255 + 1e-7;
      if (maxErr > bound * 1.001) problems.push(`${w.name}: dequantized values are off by ${maxErr}, more than ${quantized} allows (${bound})`);
    }
  }
  for (const extra of names) problems.push(`${extra} is in model.json but comes from no source weight`);
  if (problems.length) {
    throw invalidModel(`The weights in the shards do not match the source:\n  ${problems.slice(0, 10).join('\n  ')}`, {
      code: 'VALIDATION_WEIGHTS',
      details: { problems },
    });
  }
  return report;
}

function checkShapes(model: LayersModel, tree: ModelSpec, refOutputs?: RefTensor[]): { ok: boolean; problems: string[] } {
  const problems: string[] = [];
  if (model.inputs.length !== tree.inputSpecs.length) problems.push(`TF.js has ${model.inputs.length} inputs, the config ${tree.inputSpecs.length}`);
  tree.inputSpecs.forEach((spec, i) => {
    const inp = model.inputs[i];
    if (!inp) return;
    const want = spec.shape.map((d) => d ?? null).join();
    const got = inp.shape.map((d) => d ?? null).join();
    if (want !== got) problems.push(`input ${spec.name}: shape [${got}] in TF.js, [${want}] in the config`);
    const wantDtype = /int/.test(spec.dtype) ? 'int32' : spec.dtype === 'bool' ? 'bool' : 'float32';
    if (inp.dtype !== wantDtype) problems.push(`input ${spec.name}: dtype ${inp.dtype} in TF.js, ${wantDtype} expected`);
  });
  if (refOutputs) {
    model.outputs.forEach((o, i) => {
      const r = refOutputs[i];
      if (!r) return;
      const got = o.shape.slice(1).join();
      const want = r.shape.slice(1).join();
      if (got !== want) problems.push(`output ${i}: shape [${o.shape.join(', ')}] in TF.js, [batch, ${r.shape.slice(1).join(', ')}] from the reference`);
    });
  }
  return { ok: problems.length === 0, problems };
}

/**
 * Prefix for the layers inside one call of a nested model: `tower` for its first call, `tower@2` for the
 * second (a tower shared by two inputs computes different values in each call).
 */
export function callPath(path: string, node: number): string {
  return node <= 1 ? path : `${path}@${node}`;
}

/**
 * Compare TF.js layer outputs with the reference, in config (topological) order. Nested models are compared
 * inside too: the nested model is run in TF.js on the reference's inputs for that call, so a difference is pinned
 * to the first layer that produces it, not to the whole tower.
 */
function compareLayers(model: LayersModel, tree: ModelSpec, xs: Tensor[], refByPath: Map<string, RefTensor>, refInputsByPath: Map<string, RefTensor[]>, prefix: string, tolerance: number): { compared: number; firstFailing?: LayerDiff } {
  const outs = tfLayerOutputs(model, xs);
  const depths = depthOf(tree);
  let compared = 0;
  let firstFailing: LayerDiff | undefined;
  const order = tree.layers.flatMap((l) => l.calls.map((_, c) => ({ layer: l, node: (l.model ? 1 : 0) + c })));
  for (const { layer, node } of order) {
    const path = prefix ? `${prefix}/${layer.name}` : layer.name;
    const found = outs.get(`${layer.name}|${node}`);
    const expected = refByPath.get(`${path}|${node}`);
    if (layer.model) {
      const inner = model.getLayer(layer.name) as unknown as LayersModel;
      const innerXs = toTfInputs(inner, refInputsByPath.get(`${path}|${node}`) ?? []);
      try {
        const deeper = compareLayers(inner, layer.model, innerXs, refByPath, refInputsByPath, callPath(path, node), tolerance);
        compared += deeper.compared;
        firstFailing ??= deeper.firstFailing;
      } finally {
        innerXs.forEach((t) => t.dispose());
      }
    }
    if (!found || !expected) continue;
    compared++;
    const d = compareTensors(path, found, expected, tolerance, depthFactorOf(depths.get(layer.name) ?? 1));
    if (!d.pass) firstFailing ??= { layer: path, node, maxAbsDiff: d.maxAbsDiff, maxRelDiff: d.maxRelDiff, pass: false };
  }
  return { compared, firstFailing };
}

export async function validateModel(opts: ValidateModelOptions): Promise<ValidationReport> {
  const t0 = performance.now();
  const tolerance = opts.tolerance ?? DEFAULT_TOLERANCE;
  const batch = opts.batch ?? DEFAULT_VALIDATION_BATCH;
  const seed = opts.seed ?? 1;
  const before = tf.memory().numTensors;
  const weights = checkWeights(opts.folder, opts.sourceWeights, opts.quantized);
  const model = await loadTfjsFolder(opts.folder);
  const afterLoad = tf.memory().numTensors;
  warmUp(model);
  const afterWarmup = tf.memory().numTensors;
  const report: ValidationReport = {
    ok: true,
    backend: tf.getBackend(),
    tolerance,
    weights,
    strictLoad: true,
    shapes: { ok: true, problems: [] },
    golden: [],
    tensorLeak: { before, afterLoad, afterWarmup, afterPredictions: afterWarmup, after: before, cachedByTfjs: afterWarmup - afterLoad, ok: true },
    durationMs: 0,
  };
  try {
    if (opts.tree && opts.sourceWeights) {
      const tree = opts.tree;
      const byName = new Map(opts.sourceWeights.map((w) => [w.name, w]));
      const lookup = (l: string, w: string) => byName.get(`${l}/${w}`);
      const gen = generateInputs(tree, batch, seed);
      const refByPath = new Map<string, RefTensor>();
      const refInputsByPath = new Map<string, RefTensor[]>();
      const refOut = runReference(tree, gen.map((g) => g.tensor), lookup, (path, node, outs, ins) => {
        refByPath.set(`${path}|${node}`, outs[0]);
        refInputsByPath.set(`${path}|${node}`, ins);
      });
      report.shapes = checkShapes(model, tree, refOut);
      const xs = toTfInputs(model, gen.map((g) => g.tensor));
      try {
        const ys = predict(model, xs);
        const depths = depthOf(tree);
        const outputs = tree.outputs.map(([name], i) => compareTensors(name, ys[i], refOut[i], tolerance, depthFactorOf(depths.get(name) ?? 1), opts.quantized));
        let layersCompared = 0;
        let firstFailingLayer: LayerDiff | undefined;
        if (!opts.quantized) {
          const r = compareLayers(model, tree, xs, refByPath, refInputsByPath, '', tolerance);
          layersCompared = r.compared;
          firstFailingLayer = r.firstFailing;
        }
        report.reference = {
          batch,
          seed,
          inputs: gen.map((g) => ({ name: g.name, shape: g.tensor.shape, dtype: g.dtype, ...(g.idRange !== undefined ? { idRange: g.idRange } : {}) })),
          outputs,
          layersCompared,
          ...(firstFailingLayer ? { firstFailingLayer } : {}),
          ...(opts.quantized ? { quantized: opts.quantized } : {}),
        };
      } finally {
        xs.forEach((t) => t.dispose());
      }
    } else if (opts.tree) {
      report.shapes = checkShapes(model, opts.tree);
    }
    for (const g of opts.goldens ?? []) report.golden.push(compareGolden(model, g, tolerance, opts.tree, opts.quantized));
    report.tensorLeak.afterPredictions = tf.memory().numTensors;
  } finally {
    disposeLayersModel(model);
  }
  const after = tf.memory().numTensors;
  const t = report.tensorLeak;
  report.tensorLeak = { ...t, after, ok: t.afterPredictions === t.afterWarmup && after - before <= t.cachedByTfjs };
  report.ok =
    report.weights.ok &&
    report.shapes.ok &&
    report.tensorLeak.ok &&
    (report.reference ? report.reference.outputs.every((o) => o.pass) && !report.reference.firstFailingLayer : true) &&
    report.golden.every((g) => g.ok);
  report.durationMs = performance.now() - t0;
  return report;
}

/** One prediction on zeros (id 0 is valid for every Embedding), so tfjs' first-use caches exist before counting. */
function warmUp(model: LayersModel): void {
  const xs = model.inputs.map((i) => tf.zeros([2, ...i.shape.slice(1).map((d) => d ?? 4)], i.dtype === 'int32' ? 'int32' : 'float32'));
  try {
    tf.tidy(() => run(model, xs)).forEach((y) => y.dispose());
  } finally {
    xs.forEach((x) => x.dispose());
  }
}

function compareGolden(model: LayersModel, g: LoadedGolden, tolerance: number, tree: ModelSpec | undefined, quantized?: QuantizeDtype): { file: string; outputs: TensorDiff[]; ok: boolean } {
  // Input layer names (model.inputNames is empty for a loaded Sequential in tfjs-layers 4.22).
  const names = model.inputs.map((t) => t.sourceLayer?.name ?? t.name);
  const missing = names.filter((n) => !g.inputs.has(n));
  if (missing.length) {
    throw invalidModel(`Golden file ${g.file} has no input named ${missing.join(', ')} (the model's inputs are ${names.join(', ')}; the file has ${[...g.inputs.keys()].join(', ')}).`, { code: 'VALIDATION_GOLDEN_INPUTS' });
  }
  if (g.outputs.length !== model.outputs.length) {
    throw invalidModel(`Golden file ${g.file} has ${g.outputs.length} outputs; the model has ${model.outputs.length}.`, { code: 'VALIDATION_GOLDEN_OUTPUTS' });
  }
  const xs = toTfInputs(model, names.map((n) => g.inputs.get(n)!));
  try {
    const ys = predict(model, xs);
    const depths = tree ? depthOf(tree) : new Map<string, number>();
    const outputs = g.outputs.map((exp, i) => compareTensors(g.golden.output_names[i] ?? `output ${i}`, ys[i], exp, tolerance, depthFactorOf(depths.get(tree?.outputs[i]?.[0] ?? '') ?? 1), quantized));
    return { file: g.file, outputs, ok: outputs.every((o) => o.pass) };
  } finally {
    xs.forEach((t) => t.dispose());
  }
}

/** A readable one-paragraph summary of a failed report (for the error message). */
export function describeFailure(r: ValidationReport): string {
  const parts: string[] = [];
  if (!r.shapes.ok) parts.push(`shape problems: ${r.shapes.problems.join('; ')}`);
  for (const o of r.reference?.outputs ?? []) {
    if (!o.pass) parts.push(`output ${o.name}: max abs diff ${o.maxAbsDiff.toExponential(3)} (bound ${o.atol.toExponential(1)} + ${o.rtol.toExponential(1)}·|ref|)${o.firstFailingIndex ? ` first at [${o.firstFailingIndex.join(', ')}]: ${o.found} vs ${o.expected}` : ''}${o.minCosine !== undefined ? `, min cosine ${o.minCosine.toFixed(6)}` : ''}`);
  }
  if (r.reference?.firstFailingLayer) {
    const f = r.reference.firstFailingLayer;
    parts.push(`first failing layer: ${f.layer} (node ${f.node}), max abs diff ${f.maxAbsDiff.toExponential(3)}`);
  }
  for (const g of r.golden) {
    for (const o of g.outputs) if (!o.pass) parts.push(`golden ${g.file} ${o.name}: max abs diff ${o.maxAbsDiff.toExponential(3)}${o.firstFailingIndex ? ` first at [${o.firstFailingIndex.join(', ')}]: ${o.found} vs ${o.expected}` : ''}`);
  }
  if (!r.tensorLeak.ok) {
    const t = r.tensorLeak;
    parts.push(`tensor leak: ${t.afterWarmup} tensors before the predictions, ${t.afterPredictions} after; ${t.before} before loading, ${t.after} after dispose`);
  }
  return parts.join('; ');
}


/** The TF.js folder of a conversion, in memory (for --dry-run, and the float32 check of quantized exports). */
export function folderOfConversion(c: KerasConversion, quantized = true): TfjsFolder {
  if (quantized || !c.encoded.quantization) return { dir: '(in memory)', modelJson: c.modelJson, weightData: c.encoded.bytes };
  const plain = encodeWeights(c.weights);
  const modelJson = { ...c.modelJson, weightsManifest: [{ paths: ['(in memory)'], weights: plain.entries }] };
  return { dir: '(in memory, float32)', modelJson, weightData: plain.bytes };
}

export interface ConversionValidation {
  ok: boolean;
  /** The exported model against the reference (and goldens). */
  report: ValidationReport;
  /** For quantized exports: the same model with float32 weights, checked with the strict tolerance first. */
  float32?: ValidationReport;
}

/** Validate a conversion's written (or in-memory) folder against its own source. */
export async function validateConversion(c: KerasConversion, folder: TfjsFolder, opts: { goldens?: LoadedGolden[]; tolerance?: number; batch?: number } = {}): Promise<ConversionValidation> {
  const quantized = c.encoded.quantization?.dtype;
  let float32: ValidationReport | undefined;
  if (quantized) {
    float32 = await validateModel({ folder: folderOfConversion(c, false), tree: c.tree, sourceWeights: c.weights, tolerance: opts.tolerance, batch: opts.batch });
  }
  const report = await validateModel({ folder, tree: c.tree, sourceWeights: c.weights, goldens: opts.goldens, tolerance: opts.tolerance, batch: opts.batch, quantized });
  return { ok: report.ok && (float32?.ok ?? true), report, ...(float32 ? { float32 } : {}) };
}
