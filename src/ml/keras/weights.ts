/**
 * Find every weight of the model in the source HDF5 file and name it `<layer>/<weight>` (spec §1.3, §2.4, §2.5).
 *
 * - `.keras`: walk the config; each layer's group is `layers/<snake_case(class)>[_n]` (counter per container),
 *   Sequential containers skip their InputLayer, variables sit at `<path>/vars/<i>` in weight-table order, and the
 *   `vars` group's `name` attribute (Keras ≥ 3.6) must be the layer's name.
 * - `.h5` (full model or weights only): one group per top-level layer listed in `layer_names`; each lists its
 *   datasets in `weight_names`. The owner of a weight is the group's layer, or for a nested model the path
 *   component before the weight name (which must be a layer of that nested model).
 *
 * Every weight of the table must be found exactly once with a consistent shape, and every dataset in the file
 * (outside optimizer state) must be used: anything else is an error naming the dataset.
 */
import { fromHdf5Error, invalidModel, unreadableInput } from './errors.js';
import { H5Dataset, H5Group } from './hdf5/file.js';
import { weightSlots } from './layers.js';
import { flattenLayers, type LayerSpec, type ModelSpec } from './model-tree.js';
import { type KerasSource, listAttr } from './source.js';

export interface MappedWeight {
  /** The TF.js weight name: `<layer name>/<weight name>`. */
  name: string;
  /** Where the layer sits in the model (`outer/inner`), for messages. */
  layerPath: string;
  shape: number[];
  dtype: 'float32';
  /** Little-endian float32 bytes, as they go into the shards (a view into the source file when it stored float32). */
  bytes: Uint8Array;
  /** The values as float32 (decoded on first use: plain exports never need them). */
  readonly data: Float32Array;
  /** The HDF5 dataset it came from. */
  source: string;
  /** The dataset's stored type (`float32`, `float64`, `float16`, ...). */
  sourceDtype: string;
}

/** A weight whose float32 view is made on first use (unaligned source bytes must be copied to be viewed). */
function mappedWeight(fields: Omit<MappedWeight, 'data'>, decoded?: Float32Array): MappedWeight {
  let data = decoded;
  return {
    ...fields,
    get data(): Float32Array {
      if (!data) {
        const b = fields.bytes;
        data = b.byteOffset % 4 === 0 ? new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4) : new Float32Array(b.slice().buffer);
      }
      return data;
    },
  };
}

export interface WeightMapping {
  weights: MappedWeight[];
  /** Datasets deliberately not converted (optimizer state, RNG state), as paths. */
  ignored: string[];
}

interface Slot {
  layerPath: string;
  layer: LayerSpec;
  weight: string;
  trainable: boolean;
  found?: { ds: H5Dataset; path: string };
}

function kerasClassOf(layer: LayerSpec): string {
  return layer.className === 'AmMlL2Normalize' ? 'Lambda' : layer.className;
}

/** Keras' `naming.to_snake_case`. */
export function toSnakeCase(name: string): string {
  let s = name.replace(/\W+/g, '');
  s = s.replace(/(.)([A-Z][a-z]+)/g, '$1_$2');
  return s.replace(/([a-z])([A-Z])/g, '$1_$2').toLowerCase();
}

/** Expected weights in model order (depth-first, config order; per layer in table order). */
function expectedSlots(model: ModelSpec): Slot[] {
  const slots: Slot[] = [];
  for (const { path, layer } of flattenLayers(model)) {
    for (const s of weightSlots(layer.className, layer.config)) slots.push({ layerPath: path, layer, weight: s.name, trainable: s.trainable });
  }
  return slots;
}

