/**
 * Keras file → TF.js layers model, in memory: detect and open the input, refuse unsupported layers (all of them,
 * in one error, before anything is written), rewrite the config, map every weight, optionally extract a tower,
 * probe the graph with the reference pass, and encode model.json + shards. Writing is `export-folder.ts`.
 */
import { throwIfAborted } from '../../errors.js';
import { invalidModel } from './errors.js';
import type { LambdaMapping } from './lambda.js';
import { SHIM_CLASSES } from './layers.js';
import { flattenLayers, type ModelSpec, parseModelTree } from './model-tree.js';
import { type LayerProblem, rewriteModelConfig } from './rewrite.js';
import { inferShapes } from './shapes.js';
import { type KerasSource, openKerasSource } from './source.js';
import {
  cutShards,
  DEFAULT_SHARD_SIZE_BYTES,
  type EncodedWeights,
  encodeWeights,
  type ModelJson,
  type QuantizeDtype,
  type Shard,
} from './tfjs-format.js';
import { extractTower, findTowers, inTower, type TowerInfo } from './towers.js';
import { type MappedWeight, mapWeights } from './weights.js';

export type ExportPhase = 'read' | 'check' | 'map-weights' | 'encode' | 'write' | 'validate';

export type ExportEvent =
  | { kind: 'phase'; phase: ExportPhase; detail?: string }
  | { kind: 'file'; path: string; bytes: number };

export interface ConvertKerasOptions {
  /** `.keras`, `.h5`, or a topology `.json`. */
  input: string;
  /** Weights-only `.h5` for a topology JSON. */
  weights?: string;
  /** Extract this layer (a nested model or a branch) as the model. */
  tower?: string;
  lambdaMappings?: ReadonlyMap<string, LambdaMapping>;
  quantize?: QuantizeDtype;
  /** @default 4 MiB */
  shardSizeBytes?: number;
  /** `am-ml v0.1.0`: written as model.json `convertedBy`. */
  convertedBy: string;
  onProgress?: (e: ExportEvent) => void;
  signal?: AbortSignal;
}

export interface TensorInfo {
  name: string;
  shape: Array<number | null>;
  dtype: 'float32' | 'int32' | 'bool' | 'string';
}

export interface KerasConversion {
  source: KerasSource;
  /** The input files; their sha256 is computed on the thread pool while the conversion and the writing go on. */
  sourceFiles: Array<{ path: string; bytes: number; sha256: Promise<string> }>;
  /** Name of the exported model (the config name, or the extracted tower). */
  modelName: string;
  /** The whole source model and the exported one (the same unless a tower was extracted). */
  fullTree: ModelSpec;
  tree: ModelSpec;
  towers: TowerInfo[];
  tower?: string;
  /** All weights of the source model, float32, and the exported subset. */
  allWeights: MappedWeight[];
  weights: MappedWeight[];
  /** Datasets deliberately skipped (optimizer, RNG state). */
  ignored: string[];
  customLayers: string[];
  lambdas: Array<{ layer: string; as: string; how: string; axis: number; maxInverseNorm: number }>;
  inputs: TensorInfo[];
  outputs: TensorInfo[];
  /** Things the app must know to run the model (converted as it is). */
  warnings: string[];
  modelJson: ModelJson;
  encoded: EncodedWeights;
  /** Views of the weight pieces; written with no copy by export-folder.ts. */
  shards: Shard[];
  timingsMs: { read: number; check: number; mapWeights: number; encode: number };
}

/** One error listing every unsupported layer, grouped by class and problem (spec §4). */
function unsupportedError(problems: LayerProblem[]): Error {
  const byClass = new Map<string, LayerProblem[]>();
  for (const p of problems) byClass.set(p.className, [...(byClass.get(p.className) ?? []), p]);
  const summary = [...byClass.entries()].map(([cls, ps]) => `${cls}: ${ps.map((p) => p.layer).join(', ')}`).join('; ');
  const groups = new Map<string, LayerProblem[]>();
  for (const p of problems) {
    const key = `${p.className}\u0000${p.problem}\u0000${p.suggestion}`;
    groups.set(key, [...(groups.get(key) ?? []), p]);
  }
  const lines = [...groups.values()].map((ps) => `  - ${ps[0].className} (${ps.map((p) => p.layer).join(', ')}): ${ps[0].problem}; ${ps[0].suggestion}`);
  return invalidModel(`The model cannot be converted; ${problems.length} layer(s) are not supported: ${summary}.\n${lines.join('\n')}`, {
    code: 'KERAS_UNSUPPORTED_LAYERS',
    hint: 'Nothing was written. Rebuild the model from supported layers, or map L2-normalising Lambdas with --map-lambda.',
    details: { layers: problems },
  });
}

