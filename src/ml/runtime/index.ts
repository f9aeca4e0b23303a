/**
 * `am-ml/runtime`: import it once before `tf.loadLayersModel`, and every model am-ml wrote loads with plain
 * TF.js, custom layers included (the Keras stand-ins of `am-ml export` and the two-tower layers of `am-ml train`:
 * `AmMlWeightedBag` with its cpu/wasm kernel, `AmMlL2Normalize`):
 *
 *   import 'am-ml/runtime';
 *   import * as tf from '@tensorflow/tfjs';
 *   const model = await tf.loadLayersModel(url);
 *
 * Registration happens on import (and `registerAmMlLayers()` is safe to call again). The classes are registered in
 * the `@tensorflow/tfjs` instance this package resolves, so the app must use the same single copy of
 * @tensorflow/tfjs (one version in its lockfile / import map).
 *
 * No Node-only APIs: this module runs in Deno Edge Functions and browsers too.
 */
import { registerWeightedBagKernel } from '../kernels/weighted-bag-kernel.js';
// Importing the training layers registers AmMlWeightedBag and its kernel (two-tower runs need them).
import { WEIGHTED_BAG_CLASS, WeightedBag } from '../layers.js';
import { tf } from '../tf.js';
import { AmMlL2Normalize, CUSTOM_LAYERS, type CustomLayerName, Subtract, UnitNormalization } from './layers.js';

export { AmMlL2Normalize, Subtract, UnitNormalization, CUSTOM_LAYERS, type CustomLayerName, WeightedBag, WEIGHTED_BAG_CLASS };

/** Every class registered here, by the class name model.json uses: export's Keras layers and train's layers. */
export const MODEL_LAYERS = { ...CUSTOM_LAYERS, [WEIGHTED_BAG_CLASS]: WeightedBag } as const;

let registered = false;

/** Register am-ml's custom layer classes (and the AmMlWeightedBag kernel) with TF.js (idempotent). Returns their class names. */
export function registerAmMlLayers(): string[] {
  if (!registered) {
    for (const cls of Object.values(MODEL_LAYERS)) tf.serialization.registerClass(cls);
    registerWeightedBagKernel(tf);
    registered = true;
  }
  return Object.keys(MODEL_LAYERS);
}

/** Class names of the custom layers a model.json needs (from its `userDefinedMetadata` or its topology). */
export function customLayersOf(modelJson: { modelTopology?: unknown; userDefinedMetadata?: Record<string, unknown> }): string[] {
  const names = new Set<string>();
  const visit = (v: unknown) => {
    if (Array.isArray(v)) v.forEach(visit);
    else if (v && typeof v === 'object') {
      const o = v as Record<string, unknown>;
      if (typeof o.class_name === 'string' && o.class_name in MODEL_LAYERS) names.add(o.class_name);
      Object.values(o).forEach(visit);
    }
  };
  visit(modelJson.modelTopology);
  return [...names].sort();
}

/** The parts of a tfjs LayersModel / Layer this needs (`_refCount` is protected in tfjs' types). */
type Disposable = { dispose(): unknown; layers?: unknown[] };
type Inner = Disposable & { _refCount?: number | null };

/**
 * Dispose a LayersModel completely. tfjs-layers 4.22 counts one reference per symbolic call of a layer but
 * releases one per `dispose()`, so a layer used twice in the graph (a shared embedding, a siamese tower) or a
 * Sequential nested in a Sequential keeps its weights alive after `model.dispose()`. For a model loaded from a
 * model.json nothing else holds its layers, so this releases them too. Returns the number of tensors freed.
 */
export function disposeLayersModel(model: Disposable): number {
  const before = tf.memory().numTensors;
  model.dispose();
  const visit = (layer: Disposable, depth: number) => {
    if (depth > 64) return;
    for (const inner of (layer.layers ?? []) as Inner[]) {
      // The layer first (a nested model releases its own layers once when its count reaches zero), then what
      // is still referenced inside it.
      while (typeof inner._refCount === 'number' && inner._refCount > 0) inner.dispose();
      visit(inner, depth + 1);
    }
  };
  visit(model, 0);
  return before - tf.memory().numTensors;
}

registerAmMlLayers();
