/**
 * The layers `am-ml export` converts: those a two-tower model is built from, each with a TF.js equivalent (or an
 * am-ml runtime shim) and a reference implementation in `reference.ts`. Also the weight table that names each
 * weight `<layer>/<weight>` (spec §1.3), and the checks that turn everything else into one clear refusal.
 */

/** One weight of a layer, in `layer.weights` order (trainable first). */
export interface WeightSlot {
  name: string;
  trainable: boolean;
}

type Cfg = Record<string, unknown>;

const flag = (cfg: Cfg, key: string, dflt = true): boolean => (cfg[key] === undefined || cfg[key] === null ? dflt : Boolean(cfg[key]));

/** Weights per class, from the layer config. Classes absent here have no weights. */
const WEIGHTED: Record<string, (cfg: Cfg) => WeightSlot[]> = {
  Dense: (c) => [{ name: 'kernel', trainable: true }, ...(flag(c, 'use_bias') ? [{ name: 'bias', trainable: true }] : [])],
  Embedding: () => [{ name: 'embeddings', trainable: true }],
  BatchNormalization: (c) => [
    ...(flag(c, 'scale') ? [{ name: 'gamma', trainable: true }] : []),
    ...(flag(c, 'center') ? [{ name: 'beta', trainable: true }] : []),
    { name: 'moving_mean', trainable: false },
    { name: 'moving_variance', trainable: false },
  ],
  LayerNormalization: (c) => [...(flag(c, 'scale') ? [{ name: 'gamma', trainable: true }] : []), ...(flag(c, 'center') ? [{ name: 'beta', trainable: true }] : [])],
  PReLU: () => [{ name: 'alpha', trainable: true }],
};

/** Classes converted as they are (TF.js registers them), with no weights. */
const PLAIN = new Set([
  'InputLayer',
  'Flatten',
  'Reshape',
  'Permute',
  'RepeatVector',
  'Activation',
  'ReLU',
  'LeakyReLU',
  'ELU',
  'Softmax',
  'Dropout',
  'SpatialDropout1D',
  'GaussianDropout',
  'GaussianNoise',
  'AlphaDropout',
  'Concatenate',
  'Dot',
  'Add',
  'Multiply',
  'Average',
  'Maximum',
  'Minimum',
  'GlobalAveragePooling1D',
  'GlobalMaxPooling1D',
  'Rescaling',
]);

/** Classes TF.js lacks that the am-ml runtime registers (src/ml/runtime). */
export const SHIM_CLASSES = new Set(['UnitNormalization', 'Subtract', 'AmMlL2Normalize']);

export const MODEL_CLASSES = new Set(['Sequential', 'Functional', 'Model']);

export function isModelClass(className: string): boolean {
  return MODEL_CLASSES.has(className);
}

export function isSupportedClass(className: string): boolean {
  return className in WEIGHTED || PLAIN.has(className) || SHIM_CLASSES.has(className) || MODEL_CLASSES.has(className);
}

export function weightSlots(className: string, config: Cfg): WeightSlot[] {
  const f = WEIGHTED[className];
  if (!f) return [];
  const slots = f(config);
  // A frozen layer (trainable: false) lists every weight as non-trainable; the order within the layer is unchanged.
  return config.trainable === false ? slots.map((s) => ({ ...s, trainable: false })) : slots;
}

export const SUPPORTED_SUMMARY =
  'Dense, Embedding, BatchNormalization, LayerNormalization, PReLU, UnitNormalization, Dropout, Flatten, Reshape, Permute, RepeatVector, ' +
  'Activation, ReLU, LeakyReLU, ELU, Softmax, Concatenate, Dot, Add, Subtract, Multiply, Average, Maximum, Minimum, ' +
  'GlobalAverage/MaxPooling1D, Rescaling, nested Sequential/Functional models, and Lambda layers that are an L2 normalisation';

/** Activation names as Keras writes them → the TF.js name; absent means unsupported. */
export function tfjsActivation(name: string, kerasMajor: 2 | 3): string | undefined {
  const common: Record<string, string> = {
    linear: 'linear',
    relu: 'relu',
    relu6: 'relu6',
    elu: 'elu',
    selu: 'selu',
    sigmoid: 'sigmoid',
    softmax: 'softmax',
    softplus: 'softplus',
    softsign: 'softsign',
    tanh: 'tanh',
    swish: 'swish',
    silu: 'swish',
    mish: 'mish',
    gelu: 'gelu',
  };
  // Keras 3 redefined hard_sigmoid as relu6(x + 3) / 6; TF.js keeps Keras 2's clip(0.2x + 0.5, 0, 1).
  if (name === 'hard_sigmoid') return kerasMajor === 2 ? 'hard_sigmoid' : undefined;
  return common[name];
}

/** What to tell the user about a class we do not convert. */
export function suggestionFor(className: string, registeredName: string | null): string {
  if (registeredName?.includes('>') || /^Q[A-Z]/.test(className)) {
    return 'a custom (third-party) class whose inference math am-ml cannot know; rebuild the model from standard Keras layers (e.g. Dense instead of QDense) before export';
  }
  switch (className) {
    case 'Lambda':
      return 'Python code cannot be converted; if it is an L2 normalisation pass --map-lambda <layer>=l2_normalize:axis=-1, or use keras.layers.UnitNormalization instead';
    case 'TFOpLambda':
    case 'TensorFlowOpLayer':
    case 'SlicingOpLambda':
      return 'a raw TensorFlow op recorded in the graph; replace it with a Keras layer (for tf.math.l2_normalize use UnitNormalization)';
    case 'StringLookup':
    case 'IntegerLookup':
    case 'Hashing':
    case 'TextVectorization':
    case 'Normalization':
    case 'Discretization':
    case 'CategoryEncoding':
      return 'a preprocessing layer; do the lookup in TypeScript before calling the model and export the model that starts after this layer';
    case 'KerasLayer':
      return 'a TensorFlow Hub layer, which is not a layers-model; it cannot be exported';
    default:
      return `not among the layers am-ml export converts (${SUPPORTED_SUMMARY})`;
  }
}