export function mapWeights(source: KerasSource, model: ModelSpec): WeightMapping {
  const slots = expectedSlots(model);
  const used = new Set<string>();
  const take = (slot: Slot, ds: H5Dataset, path: string) => {
    if (used.has(path)) throw invalidModel(`The dataset ${path} would be used for two weights (second: ${slot.layerPath}/${slot.weight}).`, { code: 'KERAS_WEIGHTS_MISMATCH' });
    if (slot.found) throw invalidModel(`Two datasets claim the weight ${slot.layerPath}/${slot.weight}: ${slot.found.path} and ${path}.`, { code: 'KERAS_WEIGHTS_MISMATCH' });
    used.add(path);
    slot.found = { ds, path };
  };
  const fileLabel = source.files[source.files.length - 1].path;
  let ignored: string[];
  try {
    if (source.format === 'keras-v3-zip' || source.format === 'json-topology+keras3-weights') mapKerasZip(source, model, slots, take);
    else mapH5(source, model, slots, take);
    ignored = checkAllUsed(source, used);
  } catch (err) {
    throw fromHdf5Error(err, fileLabel);
  }
  const missing = slots.filter((s) => !s.found);
  if (missing.length) {
    throw invalidModel(
      `${missing.length} weight(s) of the model are not in the weights file: ${missing.slice(0, 10).map((s) => `${s.layerPath}/${s.weight}`).join(', ')}${missing.length > 10 ? ', …' : ''}.`,
      { code: 'KERAS_WEIGHTS_MISMATCH', hint: 'The weights file does not belong to this model config (or was saved from a different version of it).' },
    );
  }
  const weights: MappedWeight[] = [];
  try {
    for (const s of slots) weights.push(readSlot(s));
  } catch (err) {
    throw fromHdf5Error(err, fileLabel);
  }
  checkShapes(slots, weights);
  return { weights, ignored };
}

function readSlot(s: Slot): MappedWeight {
  const ds = s.found!.ds;
  const t = ds.dtype;
  if (t.kind !== 'float' && t.kind !== 'int') {
    throw invalidModel(`The weight ${s.layerPath}/${s.weight} (${s.found!.path}) holds ${ds.dtypeName} data, not numbers.`, { code: 'KERAS_WEIGHTS_MISMATCH' });
  }
  const base = { name: `${s.layer.name}/${s.weight}`, layerPath: s.layerPath, shape: ds.shape, dtype: 'float32' as const, source: s.found!.path };
  // The common case, little-endian float32: keep the stored bytes as they are (no decode, no copy yet).
  if (t.kind === 'float' && t.size === 4 && t.littleEndian) return mappedWeight({ ...base, bytes: ds.raw(), sourceDtype: 'float32' });
  const raw = ds.read();
  let data: Float32Array;
  let sourceDtype = ds.dtypeName;
  // A bfloat16 weight may also be stored as uint16 with attrs.dtype = "bfloat16" (Keras 3 H5IOStore).
  if (ds.attr('dtype') === 'bfloat16' && t.kind === 'int' && t.size === 2) {
    const u16 = raw as Uint16Array;
    const u32 = new Uint32Array(u16.length);
    for (let i = 0; i < u16.length; i++) u32[i] = u16[i] << 16;
    data = new Float32Array(u32.buffer);
    sourceDtype = 'bfloat16';
  } else if (raw instanceof Float32Array) data = raw;
  else if (raw instanceof BigInt64Array || raw instanceof BigUint64Array) data = Float32Array.from(raw, (v) => Number(v));
  else data = Float32Array.from(raw as ArrayLike<number>);
  return mappedWeight({ ...base, bytes: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), sourceDtype }, data);
}

// -------------------------------------------------------------------------------------------------------------
// .keras (Keras 3 saving_lib layout)
// -------------------------------------------------------------------------------------------------------------

