/**
 * `am-ml/runtime`: import it once before `tf.loadLayersModel`, and every model am-ml wrote loads with plain
 * TF.js, custom layers included:
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
import { tf } from '../tf.js';
import { AmMlL2Normalize, CUSTOM_LAYERS, type CustomLayerName, Subtract, UnitNormalization } from './layers.js';

export { AmMlL2Normalize, Subtract, UnitNormalization, CUSTOM_LAYERS, type CustomLayerName };

let registered = false;

/** Register am-ml's custom layer classes with TF.js (idempotent). Returns their class names. */
export function registerAmMlLayers(): string[] {
  if (!registered) {
    for (const cls of Object.values(CUSTOM_LAYERS)) tf.serialization.registerClass(cls);
    registered = true;
  }
  return Object.keys(CUSTOM_LAYERS);
}

/** Class names of the custom layers a model.json needs (from its `userDefinedMetadata` or its topology). */
export function customLayersOf(modelJson: { modelTopology?: unknown; userDefinedMetadata?: Record<string, unknown> }): string[] {
  const names = new Set<string>();
  const visit = (v: unknown) => {
    if (Array.isArray(v)) v.forEach(visit);
    else if (v && typeof v === 'object') {
      const o = v as Record<string, unknown>;
      if (typeof o.class_name === 'string' && o.class_name in CUSTOM_LAYERS) names.add(o.class_name);
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
 * Dispose a LayersModel completely. tfjs-layers 4.22 leaves the weights of a Sequential nested inside another
 * Sequential alive after `model.dispose()` (the nested model's reference count stays at 1), so long-lived
 * processes that reload models leak memory; this disposes such nested models too. Returns the tensors released.
 */
export function disposeLayersModel(model: Disposable): number {
  const before = tf.memory().numTensors;
  model.dispose();
  const visit = (layer: Disposable) => {
    for (const inner of (layer.layers ?? []) as Inner[]) {
      visit(inner);
      // Only containers the parent failed to release (their own ref count still above zero).
      if (inner.layers && typeof inner._refCount === 'number' && inner._refCount > 0) {
        while ((inner._refCount ?? 0) > 0) inner.dispose();
      }
    }
  };
  visit(model);
  return before - tf.memory().numTensors;
}

registerAmMlLayers();
