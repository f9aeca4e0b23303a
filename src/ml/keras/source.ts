/**
 * Detect a Keras input by its content and open it: a Keras 3 `.keras` zip, a full-model `.h5` (Keras 2 or 3), or a
 * Keras topology JSON plus a weights-only `.h5`. The result holds the raw model config, the Keras version and the
 * opened HDF5 weights, without interpreting either (see `model-tree.ts` and `weights.ts`).
 */
import { statSync } from 'node:fs';
import path from 'node:path';
import { fromHdf5Error, invalidModel, unreadableInput } from './errors.js';
import { type H5File, H5Group, type H5Value, isHdf5, openHdf5 } from './hdf5/file.js';
import { readFileHashed } from './parallel-sha256.js';
import { isZip, readZip } from './zip.js';

/** Largest input file we read into memory. */
export const MAX_INPUT_BYTES = 2 ** 31 - 1;

export type SourceFormat = 'keras-v3-zip' | 'h5-full-model' | 'json-topology+h5-weights' | 'json-topology+keras3-weights';

export interface SourceFile {
  path: string;
  bytes: number;
  /** Hashed while the file is read and parsed (on a worker thread for large files); await before use. */
  sha256: Promise<string>;
}

export interface KerasSource {
  format: SourceFormat;
  /** `3.11.1`, `2.11.0`; null when the file does not say (then the config shape decides). */
  kerasVersion: string | null;
  kerasMajor: 2 | 3;
  backend: string | null;
  /** The model config as stored: `{class_name, config, ...}`. */
  modelConfig: Record<string, unknown>;
  /** The HDF5 weights: the whole file for `.h5`, `model.weights.h5` for `.keras`, the `--weights` file for JSON. */
  weightsFile: H5File;
  /** Group that holds the per-layer weight groups (`model_weights` or the root), for h5 formats. */
  weightsRoot: H5Group;
  files: SourceFile[];
  /** Total bytes of the input files. */
  inputBytes: number;
}

export interface OpenSourceOptions {
  /** The model file (`.keras`, `.h5`) or a topology `.json`. */
  input: string;
  /** Weights-only `.h5`, required with a topology JSON. */
  weights?: string;
}

interface ReadFile {
  bytes: Uint8Array;
  sha256: Promise<string>;
}

function readInput(file: string, what: string): ReadFile {
  let size: number;
  try {
    const st = statSync(file);
    if (!st.isFile()) throw unreadableInput(`${what} ${file} is not a file.`);
    size = st.size;
  } catch (err) {
    if ((err as { code?: string }).code === 'ENOENT') throw unreadableInput(`${what} ${file} does not exist.`, 'Check the path.');
    throw err;
  }
  if (size > MAX_INPUT_BYTES) throw invalidModel(`${what} ${file} is ${size} bytes; am-ml reads models up to ${MAX_INPUT_BYTES} bytes.`, { code: 'KERAS_SIZE_LIMIT' });
  if (size === 0) throw unreadableInput(`${what} ${file} is empty.`);
  // Shared memory, hashed while it is read: the shards are written straight from these bytes and hashed in place.
  try {
    return readFileHashed(file, size);
  } catch (err) {
    if ((err as { code?: string }).code === 'ESHRUNK') throw unreadableInput(`${what} ${(err as Error).message}.`, 'Export a file that is not being written.');
    throw err;
  }
}

function describeFile(file: string, read: ReadFile): SourceFile {
  return { path: file, bytes: read.bytes.length, sha256: read.sha256 };
}

