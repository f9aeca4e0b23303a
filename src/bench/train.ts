/**
 * Training throughput (issue 4): examples/s and GFLOP/s of the default model's training step on each available
 * TF.js backend, with the towers in one thread and in two worker threads, next to the plain TF.js way (autodiff +
 * tf.train.adam, `train-baseline.ts`) on the same batches. Also item-tower inference through the saved-form layers
 * model. The Keras side of the comparison is `scripts/keras-reference/` (Python; run by hand, numbers in the goal).
 */
import { BatchBuilder } from '../ml/batches.js';
import { type AdamConfig, DEFAULT_ADAM } from '../ml/kernels/adam.js';
import { matMulFor } from '../ml/kernels/matmul.js';
import { buildTowerModel, predictTower } from '../ml/model.js';
import { cloneParams } from '../ml/tower.js';
import { LocalTowerRunner, type TowerRunner, towerWorkerPath, WorkerTowerRunner } from '../ml/tower-runner.js';
import { DEFAULT_TRAIN_CONFIG, TwoTowerStep } from '../ml/train.js';
import { TowerBuffers, writeItemRow } from '../ml/features/index.js';
import { initTf, tf, type TfBackendName } from '../ml/tf.js';
import { BaselineTrainer } from './train-baseline.js';
import { type BenchWorkload, benchWorkload, buildBenchBatch } from './train-batches.js';
import type { Benchmark, BenchContext } from './types.js';

/**
 * Python Keras on the same batches and the same 2-core machine (scripts/keras-reference: tensorflow-cpu 2.21,
 * Keras 3.15, tf.function graph mode, 2 intra-op threads, AVX-512), measured on 2026-11-22 in runs interleaved
 * with am-ml's benchmark: with Keras's default sparse embedding gradients 11,645–13,631 examples/s (median of 8:
 * 12,715); with `--dense-grads` (whole-table Adam updates, which AVX-512 makes cheap at these table sizes; its
 * losses equal am-ml's) 15,699–17,954 (median of 6: 17,517). The goal is the faster of the two. (An earlier
 * measurement on a busier machine gave 9,000; both sides run faster now.)
 */
export const KERAS_REFERENCE_EXAMPLES_PER_SEC = 17517;
export const KERAS_SPARSE_GRADS_EXAMPLES_PER_SEC = 12715;

let workload: BenchWorkload | undefined;
const getWorkload = () => (workload ??= benchWorkload());

const adam: AdamConfig = { ...DEFAULT_ADAM, learningRate: DEFAULT_TRAIN_CONFIG.learningRate };

async function measureAmMl(backend: TfBackendName, threads: number, steps: number, ctx: BenchContext) {
  const w = getWorkload();
  const mm = matMulFor(tf, backend);
  const params = { user: cloneParams(w.initial.user), item: cloneParams(w.initial.item) };
  const script = towerWorkerPath();
  let user: TowerRunner;
  let item: TowerRunner;
  if (threads === 2) {
    if (!script) throw new Error('the tower worker is not built (run npm run build)');
    [user, item] = await Promise.all([
      WorkerTowerRunner.start('user', w.archs.user, params.user, backend, script),
      WorkerTowerRunner.start('item', w.archs.item, params.item, backend, script),
    ]);
  } else {
    user = new LocalTowerRunner('user', w.archs.user, params.user, mm);
    item = new LocalTowerRunner('item', w.archs.item, params.item, mm);
  }
  try {
    const stepper = new TwoTowerStep(user, item, mm, { temperature: DEFAULT_TRAIN_CONFIG.temperature, logQCorrection: true, adam });
    const builder = new BatchBuilder(w.prepared, w.batchSize, true);
    const warmup = 2;
    const losses: number[] = [];
    let flops = 0;
    let t0 = 0;
    buildBenchBatch(w, builder, 0);
    for (let k = 0; k < warmup + steps; k++) {
      if (k === warmup) t0 = performance.now();
      const rows = builder.rows;
      const hard = builder.hardCount;
      losses.push(await stepper.run(builder, () => buildBenchBatch(w, builder, k + 1)));
      if (k >= warmup) flops += TwoTowerStep.flops(w.archs.user, w.archs.item, rows, hard);
    }
    const seconds = (performance.now() - t0) / 1000;
    ctx.log(`  am-ml ${backend} × ${threads}: ${((w.batchSize * steps) / seconds).toFixed(0)} ex/s; first losses ${losses.slice(0, 3).map((l) => l.toFixed(4)).join(', ')}`);
    return { examplesPerSec: (w.batchSize * steps) / seconds, gflopsPerSec: flops / 1e9 / seconds, firstLoss: losses[0] };
  } finally {
    await user.close();
    await item.close();
  }
}

