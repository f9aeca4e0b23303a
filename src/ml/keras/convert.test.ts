/**
 * Conversion of every Keras fixture (the public files and the ones generated with real Keras), proven three ways:
 * TF.js loads it strictly, agrees layer by layer with the independent reference pass, and reproduces Keras' own
 * outputs (golden files). Also the refusals: custom classes, unknown Lambdas, masked pooling.
 */
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { AmMlError } from '../../errors.js';
import { FIXTURES_DIR } from '../../testing/tmp-dir.js';
import { initTf } from '../tf.js';
import { folderOfConversion, validateConversion } from '../validate.js';
import { convertKeras } from './convert.js';
import { readGoldenFile } from './golden.js';
import { parseLambdaMapping } from './lambda.js';

const K = path.join(FIXTURES_DIR, 'keras');
const G = path.join(K, 'generated');
const QKERAS = path.join(K, 'fastmachinelearning__example-models__qkeras-v3_3layer.keras');

beforeAll(async () => {
  await initTf('cpu');
});

interface Case {
  label: string;
  input: string;
  weights?: string;
  golden: string;
  format: string;
  weightCount: number;
}

const CASES: Case[] = [
  { label: 'public Keras 3.11 .keras, Functional, 5 inputs', input: `${K}/joehigton__slfcc__bz_extractor.keras`, golden: `${G}/joehigton__slfcc__bz_extractor.keras.golden.json`, format: 'keras-v3-zip', weightCount: 9 },
  { label: 'public Keras 3.11 .keras, compiled two-tower', input: `${K}/joehigton__slfcc__two_tower_model.keras`, golden: `${G}/joehigton__slfcc__two_tower_model.keras.golden.json`, format: 'keras-v3-zip', weightCount: 11 },
  { label: 'public Keras 2.11 .h5', input: `${K}/nudge-deploy__NudgeCronjob__two_tower_model.h5`, golden: `${G}/nudge-deploy__NudgeCronjob__two_tower_model.h5.golden.json`, format: 'h5-full-model', weightCount: 10 },
  {
    label: 'public Keras 2.0 topology JSON + weights-only .h5',
    input: `${K}/fastmachinelearning__example-models__KERAS_3layer.json`,
    weights: `${K}/fastmachinelearning__example-models__KERAS_3layer_weights.h5`,
    golden: `${G}/fastmachinelearning__example-models__KERAS_3layer.golden.json`,
    format: 'json-topology+h5-weights',
    weightCount: 8,
  },
  ...(['keras', 'h5'] as const).flatMap((ext) => [
    { label: `user tower 768 .${ext} (BatchNormalization, UnitNormalization)`, input: `${G}/user_tower_768.${ext}`, golden: `${G}/user_tower_768.golden.json`, format: ext === 'keras' ? 'keras-v3-zip' : 'h5-full-model', weightCount: 9 },
    { label: `item tower 768 .${ext} (nested Sequential, LayerNormalization)`, input: `${G}/item_tower_768.${ext}`, golden: `${G}/item_tower_768.golden.json`, format: ext === 'keras' ? 'keras-v3-zip' : 'h5-full-model', weightCount: 7 },
    { label: `full two-tower model .${ext} (nested Functional towers)`, input: `${G}/full_model_768.${ext}`, golden: `${G}/full_model_768.golden.json`, format: ext === 'keras' ? 'keras-v3-zip' : 'h5-full-model', weightCount: 16 },
    { label: `kitchen sink .${ext} (every other layer)`, input: `${G}/kitchen_sink.${ext}`, golden: `${G}/kitchen_sink.golden.json`, format: ext === 'keras' ? 'keras-v3-zip' : 'h5-full-model', weightCount: 16 },
    { label: `Sequential in a Sequential .${ext}`, input: `${G}/nested_sequential.${ext}`, golden: `${G}/nested_sequential.golden.json`, format: ext === 'keras' ? 'keras-v3-zip' : 'h5-full-model', weightCount: 10 },
    { label: `recognised L2 Lambda .${ext}`, input: `${G}/lambda_l2.${ext}`, golden: `${G}/lambda_l2.golden.json`, format: ext === 'keras' ? 'keras-v3-zip' : 'h5-full-model', weightCount: 2 },
    { label: `one Embedding called twice, cosine Dot .${ext}`, input: `${G}/shared_layer.${ext}`, golden: `${G}/shared_layer.golden.json`, format: ext === 'keras' ? 'keras-v3-zip' : 'h5-full-model', weightCount: 1 },
    { label: `a tower called twice (siamese) .${ext}`, input: `${G}/siamese.${ext}`, golden: `${G}/siamese.golden.json`, format: ext === 'keras' ? 'keras-v3-zip' : 'h5-full-model', weightCount: 2 },
    { label: `a scalar id input, Input(shape=()) .${ext}`, input: `${G}/scalar_id.${ext}`, golden: `${G}/scalar_id.golden.json`, format: ext === 'keras' ? 'keras-v3-zip' : 'h5-full-model', weightCount: 3 },
  ]),
  {
    label: 'Keras 3 topology JSON + save_weights file',
    input: `${G}/nested_sequential.json`,
    weights: `${G}/nested_sequential.weights.h5`,
    golden: `${G}/nested_sequential.golden.json`,
    format: 'json-topology+keras3-weights',
    weightCount: 10,
  },
];

