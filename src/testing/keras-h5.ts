/**
 * Write Keras-2-style full-model `.h5` files with h5wasm (libhdf5): root `keras_version`, `backend` and
 * `model_config`, and `model_weights/<layer>/` groups with `weight_names` and nested datasets, as tf.keras does.
 * Used by tests (Keras 2 layouts Keras 3 cannot write any more) and by the export benchmark (a ≥ 50 MB model).
 */
import h5wasm from 'h5wasm/node';

export interface H5Weight {
  /** As tf.keras names it: `dense/kernel:0`, or `inner_dense/kernel:0` inside a nested model's group. */
  name: string;
  shape: number[];
  data: Float32Array;
}

export interface Keras2H5 {
  modelConfig: Record<string, unknown>;
  kerasVersion?: string;
  /** Top-level layers in model order, each with its weights in `layer.weights` order. */
  layers: Array<{ name: string; weights: H5Weight[] }>;
  /** Write name lists split into `layer_names0`, `layer_names1`, … as Keras does past 64 KiB. */
  chunkNames?: number;
}

function nameList(g: { create_attribute(name: string, data: string[]): void }, attr: string, names: string[], chunk?: number): void {
  if (!chunk || names.length <= chunk) {
    g.create_attribute(attr, names);
    return;
  }
  for (let i = 0; i * chunk < names.length; i++) g.create_attribute(`${attr}${i}`, names.slice(i * chunk, (i + 1) * chunk));
}

export async function writeKeras2H5(file: string, model: Keras2H5): Promise<void> {
  await h5wasm.ready;
  const f = new h5wasm.File(file, 'w');
  try {
    f.create_attribute('keras_version', model.kerasVersion ?? '2.15.0');
    f.create_attribute('backend', 'tensorflow');
    f.create_attribute('model_config', JSON.stringify(model.modelConfig));
    const mw = f.create_group('model_weights');
    nameList(mw, 'layer_names', model.layers.map((l) => l.name), model.chunkNames);
    mw.create_attribute('keras_version', model.kerasVersion ?? '2.15.0');
    mw.create_attribute('backend', 'tensorflow');
    // tf.keras creates the layer groups sorted by name.
    for (const layer of [...model.layers].sort((a, b) => a.name.localeCompare(b.name))) {
      const g = mw.create_group(layer.name);
      nameList(g, 'weight_names', layer.weights.map((w) => w.name), model.chunkNames);
      for (const w of layer.weights) {
        const parts = w.name.split('/');
        let parent = g;
        for (const p of parts.slice(0, -1)) parent = (parent.get(p) as InstanceType<typeof h5wasm.Group> | null) ?? parent.create_group(p);
        parent.create_dataset({ name: parts[parts.length - 1], data: w.data, shape: w.shape });
      }
    }
  } finally {
    f.close();
  }
}

/** Keras 2 (tf.keras) config objects. */
export const keras2 = {
  input(name: string, shape: number[], dtype = 'float32') {
    return { class_name: 'InputLayer', config: { batch_input_shape: [null, ...shape], dtype, sparse: false, ragged: false, name }, name, inbound_nodes: [] };
  },
  dense(name: string, units: number, activation: string, inbound: Array<[string, number, number]>) {
    return {
      class_name: 'Dense',
      config: {
        name,
        trainable: true,
        dtype: 'float32',
        units,
        activation,
        use_bias: true,
        kernel_initializer: { class_name: 'GlorotUniform', config: { seed: null } },
        bias_initializer: { class_name: 'Zeros', config: {} },
        kernel_regularizer: null,
        bias_regularizer: null,
        activity_regularizer: null,
        kernel_constraint: null,
        bias_constraint: null,
      },
      name,
      inbound_nodes: [inbound.map(([l, n, t]) => [l, n, t, {}])],
    };
  },
  batchNorm(name: string, inbound: Array<[string, number, number]>) {
    return {
      class_name: 'BatchNormalization',
      config: { name, trainable: true, dtype: 'float32', axis: [1], momentum: 0.99, epsilon: 0.001, center: true, scale: true },
      name,
      inbound_nodes: [inbound.map(([l, n, t]) => [l, n, t, {}])],
    };
  },
  functional(name: string, layers: unknown[], inputs: Array<[string, number, number]>, outputs: Array<[string, number, number]>) {
    return { class_name: 'Functional', config: { name, layers, input_layers: inputs, output_layers: outputs } };
  },
};

/** Seeded normal-ish float32 values. */
export function seededWeights(n: number, seed: number, scale = 0.1): Float32Array {
  let a = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    a = (a * 1664525 + 1013904223) >>> 0;
    out[i] = ((a / 2 ** 32) * 2 - 1) * scale;
  }
  return out;
}