function mapKerasZip(source: KerasSource, model: ModelSpec, slots: Slot[], take: (s: Slot, ds: H5Dataset, path: string) => void): void {
  const root = source.weightsRoot;
  if (!root.has('layers') && root.has('_layer_checkpoint_dependencies')) {
    // tf.keras 2.13–2.15 wrote .keras files whose container walk visits weighted layers twice (checkpoint
    // dependency aliases), which shifts the class-name counters; without such a file to verify against, refuse.
    throw unreadableInput(
      'This .keras file was written by tf.keras 2.13–2.15 (weights under _layer_checkpoint_dependencies/), a layout am-ml does not read.',
      "Re-save it with tf.keras as .h5 (model.save('model.h5')) or load and save it with Keras 3.",
    );
  }
  const containerKey = 'layers';
  const byLayer = new Map<LayerSpec, Slot[]>();
  for (const s of slots) {
    const list = byLayer.get(s.layer) ?? [];
    list.push(s);
    byLayer.set(s.layer, list);
  }
  const needsNameAttr = versionAtLeast(source.kerasVersion, 3, 6);
  const walk = (m: ModelSpec, prefix: string, scope: string) => {
    const counters = new Map<string, number>();
    for (const layer of m.layers) {
      if (m.kind === 'Sequential' && layer.className === 'InputLayer') continue;
      const layerPath = scope ? `${scope}/${layer.name}` : layer.name;
      const base = toSnakeCase(kerasClassOf(layer));
      const n = counters.get(base);
      const key = n === undefined ? base : `${base}_${n + 1}`;
      counters.set(base, n === undefined ? 0 : n + 1);
      const groupPath = `${prefix}${containerKey}/${key}`;
      const group = root.group(groupPath);
      const expected = byLayer.get(layer) ?? [];
      const vars = group?.group('vars');
      if (vars) {
        const nameAttr = vars.attr('name');
        if (nameAttr !== undefined && nameAttr !== layer.name) {
          throw invalidModel(`The weights at ${groupPath} belong to layer '${String(nameAttr)}', but the config puts layer '${layer.name}' there.`, {
            code: 'KERAS_WEIGHTS_MISMATCH',
            hint: 'config.json and model.weights.h5 come from different models.',
          });
        }
        if (nameAttr === undefined && needsNameAttr) {
          throw invalidModel(`${groupPath}/vars lacks the 'name' attribute that Keras ${source.kerasVersion} writes.`, { code: 'KERAS_WEIGHTS_MISMATCH' });
        }
      }
      const indices = vars ? vars.keys() : [];
      const datasetKeys = indices.filter((k) => vars!.get(k) instanceof H5Dataset);
      if (datasetKeys.length !== expected.length) {
        throw invalidModel(
          `Layer ${layerPath} (${layer.className}) has ${datasetKeys.length} weight(s) at ${groupPath}/vars, but a ${layer.className} with this config has ${expected.length} (${expected.map((s) => s.weight).join(', ') || 'none'}).`,
          { code: 'KERAS_WEIGHTS_MISMATCH' },
        );
      }
      for (let i = 0; i < expected.length; i++) {
        const ds = vars?.dataset(String(i));
        if (!ds) throw invalidModel(`${groupPath}/vars/${i} is missing (weights must be numbered 0..${expected.length - 1}).`, { code: 'KERAS_WEIGHTS_MISMATCH' });
        take(expected[i], ds, `${groupPath}/vars/${i}`);
      }
      if (layer.model) walk(layer.model, `${groupPath}/`, layerPath);
    }
  };
  walk(model, '', '');
}

function versionAtLeast(v: string | null, major: number, minor: number): boolean {
  const m = v ? /^(\d+)\.(\d+)/.exec(v) : null;
  if (!m) return false;
  return Number(m[1]) > major || (Number(m[1]) === major && Number(m[2]) >= minor);
}

// -------------------------------------------------------------------------------------------------------------
// .h5 (legacy layout, Keras 2 and 3)
// -------------------------------------------------------------------------------------------------------------