function measureBaseline(backend: TfBackendName, steps: number, ctx: BenchContext) {
  const w = getWorkload();
  const trainer = new BaselineTrainer(w.archs, { user: cloneParams(w.initial.user), item: cloneParams(w.initial.item) }, DEFAULT_TRAIN_CONFIG.temperature, adam.learningRate);
  const builder = new BatchBuilder(w.prepared, w.batchSize, true);
  try {
    const losses: number[] = [];
    buildBenchBatch(w, builder, 0);
    losses.push(trainer.step(builder)); // warm-up (kernel compilation, allocation)
    const t0 = performance.now();
    for (let k = 1; k <= steps; k++) {
      buildBenchBatch(w, builder, k);
      losses.push(trainer.step(builder));
    }
    const seconds = (performance.now() - t0) / 1000;
    ctx.log(`  TF.js autodiff ${backend}: ${((w.batchSize * steps) / seconds).toFixed(0)} ex/s; first losses ${losses.slice(0, 3).map((l) => l.toFixed(4)).join(", ")}`);
    return { examplesPerSec: (w.batchSize * steps) / seconds, firstLoss: losses[0] };
  } finally {
    trainer.dispose();
  }
}

function measureInference(backend: TfBackendName) {
  const w = getWorkload();
  const p = w.prepared;
  const model = buildTowerModel(p.spec, 'item', w.archs.item, w.initial.item);
  try {
    const batch = 4096;
    const buf = new TowerBuffers(p.spec, 'item', batch);
    for (let r = 0; r < batch; r++) writeItemRow(buf, r, p.encoded[r % p.encoded.length]);
    const arrays = buf.toInputs(batch).arrays;
    predictTower(model, arrays);
    const reps = backend === 'cpu' ? 1 : 4;
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) predictTower(model, arrays);
    return (batch * reps) / ((performance.now() - t0) / 1000);
  } finally {
    model.dispose();
  }
}

function backendBenchmark(backend: 'wasm' | 'cpu', steps: number, baselineSteps: number): Benchmark {
  return {
    name: `train.step-${backend}`,
    issue: 4,
    description: `Training step of the default two-tower model (dim 128, hidden 256, bags of 32; batch 1024 with one explicit negative per row; 20,000 items) on the ${backend} backend: am-ml's step with the towers in 1 and 2 threads, and the plain TF.js way (autodiff + tf.train.adam) on the same batches; item-tower inference at batch 4096.`,
    repeats: 3,
    units: {
      examplesPerSec2Threads: 'examples/s',
      examplesPerSec1Thread: 'examples/s',
      gflopsPerSec2Threads: 'GFLOP/s',
      gflopsPerSec1Thread: 'GFLOP/s',
      tfjsAutodiffExamplesPerSec: 'examples/s',
      speedupVsTfjsAutodiff: '×',
      vsKerasReference: '×',
      vsKerasSparseGrads: '×',
      itemInferencePerSec: 'items/s',
    },
    goals:
      backend === 'wasm'
        ? [
            {
              metric: 'vsKerasReference',
              op: '>=',
              value: 1,
              description: `match or beat Python Keras (tensorflow-cpu 2.21) training the same model on the same batches on this machine: ${KERAS_REFERENCE_EXAMPLES_PER_SEC} examples/s with dense embedding gradients, its faster setting (${KERAS_SPARSE_GRADS_EXAMPLES_PER_SEC} with its default sparse ones: vsKerasSparseGrads), measured with scripts/keras-reference`,
            },
          ]
        : [],
    async run(ctx) {
      const info = await initTf(backend);
      const one = await measureAmMl(info.backend, 1, steps, ctx);
      const two = await measureAmMl(info.backend, 2, steps, ctx);
      const base = measureBaseline(info.backend, baselineSteps, ctx);
      const best = Math.max(one.examplesPerSec, two.examplesPerSec);
      return {
        examplesPerSec2Threads: two.examplesPerSec,
        examplesPerSec1Thread: one.examplesPerSec,
        gflopsPerSec2Threads: two.gflopsPerSec,
        gflopsPerSec1Thread: one.gflopsPerSec,
        tfjsAutodiffExamplesPerSec: base.examplesPerSec,
        speedupVsTfjsAutodiff: best / base.examplesPerSec,
        vsKerasReference: best / KERAS_REFERENCE_EXAMPLES_PER_SEC,
        vsKerasSparseGrads: best / KERAS_SPARSE_GRADS_EXAMPLES_PER_SEC,
        itemInferencePerSec: measureInference(info.backend),
      };
    },
  };
}

export const benchmarks: Benchmark[] = [backendBenchmark('wasm', 12, 3), backendBenchmark('cpu', 3, 1)];
