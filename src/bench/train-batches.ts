/**
 * The training benchmark's fixed workload, shared by `src/bench/train.ts` and the Keras reference
 * (`scripts/keras-reference/`): a seeded synthetic catalog and interaction log at a realistic size, the default
 * model (dim 128, one hidden layer of 256, bags of 32), batches of 1024 positives where every row has an explicit
 * negative, and seeded initial weights.
 *
 *   node dist/bench/train-batches.js <dir> [batches]
 * writes `meta.json`, one raw little-endian file per input (all batches concatenated), the softmax side data
 * (logQ, item/user keys) and the initial weights, so Keras trains the same model from the same start on the same
 * batches. Only the comparison script needs Python; am-ml and its benchmarks never do.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BatchBuilder } from '../ml/batches.js';
import { concatBytes } from '../ml/bytes.js';
import { DEFAULT_FEATURE_CONFIG } from '../ml/features/index.js';
import { towerArch } from '../ml/model.js';
import { type Prepared, prepare } from '../ml/prepare.js';
import { rngFor } from '../ml/rng.js';
import { splitInteractions } from '../ml/split.js';
import { generateCatalog, generateInteractions } from '../ml/synthetic.js';
import { initTowerParams, type TowerArch, type TowerParams } from '../ml/tower.js';
import { DEFAULT_TRAIN_CONFIG } from '../ml/train.js';

export const BENCH_ITEMS = 20_000;
export const BENCH_USERS = 5_000;
export const BENCH_BATCH = DEFAULT_TRAIN_CONFIG.batchSize;
export const BENCH_SEED = 2026;

export interface BenchWorkload {
  prepared: Prepared;
  archs: { user: TowerArch; item: TowerArch };
  initial: { user: TowerParams; item: TowerParams };
  /** Example order (a seeded shuffle) and the hard-negative stream, as the training loop would use them. */
  order: Int32Array;
  batchSize: number;
}

/** The default model on a seeded 20,000-item / 5,000-user catalog (about 150,000 interactions). */
export function benchWorkload(): BenchWorkload {
  const items = generateCatalog({ seed: BENCH_SEED, items: BENCH_ITEMS });
  const { interactions } = generateInteractions(items, { seed: BENCH_SEED, users: BENCH_USERS, likesPerUser: [10, 40] });
  const data = { source: 'bench', items, interactions, summary: {}, badRows: [], notes: [] };
  const split = splitInteractions(interactions, { valFraction: 0.1, testFraction: 0.1, seed: BENCH_SEED });
  const prepared = prepare(data, split, DEFAULT_FEATURE_CONFIG);
  const cfg = { hidden: DEFAULT_TRAIN_CONFIG.hidden, dim: DEFAULT_TRAIN_CONFIG.dim };
  const archs = { user: towerArch(prepared.spec, 'user', cfg), item: towerArch(prepared.spec, 'item', cfg) };
  const initial = { user: initTowerParams(archs.user, rngFor(BENCH_SEED, 'init:user')), item: initTowerParams(archs.item, rngFor(BENCH_SEED, 'init:item')) };
  // Examples of users with an explicit negative in training, so every batch row has one (static shapes for Keras).
  const withNope = [...prepared.examples.user.keys()].filter((e) => prepared.train.nopes[prepared.examples.user[e]].length > 0);
  const order = rngFor(BENCH_SEED, 'epoch:1').shuffle(Int32Array.from(withNope)) as Int32Array;
  return { prepared, archs, initial, order, batchSize: BENCH_BATCH };
}

/** Fill `builder` with batch `k` of the workload (deterministic). */
export function buildBenchBatch(w: BenchWorkload, builder: BatchBuilder, k: number): void {
  const n = w.order.length;
  const per = Math.floor(n / w.batchSize);
  const start = (k % per) * w.batchSize;
  builder.build(w.order, start, start + w.batchSize, rngFor(BENCH_SEED, `hard:${k}`));
}

function writeRaw(file: string, parts: (Float32Array | Int32Array)[]): void {
  writeFileSync(file, concatBytes(parts));
}

/** Write `batches` batches, the initial weights and meta.json for the Keras reference. */
export function exportBenchBatches(dir: string, batches: number): void {
  const w = benchWorkload();
  mkdirSync(dir, { recursive: true });
  const b = w.batchSize;
  const builder = new BatchBuilder(w.prepared, b, true);
  const towers = { user: [] as (Float32Array | Int32Array)[][], item: [] as (Float32Array | Int32Array)[][] };
  const side = { logq: [] as Float32Array[], item_key: [] as Int32Array[], user_key: [] as Int32Array[] };
  for (let k = 0; k < batches; k++) {
    buildBenchBatch(w, builder, k);
    if (builder.hardCount !== b) throw new Error(`bench batch ${k} has ${builder.hardCount} explicit negatives, expected ${b}`);
    const u = builder.user.toInputs(b).arrays;
    const it = builder.item.toInputs(2 * b).arrays;
    u.forEach((a, i) => (towers.user[i] ??= []).push(a.data.slice()));
    it.forEach((a, i) => (towers.item[i] ??= []).push(a.data.slice()));
    side.logq.push(builder.logQ.slice(0, b));
    side.item_key.push(builder.itemKey.slice(0, b));
    side.user_key.push(builder.userKey.slice(0, b));
  }
  const inputsMeta = (tower: 'user' | 'item', rows: number) =>
    builder[tower].toInputs(rows).arrays.map((a, i) => {
      const file = `${tower}__${a.name}.bin`;
      writeRaw(path.join(dir, file), towers[tower][i]);
      return { name: a.name, dtype: a.dtype, width: a.shape[1], file };
    });
  const weightsMeta = (tower: 'user' | 'item') => {
    const p = w.initial[tower];
    const arch = w.archs[tower];
    const files = {
      tables: arch.bags.map((bag, i) => {
        const file = `${tower}__init__${bag.name}_bag.bin`;
        writeRaw(path.join(dir, file), [p.tables[i]]);
        return { name: bag.name, vocabularySize: bag.vocabularySize, embeddingDim: bag.embeddingDim, file };
      }),
      dense: p.kernels.map((k, i) => {
        const file = `${tower}__init__dense${i}.bin`;
        writeRaw(path.join(dir, file), [k, p.biases[i]]);
        return { file, units: p.biases[i].length };
      }),
    };
    return { numericWidth: arch.numericWidth, ...files };
  };
  const meta = {
    batches,
    batchSize: b,
    temperature: DEFAULT_TRAIN_CONFIG.temperature,
    learningRate: DEFAULT_TRAIN_CONFIG.learningRate,
    hidden: DEFAULT_TRAIN_CONFIG.hidden,
    dim: DEFAULT_TRAIN_CONFIG.dim,
    user: { inputs: inputsMeta('user', b), ...weightsMeta('user') },
    item: { inputs: inputsMeta('item', 2 * b), ...weightsMeta('item') },
    side: Object.fromEntries(
      Object.entries(side).map(([k, parts]) => {
        const file = `side__${k}.bin`;
        writeRaw(path.join(dir, file), parts);
        return [k, { file, dtype: k === 'logq' ? 'float32' : 'int32' }];
      }),
    ),
  };
  writeFileSync(path.join(dir, 'meta.json'), `${JSON.stringify(meta, null, 2)}\n`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const dir = process.argv[2];
  if (!dir) {
    process.stderr.write('usage: node dist/bench/train-batches.js <dir> [batches]\n');
    process.exitCode = 2;
  } else {
    exportBenchBatches(dir, Number(process.argv[3] ?? 12));
    process.stderr.write(`wrote the training benchmark batches to ${dir}\n`);
  }
}
