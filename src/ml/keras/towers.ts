/**
 * Towers of a two-tower model, and extracting one of them as a model of its own (`--tower <name>`).
 *
 * A tower is either a nested model (a Sequential/Functional layer of the top-level model, as `user_tower` in
 * `Dot()([user_tower(u), item_tower(i)])`), or, in a flat Functional model, one of the two branches feeding the
 * final `Dot`: the layer that produces that branch's output. Any layer of a Functional model can be extracted:
 * the new model holds the layer and everything it depends on, with the original inputs it needs.
 */
import { invalidModel } from './errors.js';
import { firstNode, type ModelSpec, type TensorRef } from './model-tree.js';

type Json = Record<string, unknown>;

export interface TowerInfo {
  /** Layer name to pass to `--tower`. */
  name: string;
  kind: 'nested-model' | 'branch';
  /** Model inputs the tower reads. */
  inputs: string[];
  /** The layer whose output is the tower's output. */
  output: string;
}

/** Layers (names) the given tensor depends on, itself included. */
function ancestors(model: ModelSpec, start: string): Set<string> {
  const byName = new Map(model.layers.map((l) => [l.name, l]));
  const seen = new Set<string>();
  const stack = [start];
  while (stack.length) {
    const n = stack.pop()!;
    if (seen.has(n)) continue;
    seen.add(n);
    const l = byName.get(n);
    for (const call of l?.calls ?? []) for (const [src] of call.inputs) stack.push(src);
  }
  return seen;
}

function inputsOf(model: ModelSpec, set: Set<string>): string[] {
  return model.inputs.filter(([n]) => set.has(n)).map(([n]) => n);
}

/** The towers of a two-tower model; empty when the model does not look like one. */
export function findTowers(model: ModelSpec): TowerInfo[] {
  if (model.kind !== 'Functional') return [];
  const nested = model.layers.filter((l) => l.model);
  if (nested.length >= 2) {
    return nested.map((l) => ({ name: l.name, kind: 'nested-model' as const, inputs: inputsOf(model, ancestors(model, l.name)), output: l.name }));
  }
  // A flat model: the output is a Dot (or a Dot followed by weightless layers such as an Activation) of two branches.
  if (model.outputs.length !== 1) return [];
  const byName = new Map(model.layers.map((l) => [l.name, l]));
  let head = byName.get(model.outputs[0][0]);
  for (let hops = 0; head && head.className !== 'Dot' && hops < 3; hops++) {
    const src = head.calls[0]?.inputs;
    if (!src || src.length !== 1) return [];
    head = byName.get(src[0][0]);
  }
  if (!head || head.className !== 'Dot' || head.calls.length !== 1 || head.calls[0].inputs.length !== 2) return [];
  const [a, b] = head.calls[0].inputs.map(([n]) => n);
  const ia = inputsOf(model, ancestors(model, a));
  const ib = inputsOf(model, ancestors(model, b));
  if (ia.some((x) => ib.includes(x))) return []; // branches share inputs: not two towers
  return [a, b].map((n, i) => ({ name: n, kind: 'branch' as const, inputs: i === 0 ? ia : ib, output: n }));
}

export interface ExtractedTower {
  /** `{class_name, config}` of the tower as a model of its own. */
  modelConfig: Json;
  /** Layer paths (in the full model) whose weights the tower uses: the prefix `name/` for nested models. */
  layerPaths: Set<string>;
}

/**
 * Extract the layer named `name` of the (rewritten) model config as a standalone model config.
 * `tree` is the parsed form of `modelConfig`.
 */
export function extractTower(modelConfig: Json, tree: ModelSpec, name: string): ExtractedTower {
  const layer = tree.layers.find((l) => l.name === name);
  if (!layer) {
    const towers = findTowers(tree).map((t) => t.name);
    throw invalidModel(`There is no layer named '${name}' at the top level of model ${tree.name}.`, {
      code: 'KERAS_TOWER_UNKNOWN',
      hint: towers.length ? `Towers in this model: ${towers.join(', ')}.` : 'Run am-ml export --list-towers to see the layers.',
    });
  }
  const config = modelConfig.config as Json;
  const rawLayers = (config.layers as Json[]) ?? [];
  if (layer.model) {
    // A nested model is already a model: use its own config (its node 0 is internal; no shift needed).
    const raw = rawLayers.find((l) => String(l.name ?? (l.config as Json)?.name) === name)!;
    const paths = new Set<string>([name]);
    return { modelConfig: { class_name: raw.class_name, config: raw.config }, layerPaths: paths };
  }
  if (tree.kind !== 'Functional') throw invalidModel(`Model ${tree.name} is a Sequential model; --tower needs a Functional model or a nested model layer.`, { code: 'KERAS_TOWER_UNKNOWN' });
  if (layer.calls.length > 1) throw invalidModel(`Layer ${name} is called ${layer.calls.length} times; say which call by extracting a nested model instead.`, { code: 'KERAS_TOWER_AMBIGUOUS' });
  const keep = ancestors(tree, name);
  for (const l of tree.layers) {
    if (!keep.has(l.name)) continue;
    for (const call of l.calls) {
      for (const [src] of call.inputs) {
        if (!keep.has(src)) throw invalidModel(`Layer ${l.name} is shared with another part of the model, so ${name} cannot be cut out on its own.`, { code: 'KERAS_TOWER_SHARED' });
      }
    }
    if (l.calls.length > 1 && l.className !== 'InputLayer') {
      throw invalidModel(`Layer ${l.name} is shared (called ${l.calls.length} times), so ${name} cannot be cut out on its own.`, { code: 'KERAS_TOWER_SHARED' });
    }
  }
  const layers = rawLayers.filter((l) => keep.has(String(l.name ?? (l.config as Json)?.name)));
  const inputs = (config.input_layers as TensorRef[]).filter(([n]) => keep.has(n));
  const out: Json = { ...config, name, layers, input_layers: inputs, output_layers: [[name, firstNode(layer), 0]] };
  const paths = new Set<string>();
  for (const l of tree.layers) if (keep.has(l.name)) paths.add(l.name);
  return { modelConfig: { class_name: 'Functional', config: out }, layerPaths: paths };
}

/** True when `layerPath` (`outer/inner`) belongs to the extracted tower. */
export function inTower(layerPath: string, tower: ExtractedTower): boolean {
  const top = layerPath.split('/')[0];
  return tower.layerPaths.has(top);
}

