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

registerAmMlLayers();