describe('convertKeras on real Keras files', () => {
  it.each(CASES)('$label: strict load, reference pass layer by layer, and Keras golden all agree', async (c) => {
    const conv = await convertKeras({ input: c.input, weights: c.weights, convertedBy: 'am-ml test' });
    expect(conv.source.format).toBe(c.format);
    expect(conv.weights).toHaveLength(c.weightCount);
    for (const w of conv.weights) expect(w.name).toMatch(/^[^/:]+\/(kernel|bias|embeddings|gamma|beta|moving_mean|moving_variance|alpha)$/);
    const v = await validateConversion(conv, folderOfConversion(conv), { goldens: [readGoldenFile(c.golden)] });
    expect(v.report.weights).toMatchObject({ exact: true, ok: true, count: c.weightCount });
    expect(v.report.tensorLeak.ok).toBe(true);
    expect(v.report.reference?.firstFailingLayer).toBeUndefined();
    expect(v.report.reference?.layersCompared).toBeGreaterThan(0);
    for (const o of v.report.reference!.outputs) expect(o.maxAbsDiff, o.name).toBeLessThan(1e-5);
    expect(v.report.golden).toHaveLength(1);
    for (const o of v.report.golden[0].outputs) expect(o.pass, `${o.name}: ${o.maxAbsDiff}`).toBe(true);
    expect(v.ok).toBe(true);
  });

  it('compares each call of a shared tower separately and warns about rank-1 inputs', async () => {
    const siamese = await convertKeras({ input: `${G}/siamese.keras`, convertedBy: 't' });
    const v = await validateConversion(siamese, folderOfConversion(siamese));
    // similarity, both calls of tower, and t_dense + t_norm inside each call
    expect(v.report.reference!.layersCompared).toBe(7);
    const scalar = await convertKeras({ input: `${G}/scalar_id.h5`, convertedBy: 't' });
    expect(scalar.inputs).toEqual([{ name: 'sid', shape: [null], dtype: 'int32' }]);
    expect(scalar.warnings[0]).toMatch(/Input sid has no feature axis.*model\.apply/);
  });

  it('passes a Keras 2 config through unchanged and strips :0 and NUL padding from names', async () => {
    const conv = await convertKeras({ input: `${K}/nudge-deploy__NudgeCronjob__two_tower_model.h5`, convertedBy: 't' });
    expect(conv.modelJson.modelTopology.model_config).toEqual(conv.source.modelConfig);
    expect(conv.modelJson.generatedBy).toBe('keras v2.11.0');
    expect(conv.weights.map((w) => w.name)).toContain('dense_42/kernel');
    expect(conv.weights.find((w) => w.name === 'dense_42/kernel')!.source).toBe('model_weights/dense_42/dense_42/kernel:0');
  });

  it('rewrites Keras 3 configs into the form tfjs-layers reads', async () => {
    const conv = await convertKeras({ input: `${G}/full_model_768.keras`, convertedBy: 't' });
    const text = JSON.stringify(conv.modelJson.modelTopology.model_config);
    for (const gone of ['"module"', '"registered_name"', '"build_config"', '"batch_shape"', '__keras_tensor__', 'DTypePolicy', 'GlorotUniform']) expect(text).not.toContain(gone);
    const cfg = conv.modelJson.modelTopology.model_config.config as { layers: Array<{ name: string; inbound_nodes: unknown[] }>; input_layers: unknown[]; output_layers: unknown[] };
    expect(cfg.output_layers).toEqual([['score', 0, 0]]);
    // References to the nested towers point at TF.js node 1 (node 0 is the nested model's own graph).
    const score = cfg.layers.find((l) => l.name === 'score')!;
    expect(score.inbound_nodes).toEqual([[['user_tower', 1, 0, {}], ['item_tower', 1, 0, {}]]]);
    expect(conv.customLayers).toEqual(['UnitNormalization']);
  });

  it('follows input_layers order and skips optimizer state of a compiled .keras', async () => {
    const conv = await convertKeras({ input: `${K}/joehigton__slfcc__two_tower_model.keras`, convertedBy: 't' });
    expect(conv.inputs.map((i) => i.name)).toEqual(['input_item_embedding', 'input_gender', 'input_race', 'input_educ', 'input_income', 'input_party']);
    expect(conv.ignored).toEqual(['optimizer/']);
    // Class-name paths differ from layer names: the third Dense of the config (layers/dense_2) is perspective_score_b_z.
    expect(conv.weights.find((w) => w.name === 'perspective_score_b_z/kernel')!.source).toBe('layers/dense_2/vars/0');
  });
});

