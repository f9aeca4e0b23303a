/**
 * Golden files from the trainer's forward pass (tower-golden.ts) over a real `am-ml train` run: `am-ml validate`
 * accepts the saved towers against them, and refuses towers whose saved graph or weights do not compute what the
 * trainer optimised (an activation changed in model.json, a damaged weight). The training-time probe is recorded
 * from the TF.js graph that is saved, so a graph that was wrong from the start (model.ts disagreeing with tower.ts)
 * passes the probe; only a pass independent of that graph, as here, catches it.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { train } from '../commands/train.js';
import { validate } from '../commands/validate.js';
import { writeTinyDataset } from '../testing/synthetic-data.js';
import { type TmpDir, tmpDir } from '../testing/tmp-dir.js';
import { readDatasetFolder } from './data/dataset.js';
import { buildItemInputs, buildUserInputs, parseFeatureSpec } from './features/index.js';
import { readTfjsFolder } from './keras/tfjs-folder.js';
import { towerFromWeights, towerGolden } from './tower-golden.js';

let dir: TmpDir;
let run: string;

beforeAll(async () => {
  dir = tmpDir();
  writeTinyDataset(dir.join('data'), { items: 300, users: 150 });
  run = dir.join('run');
  await train({ cwd: dir.path, env: {}, dataset: 'data', out: run, dim: 16, hidden: [32], bagDim: 8, batchSize: 128, epochs: 1, backend: 'wasm', threads: 1 });
});
afterAll(() => dir.remove());

function writeGoldens(): { item: string; user: string } {
  const spec = parseFeatureSpec(readFileSync(path.join(run, 'features.json'), 'utf8'));
  const data = readDatasetFolder(dir.join('data'));
  const byId = new Map(data.items.map((i) => [i.item_id, i]));
  const likes = (u: string) => data.interactions.filter((i) => i.userId === u && i.label === 1).map((i) => byId.get(i.itemId)!);
  const users = [...new Set(data.interactions.map((i) => i.userId))].slice(0, 6);
  const inputs = {
    item: buildItemInputs(spec, data.items.slice(0, 20)).inputs.arrays,
    user: buildUserInputs(spec, [...users.map((u) => ({ likes: likes(u), nopes: [] })), { likes: [], nopes: [] }]).inputs.arrays,
  };
  const files = { item: dir.join('item.golden.json'), user: dir.join('user.golden.json') };
  for (const tower of ['item', 'user'] as const) {
    const folder = readTfjsFolder(path.join(run, `${tower}_tower`));
    const golden = towerGolden(spec, tower, { weightsManifest: folder.modelJson.weightsManifest, weightData: folder.weightData }, inputs[tower], 'test');
    writeFileSync(files[tower], JSON.stringify(golden));
  }
  return files;
}

describe('tower goldens from the trainer forward pass', () => {
  it('am-ml validate --golden accepts both towers of a train run (unit-norm outputs, tiny differences)', async () => {
    const files = writeGoldens();
    for (const tower of ['item', 'user'] as const) {
      const golden = JSON.parse(readFileSync(files[tower], 'utf8')) as { outputs: number[][][]; input_order: string[] };
      for (const row of golden.outputs[0]) expect(Math.abs(Math.hypot(...row) - 1)).toBeLessThan(1e-5);
      const { result, exitCode } = await validate({ cwd: dir.path, dir: path.join(run, `${tower}_tower`), golden: [files[tower]] });
      expect(exitCode).toBe(0);
      expect(result.report.golden[0].outputs[0].maxAbsDiff).toBeLessThan(1e-5);
      expect(result.report.tensorLeak.ok).toBe(true);
    }
  });

  it('refuses a tower whose saved graph differs from what was trained (ReLU turned linear in model.json)', async () => {
    const files = writeGoldens();
    const towerDir = path.join(run, 'item_tower');
    const file = path.join(towerDir, 'model.json');
    const original = readFileSync(file, 'utf8');
    try {
      writeFileSync(file, original.replace('"activation":"relu"', '"activation":"linear"'));
      expect(readFileSync(file, 'utf8')).not.toBe(original);
      const { result, exitCode } = await validate({ cwd: dir.path, dir: towerDir, golden: [files.item] });
      expect(exitCode).toBe(4);
      expect(result.report.golden[0].ok).toBe(false);
    } finally {
      writeFileSync(file, original);
    }
  });

  it('refuses a tower with a damaged weight, and decoding refuses shards of the wrong size', async () => {
    const files = writeGoldens();
    const towerDir = path.join(run, 'user_tower');
    const shard = path.join(towerDir, 'group1-shard1of1.bin');
    const original = readFileSync(shard);
    const folder = readTfjsFolder(towerDir);
    const spec = parseFeatureSpec(readFileSync(path.join(run, 'features.json'), 'utf8'));
    // dense_out/bias is the last weight (no ReLU after it can hide the change): damage its first element.
    const { arch } = towerFromWeights(spec, 'user', { weightsManifest: folder.modelJson.weightsManifest, weightData: folder.weightData });
    const biasOffset = original.length - 4 * arch.outputDim;
    try {
      const damaged = Buffer.from(original);
      damaged.writeFloatLE(damaged.readFloatLE(biasOffset) + 0.5, biasOffset);
      writeFileSync(shard, damaged);
      const { exitCode } = await validate({ cwd: dir.path, dir: towerDir, golden: [files.user] });
      expect(exitCode).toBe(4);
    } finally {
      writeFileSync(shard, original);
    }
    const short = { weightsManifest: folder.modelJson.weightsManifest, weightData: folder.weightData.subarray(0, folder.weightData.length - 4) };
    expect(() => towerFromWeights(spec, 'user', short)).toThrow(/shards end before weight dense_out\/bias/);
  });
});
