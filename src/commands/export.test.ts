/**
 * `am-ml export` and `am-ml validate` as commands: the folder they write (model.json, shards, a manifest that
 * `publish` accepts), flags, quantization, towers, and validation failures (exit 4, nothing written).
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { unzipSync, zipSync } from 'fflate';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AmMlError, UsageError, ValidationFailedError } from '../errors.js';
import { MANIFEST_FILE } from '../ml/artifacts.js';
import { readManifest, sha256File, verifyModelFolder } from '../ml/artifacts-fs.js';
import { PARALLEL_HASH_MIN_BYTES } from '../ml/keras/parallel-sha256.js';
import { decodeWeights } from '../ml/keras/tfjs-format.js';
import { recordingReporter } from '../testing/recording-reporter.js';
import { FIXTURES_DIR, type TmpDir, tmpDir } from '../testing/tmp-dir.js';
import { exportModel } from './export.js';
import { validate } from './validate.js';

const K = path.join(FIXTURES_DIR, 'keras');
const G = path.join(K, 'generated');

let tmp: TmpDir;
beforeAll(() => {
  tmp = tmpDir('am-ml-export-cmd-');
});
afterAll(() => tmp.remove());

async function rejects(p: Promise<unknown>): Promise<AmMlError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(AmMlError);
    return err as AmMlError;
  }
  throw new Error('expected a failure');
}

describe('am-ml export', () => {
  it('writes model.json, shards and a manifest that verifies, and proves the result with --validate and --golden', async () => {
    const reporter = recordingReporter();
    const out = tmp.join('user');
    const r = await exportModel({
      input: `${G}/user_tower_768.keras`,
      out,
      validate: true,
      golden: [`${G}/user_tower_768.golden.json`],
      shardSizeBytes: 65536,
      reporter,
      cwd: tmp.path,
    });
    expect(r.outDir).toBe(out);
    expect(r.model).toBe('user_tower');
    expect(r.customLayers).toEqual(['UnitNormalization']);
    expect(r.inputs.map((i) => [i.name, i.dtype])).toEqual([['user_id', 'int32'], ['user_tags', 'float32'], ['user_numeric', 'float32']]);
    expect(r.outputs).toEqual([{ name: 'user_embedding', shape: [null, 768], dtype: 'float32' }]);
    expect(r.validation?.ok).toBe(true);
    expect(r.validation?.report.golden[0].ok).toBe(true);
    expect(r.durationsMs.validate).toBeGreaterThan(0);

    const names = readdirSync(out).sort();
    const shards = names.filter((f) => f.endsWith('.bin'));
    expect(shards.length).toBe(Math.ceil(r.weights.bytes / 65536));
    expect(shards[0]).toBe(`group1-shard1of${shards.length}.bin`);
    expect(names).toContain(MANIFEST_FILE);
    const manifest = readManifest(out);
    expect(manifest.kind).toBe('keras-export');
    expect(manifest.towers.user_tower).toMatchObject({ path: '.', customLayers: ['UnitNormalization'] });
    expect(manifest.embeddingDim).toBe(768);
    expect(manifest.source).toMatchObject({ file: 'user_tower_768.keras', format: 'keras-v3-zip', kerasVersion: '3.15.1', sha256: await sha256File(`${G}/user_tower_768.keras`) });
    expect(await verifyModelFolder(out, manifest)).toEqual([]);

    // Shards are the weights in manifest order, no padding, cut at the shard size; a weight may straddle shards.
    const modelJson = JSON.parse(readFileSync(path.join(out, 'model.json'), 'utf8'));
    expect(modelJson.weightsManifest[0].paths).toEqual(shards);
    const bytes = Buffer.concat(shards.map((s) => readFileSync(path.join(out, s))));
    expect(shards.slice(0, -1).every((s) => readFileSync(path.join(out, s)).length === 65536)).toBe(true);
    const decoded = decodeWeights(modelJson.weightsManifest[0].weights, new Uint8Array(bytes));
    expect([...decoded.keys()]).toContain('user_projection/kernel');
    expect(reporter.events.some((e) => e.kind === 'phase' && /Writing the model folder/.test(e.text))).toBe(true);
  });

  it('exports a large archive (shared memory, hashed on the worker) to the same bytes as the small one, with true sha256s', async () => {
    // The same model padded past PARALLEL_HASH_MIN_BYTES with an asset: read into shared memory, model.weights.h5
    // a view of the archive, the source and the shards hashed on the worker thread and this one.
    const files = unzipSync(new Uint8Array(readFileSync(`${G}/full_model_768.keras`)));
    files['assets/padding.bin'] = new Uint8Array(PARALLEL_HASH_MIN_BYTES + 12345).map((_, i) => (i * 31) & 0xff);
    const big = tmp.join('padded_full_model.keras');
    writeFileSync(big, zipSync(files, { level: 0 }));
    const small = await exportModel({ input: `${G}/full_model_768.keras`, tower: 'user_tower', out: tmp.join('tower-small'), shardSizeBytes: 65536, cwd: tmp.path });
    const large = await exportModel({ input: big, tower: 'user_tower', out: tmp.join('tower-large'), shardSizeBytes: 65536, cwd: tmp.path });
    expect(large.source.files[0].sha256).toBe(await sha256File(big));
    const manifest = readManifest(tmp.join('tower-large'));
    expect(await verifyModelFolder(tmp.join('tower-large'), manifest)).toEqual([]);
    const shards = small.files.filter((f) => f.path.endsWith('.bin'));
    expect(shards.length).toBeGreaterThan(2);
    for (const f of shards) expect(readFileSync(path.join(tmp.join('tower-large'), f.path)).equals(readFileSync(path.join(tmp.join('tower-small'), f.path)))).toBe(true);
  });

  it('says which towers a two-tower model has, lists them, and extracts one', async () => {
    const reporter = recordingReporter();
    const full = await exportModel({ input: `${G}/full_model_768.h5`, out: tmp.join('full'), reporter, cwd: tmp.path });
    expect(full.towers.map((t) => t.name)).toEqual(['user_tower', 'item_tower']);
    expect(reporter.lines('info').join('\n')).toMatch(/two-tower model; towers: user_tower .*item_tower.*--tower <name>/s);

    const list = await exportModel({ input: `${G}/full_model_768.keras`, listTowers: true, cwd: tmp.path });
    expect(list.outDir).toBeNull();
    expect(list.towers).toEqual([
      { name: 'user_tower', kind: 'nested-model', inputs: ['user_id', 'user_tags', 'user_numeric'], output: 'user_tower' },
      { name: 'item_tower', kind: 'nested-model', inputs: ['item_maker', 'item_tags', 'item_performers'], output: 'item_tower' },
    ]);

    const item = await exportModel({ input: `${G}/full_model_768.keras`, tower: 'item_tower', out: tmp.join('item'), validate: true, golden: [`${G}/item_tower_768.golden.json`], cwd: tmp.path });
    expect(item.model).toBe('item_tower');
    expect(item.weights).toMatchObject({ count: 7, sourceCount: 16 });
    expect(readManifest(tmp.join('item')).towers.item_tower).toBeDefined();
    expect(item.validation?.ok).toBe(true);

    const err = await rejects(exportModel({ input: `${G}/full_model_768.keras`, tower: 'nope', out: tmp.join('nope'), cwd: tmp.path }));
    expect(err.code).toBe('KERAS_TOWER_UNKNOWN');
    expect(err.hint).toMatch(/user_tower, item_tower/);
    expect(existsSync(tmp.join('nope'))).toBe(false);
  });

  it('extracts a branch tower of a flat two-tower model (the public slfcc model) and matches the stand-alone model', async () => {
    const list = await exportModel({ input: `${K}/joehigton__slfcc__two_tower_model.keras`, listTowers: true, cwd: tmp.path });
    expect(list.towers.map((t) => [t.name, t.kind])).toEqual([['item_representation', 'branch'], ['perspective_score_b_z', 'branch']]);
    // The user branch of the two-tower model is the published bz_extractor model: Keras' outputs of that file agree.
    const r = await exportModel({
      input: `${K}/joehigton__slfcc__two_tower_model.keras`,
      tower: 'perspective_score_b_z',
      out: tmp.join('branch'),
      validate: true,
      golden: [`${G}/joehigton__slfcc__bz_extractor.keras.golden.json`],
      cwd: tmp.path,
    });
    expect(r.inputs.map((i) => i.name)).toEqual(['input_gender', 'input_race', 'input_educ', 'input_income', 'input_party']);
    expect(r.weights).toMatchObject({ count: 9, sourceCount: 11 });
    expect(r.validation?.report.golden[0].ok).toBe(true);
  });

  it('quantizes to float16 and uint8 and reports the accuracy change', async () => {
    for (const [dtype, ratio] of [['float16', 2], ['uint8', 4]] as const) {
      const r = await exportModel({ input: `${G}/user_tower_768.h5`, out: tmp.join(`q-${dtype}`), quantize: dtype, validate: true, cwd: tmp.path });
      expect(r.quantization!.bytesBefore / r.quantization!.bytesAfter).toBeCloseTo(ratio, 5);
      expect(r.quantization!.weightMaxAbsError).toBeGreaterThan(0);
      // Reported without TF.js too: the reference pass with dequantized vs float32 weights.
      const acc = r.quantization!.accuracy[0];
      expect(acc.name).toBe('user_embedding');
      expect(acc.maxAbsDiff).toBeGreaterThan(0);
      expect(acc.minCosine).toBeGreaterThan(dtype === 'float16' ? 0.9999 : 0.99);
      const ref = r.validation!.report.reference!;
      expect(ref.quantized).toBe(dtype);
      expect(ref.outputs[0].maxAbsDiff).toBeGreaterThan(0);
      expect(ref.outputs[0].minCosine).toBeGreaterThan(dtype === 'float16' ? 0.9999 : 0.99);
      // The float32 conversion is still proven strictly before the quantized one is measured.
      expect(r.validation!.float32?.ok).toBe(true);
      const modelJson = JSON.parse(readFileSync(tmp.join(`q-${dtype}`, 'model.json'), 'utf8'));
      expect(modelJson.weightsManifest[0].weights[0].quantization.dtype).toBe(dtype);
    }
  });

  it('writes a folder that am-ml publish takes as it is', async () => {
    const out = tmp.join('to-publish');
    await exportModel({ input: `${G}/item_tower_768.h5`, out, cwd: tmp.path });
    const { publish } = await import('./publish.js');
    const r = await publish({ modelDir: out, name: 'item_tower', store: `file://${tmp.join('store')}`, reload: false, cwd: tmp.path, env: {} });
    expect(r).toMatchObject({ name: 'item_tower', activated: true, files: 2 });
  });

  it('writes nothing with --dry-run, refuses an existing folder without --force, and replaces it with --force', async () => {
    const dry = await exportModel({ input: `${G}/nested_sequential.keras`, out: tmp.join('dry'), dryRun: true, validate: true, cwd: tmp.path });
    expect(dry.outDir).toBeNull();
    expect(dry.validation?.ok).toBe(true);
    expect(existsSync(tmp.join('dry'))).toBe(false);

    const busy = tmp.join('busy');
    mkdirSync(busy);
    writeFileSync(path.join(busy, 'keep.txt'), 'x');
    const err = await rejects(exportModel({ input: `${G}/nested_sequential.keras`, out: busy, cwd: tmp.path }));
    expect(err).toBeInstanceOf(UsageError);
    expect(err.message).toMatch(/already exists and is not empty/);
    // --force replaces model folders only: this one holds someone's file, not a model.
    expect((await rejects(exportModel({ input: `${G}/nested_sequential.keras`, out: busy, force: true, cwd: tmp.path }))).message).toMatch(/not a model folder/);
    writeFileSync(path.join(busy, 'model.json'), '{}');
    const real = await exportModel({ input: `${G}/nested_sequential.keras`, out: busy, force: true, cwd: tmp.path });
    expect(readdirSync(busy).sort()).toEqual(['group1-shard1of1.bin', 'manifest.json', 'model.json']);
    // --dry-run announces the files and sizes a real export writes.
    const sizes = (r: typeof real) => r.files.map((f) => [f.path, f.size]).sort();
    expect(sizes(dry)).toEqual(sizes(real));
    expect((await rejects(exportModel({ input: `${G}/nested_sequential.keras`, out: '.', force: true, cwd: tmp.path }))).message).toMatch(/working directory/);
    expect((await rejects(exportModel({ input: `${G}/nested_sequential.keras`, out: G, force: true, cwd: tmp.path }))).message).toMatch(/holds the input/);
    expect(readdirSync(tmp.path).filter((f) => f.startsWith('.busy'))).toEqual([]);
  });

  it('stops on an interrupt and leaves nothing behind', async () => {
    const ac = new AbortController();
    ac.abort();
    const out = tmp.join('interrupted');
    const err = await rejects(exportModel({ input: `${G}/full_model_768.keras`, out, signal: ac.signal, cwd: tmp.path }));
    expect(err.exitCode).toBe(130);
    expect(err.message).toMatch(/Nothing was written/);
    expect(existsSync(out)).toBe(false);
    expect(readdirSync(tmp.path).filter((f) => f.startsWith('.interrupted'))).toEqual([]);
  });

  it('checks flags before doing any work', async () => {
    expect((await rejects(exportModel({ cwd: tmp.path }))).exitCode).toBe(2);
    expect((await rejects(exportModel({ input: `${G}/lambda_l2.keras`, cwd: tmp.path }))).message).toMatch(/--out <dir> is required/);
    expect((await rejects(exportModel({ input: `${G}/lambda_l2.keras`, out: tmp.join('g'), golden: ['x.json'], cwd: tmp.path }))).message).toMatch(/--golden needs --validate/);
    expect((await rejects(exportModel({ input: `${G}/lambda_l2.keras`, out: tmp.join('g'), mapLambda: ['l2'], cwd: tmp.path }))).message).toMatch(/--map-lambda l2: expected/);
    expect((await rejects(exportModel({ input: `${G}/lambda_l2.keras`, listTowers: true, tower: 'x', cwd: tmp.path }))).exitCode).toBe(2);
  });

  it('fails with exit 4 and writes nothing when the golden outputs disagree', async () => {
    const golden = JSON.parse(readFileSync(`${G}/nested_sequential.golden.json`, 'utf8'));
    golden.outputs[0][3][1] += 0.01;
    const bad = tmp.join('bad-golden.json');
    writeFileSync(bad, JSON.stringify(golden));
    const out = tmp.join('rejected');
    const err = await rejects(exportModel({ input: `${G}/nested_sequential.h5`, out, validate: true, golden: [bad], cwd: tmp.path }));
    expect(err).toBeInstanceOf(ValidationFailedError);
    expect(err.exitCode).toBe(4);
    expect(err.message).toMatch(/golden .*outer_b: max abs diff 1\.0\d*e-2 first at \[3, 1\]/);
    expect(existsSync(out)).toBe(false);
  });
});

describe('am-ml validate', () => {
  let folder: string;
  beforeAll(async () => {
    folder = tmp.join('to-validate');
    await exportModel({ input: `${G}/full_model_768.keras`, out: folder, cwd: tmp.path });
  });

  it('proves an exported folder equal to its source (exit 0), against the .h5 save of the same model too', async () => {
    for (const against of [`${G}/full_model_768.keras`, `${G}/full_model_768.h5`]) {
      const { result, exitCode } = await validate({ dir: folder, against, golden: [`${G}/full_model_768.golden.json`], cwd: tmp.path });
      expect(exitCode).toBe(0);
      expect(result.topologyMatches).toBe(true);
      expect(result.report.reference!.layersCompared).toBe(19); // 3 top-level + 8 user tower + 5 item tower + 3 in item_mlp
      expect(result.report.tensorLeak).toMatchObject({ ok: true });
      expect(result.report.reference!.inputs.find((i) => i.name === 'user_id')).toMatchObject({ dtype: 'int32', idRange: 500 });
    }
  });

  it('reports the first failing layer, inside the nested tower, with exit 4', async () => {
    const broken = tmp.join('broken');
    await exportModel({ input: `${G}/full_model_768.keras`, out: broken, cwd: tmp.path });
    const modelJsonPath = path.join(broken, 'model.json');
    const text = readFileSync(modelJsonPath, 'utf8');
    // Change one activation deep inside the user tower: weights stay identical, numbers do not.
    const tampered = text.replace(/("name": ?"user_hidden"[^}]*?"activation": ?)"relu"/, '$1"linear"');
    expect(tampered).not.toBe(text);
    writeFileSync(modelJsonPath, tampered);
    const { result, exitCode } = await validate({ dir: broken, against: `${G}/full_model_768.keras`, cwd: tmp.path });
    expect(exitCode).toBe(4);
    expect(result.ok).toBe(false);
    expect(result.topologyMatches).toBe(false);
    expect(result.report.reference!.firstFailingLayer).toMatchObject({ layer: 'user_tower/user_hidden', node: 0 });
    expect(result.report.reference!.outputs[0].pass).toBe(false);
  });

  it('refuses shards that differ from the source weights (exit 4)', async () => {
    const broken = tmp.join('broken-shard');
    await exportModel({ input: `${G}/nested_sequential.keras`, out: broken, cwd: tmp.path });
    const shard = path.join(broken, 'group1-shard1of1.bin');
    const bytes = readFileSync(shard);
    bytes[100] ^= 0x40;
    writeFileSync(shard, bytes);
    const err = await rejects(validate({ dir: broken, against: `${G}/nested_sequential.keras`, cwd: tmp.path }));
    expect(err.exitCode).toBe(4);
    expect(err.message).toMatch(/in the shards but .* in layers\//);
  });

  it('re-applies the --map-lambda of the export when validating against the source', async () => {
    const out = tmp.join('mapped');
    await exportModel({ input: `${G}/lambda_named.keras`, mapLambda: ['l2_named=normalize:axis=-1'], out, cwd: tmp.path });
    const { exitCode, result } = await validate({ dir: out, against: `${G}/lambda_named.keras`, golden: [`${G}/lambda_named.golden.json`], cwd: tmp.path });
    expect(exitCode).toBe(0);
    expect(result.report.golden[0].ok).toBe(true);
  });

  it('checks golden files alone', async () => {
    const ok = await validate({ dir: folder, golden: [`${G}/full_model_768.golden.json`], cwd: tmp.path });
    expect(ok.exitCode).toBe(0);
    expect(ok.result.report.reference).toBeUndefined();
    const err = await rejects(validate({ dir: folder, golden: [`${G}/user_tower_768.golden.json`], cwd: tmp.path }));
    expect(err.message).toMatch(/has no input named item_maker/);
    expect((await rejects(validate({ dir: folder, cwd: tmp.path }))).exitCode).toBe(2);
    expect((await rejects(validate({ dir: tmp.join('missing'), against: `${G}/full_model_768.keras`, cwd: tmp.path }))).message).toMatch(/has no model\.json/);
  });
});