/** Graph-level checks: masks TF.js ignores. */
function graphProblems(tree: ModelSpec): LayerProblem[] {
  const problems: LayerProblem[] = [];
  const all = flattenLayers(tree);
  for (const { path, layer, owner } of all) {
    if (layer.className !== 'Embedding' || layer.config.mask_zero !== true) continue;
    // Follow consumers within the same model: a masked pooling downstream computes a masked mean in Keras.
    const stack = [layer.name];
    const seen = new Set<string>();
    while (stack.length) {
      const n = stack.pop()!;
      if (seen.has(n)) continue;
      seen.add(n);
      for (const l of owner.layers) {
        if (!l.calls.some((c) => c.inputs.some(([src]) => src === n))) continue;
        if (/Pooling1D$|^(LSTM|GRU|SimpleRNN|Bidirectional)$/.test(l.className) || l.model) {
          problems.push({
            layer: path,
            className: 'Embedding',
            problem: `mask_zero=True feeds ${l.name} (${l.className}), which Keras masks but TF.js does not`,
            suggestion: 'train without mask_zero, or pool with an explicit masked mean before export',
          });
          return problems;
        }
        stack.push(l.name);
      }
    }
  }
  return problems;
}

/** Runtime classes a (rewritten) model config uses. */
function customLayersIn(tree: ModelSpec): string[] {
  return [...new Set(flattenLayers(tree).map((l) => l.layer.className).filter((c) => SHIM_CLASSES.has(c)))].sort();
}

function tfDtype(d: string): TensorInfo['dtype'] {
  if (d === 'int32' || d === 'bool' || d === 'string') return d;
  return d.startsWith('int') || d.startsWith('uint') ? 'int32' : 'float32';
}

