import { beforeAll, describe, expect, it } from 'vitest';
import { adamDense, adamRows } from './kernels/adam.js';
import { jsMatMul, tfMatMul } from './kernels/matmul.js';
import { Rng } from './rng.js';
import { initTf, tf } from './tf.js';
import { initTowerParams, type TowerArch, type TowerBatch, TowerTrainer } from './tower.js';

const ARCH: TowerArch = {
  bags: [
    { name: 'a', vocabularySize: 7, embeddingDim: 3, maxLen: 3 },
    { name: 'b', vocabularySize: 5, embeddingDim: 2, maxLen: 2 },
  ],
  numericWidth: 2,
  hidden: [6],
  outputDim: 4,
};
const M = 5;

function randomBatch(rng: Rng): TowerBatch {
  const bagIdx = ARCH.bags.map((b) => Int32Array.from({ length: M * b.maxLen }, () => rng.int(b.vocabularySize)));
  const bagW = ARCH.bags.map((b, i) => Float32Array.from({ length: M * b.maxLen }, (_, j) => (bagIdx[i][j] === 0 ? 0 : rng.uniform(0.1, 1))));
  return {
    bagIdx,
    bagW,
    bagLen: ARCH.bags.map((b) => b.maxLen),
    numeric: Float32Array.from({ length: M * ARCH.numericWidth }, () => rng.normal()),
    numericWidth: ARCH.numericWidth,
  };
}

/** The same tower written with TF.js ops (bags as dense multi-hot products), differentiated by TF.js. */
function referenceGrads(params: ReturnType<typeof initTowerParams>, batch: TowerBatch, gz: Float32Array) {
  return tf.tidy(() => {
    const tables = params.tables.map((t, i) => tf.tensor2d(t, [ARCH.bags[i].vocabularySize, ARCH.bags[i].embeddingDim]));
    const widths = [3 + 2 + 2, 6, 4];
    const kernels = params.kernels.map((k, i) => tf.tensor2d(k, [widths[i], widths[i + 1]]));
    const biases = params.biases.map((b) => tf.tensor1d(b));
    const multiHot = ARCH.bags.map((b, i) => {
      const dense = new Float32Array(M * b.vocabularySize);
      for (let r = 0; r < M; r++) for (let j = 0; j < b.maxLen; j++) dense[r * b.vocabularySize + batch.bagIdx[i][r * b.maxLen + j]] += batch.bagW[i][r * b.maxLen + j];
      return tf.tensor2d(dense, [M, b.vocabularySize]);
    });
    const numeric = tf.tensor2d(batch.numeric, [M, 2]);
    const g = tf.tensor2d(gz, [M, 4]);
    const f = (...vars: tf.Tensor[]) => {
      const [t0, t1, k0, k1, b0, b1] = vars as tf.Tensor2D[];
      const x = tf.concat([tf.matMul(multiHot[0], t0), tf.matMul(multiHot[1], t1), numeric], 1);
      const h = tf.relu(tf.add(tf.matMul(x, k0), b0));
      const y = tf.add(tf.matMul(h, k1), b1);
      const z = tf.mul(y, tf.rsqrt(tf.maximum(tf.sum(tf.square(y), -1, true), 1e-12)));
      return tf.sum(tf.mul(z, g)) as tf.Scalar;
    };
    const grads = tf.grads(f)([...tables, ...kernels, ...biases]);
    return grads.map((t) => t.dataSync().slice() as Float32Array);
  });
}

describe('tower math', () => {
  beforeAll(async () => {
    await initTf('cpu');
  });

  for (const which of ['js', 'tf'] as const) {
    it(`hand-written gradients equal TF.js autodiff (${which} matmul)`, () => {
      const rng = new Rng(7);
      const params = initTowerParams(ARCH, rng);
      const batch = randomBatch(rng);
      const trainer = new TowerTrainer(ARCH, params, which === 'js' ? jsMatMul() : tfMatMul(tf));
      trainer.forward(batch, M);
      const gz = Float32Array.from({ length: M * 4 }, () => rng.normal());
      trainer.backward(gz);
      const mine = trainer.gradients();
      const ref = referenceGrads(params, batch, gz);
      // tables: scatter the sparse rows into dense arrays before comparing
      mine.tables.forEach((t, i) => {
        const dense = new Float32Array(ref[i].length);
        for (const r of t.rows) for (let e = 0; e < t.dim; e++) dense[r * t.dim + e] = t.grad[r * t.dim + e];
        // padding row 0 has weight 0 in the batch, so TF's gradient there is 0 as well
        expect(Array.from(dense).map((v, j) => Math.abs(v - ref[i][j])).reduce((a, b) => Math.max(a, b))).toBeLessThan(1e-5);
      });
      [...mine.kernels, ...mine.biases].forEach((g, i) => {
        const r = ref[2 + i];
        expect(g.length).toBe(r.length);
        expect(Array.from(g).map((v, j) => Math.abs(v - r[j])).reduce((a, b) => Math.max(a, b))).toBeLessThan(1e-5);
      });
    });
  }

  it('lazy Adam on touched rows equals dense Adam when every row is touched', () => {
    const rng = new Rng(3);
    const p1 = Float32Array.from({ length: 12 }, () => rng.normal());
    const p2 = p1.slice();
    const cfg = { learningRate: 0.01, beta1: 0.9, beta2: 0.999, epsilon: 1e-7 };
    const [m1, v1, m2, v2] = [0, 0, 0, 0].map(() => new Float32Array(12));
    for (let step = 1; step <= 3; step++) {
      const g = Float32Array.from({ length: 12 }, () => rng.normal());
      adamDense(p1, g, m1, v1, cfg, step);
      adamRows(p2, g, m2, v2, Int32Array.from([0, 1, 2, 3]), 3, cfg, step);
    }
    expect(Array.from(p2)).toEqual(Array.from(p1));
  });
});
