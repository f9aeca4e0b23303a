import { beforeAll, describe, expect, it } from 'vitest';
import { topK } from '../evaluate.js';
import { Rng } from '../rng.js';
import { initTf, tf } from '../tf.js';
import { WeightedBag } from '../layers.js';
import { inBatchSoftmax } from './in-batch-softmax.js';
import { WEIGHTED_BAG_KERNEL } from './weighted-bag-kernel.js';
import { jsMm, tfMatMul, transpose } from './matmul.js';

const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};

describe('kernels', () => {
  beforeAll(async () => {
    await initTf('cpu');
  });

  it('JS and TF matmul agree with a naive product; transpose is exact', () => {
    const rng = new Rng(1);
    for (const [m, k, n] of [
      [1, 1, 1],
      [5, 3, 7],
      [9, 16, 4],
    ]) {
      const a = Float32Array.from({ length: m * k }, () => rng.normal());
      const b = Float32Array.from({ length: k * n }, () => rng.normal());
      const naive = new Float32Array(m * n);
      for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) for (let p = 0; p < k; p++) naive[i * n + j] += a[i * k + p] * b[p * n + j];
      expect(maxDiff(jsMm(a, b, m, k, n), naive)).toBeLessThan(1e-5);
      expect(maxDiff(tfMatMul(tf).mm(a, b, m, k, n), naive)).toBeLessThan(1e-5);
      const t = transpose(a, m, k);
      expect(Array.from(transpose(t, k, m))).toEqual(Array.from(a));
      expect(t[0 * m + (m - 1)]).toBe(a[(m - 1) * k]);
    }
  });

  it('fused in-batch softmax: loss and gradients equal TF.js autodiff of the unfused formula', () => {
    const rng = new Rng(5);
    const b = 6;
    const tau = 0.1;
    const scores = Float32Array.from({ length: b * b }, () => rng.uniform(-1, 1));
    const logQ = Float32Array.from({ length: b }, () => rng.uniform(-2, 1));
    // rows 1 and 4 share a user, rows 2 and 5 share an item: those off-diagonal pairs are masked
    const userKey = Int32Array.from([0, 1, 2, 3, 1, 5]);
    const itemKey = Int32Array.from([10, 11, 12, 13, 14, 12]);
    const hardScores = Float32Array.from([0.3, Number.NaN, -0.2, 0.9, Number.NaN, 0.1]);
    const out = inBatchSoftmax({ scores, b, rowStart: 0, rows: b, temperature: tau, logQ, itemKey, userKey, hardScores });

    const mask = new Float32Array(b * b);
    for (let i = 0; i < b; i++) for (let j = 0; j < b; j++) mask[i * b + j] = i !== j && (userKey[i] === userKey[j] || itemKey[i] === itemKey[j]) ? -1e9 : 0;
    const hardMask = Float32Array.from(hardScores, (h) => (Number.isNaN(h) ? -1e9 : 0));
    const hardVals = Float32Array.from(hardScores, (h) => (Number.isNaN(h) ? 0 : h));
    const [lossRef, gS, gH] = tf.tidy(() => {
      const f = (s: tf.Tensor, h: tf.Tensor) => {
        const z = tf.add(tf.sub(tf.div(s, tau), tf.tensor1d(logQ)), tf.tensor2d(mask, [b, b]));
        const zh = tf.add(tf.div(h, tau), tf.tensor1d(hardMask)).reshape([b, 1]);
        const all = tf.concat([z, zh], 1);
        const logp = tf.logSoftmax(all);
        const diag = tf.sum(tf.mul(tf.slice(logp, [0, 0], [b, b]), tf.eye(b)), 1);
        return tf.neg(tf.mean(diag)) as tf.Scalar;
      };
      const s = tf.tensor2d(scores, [b, b]);
      const h = tf.tensor1d(hardVals);
      const { value, grads } = tf.valueAndGrads(f)([s, h]);
      return [value.dataSync()[0], grads[0].dataSync().slice(), grads[1].dataSync().slice()] as const;
    });
    expect(out.loss).toBeCloseTo(lossRef, 5);
    expect(maxDiff(out.gScores, gS)).toBeLessThan(1e-5);
    expect(maxDiff(out.gHard, gH)).toBeLessThan(1e-5);
    // any split into row blocks gives the same numbers (the two halves run on two threads)
    const top = inBatchSoftmax({ scores: scores.subarray(0, 2 * b), b, rowStart: 0, rows: 2, temperature: tau, logQ, itemKey, userKey, hardScores: hardScores.subarray(0, 2) });
    const rest = inBatchSoftmax({ scores: scores.subarray(2 * b), b, rowStart: 2, rows: b - 2, temperature: tau, logQ, itemKey, userKey, hardScores: hardScores.subarray(2) });
    expect([...top.gScores, ...rest.gScores]).toEqual([...out.gScores]);
    expect([...top.gHard, ...rest.gHard]).toEqual([...out.gHard]);
    expect(top.loss + rest.loss).toBeCloseTo(out.loss, 12);
    // masked pairs get no gradient
    expect(out.gScores[1 * b + 4]).toBe(0);
    expect(out.gScores[5 * b + 2]).toBe(0);
  });

  for (const backend of ['cpu', 'wasm'] as const) {
    it(`the AmMlWeightedBag kernel equals gather + weighted sum (${backend})`, async () => {
      await initTf(backend);
      const rng = new Rng(11);
      const layer = new WeightedBag({ vocabularySize: 9, embeddingDim: 5 });
      const idx = tf.tensor2d(Int32Array.from({ length: 12 }, () => rng.int(9)), [4, 3], 'int32');
      const w = tf.tensor2d(Float32Array.from({ length: 12 }, () => rng.next()), [4, 3]);
      const out = layer.apply([idx, w]) as tf.Tensor;
      const table = Float32Array.from({ length: 45 }, () => rng.normal());
      layer.setWeights([tf.tensor2d(table, [9, 5])]);
      const mine = (layer.apply([idx, w]) as tf.Tensor).dataSync();
      const ref = tf.tidy(() => tf.sum(tf.mul(tf.gather(tf.tensor2d(table, [9, 5]), idx), tf.expandDims(w, -1)), 1).dataSync());
      expect(tf.getKernel(WEIGHTED_BAG_KERNEL, backend)).toBeDefined();
      expect(maxDiff(mine, ref)).toBeLessThan(1e-6);
      tf.dispose([idx, w, out]);
      layer.dispose();
      await initTf('cpu');
    });
  }

  it('topK keeps the best scores, ties by index, and skips -Infinity', () => {
    const s = Float32Array.from([0.5, 0.9, -Infinity, 0.9, 0.1, 0.7]);
    expect(Array.from(topK(s, s.length, 3))).toEqual([1, 3, 5]);
    expect(Array.from(topK(s, s.length, 10))).toEqual([1, 3, 5, 0, 4]);
  });
});
