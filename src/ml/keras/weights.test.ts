/**
 * Weight mapping of Keras 2 `.h5` layouts that Keras 3 cannot write (built with libhdf5 via h5wasm): a nested
 * Functional tower whose variables are named after its layers, and one whose variable scopes carry `_1` suffixes
 * (re-created layers), which maps by Keras' order instead (all trainable weights, then the non-trainable ones).
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keras2, seededWeights, writeKeras2H5 } from '../../testing/keras-h5.js';
import { type TmpDir, tmpDir } from '../../testing/tmp-dir.js';
import { initTf } from '../tf.js';
import { folderOfConversion, validateConversion } from '../validate.js';
import { convertKeras } from './convert.js';

let tmp: TmpDir;
beforeAll(async () => {
  tmp = tmpDir('am-ml-weights-');
  await initTf('cpu');
});
afterAll(() => tmp.remove());

/** outer: input → tower(Dense 4 → BatchNorm → Dense 3) → Dense 2. */
function nestedConfig() {
  const tower = keras2.functional(
    'tower',
    [keras2.input('t_in', [5]), keras2.dense('t_dense', 4, 'relu', [['t_in', 0, 0]]), keras2.batchNorm('t_bn', [['t_dense', 0, 0]]), keras2.dense('t_out', 3, 'linear', [['t_bn', 0, 0]])],
    [['t_in', 0, 0]],
    [['t_out', 0, 0]],
  );
  return keras2.functional(
    'outer',
    [keras2.input('x', [5]), { ...tower, name: 'tower', inbound_nodes: [[['x', 0, 0, {}]]] }, keras2.dense('head', 2, 'sigmoid', [['tower', 1, 0]])],
    [['x', 0, 0]],
    [['head', 0, 0]],
  );
}

function towerWeights(scope: (layer: string) => string) {
  const w = (layer: string, name: string, shape: number[], seed: number) => ({ name: `${scope(layer)}/${name}:0`, shape, data: seededWeights(shape.reduce((a, d) => a * d, 1), seed) });
  const variance = { ...w('t_bn', 'moving_variance', [4], 7), data: Float32Array.from({ length: 4 }, (_, i) => 0.5 + i * 0.25) };
  // Keras 2 order inside a nested model: every trainable weight first, then the non-trainable ones.
  return [w('t_dense', 'kernel', [5, 4], 1), w('t_dense', 'bias', [4], 2), w('t_bn', 'gamma', [4], 3), w('t_bn', 'beta', [4], 4), w('t_out', 'kernel', [4, 3], 5), w('t_out', 'bias', [3], 6), w('t_bn', 'moving_mean', [4], 8), variance];
}

describe('Keras 2 nested-model .h5', () => {
  it.each([
    ['variable scopes named after the layers', (l: string) => l],
    ['variable scopes with _1 suffixes (mapped by order)', (l: string) => `${l}_1`],
  ])('%s', async (_label, scope) => {
    const file = path.join(tmp.path, `${scope('x')}.h5`);
    const tw = towerWeights(scope);
    const head = [
      { name: 'head/kernel:0', shape: [3, 2], data: seededWeights(6, 9) },
      { name: 'head/bias:0', shape: [2], data: seededWeights(2, 10) },
    ];
    await writeKeras2H5(file, { modelConfig: nestedConfig(), layers: [{ name: 'x', weights: [] }, { name: 'tower', weights: tw }, { name: 'head', weights: head }] });
    const conv = await convertKeras({ input: file, convertedBy: 't' });
    expect(conv.source.kerasMajor).toBe(2);
    const byName = new Map(conv.weights.map((w) => [w.name, w]));
    for (const src of tw) {
      const [layer, rest] = src.name.replace(/_1\//, '/').split('/');
      const mapped = byName.get(`${layer}/${rest.replace(':0', '')}`);
      expect(mapped, src.name).toBeDefined();
      expect(Array.from(mapped!.data)).toEqual(Array.from(src.data));
    }
    const v = await validateConversion(conv, folderOfConversion(conv));
    expect(v.ok).toBe(true);
    expect(v.report.reference!.layersCompared).toBe(5); // tower, head, and inside the tower t_dense, t_bn, t_out
  });

  it('refuses a nested group whose weights do not line up with the config', async () => {
    const file = path.join(tmp.path, 'misaligned.h5');
    const tw = towerWeights((l) => `${l}_9`);
    [tw[0], tw[4]] = [tw[4], tw[0]]; // a kernel out of order: shapes and names no longer line up
    await writeKeras2H5(file, { modelConfig: nestedConfig(), layers: [{ name: 'x', weights: [] }, { name: 'tower', weights: tw }, { name: 'head', weights: [{ name: 'head/kernel:0', shape: [3, 2], data: seededWeights(6, 1) }, { name: 'head/bias:0', shape: [2], data: seededWeights(2, 1) }] }] });
    await expect(convertKeras({ input: file, convertedBy: 't' })).rejects.toMatchObject({ exitCode: 4, code: 'KERAS_WEIGHTS_MISMATCH' });
  });
});

describe('Keras 2 Sequential .h5', () => {
  it('reads a Sequential without an InputLayer (batch_input_shape on the first layer) and chunked name lists', async () => {
    const file = path.join(tmp.path, 'sequential.h5');
    const first = keras2.dense('first', 4, 'tanh', []) as { config: Record<string, unknown>; name?: string; inbound_nodes?: unknown };
    first.config.batch_input_shape = [null, 3];
    const second = keras2.dense('second', 2, 'softmax', []);
    const strip = (l: Record<string, unknown>) => ({ class_name: l.class_name, config: l.config });
    const config = { class_name: 'Sequential', config: { name: 'seq', layers: [strip(first), strip(second)] } };
    const w = (name: string, shape: number[], seed: number) => ({ name, shape, data: seededWeights(shape.reduce((a, d) => a * d, 1), seed) });
    await writeKeras2H5(file, {
      modelConfig: config,
      chunkNames: 1,
      layers: [
        { name: 'first', weights: [w('first/kernel:0', [3, 4], 1), w('first/bias:0', [4], 2)] },
        { name: 'second', weights: [w('second/kernel:0', [4, 2], 3), w('second/bias:0', [2], 4)] },
      ],
    });
    const conv = await convertKeras({ input: file, convertedBy: 't' });
    expect(conv.inputs).toEqual([{ name: 'first_input', shape: [null, 3], dtype: 'float32' }]);
    expect(conv.weights.map((x) => x.name)).toEqual(['first/kernel', 'first/bias', 'second/kernel', 'second/bias']);
    const v = await validateConversion(conv, folderOfConversion(conv));
    expect(v.ok).toBe(true);
  });
});