function mapH5(source: KerasSource, model: ModelSpec, slots: Slot[], take: (s: Slot, ds: H5Dataset, path: string) => void): void {
  const root = source.weightsRoot;
  const rootPath = root.path === '/' ? '' : `${root.path.replace(/^\//, '')}/`;
  const layerNames = listAttr(root, 'layer_names');
  if (!layerNames) throw invalidModel(`${rootPath || 'the file root'} has no layer_names attribute.`, { code: 'KERAS_WEIGHTS_MISMATCH' });
  const topLayers = new Map(model.layers.map((l) => [l.name, l]));
  const slotsByLayer = new Map<LayerSpec, Slot[]>();
  for (const s of slots) slotsByLayer.set(s.layer, [...(slotsByLayer.get(s.layer) ?? []), s]);
  const listed = new Set(layerNames);
  for (const layer of model.layers) {
    const hasWeights = slots.some((s) => s.layerPath === layer.name || s.layerPath.startsWith(`${layer.name}/`));
    if (hasWeights && !listed.has(layer.name)) {
      throw invalidModel(`Layer ${layer.name} has weights in the config but is not listed in the file's layer_names.`, { code: 'KERAS_WEIGHTS_MISMATCH', hint: 'The weights file does not belong to this model config.' });
    }
  }
  for (const groupName of layerNames) {
    const layer = topLayers.get(groupName);
    const group = root.group(groupName);
    const weightNames = group ? (listAttr(group, 'weight_names') ?? []) : [];
    if (!layer) {
      if (weightNames.length === 0) continue;
      throw invalidModel(`The weights file has weights for a layer '${groupName}' that the model config does not contain.`, { code: 'KERAS_WEIGHTS_MISMATCH', hint: 'The weights file does not belong to this model config.' });
    }
    if (!group) throw invalidModel(`The weights file lists layer ${groupName} but has no group for it.`, { code: 'KERAS_WEIGHTS_MISMATCH' });
    const entries = weightNames.map((wn) => {
      const ds = group.dataset(wn);
      if (!ds) throw invalidModel(`${rootPath}${groupName} lists weight '${wn}' but the dataset ${rootPath}${groupName}/${wn} does not exist.`, { code: 'KERAS_WEIGHTS_MISMATCH' });
      const parts = wn.replace(/:\d+$/, '').split('/');
      return { wn, ds, path: `${rootPath}${groupName}/${wn}`, weight: parts[parts.length - 1], owner: parts[parts.length - 2] };
    });
    if (!layer.model) {
      const expected = slotsByLayer.get(layer) ?? [];
      assignByName(layer.name, expected, entries, take);
      continue;
    }
    // A nested model: owners are inner layers, named by the path component before the weight name.
    const inner = flattenLayers(layer.model, layer.name);
    const innerSlots = slots.filter((s) => s.layerPath.startsWith(`${layer.name}/`));
    const byOwner = new Map<string, Slot[]>();
    for (const s of innerSlots) byOwner.set(s.layer.name, [...(byOwner.get(s.layer.name) ?? []), s]);
    const resolvable = entries.every((e) => e.owner !== undefined && byOwner.get(e.owner)?.some((s) => s.weight === e.weight));
    const ownersUnique = new Set(inner.map((l) => l.layer.name)).size === inner.length;
    if (resolvable && ownersUnique) {
      for (const [owner, list] of byOwner) assignByName(`${layer.name}/${owner}`, list, entries.filter((e) => e.owner === owner), take);
      const extra = entries.filter((e) => !byOwner.has(e.owner));
      if (extra.length) throw invalidModel(`Unexpected weights in ${rootPath}${groupName}: ${extra.map((e) => e.wn).join(', ')}.`, { code: 'KERAS_WEIGHTS_MISMATCH' });
    } else {
      // Variable scopes that differ from layer names (re-created layers get `_1` suffixes): fall back to the order
      // Keras writes them in, all trainable weights of the nested model first, then the non-trainable ones.
      const ordered = [...innerSlots.filter((s) => s.trainable), ...innerSlots.filter((s) => !s.trainable)];
      if (ordered.length !== entries.length) {
        throw invalidModel(
          `The nested model ${layer.name} has ${entries.length} weight(s) in the file but ${ordered.length} in its config, and their names (${entries.slice(0, 4).map((e) => e.wn).join(', ')}) do not match its layers.`,
          { code: 'KERAS_WEIGHTS_MISMATCH' },
        );
      }
      ordered.forEach((s, i) => {
        if (entries[i].weight !== s.weight) {
          throw invalidModel(`Weight ${entries[i].wn} in ${rootPath}${groupName} does not line up with ${s.layerPath}/${s.weight}.`, { code: 'KERAS_WEIGHTS_MISMATCH' });
        }
        take(s, entries[i].ds, entries[i].path);
      });
    }
  }
  const top = root.group('top_level_model_weights');
  if (top && (listAttr(top, 'weight_names') ?? []).length > 0) {
    throw invalidModel('The model has weights of its own (top_level_model_weights), which a layers model cannot hold.', { code: 'KERAS_WEIGHTS_MISMATCH' });
  }
}

function assignByName(
  layerPath: string,
  expected: Slot[],
  entries: Array<{ wn: string; ds: H5Dataset; path: string; weight: string }>,
  take: (s: Slot, ds: H5Dataset, path: string) => void,
): void {
  if (entries.length !== expected.length) {
    throw invalidModel(
      `Layer ${layerPath} has ${entries.length} weight(s) in the file (${entries.map((e) => e.wn).join(', ') || 'none'}) but its config needs ${expected.length} (${expected.map((s) => s.weight).join(', ') || 'none'}).`,
      { code: 'KERAS_WEIGHTS_MISMATCH' },
    );
  }
  for (const e of entries) {
    const slot = expected.find((s) => s.weight === e.weight && !s.found);
    if (!slot) throw invalidModel(`Weight '${e.wn}' of layer ${layerPath} is not one of ${expected.map((s) => s.weight).join(', ')}.`, { code: 'KERAS_WEIGHTS_MISMATCH' });
    take(slot, e.ds, e.path);
  }
}