export async function convertKeras(opts: ConvertKerasOptions): Promise<KerasConversion> {
  const emit = opts.onProgress ?? (() => {});
  const t0 = performance.now();
  emit({ kind: 'phase', phase: 'read', detail: opts.input });
  const source = openKerasSource({ input: opts.input, weights: opts.weights });
  const t1 = performance.now();
  throwIfAborted(opts.signal, 'Nothing was written.');

  emit({ kind: 'phase', phase: 'check', detail: `Keras ${source.kerasVersion ?? '(version unknown)'} ${source.format}` });
  const rewrite = rewriteModelConfig(source.modelConfig, { kerasMajor: source.kerasMajor, lambdaMappings: opts.lambdaMappings });
  const problems = [...rewrite.problems];
  let fullTree: ModelSpec | undefined;
  if (Object.keys(rewrite.modelConfig).length) {
    fullTree = parseModelTree(rewrite.modelConfig);
    problems.push(...graphProblems(fullTree));
  }
  if (problems.length || !fullTree) throw unsupportedError(problems);
  const t2 = performance.now();

  emit({ kind: 'phase', phase: 'map-weights' });
  const mapping = mapWeights(source, fullTree);
  const towers = findTowers(fullTree);
  let modelConfig = rewrite.modelConfig;
  let tree = fullTree;
  let weights = mapping.weights;
  if (opts.tower) {
    const extracted = extractTower(rewrite.modelConfig, fullTree, opts.tower);
    modelConfig = extracted.modelConfig;
    tree = parseModelTree(modelConfig);
    weights = mapping.weights.filter((w) => inTower(w.layerPath, extracted));
  }
  const seenNames = new Map<string, string>();
  for (const w of weights) {
    const other = seenNames.get(w.name);
    if (other) {
      throw invalidModel(`Two layers are both named '${w.name.split('/')[0]}' (${other} and ${w.layerPath}); TF.js names weights by layer name, so it could not tell them apart.`, {
        code: 'KERAS_DUPLICATE_LAYER_NAME',
        hint: 'Give the layers distinct names in Keras (name=...) and save again, or export one tower with --tower.',
      });
    }
    seenNames.set(w.name, w.layerPath);
  }
  throwIfAborted(opts.signal, 'Nothing was written.');

  // Static shape inference: proves the config and the weight shapes fit together (no arithmetic, so it costs
  // nothing on large models) and yields the output shapes for the manifest.
  const shapeOf = new Map(weights.map((w) => [w.name, w.shape]));
  const outShapes = inferShapes(tree, (layer, wn) => shapeOf.get(`${layer}/${wn}`));
  const inputs: TensorInfo[] = tree.inputSpecs.map((s) => ({ name: s.name, shape: s.shape, dtype: tfDtype(s.dtype) }));
  const outputs: TensorInfo[] = tree.outputs.map(([name], i) => ({ name, shape: [null, ...outShapes[i].slice(1)], dtype: 'float32' }));
  const warnings = inputs
    .filter((i) => i.shape.length === 1)
    .map(
      (i) =>
        `Input ${i.name} has no feature axis (Keras Input(shape=())): TF.js LayersModel.predict() reshapes 1-D inputs to [batch, 1] and rejects them, so call model.apply(x, {training: false}) in the app, or give the Keras Input shape (1,).`,
    );
  const t3 = performance.now();

  emit({ kind: 'phase', phase: 'encode', detail: opts.quantize ? `quantize ${opts.quantize}` : undefined });
  const encoded = encodeWeights(weights, opts.quantize);
  const shardSize = opts.shardSizeBytes ?? DEFAULT_SHARD_SIZE_BYTES;
  const shards = cutShards(encoded.pieces, shardSize);
  const modelName = opts.tower ?? fullTree.name;
  const customLayers = customLayersIn(tree);
  const sourceFiles = source.files.map((f) => ({ path: f.path, bytes: f.bytes, sha256: f.sha256 }));
  const modelJson: ModelJson = {
    format: 'layers-model',
    generatedBy: source.kerasVersion ? `keras v${source.kerasVersion}` : null,
    convertedBy: opts.convertedBy,
    modelTopology: { keras_version: source.kerasVersion, backend: source.backend ?? 'tensorflow', model_config: modelConfig },
    weightsManifest: [{ paths: shards.map((s) => s.name), weights: encoded.entries }],
    userDefinedMetadata: {
      amMl: {
        source: {
          // sha256 filled in by finalModelJson() once hashed.
          files: sourceFiles.map((f) => ({ name: f.path.split(/[\\/]/).pop(), sha256: null as string | null, bytes: f.bytes })),
          format: source.format,
          kerasVersion: source.kerasVersion,
        },
        model: modelName,
        tower: opts.tower ?? null,
        customLayers,
        lambdas: rewrite.lambdas,
        quantization: encoded.quantization ?? null,
        runtime: customLayers.length ? "import 'am-ml/runtime' before tf.loadLayersModel" : null,
      },
    },
  };
  const t4 = performance.now();
  return {
    source,
    sourceFiles,
    modelName,
    fullTree,
    tree,
    towers,
    tower: opts.tower,
    allWeights: mapping.weights,
    weights,
    ignored: mapping.ignored,
    customLayers,
    lambdas: rewrite.lambdas,
    inputs,
    outputs,
    warnings,
    modelJson,
    encoded,
    shards,
    timingsMs: { read: t1 - t0, check: t2 - t1, mapWeights: t3 - t2, encode: t4 - t3 },
  };
}

/** The input files with their sha256 (waits for the hashing started when the files were read). */
export async function resolvedSourceFiles(c: KerasConversion): Promise<Array<{ path: string; bytes: number; sha256: string }>> {
  return Promise.all(c.sourceFiles.map(async (f) => ({ path: f.path, bytes: f.bytes, sha256: await f.sha256 })));
}

/** model.json as written: the conversion's document with the source files' sha256 filled in (a shallow copy). */
export async function finalModelJson(c: KerasConversion): Promise<ModelJson> {
  const files = await resolvedSourceFiles(c);
  type AmMlMeta = { source?: { files?: Array<{ name?: string; sha256: string | null; bytes: number }> } };
  const meta = c.modelJson.userDefinedMetadata?.amMl as AmMlMeta | undefined;
  if (!meta?.source?.files) return c.modelJson;
  const source = { ...meta.source, files: meta.source.files.map((f, i) => ({ ...f, sha256: files[i].sha256 })) };
  return { ...c.modelJson, userDefinedMetadata: { ...c.modelJson.userDefinedMetadata, amMl: { ...meta, source } } };
}
