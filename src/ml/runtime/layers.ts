/**
 * Custom TF.js layers for Keras layers that tfjs-layers 4.22 lacks. They are registered under the class names
 * am-ml writes into model.json, so a plain `tf.loadLayersModel` can build the model once `am-ml/runtime` has been
 * imported. Each computes exactly what Keras computes (see the comments), in float32.
 *
 * No Node-only APIs here: the app's Deno Edge Functions import this module.
 */
import { tf } from '../tf.js';

/** tfjs-layers' `LayerArgs` (name, trainable, dtype, ...), taken from the Layer constructor. */
type LayerArgs = NonNullable<ConstructorParameters<typeof tf.layers.Layer>[0]>;

type Tensor = ReturnType<typeof tf.tensor>;
type Kwargs = Record<string, unknown>;

function single(inputs: Tensor | Tensor[]): Tensor {
  return Array.isArray(inputs) ? inputs[0] : inputs;
}

/** `x * min(rsqrt(Σ x² over axis), maxInverseNorm)`: Keras' `ops.normalize(order=2)` and tf.math.l2_normalize. */
function l2Normalize(x: Tensor, axis: number | number[], maxInverseNorm: number): Tensor {
  return tf.tidy(() => {
    const squareSum = tf.sum(tf.square(x), axis, true);
    return tf.mul(x, tf.minimum(tf.rsqrt(squareSum), maxInverseNorm));
  });
}

export interface UnitNormalizationArgs extends LayerArgs {
  axis?: number | number[];
}

/**
 * keras.layers.UnitNormalization: `ops.normalize(x, axis, order=2, epsilon=1e-12)`, i.e.
 * `x * min(rsqrt(Σx²), 1e12)`.
 */
export class UnitNormalization extends tf.layers.Layer {
  static readonly className = 'UnitNormalization';
  readonly axis: number | number[];

  constructor(args: UnitNormalizationArgs = {}) {
    super(args);
    this.axis = args.axis ?? -1;
    this.supportsMasking = true;
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape | tf.Shape[] {
    return inputShape;
  }

  override call(inputs: Tensor | Tensor[], _kwargs: Kwargs): Tensor {
    return l2Normalize(single(inputs), this.axis, 1e12);
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), axis: this.axis };
  }
}

export interface L2NormalizeArgs extends LayerArgs {
  axis?: number;
  maxInverseNorm?: number;
}

/**
 * Stands in for a Keras `Lambda` that am-ml recognised as an L2 normalisation (or that the user mapped with
 * `--map-lambda`): `x * min(rsqrt(Σx²), maxInverseNorm)`. tf.math.l2_normalize(ε) has maxInverseNorm = 1/√ε;
 * keras.ops.normalize(ε) has 1/ε.
 */
export class AmMlL2Normalize extends tf.layers.Layer {
  static readonly className = 'AmMlL2Normalize';
  readonly axis: number;
  readonly maxInverseNorm: number;

  constructor(args: L2NormalizeArgs = {}) {
    super(args);
    this.axis = args.axis ?? -1;
    this.maxInverseNorm = args.maxInverseNorm ?? 1e6;
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape | tf.Shape[] {
    return inputShape;
  }

  override call(inputs: Tensor | Tensor[], _kwargs: Kwargs): Tensor {
    return l2Normalize(single(inputs), this.axis, this.maxInverseNorm);
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), axis: this.axis, maxInverseNorm: this.maxInverseNorm };
  }
}

/** keras.layers.Subtract: `a - b` of exactly two inputs of the same shape. */
export class Subtract extends tf.layers.Layer {
  static readonly className = 'Subtract';

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape | tf.Shape[] {
    return Array.isArray(inputShape[0]) ? (inputShape[0] as tf.Shape) : inputShape;
  }

  override call(inputs: Tensor | Tensor[], _kwargs: Kwargs): Tensor {
    if (!Array.isArray(inputs) || inputs.length !== 2) throw new Error('Subtract takes exactly two inputs.');
    return tf.sub(inputs[0], inputs[1]);
  }
}

/** Every custom class, by the class name model.json uses. */
export const CUSTOM_LAYERS = { UnitNormalization, AmMlL2Normalize, Subtract } as const;
export type CustomLayerName = keyof typeof CUSTOM_LAYERS;
