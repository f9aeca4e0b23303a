/**
 * Loading a two-tower model folder for inference, strictly, from bytes: the one loader `am-ml embed` and the Edge
 * runtime use. No Node APIs: the caller supplies `read(path)` (disk: `load-model-fs.ts`; Deno: fetch from storage).
 *
 * Before anything can be embedded (app-schema §7.1–7.5):
 *  1. `manifest.json` parses (zod) and is a two-tower manifest;
 *  2. every listed file has the listed size and sha256;
 *  3. `features.json` hashes to `featureSpecSha256` and parses; the towers' input specs in the manifest equal the
 *     ones the spec implies (names, dtypes, widths);
 *  4. both towers load from memory with `strict` weight matching (no missing, extra or mis-sized weights), and
 *     output `embeddingDim`-wide vectors;
 *  5. the probe: inputs rebuilt from the probe's raw items/histories equal the recorded ones exactly, and the
 *     towers' outputs on them match the recorded embeddings within the probe's tolerance.
 * Any failure throws ValidationFailedError (exit 4) or ConfigError (exit 3, unparseable files) naming the file and
 * the expected and found values; nothing is returned half-checked.
 *
 * Usage (embed, runtime):
 *   const model = await loadTwoTower((p) => readBytes(p));
 *   const { embeddings } = model.embedItems(items);          // Float32Array, rows × model.dim, unit vectors
 *   const { embeddings } = model.embedUsers([{ likes, nopes }]);
 *   model.dispose();
 */
import { ConfigError, ValidationFailedError } from '../errors.js';
import { FEATURES_FILE, MANIFEST_FILE, type ModelManifest, ModelManifestSchema, PROBE_FILE } from './artifacts.js';
import {
  buildItemInputs,
  buildItemInputsEncoded,
  buildUserInputs,
  buildUserInputsEncoded,
  type EncodedHistory,
  type EncodedItem,
  type FeatureSpec,
  type FeatureStats,
  type InputArray,
  type ItemAttributes,
  parseFeatureSpec,
  type TowerInputs,
  towerInputSpecs,
  type UserHistory,
} from './features/index.js';
import './layers.js';
import { loadTowerFromBytes, MODEL_JSON, predictTower, type TowerModelJson } from './model.js';
import { checkProbe, type Probe, ProbeSchema } from './probe.js';
import { sha256Hex } from './sha256.js';
import type { tf } from './tf.js';

/** Reads a file of the model folder by its relative path (throws if absent). */
export type ReadModelFile = (relativePath: string) => Promise<Uint8Array>;

export interface LoadTwoTowerOptions {
  /** Where the folder came from, for messages (`.am-ml/runs/2026…`, `models/two_tower/v12`). */
  where?: string;
  /** Rows per inference batch in embedItems/embedUsers. @default 4096 */
  batchSize?: number;
}

export interface EmbedResult {
  /** Row-major, `rows × dim`, L2-normalised. */
  embeddings: Float32Array;
  rows: number;
  /** What the feature code met (missing, invalid, unknown, dropped, truncated per field). */
  stats: FeatureStats;
}

export interface LoadedTwoTower {
  manifest: ModelManifest;
  spec: FeatureSpec;
  dim: number;
  /** The run id (model version) embeddings should be written with. */
  runId: string;
  towers: { user: tf.LayersModel; item: tf.LayersModel };
  embedItems(items: readonly ItemAttributes[]): EmbedResult;
  /** Items already encoded with `encodeItem` (callers that also keep the encodings for users' histories). */
  embedItemsEncoded(items: readonly EncodedItem[]): Float32Array;
  embedUsers(histories: readonly UserHistory[]): EmbedResult;
  /** For callers that encode catalog items once (`encodeItem`) and reuse them across users. */
  embedUsersEncoded(histories: readonly EncodedHistory[]): EmbedResult;
  /** Run a tower on inputs built by the feature functions. */
  embedInputs(inputs: TowerInputs): Float32Array;
  dispose(): void;
}

const decoder = new TextDecoder();

function invalid(message: string, details: Record<string, unknown>, hint?: string): ValidationFailedError {
  return new ValidationFailedError(message, { code: 'MODEL_INVALID', details, hint: hint ?? 'Re-download or re-train the model; never edit a model folder by hand.' });
}