describe('refusals, before anything is written', () => {
  const refusal = async (input: string, opts: { lambda?: Map<string, ReturnType<typeof parseLambdaMapping>> } = {}) => {
    try {
      await convertKeras({ input, lambdaMappings: opts.lambda, convertedBy: 't' });
    } catch (err) {
      return err as AmMlError;
    }
    throw new Error(`${input} converted, but should have been refused`);
  };

  it('lists every QKeras layer in one error with name, class and suggestion', async () => {
    const err = await refusal(QKERAS);
    expect(err.exitCode).toBe(4);
    expect(err.code).toBe('KERAS_UNSUPPORTED_LAYERS');
    const layers = (err.details?.layers as Array<{ layer: string; className: string }>).map((l) => l.layer);
    expect(layers).toEqual(['fc1', 'relu1', 'fc2', 'relu2', 'fc3', 'relu3', 'output']);
    expect(err.message).toContain('qkeras>QDense: fc1, fc2, fc3, output');
    expect(err.message).toContain('qkeras>QActivation: relu1, relu2, relu3');
    expect(err.message).toMatch(/rebuild the model from standard Keras layers/);
  });

  it('refuses a Lambda it cannot identify, suggesting --map-lambda', async () => {
    const err = await refusal(`${G}/lambda_unknown.keras`);
    expect(err.code).toBe('KERAS_UNSUPPORTED_LAYERS');
    expect(err.message).toContain('Lambda: times_two');
    expect(err.message).toContain('--map-lambda times_two=l2_normalize:axis=-1');
  });

  it('refuses a Lambda that only names its function, and converts it once mapped explicitly', async () => {
    const err = await refusal(`${G}/lambda_named.keras`);
    expect(err.message).toMatch(/named 'normalize'/);
    const conv = await convertKeras({ input: `${G}/lambda_named.keras`, lambdaMappings: new Map([['l2_named', parseLambdaMapping('normalize:axis=-1')]]), convertedBy: 't' });
    expect(conv.lambdas).toEqual([{ layer: 'l2_named', as: 'l2_normalize(axis=-1, maxInverseNorm=10000000)', how: 'mapped with --map-lambda', axis: -1, maxInverseNorm: 1e7 }]);
    const v = await validateConversion(conv, folderOfConversion(conv), { goldens: [readGoldenFile(`${G}/lambda_named.golden.json`)] });
    expect(v.ok).toBe(true);
  });

  it('refuses --map-lambda for a layer that is not a Lambda', async () => {
    const err = await refusal(`${G}/lambda_l2.keras`, { lambda: new Map([['proj', parseLambdaMapping('l2_normalize:axis=-1')]]) });
    expect(err.message).toMatch(/--map-lambda names a layer that is not a Lambda/);
  });

  it('refuses Embedding(mask_zero=True) feeding a pooling layer TF.js would not mask', async () => {
    const err = await refusal(`${G}/masked_pooling.keras`);
    expect(err.message).toContain('Embedding (masked_embedding): mask_zero=True feeds pool (GlobalAveragePooling1D)');
  });
});