// -------------------------------------------------------------------------------------------------------------

/** Every dataset of the weights file must have been used, except optimizer and RNG state. */
function checkAllUsed(source: KerasSource, used: Set<string>): string[] {
  const ignored: string[] = [];
  const unused: string[] = [];
  const isZip = source.format === 'keras-v3-zip' || source.format === 'json-topology+keras3-weights';
  const start = isZip ? source.weightsFile.root : source.weightsRoot;
  const prefix = start.path === '/' ? '' : `${start.path.replace(/^\//, '')}/`;
  const walk = (g: H5Group, rel: string, depth: number) => {
    if (depth > 64) throw invalidModel('The weights file nests groups more than 64 levels deep.', { code: 'KERAS_WEIGHTS_MISMATCH' });
    for (const k of g.keys()) {
      const p = rel ? `${rel}/${k}` : k;
      const child = g.get(k);
      if (child instanceof H5Group) {
        if (isZip && rel === '' && k === 'optimizer') {
          ignored.push('optimizer/');
          continue;
        }
        walk(child, p, depth + 1);
      } else if (child instanceof H5Dataset) {
        const full = `${prefix}${p}`;
        if (used.has(full)) continue;
        if (/(^|\/)seed_generator(_\d+)?\/vars\/\d+$/.test(p)) ignored.push(full);
        else unused.push(full);
      }
    }
  };
  walk(start, '', 0);
  if (unused.length) {
    throw invalidModel(
      `${unused.length} dataset(s) in the weights file belong to no layer of the model: ${unused.slice(0, 8).join(', ')}${unused.length > 8 ? ', …' : ''}.`,
      { code: 'KERAS_WEIGHTS_MISMATCH', hint: 'Every source weight must be used exactly once; the weights and config disagree.' },
    );
  }
  return ignored;
}

function checkShapes(slots: Slot[], weights: MappedWeight[]): void {
  const problems: string[] = [];
  const byLayer = new Map<string, MappedWeight[]>();
  weights.forEach((w, i) => byLayer.set(slots[i].layerPath, [...(byLayer.get(slots[i].layerPath) ?? []), w]));
  for (const [path, ws] of byLayer) {
    const layer = slots.find((s) => s.layerPath === path)!.layer;
    const c = layer.config;
    const get = (n: string) => ws.find((w) => w.name.endsWith(`/${n}`));
    const shape = (w: MappedWeight | undefined) => (w ? `[${w.shape.join(', ')}]` : '(none)');
    switch (layer.className) {
      case 'Dense': {
        const k = get('kernel');
        const units = Number(c.units);
        if (!k || k.shape.length !== 2 || k.shape[1] !== units) problems.push(`${path}: kernel is ${shape(k)}, a Dense with units=${units} needs [in, ${units}]`);
        const b = get('bias');
        if (b && (b.shape.length !== 1 || b.shape[0] !== units)) problems.push(`${path}: bias is ${shape(b)}, expected [${units}]`);
        break;
      }
      case 'Embedding': {
        const e = get('embeddings');
        if (!e || e.shape.length !== 2 || e.shape[0] !== Number(c.input_dim) || e.shape[1] !== Number(c.output_dim)) {
          problems.push(`${path}: embeddings are ${shape(e)}, expected [${String(c.input_dim)}, ${String(c.output_dim)}]`);
        }
        break;
      }
      case 'BatchNormalization':
      case 'LayerNormalization': {
        const n = ws[0]?.shape;
        for (const w of ws) {
          if (w.shape.length !== 1 || !n || w.shape[0] !== n[0]) problems.push(`${path}: ${w.name} is ${shape(w)}, all ${layer.className} weights must be the same 1-D length`);
        }
        break;
      }
      default:
        break;
    }
  }
  for (const w of weights) {
    const n = w.shape.reduce((a, d) => a * d, 1);
    if (n * 4 !== w.bytes.length) problems.push(`${w.name}: shape [${w.shape.join(', ')}] but ${w.bytes.length / 4} values`);
  }
  if (problems.length) throw invalidModel(`Weight shapes disagree with the model config:\n  ${problems.join('\n  ')}`, { code: 'KERAS_WEIGHTS_MISMATCH' });
}