function parseJson(bytes: Uint8Array, file: string, where: string): unknown {
  try {
    return JSON.parse(decoder.decode(bytes));
  } catch (err) {
    throw new ConfigError(`${where}/${file} is not valid JSON: ${(err as Error).message}`, [], { code: 'MODEL_INVALID' });
  }
}

async function readChecked(read: ReadModelFile, file: string, where: string): Promise<Uint8Array> {
  try {
    return await read(file);
  } catch (err) {
    throw invalid(`${where}/${file} cannot be read: ${(err as Error).message}`, { file });
  }
}

/** Load and fully verify a two-tower model folder (see the module comment). */
export async function loadTwoTower(read: ReadModelFile, opts: LoadTwoTowerOptions = {}): Promise<LoadedTwoTower> {
  const where = opts.where ?? 'model folder';
  const parsed = ModelManifestSchema.safeParse(parseJson(await readChecked(read, MANIFEST_FILE, where), MANIFEST_FILE, where));
  if (!parsed.success) {
    throw new ConfigError(
      `${where}/${MANIFEST_FILE} is not a valid am-ml model manifest:`,
      parsed.error.issues.map((i) => ({ key: i.path.join('.') || '(root)', message: i.message })),
      { code: 'MANIFEST_INVALID' },
    );
  }
  const manifest = parsed.data;
  if (manifest.kind !== 'two-tower') {
    throw invalid(`${where} holds a ${manifest.kind} model, not a two-tower run.`, { expected: 'two-tower', found: manifest.kind });
  }

  // 2. every file, size and sha256
  const bytes = new Map<string, Uint8Array>();
  const problems: string[] = [];
  for (const f of manifest.files) {
    let b: Uint8Array;
    try {
      b = await read(f.path);
    } catch {
      problems.push(`${f.path}: missing`);
      continue;
    }
    if (b.byteLength !== f.size) problems.push(`${f.path}: size ${b.byteLength}, manifest says ${f.size}`);
    else {
      const sha = await sha256Hex(b);
      if (sha !== f.sha256) problems.push(`${f.path}: sha256 ${sha}, manifest says ${f.sha256}`);
    }
    bytes.set(f.path, b);
  }
  if (problems.length) {
    throw invalid(`${where} is incomplete or corrupt: ${problems.join('; ')}.`, { problems });
  }

  // 3. feature spec
  const featuresBytes = bytes.get(FEATURES_FILE)!;
  const featuresSha = await sha256Hex(featuresBytes);
  if (featuresSha !== manifest.featureSpecSha256) {
    throw invalid(`${where}/${FEATURES_FILE} does not match the manifest's featureSpecSha256.`, {
      expected: manifest.featureSpecSha256,
      found: featuresSha,
    });
  }
  const spec = parseFeatureSpec(decoder.decode(featuresBytes));
  const dim = manifest.embeddingDim;
  if (!dim) throw invalid(`${where}/${MANIFEST_FILE} has no embeddingDim.`, { expected: 'embeddingDim', found: null });
  for (const tower of ['user', 'item'] as const) {
    const expected = towerInputSpecs(spec, tower).map((s) => `${s.name}:${s.dtype}[${s.width}]`);
    const found = manifest.towers[tower].inputs.map((s) => `${s.name}:${s.dtype}[${s.shape[1]}]`);
    if (expected.join(',') !== found.join(',')) {
      throw invalid(`${where}: the ${tower} tower's inputs in the manifest do not match the feature spec.`, { tower, expected, found });
    }
  }

  // 4. towers, strictly
  const towers = {} as LoadedTwoTower['towers'];
  try {
    for (const tower of ['user', 'item'] as const) {
      const dir = manifest.towers[tower].path;
      const modelJson = parseJson(bytes.get(`${dir}/${MODEL_JSON}`)!, `${dir}/${MODEL_JSON}`, where) as TowerModelJson;
      if (!modelJson || !Array.isArray(modelJson.weightsManifest) || !modelJson.modelTopology) {
        throw invalid(`${where}/${dir}/${MODEL_JSON} is not a TF.js layers model.`, { file: `${dir}/${MODEL_JSON}` });
      }
      const shards = modelJson.weightsManifest.flatMap((g) => g.paths).map((p) => {
        const b = bytes.get(`${dir}/${p}`);
        if (!b) throw invalid(`${where}/${dir}/${p} is referenced by model.json but not listed in the manifest.`, { file: `${dir}/${p}` });
        return b;
      });
      let model: tf.LayersModel;
      try {
        model = await loadTowerFromBytes(modelJson, shards);
      } catch (err) {
        if (err instanceof ValidationFailedError) throw err;
        throw invalid(`${where}: the ${tower} tower does not load strictly: ${(err as Error).message}`, { tower });
      }
      towers[tower] = model;
      const out = model.outputs[0].shape;
      if (out[out.length - 1] !== dim) {
        throw invalid(`${where}: the ${tower} tower outputs ${out[out.length - 1]}-d vectors but the manifest says ${dim}.`, {
          tower,
          expected: dim,
          found: out[out.length - 1],
        });
      }
    }

    // 5. probe
    const probeParsed = ProbeSchema.safeParse(parseJson(bytes.get(PROBE_FILE) ?? (await readChecked(read, PROBE_FILE, where)), PROBE_FILE, where));
    if (!probeParsed.success) {
      throw new ConfigError(`${where}/${PROBE_FILE} is not a valid probe:`, probeParsed.error.issues.map((i) => ({ key: i.path.join('.'), message: i.message })), {
        code: 'MODEL_INVALID',
      });
    }
    const probe: Probe = probeParsed.data;
    const mismatches = checkProbe(probe, spec, {
      item: (a: InputArray[]) => predictTower(towers.item, a),
      user: (a: InputArray[]) => predictTower(towers.user, a),
    });
    if (mismatches.length) {
      const m = mismatches[0];
      throw invalid(
        m.stage === 'inputs'
          ? `${where}: probe failed: the feature code builds different ${m.tower} inputs than at training time (${m.where}: expected ${m.expected}, found ${m.found}).`
          : `${where}: probe failed: the ${m.tower} tower's output differs from training time (max abs diff ${m.maxAbsDiff}, tolerance ${probe.tolerance}, first at ${m.where}: expected ${m.expected}, found ${m.found}).`,
        { mismatches, tolerance: probe.tolerance },
        m.stage === 'inputs'
          ? 'This am-ml version computes features differently from the one that trained the model; embed with the am-ml version recorded in the manifest, or retrain.'
          : undefined,
      );
    }
  } catch (err) {
    towers.user?.dispose();
    towers.item?.dispose();
    throw err;
  }

  const batchSize = opts.batchSize ?? 4096;
  const run = (tower: 'user' | 'item', inputs: TowerInputs): Float32Array => {
    const out = new Float32Array(inputs.rows * dim);
    for (let s = 0; s < inputs.rows; s += batchSize) {
      const c = Math.min(batchSize, inputs.rows - s);
      const arrays = inputs.arrays.map((a) => ({ ...a, shape: [c, a.shape[1]] as [number, number], data: a.data.subarray(s * a.shape[1], (s + c) * a.shape[1]) }));
      out.set(predictTower(towers[tower], arrays), s * dim);
    }
    return out;
  };
  return {
    manifest,
    spec,
    dim,
    runId: manifest.runId,
    towers,
    embedItems(items) {
      const { inputs, stats } = buildItemInputs(spec, items);
      return { embeddings: run('item', inputs), rows: inputs.rows, stats };
    },
    embedItemsEncoded(items) {
      return run('item', buildItemInputsEncoded(spec, items));
    },
    embedUsers(histories) {
      const { inputs, stats } = buildUserInputs(spec, histories);
      return { embeddings: run('user', inputs), rows: inputs.rows, stats };
    },
    embedUsersEncoded(histories) {
      const { inputs, stats } = buildUserInputsEncoded(spec, histories);
      return { embeddings: run('user', inputs), rows: inputs.rows, stats };
    },
    embedInputs(inputs) {
      return run(inputs.tower, inputs);
    },
    dispose() {
      towers.user.dispose();
      towers.item.dispose();
    },
  };
}
