import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TINY_TRAIN_CONFIG, tinyTrainingData } from '../testing/synthetic-data.js';
import { buildItemInputs, buildUserInputs, encodeItem, TowerBuffers, tokensOf, writeItemRow } from './features/index.js';
import { jsMatMul } from './kernels/matmul.js';
import { predictTower } from './model.js';
import { initTf, tf } from './tf.js';
import { LocalTowerRunner, towerWorkerPath } from './tower-runner.js';
import { type TrainResult, trainTwoTower } from './train.js';

let result: TrainResult;
const tensorsAtEpochEnd: number[] = [];
let tensorsBefore = 0;
const { data, planted } = tinyTrainingData();

const cosine = (a: Float32Array, b: Float32Array) => a.reduce((s, v, i) => s + v * b[i], 0);

beforeAll(async () => {
  await initTf('wasm');
  tensorsBefore = tf.memory().numTensors;
  result = await trainTwoTower(data, TINY_TRAIN_CONFIG, {
    tf,
    backend: 'wasm',
    onProgress: (e) => {
      if (e.kind === 'epoch-end') tensorsAtEpochEnd.push(tf.memory().numTensors);
    },
  });
});

afterAll(() => {
  result?.models.user.dispose();
  result?.models.item.dispose();
});

describe('trainTwoTower on data with planted taste clusters', () => {
  it('beats the popularity baseline by a wide margin on the full catalog', () => {
    const { model, popularity, evaluatedOn } = result.metrics;
    expect(evaluatedOn).toBe('test');
    expect(model.users).toBe(popularity.users);
    expect(model.users).toBeGreaterThan(100);
    expect(model['recall@10']).toBeGreaterThan(1.8 * popularity['recall@10']);
    expect(model['ndcg@10']).toBeGreaterThan(2 * popularity['ndcg@10']);
    expect(model['coverage@100']).toBeGreaterThan(popularity['coverage@100']);
    // the loss goes down
    expect(result.history[result.history.length - 1].loss).toBeLessThan(result.history[0].loss);
  });

  it('leaks no tensors: the count is flat across epochs and back to the start once the models are gone', () => {
    expect(tensorsAtEpochEnd).toHaveLength(3);
    expect(new Set(tensorsAtEpochEnd).size).toBe(1);
    const weights = result.models.user.weights.length + result.models.item.weights.length;
    expect(tf.memory().numTensors).toBe(tensorsBefore + weights);
  });

  it('the saved-form layers models compute what the training code computes', async () => {
    const p = result.prepared;
    const runner = new LocalTowerRunner('item', result.archs.item, result.params.item, jsMatMul());
    const buf = new TowerBuffers(p.spec, 'item', 50);
    for (let r = 0; r < 50; r++) writeItemRow(buf, r, p.encoded[r]);
    const mine = await runner.embed(buf, 50);
    const theirs = predictTower(result.models.item, buf.toInputs(50).arrays);
    expect(Math.max(...mine.map((v, i) => Math.abs(v - theirs[i])))).toBeLessThan(1e-5);
  });

  it('embeds an item it never saw from its features: a copy with a new id lands next to the original', () => {
    const original = data.items[10];
    const copy = { ...original, item_id: 'never-seen-before' };
    const emb = predictTower(result.models.item, buildItemInputs(result.spec, [...data.items, copy]).inputs.arrays);
    const d = result.archs.item.outputDim;
    const v = emb.subarray(data.items.length * d);
    const sims = data.items.map((_, i) => cosine(v, emb.subarray(i * d, (i + 1) * d)));
    const rank = sims.filter((s) => s > sims[10]).length;
    expect(rank).toBeLessThan(data.items.length * 0.05);
  });

  it('embeds a user it never saw from their history: recommendations follow the planted taste', () => {
    const items = predictTower(result.models.item, buildItemInputs(result.spec, data.items).inputs.arrays);
    const d = result.archs.item.outputDim;
    const lifts = planted.clusters.map((cluster) => {
      const affinity = (i: number) => {
        const it = data.items[i];
        return (
          tokensOf(it.tags).filter((t) => cluster.tags.includes(t)).length +
          (cluster.makers.includes(tokensOf(it.maker)[0] ?? '') ? 1.5 : 0) +
          2 * tokensOf(it.performers).filter((x) => cluster.performers.includes(x)).length
        );
      };
      // A brand-new user (no id anywhere) whose likes are the ten items closest to the cluster's taste.
      const ranked = data.items.map((_, i) => i).sort((a, b) => affinity(b) - affinity(a));
      const liked = new Set(ranked.slice(0, 10));
      const u = predictTower(result.models.user, buildUserInputs(result.spec, [{ likes: ranked.slice(0, 10).map((i) => data.items[i]) }]).inputs.arrays);
      const scores = data.items.map((_, i) => cosine(u, items.subarray(i * d, (i + 1) * d)));
      const top = data.items.map((_, i) => i).filter((i) => !liked.has(i)).sort((a, b) => scores[b] - scores[a]).slice(0, 20);
      const meanTop = top.reduce((s, i) => s + affinity(i), 0) / top.length;
      const meanAll = data.items.reduce((s, _, i) => s + affinity(i), 0) / data.items.length;
      return meanTop / meanAll;
    });
    expect(Math.min(...lifts)).toBeGreaterThan(1.2);
    expect(lifts.reduce((a, b) => a + b, 0) / lifts.length).toBeGreaterThan(1.6);
  });

  it('is deterministic for a seed (and the seed matters)', async () => {
    const cfg = { ...TINY_TRAIN_CONFIG, epochs: 1 };
    const a = await trainTwoTower(data, cfg, { tf, backend: 'wasm' });
    const b = await trainTwoTower(data, cfg, { tf, backend: 'wasm' });
    const c = await trainTwoTower(data, { ...cfg, seed: 7 }, { tf, backend: 'wasm' });
    try {
      expect(b.history[0].loss).toBe(a.history[0].loss);
      expect(b.params.item.kernels[0]).toEqual(a.params.item.kernels[0]);
      expect(b.params.user.tables[0]).toEqual(a.params.user.tables[0]);
      expect(b.metrics.model).toEqual(a.metrics.model);
      expect(c.history[0].loss).not.toBe(a.history[0].loss);
    } finally {
      for (const r of [a, b, c]) {
        r.models.user.dispose();
        r.models.item.dispose();
      }
    }
  });

  it('gives the same model with the towers in two worker threads (built worker from dist/)', async () => {
    expect(towerWorkerPath(), 'run `npm run build` first: the worker runs from dist/').toBeDefined();
    const cfg = { ...TINY_TRAIN_CONFIG, epochs: 1 };
    const one = await trainTwoTower(data, cfg, { tf, backend: 'wasm', threads: 1 });
    const two = await trainTwoTower(data, cfg, { tf, backend: 'wasm', threads: 2 });
    try {
      expect(two.throughput.threads).toBe(2);
      expect(two.history[0].loss).toBe(one.history[0].loss);
      expect(two.params.user.kernels[0]).toEqual(one.params.user.kernels[0]);
      expect(two.params.item.tables[1]).toEqual(one.params.item.tables[1]);
    } finally {
      for (const r of [one, two]) {
        r.models.user.dispose();
        r.models.item.dispose();
      }
    }
  });

  it('encodes the probe-relevant unseen values without throwing (sanity of encodeItem on the catalog)', () => {
    expect(() => encodeItem(result.spec, { item_id: '' })).not.toThrow();
  });
});
