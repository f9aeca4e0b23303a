/**
 * The benchmark's baseline: the same model, loss and batches trained the plain TF.js way: the towers as TF.js ops
 * over tf.Variables, `tf.variableGrads` for the gradients (gather gradients through UnsortedSegmentSum, transposed
 * matmuls), and `tf.train.adam` (dense updates of every variable, whole embedding tables included). It is what
 * am-ml's hand-written step and kernels are measured against. Bench-only code.
 */
import type { BatchBuilder } from '../ml/batches.js';
import { registerSegmentSumKernels } from '../ml/kernels/unsorted-segment-sum.js';
import { tf } from '../ml/tf.js';
import type { TowerArch, TowerParams } from '../ml/tower.js';

interface TowerVars {
  arch: TowerArch;
  tables: tf.Variable[];
  kernels: tf.Variable[];
  biases: tf.Variable[];
}

function vars(arch: TowerArch, p: TowerParams, name: string): TowerVars {
  const widths = [arch.bags.reduce((s, b) => s + b.embeddingDim, 0) + arch.numericWidth, ...arch.hidden, arch.outputDim];
  return {
    arch,
    tables: arch.bags.map((b, i) => tf.variable(tf.tensor2d(p.tables[i], [b.vocabularySize, b.embeddingDim]), true, `${name}_t${i}`)),
    kernels: p.kernels.map((k, i) => tf.variable(tf.tensor2d(k, [widths[i], widths[i + 1]]), true, `${name}_k${i}`)),
    biases: p.biases.map((b, i) => tf.variable(tf.tensor1d(b), true, `${name}_b${i}`)),
  };
}

function towerForward(v: TowerVars, inputs: tf.Tensor[]): tf.Tensor2D {
  const parts: tf.Tensor[] = v.arch.bags.map((_, i) => tf.sum(tf.mul(tf.gather(v.tables[i], inputs[2 * i]), tf.expandDims(inputs[2 * i + 1], -1)), 1));
  parts.push(inputs[inputs.length - 1]);
  let x = tf.concat(parts, 1) as tf.Tensor2D;
  v.kernels.forEach((k, i) => {
    x = tf.add(tf.matMul(x, k), v.biases[i]) as tf.Tensor2D;
    if (i < v.kernels.length - 1) x = tf.relu(x);
  });
  return tf.mul(x, tf.rsqrt(tf.maximum(tf.sum(tf.square(x), -1, true), 1e-12))) as tf.Tensor2D;
}

export class BaselineTrainer {
  private readonly user: TowerVars;
  private readonly item: TowerVars;
  private readonly optimizer: tf.AdamOptimizer;

  constructor(
    archs: { user: TowerArch; item: TowerArch },
    params: { user: TowerParams; item: TowerParams },
    private readonly temperature: number,
    learningRate: number,
  ) {
    registerSegmentSumKernels(tf);
    this.user = vars(archs.user, params.user, 'user');
    this.item = vars(archs.item, params.item, 'item');
    this.optimizer = tf.train.adam(learningRate, 0.9, 0.999, 1e-7);
  }

  /** One step on a batch where every row has an explicit negative (item rows: b positives, then b negatives). */
  step(batch: BatchBuilder): number {
    const b = batch.rows;
    const lossTensor = tf.tidy(() => {
      const toTensors = (arrays: { data: Int32Array | Float32Array; shape: [number, number]; dtype: string }[]) =>
        arrays.map((a) => tf.tensor(a.data, a.shape, a.dtype as 'int32' | 'float32'));
      const ux = toTensors(batch.user.toInputs(b).arrays);
      const ix = toTensors(batch.item.toInputs(b + batch.hardCount).arrays);
      const logQ = tf.tensor1d(batch.logQ.slice(0, b));
      const ik = tf.tensor1d(batch.itemKey.slice(0, b), 'int32');
      const uk = tf.tensor1d(batch.userKey.slice(0, b), 'int32');
      const eye = tf.cast(tf.eye(b), 'bool');
      const labels = tf.oneHot(tf.range(0, b, 1, 'int32'), b + 1);
      const f = () => {
        const u = towerForward(this.user, ux);
        const vAll = towerForward(this.item, ix);
        const v = tf.slice(vAll, [0, 0], [b, -1]);
        const n = tf.slice(vAll, [b, 0], [b, -1]);
        const s = tf.sub(tf.div(tf.matMul(u, v, false, true), this.temperature), tf.expandDims(logQ, 0));
        const accidental = tf.logicalAnd(tf.logicalOr(tf.equal(tf.expandDims(ik, 1), tf.expandDims(ik, 0)), tf.equal(tf.expandDims(uk, 1), tf.expandDims(uk, 0))), tf.logicalNot(eye));
        const masked = tf.where(accidental, tf.fill([b, b], -1e9), s);
        const h = tf.div(tf.sum(tf.mul(u, n), 1, true), this.temperature);
        return tf.losses.softmaxCrossEntropy(labels, tf.concat([masked, h], 1)) as tf.Scalar;
      };
      const { value, grads } = tf.variableGrads(f);
      this.optimizer.applyGradients(grads as tf.NamedTensorMap as Record<string, tf.Variable>);
      return value;
    });
    const loss = lossTensor.dataSync()[0];
    lossTensor.dispose();
    return loss;
  }

  dispose(): void {
    for (const v of [this.user, this.item]) tf.dispose([...v.tables, ...v.kernels, ...v.biases]);
    this.optimizer.dispose();
  }
}