function magicText(bytes: Uint8Array): string {
  return Array.from(bytes.subarray(0, 8), (b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, '0')}`)).join('');
}

function looksLikeJson(bytes: Uint8Array): boolean {
  let i = 0;
  if (bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) i = 3;
  while (i < bytes.length && (bytes[i] === 0x20 || bytes[i] === 0x0a || bytes[i] === 0x0d || bytes[i] === 0x09)) i++;
  return bytes[i] === 0x7b; // '{'
}

function parseJson(text: string, where: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw unreadableInput(`${where} is not valid JSON: ${(err as Error).message}.`);
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw unreadableInput(`${where} is not a JSON object.`);
  return v as Record<string, unknown>;
}

/** Keras version → major; a config with Keras-3-only shapes counts as 3 when the version is missing. */
function majorOf(version: string | null, config: Record<string, unknown>): 2 | 3 {
  if (version) {
    const m = /^(\d+)\./.exec(version);
    if (m && Number(m[1]) >= 3) return 3;
    if (m) return 2;
  }
  const text = JSON.stringify(config);
  return text.includes('"__keras_tensor__"') || text.includes('"batch_shape"') || text.includes('"DTypePolicy"') ? 3 : 2;
}

function textAttr(v: H5Value | undefined): string | null {
  if (typeof v === 'string') return v;
  if (Array.isArray(v) && v.length === 1 && typeof v[0] === 'string') return v[0];
  return null;
}

/**
 * A list attribute that Keras may have chunked (`layer_names0`, `layer_names1`, …) because HDF5 object headers
 * hold at most 64 KiB. Returns undefined when neither form exists.
 */
export function listAttr(group: H5Group, name: string): string[] | undefined {
  const toList = (v: H5Value | undefined): string[] => {
    if (v === undefined || v === null) return [];
    const arr = Array.isArray(v) ? v : [v];
    return arr.map((x) => String(x));
  };
  if (group.attrs.has(name)) return toList(group.attr(name));
  if (!group.attrs.has(`${name}0`)) return undefined;
  const out: string[] = [];
  for (let i = 0; group.attrs.has(`${name}${i}`); i++) out.push(...toList(group.attr(`${name}${i}`)));
  return out;
}

/** Keras 3 `save_weights` / `.keras` weights layout: containers under `layers/` (or tf.keras 2.13+'s name). */
function isKeras3WeightsFile(root: H5Group): boolean {
  return !root.attrs.has('model_config') && !listAttr(root, 'layer_names') && (root.has('layers') || root.has('_layer_checkpoint_dependencies'));
}

function openH5(bytes: Uint8Array, file: string): H5File {
  try {
    const f = openHdf5(bytes, file);
    void f.root.attrs.size; // read the root header now, so damage shows up here
    return f;
  } catch (err) {
    throw fromHdf5Error(err, file);
  }
}

/** Detect and open a Keras model input. */
export function openKerasSource(opts: OpenSourceOptions): KerasSource {
  const input = opts.input;
  const read = readInput(input, 'Model file');
  const bytes = read.bytes;
  const name = path.basename(input);

  if (isZip(bytes)) {
    if (opts.weights) throw unreadableInput(`--weights is only for a topology JSON; ${name} is a .keras archive that holds its weights.`);
    const { entries, files } = readZip(bytes, name, (n) => n === 'config.json' || n === 'metadata.json' || n === 'model.weights.h5');
    const names = entries.map((e) => e.name);
    if (!files.has('config.json')) {
      throw unreadableInput(`${name} is a zip archive without config.json; it is not a Keras 3 .keras file (members: ${names.slice(0, 8).join(', ')}).`);
    }
    if (!files.has('model.weights.h5')) {
      const alt = names.find((n) => n.endsWith('.npz') || /model\.weights.*\.json$/.test(n) || /\.weights\.h5$/.test(n));
      throw unreadableInput(
        `${name} has no model.weights.h5${alt ? ` (it holds ${alt}: an .npz or sharded weights save)` : ''}; am-ml reads the default single-file .keras layout.`,
        'Save with model.save("model.keras") and the default weights format.',
      );
    }
    const decoder = new TextDecoder();
    const config = parseJson(decoder.decode(files.get('config.json')), `${name}!config.json`);
    const metadata = files.has('metadata.json') ? parseJson(decoder.decode(files.get('metadata.json')), `${name}!metadata.json`) : {};
    const version = typeof metadata.keras_version === 'string' ? metadata.keras_version : null;
    const weightsFile = openH5(files.get('model.weights.h5')!, `${name}!model.weights.h5`);
    return {
      format: 'keras-v3-zip',
      kerasVersion: version,
      kerasMajor: majorOf(version, config),
      backend: null,
      modelConfig: config,
      weightsFile,
      weightsRoot: weightsFile.root,
      files: [describeFile(input, read)],
      inputBytes: bytes.length,
    };
  }

  if (isHdf5(bytes)) {
    if (opts.weights) throw unreadableInput(`--weights is only for a topology JSON; ${name} is an HDF5 file.`);
    const f = openH5(bytes, name);
    const rootConfig = textAttr(f.root.attr('model_config'));
    if (rootConfig === null) {
      if (isKeras3WeightsFile(f.root)) {
        throw unreadableInput(
          `${name} is a Keras 3 weights file (save_weights: a layers/ group, no model_config); it needs the model topology as well.`,
          `Pass the topology JSON (model.to_json()) as the input and this file with --weights: am-ml export model.json --weights ${name} --out <dir>.`,
        );
      }
      if (listAttr(f.root, 'layer_names')) {
        throw unreadableInput(
          `${name} is a weights-only HDF5 file (root attribute layer_names, no model_config); it needs the model topology as well.`,
          `Pass the topology JSON as the input and this file with --weights: am-ml export model.json --weights ${name} --out <dir>.`,
        );
      }
      throw unreadableInput(
        `${name} is an HDF5 file but not a Keras model: the root has neither a model_config attribute (full model) nor layer_names (weights only).`,
        'Keras writes these with model.save("model.h5") or model.save_weights("weights.h5").',
      );
    }
    const config = parseJson(rootConfig, `${name}@model_config`);
    const version = textAttr(f.root.attr('keras_version'));
    const mw = f.root.group('model_weights');
    if (!mw) throw unreadableInput(`${name} has a model_config but no model_weights group; it was saved without weights.`);
    return {
      format: 'h5-full-model',
      kerasVersion: version,
      kerasMajor: majorOf(version, config),
      backend: textAttr(f.root.attr('backend')),
      modelConfig: config,
      weightsFile: f,
      weightsRoot: mw,
      files: [describeFile(input, read)],
      inputBytes: bytes.length,
    };
  }

  if (looksLikeJson(bytes)) {
    const topology = parseJson(new TextDecoder().decode(bytes), name);
    const config = (topology.model_config && typeof topology.model_config === 'object' ? topology.model_config : topology) as Record<string, unknown>;
    if (typeof config.class_name !== 'string' || !config.config) {
      throw unreadableInput(`${name} is JSON but not a Keras model topology (expected {"class_name", "config"} as written by model.to_json()).`);
    }
    if (!opts.weights) {
      throw unreadableInput(`${name} is a model topology without weights.`, `Pass the weights file too: am-ml export ${name} --weights weights.h5 --out <dir>.`);
    }
    const wread = readInput(opts.weights, 'Weights file');
    const wbytes = wread.bytes;
    const wname = path.basename(opts.weights);
    if (!isHdf5(wbytes)) throw unreadableInput(`${wname} is not an HDF5 file (it starts with "${magicText(wbytes)}"); --weights takes the .h5 written by save_weights().`);
    const f = openH5(wbytes, wname);
    if (isKeras3WeightsFile(f.root)) {
      const version = typeof topology.keras_version === 'string' ? topology.keras_version : null;
      return {
        format: 'json-topology+keras3-weights',
        kerasVersion: version,
        kerasMajor: majorOf(version, config),
        backend: typeof topology.backend === 'string' ? topology.backend : null,
        modelConfig: config,
        weightsFile: f,
        weightsRoot: f.root,
        files: [describeFile(input, read), describeFile(opts.weights, wread)],
        inputBytes: bytes.length + wbytes.length,
      };
    }
    const root = listAttr(f.root, 'layer_names') ? f.root : f.root.group('model_weights');
    if (!root || !listAttr(root, 'layer_names')) {
      throw unreadableInput(
        `${wname} is neither a legacy Keras weights file (root attribute layer_names) nor a Keras 3 one (a layers/ group); it is not a Keras weights file.`,
        'Write it with model.save_weights(...) in Keras.',
      );
    }
    const version = (typeof topology.keras_version === 'string' ? topology.keras_version : null) ?? textAttr(root.attr('keras_version'));
    return {
      format: 'json-topology+h5-weights',
      kerasVersion: version,
      kerasMajor: majorOf(version, config),
      backend: (typeof topology.backend === 'string' ? topology.backend : null) ?? textAttr(root.attr('backend')),
      modelConfig: config,
      weightsFile: f,
      weightsRoot: root,
      files: [describeFile(input, read), describeFile(opts.weights, wread)],
      inputBytes: bytes.length + wbytes.length,
    };
  }

  throw unreadableInput(
    `${name} is not a Keras model: it starts with "${magicText(bytes)}", which is neither a .keras zip (PK\\x03\\x04), an HDF5 file (\\x89HDF\\r\\n\\x1a\\n) nor a JSON topology.`,
    'Export takes model.keras, model.h5, or topology.json with --weights weights.h5.',
  );
}

export { H5Group };
