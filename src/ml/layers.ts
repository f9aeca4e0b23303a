/**
 * The two custom TF.js layers of am-ml's towers, registered with TF.js serialization on import so
 * `tf.loadLayersModel` can rebuild a saved tower. Listed in each manifest tower's `customLayers`; whoever loads a
 * two-tower model (load-model.ts, embed, the Deno runtime) imports this module first. No Node APIs.
 *
 * - `AmMlWeightedBag` (inputs `[idx int32 [B,L], w float32 [B,L]]`, output `[B, E]`): Σ_j w[b,j] · T[idx[b,j]],
 *   one `embeddings` table `[vocabularySize, E]`. Row 0 is padding (weight 0). On cpu and wasm it runs as the
 *   kernel of the same name (kernels/weighted-bag-kernel.ts, registered here); elsewhere as gather + sum.
 * - `AmMlL2Normalize` (the runtime's class, `src/ml/runtime/layers.ts`, shared with `am-ml export`), with axis −1 and
 *   maxInverseNorm 1e6: x · min(rsqrt(Σx²), 1e6) = x / sqrt(max(Σx², 1e-12)), as the training code normalises.
 * Importing this module also registers the runtime's classes (`am-ml/runtime`).
 */
import { registerWeightedBagKernel, WEIGHTED_BAG_KERNEL } from './kernels/weighted-bag-kernel.js';
// From runtime/layers.js, not runtime/index.js: the runtime entry imports this module (so `import 'am-ml/runtime'`
// registers AmMlWeightedBag too), and a cycle between the two would call into index.js before it is initialised.
import { AmMlL2Normalize, CUSTOM_LAYERS } from './runtime/layers.js';
import { tf } from './tf.js';

export const WEIGHTED_BAG_CLASS = 'AmMlWeightedBag';
export const L2_NORMALIZE_CLASS = AmMlL2Normalize.className;
export const CUSTOM_LAYER_CLASSES = [WEIGHTED_BAG_CLASS, L2_NORMALIZE_CLASS];
/** tf.math.l2_normalize(ε = 1e-12) as AmMlL2Normalize computes it: x · min(rsqrt(Σx²), 1/√ε). */
export const L2_MAX_INVERSE_NORM = 1e6;

export { AmMlL2Normalize };

type Kwargs = Record<string, unknown>;
type LayerArgs = ConstructorParameters<typeof tf.layers.Layer>[0];

export interface WeightedBagArgs extends NonNullable<LayerArgs> {
  vocabularySize: number;
  embeddingDim: number;
}

export class WeightedBag extends tf.layers.Layer {
  static className = WEIGHTED_BAG_CLASS;
  readonly vocabularySize: number;
  readonly embeddingDim: number;
  private embeddings: tf.LayerVariable | null = null;

  constructor(args: WeightedBagArgs) {
    super(args);
    this.vocabularySize = args.vocabularySize;
    this.embeddingDim = args.embeddingDim;
  }

  override build(): void {
    this.embeddings = this.addWeight('embeddings', [this.vocabularySize, this.embeddingDim], 'float32', tf.initializers.zeros());
    this.built = true;
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    const first = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tf.Shape;
    return [first[0], this.embeddingDim];
  }

  override call(inputs: tf.Tensor | tf.Tensor[], _kwargs: Kwargs): tf.Tensor {
    return tf.tidy(() => {
      const [idx, w] = inputs as tf.Tensor[];
      const ids = tf.cast(idx, 'int32');
      if (tf.getKernel(WEIGHTED_BAG_KERNEL, tf.getBackend())) {
        return tf.engine().runKernel(WEIGHTED_BAG_KERNEL, { table: this.embeddings!.read(), idx: ids, w: tf.cast(w, 'float32') }, {}) as tf.Tensor;
      }
      const rows = tf.gather(this.embeddings!.read(), ids) as tf.Tensor3D; // [B, L, E]
      return tf.sum(tf.mul(rows, tf.expandDims(w, -1)), 1);
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), vocabularySize: this.vocabularySize, embeddingDim: this.embeddingDim };
  }
}

// Registering a class again under the same name is a no-op for TF.js, so this and registerAmMlLayers() may both run.
for (const cls of Object.values(CUSTOM_LAYERS)) tf.serialization.registerClass(cls);
tf.serialization.registerClass(WeightedBag);
registerWeightedBagKernel(tf);
