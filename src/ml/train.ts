/**
 * The training loop of `am-ml train`: split, freeze features, train both towers with in-batch sampled softmax
 * (temperature, log-Q correction, explicit negatives as hard negatives) and Adam, validate on full-catalog recall
 * after each epoch with early stopping, and evaluate the best epoch's towers, as TF.js layers models, on the test
 * split next to a popularity baseline.
 *
 * Deterministic for a given seed and backend: every random draw comes from seeded streams (`rng.ts`), batches are
 * built in a fixed order, and no step depends on timing. The core never prints: progress goes to `onProgress`.
 */
import { InterruptedError, ValidationFailedError } from '../errors.js';
import { BatchBuilder } from './batches.js';
import type { TrainingData } from './data/types.js';
import { evaluateEmbeddings, evaluatePopularity, type RankingMetrics } from './evaluate.js';
import { DEFAULT_FEATURE_CONFIG, type FeatureConfig, type FeatureSpec, type FeatureStats } from './features/index.js';
import { DEFAULT_ADAM } from './kernels/adam.js';
import { type MatMul, matMulFor } from './kernels/matmul.js';
import { buildTowerModel, towerArch } from './model.js';
import { appendHistories, historiesOf, type Prepared, prepare } from './prepare.js';
import { rngFor } from './rng.js';
import { splitInteractions } from './split.js';
import { TwoTowerStep } from './step.js';
import type { Tf, tf } from './tf.js';
import { cloneParams, initTowerParams, type TowerArch, type TowerParams } from './tower.js';
import { LocalTowerRunner, type TowerRunner, towerWorkerPath, WorkerTowerRunner } from './tower-runner.js';
import { EVAL_CHUNK, type EvalInput, embedForEval, embedWithModels, evalInput } from './train-eval.js';

export { TwoTowerStep } from './step.js';

export interface TrainConfig {
  /** Output embedding dimension. @default 128 */
  dim: number;
  /** Hidden layer widths of both towers. @default [256] */
  hidden: number[];
  /** @default 20 */
  epochs: number;
  /** Positives per batch (the in-batch softmax sees batchSize − 1 sampled negatives per row). @default 1024 */
  batchSize: number;
  /** Adam learning rate. @default 0.003 */
  learningRate: number;
  /** Softmax temperature over cosine scores. @default 0.05 */
  temperature: number;
  /** @default 42 */
  seed: number;
  /** Share of each user's positives held out for validation. @default 0.1 */
  valFraction: number;
  /** Share held out for the final test metrics (0: report validation). @default 0.1 */
  testFraction: number;
  /** Epochs without improvement of the early-stopping metric before stopping. @default 3 */
  patience: number;
  /** Metric early stopping maximises. @default 'recall@100' */
  earlyStopMetric: string;
  /** Validation users per epoch (a seeded sample; the test split uses up to `maxTestUsers`). @default 2000 */
  valUsers: number;
  /** @default 20000 */
  maxTestUsers: number;
  /** Use explicit negatives as hard negatives. @default true */
  hardNegatives: boolean;
  /** Subtract log(B·q) from in-batch logits. @default true */
  logQCorrection: boolean;
  features: FeatureConfig;
}

export const DEFAULT_TRAIN_CONFIG: TrainConfig = {
  dim: 128,
  hidden: [256],
  epochs: 20,
  batchSize: 1024,
  learningRate: 0.003,
  temperature: 0.05,
  seed: 42,
  valFraction: 0.1,
  testFraction: 0.1,
  patience: 3,
  earlyStopMetric: 'recall@100',
  valUsers: 2000,
  maxTestUsers: 20000,
  hardNegatives: true,
  logQCorrection: true,
  features: DEFAULT_FEATURE_CONFIG,
};

export type TrainEvent =
  | {
      kind: 'prepared';
      items: number;
      users: number;
      trainExamples: number;
      valUsers: number;
      testUsers: number;
      timeOrdered: boolean;
      vocabularies: Record<string, number>;
    }
  | { kind: 'epoch-start'; epoch: number; epochs: number; batches: number }
  | { kind: 'batch'; epoch: number; batch: number; batches: number; loss: number; examplesPerSec: number; etaSeconds: number }
  | {
      kind: 'epoch-end';
      epoch: number;
      epochs: number;
      loss: number;
      examplesPerSec: number;
      seconds: number;
      val: RankingMetrics;
      improved: boolean;
      bestEpoch: number;
    }
  | { kind: 'early-stop'; epoch: number; bestEpoch: number; metric: string; best: number }
  | { kind: 'evaluate'; split: 'test' | 'validation'; users: number };

export interface TrainDeps {
  tf: Tf;
  /** Active backend name (`wasm`, `cpu`, `tensorflow`): picks the matmul path. */
  backend: string;
  onProgress?: (e: TrainEvent) => void;
  signal?: AbortSignal;
  /** Clock for throughput numbers (never affects results). @default performance.now */
  now?: () => number;
  /** 2: run each tower in its own worker thread (two cores); 1: everything in this thread. Same results. @default 1 */
  threads?: number;
}

export interface EpochRecord {
  epoch: number;
  loss: number;
  examplesPerSec: number;
  seconds: number;
  val: RankingMetrics;
}

export interface TrainResult {
  spec: FeatureSpec;
  archs: { user: TowerArch; item: TowerArch };
  /** Parameters of the best epoch. */
  params: { user: TowerParams; item: TowerParams };
  /** Models with the best parameters (the caller saves and disposes them). */
  models: { user: tf.LayersModel; item: tf.LayersModel };
  /** Final metrics of the model and of the popularity baseline, on `evaluatedOn`. */
  metrics: { model: RankingMetrics; popularity: RankingMetrics; evaluatedOn: 'test' | 'validation' };
  /** Validation metrics of the best epoch and its popularity baseline. */
  validation: { model: RankingMetrics; popularity: RankingMetrics };
  history: EpochRecord[];
  bestEpoch: number;
  stoppedEarly: boolean;
  counts: {
    items: number;
    users: number;
    train: number;
    val: number;
    test: number;
    trainExamples: number;
    valUsers: number;
    testUsers: number;
    timeOrdered: boolean;
  };
  featureStats: FeatureStats;
  throughput: { examplesPerSec: number; gflopsPerSec: number; matmul: string; threads: number };
  prepared: Prepared;
}

function validateConfig(cfg: TrainConfig): void {
  const bad: string[] = [];
  if (!(cfg.temperature > 0)) bad.push(`temperature must be > 0 (got ${cfg.temperature})`);
  if (!(cfg.learningRate > 0)) bad.push(`learning rate must be > 0 (got ${cfg.learningRate})`);
  if (cfg.batchSize < 2) bad.push(`batch size must be at least 2 (got ${cfg.batchSize})`);
  if (cfg.valFraction <= 0 || cfg.valFraction + cfg.testFraction >= 1) bad.push('validation and test fractions must be > 0 and sum to < 1');
  if (bad.length) throw new ValidationFailedError(`Invalid training configuration: ${bad.join('; ')}.`, { code: 'TRAIN_CONFIG_INVALID' });
}

export async function trainTwoTower(data: TrainingData, config: Partial<TrainConfig>, deps: TrainDeps): Promise<TrainResult> {
  const cfg: TrainConfig = { ...DEFAULT_TRAIN_CONFIG, ...config, features: { ...DEFAULT_FEATURE_CONFIG, ...config.features } };
  validateConfig(cfg);
  const split = splitInteractions(data.interactions, { valFraction: cfg.valFraction, testFraction: cfg.testFraction, seed: cfg.seed });
  const p = prepare(data, split, cfg.features);
  const nExamples = p.examples.user.length;
  if (nExamples < 2) {
    throw new ValidationFailedError(`Not enough training data: ${nExamples} training positive(s) after the split; at least 2 are needed.`, {
      code: 'DATA_INSUFFICIENT',
      hint: 'Check the data source (labels, matched items), or lower --val/--test.',
    });
  }
  const valInput = evalInput(p, split.val, p.train, p.itemLikes, cfg.valUsers, cfg.seed, 'val');
  if (valInput.set.users.length === 0) {
    throw new ValidationFailedError('No user has held-out positives for validation; every user has fewer than 3 positives.', {
      code: 'DATA_INSUFFICIENT',
      hint: 'Training needs users with at least 3 positives (likes) to validate on.',
    });
  }
  // The test split is ranked with everything before it as history (train + validation), as a served user would be.
  const testHistory = appendHistories(p.train, historiesOf(split.val, p.userIndex, p.itemIndex, p.userIds.length));
  const testLikes = p.itemLikes.slice();
  for (const r of split.val) if (r.label === 1) testLikes[p.itemIndex.get(r.itemId)!]++;
  const testInput =
    cfg.testFraction > 0 && split.test.some((r) => r.label === 1)
      ? evalInput(p, split.test, testHistory, testLikes, cfg.maxTestUsers, cfg.seed, 'test')
      : undefined;
  deps.onProgress?.({
    kind: 'prepared',
    items: p.itemIds.length,
    users: p.userIds.length,
    trainExamples: nExamples,
    valUsers: valInput.set.users.length,
    testUsers: testInput?.set.users.length ?? 0,
    timeOrdered: split.timeOrdered,
    vocabularies: Object.fromEntries(p.spec.vocabularies.map((v) => [v.name, v.tokens.length])),
  });

  const modelCfg = { hidden: cfg.hidden, dim: cfg.dim };
  const archs = { user: towerArch(p.spec, 'user', modelCfg), item: towerArch(p.spec, 'item', modelCfg) };
  const initial = {
    user: initTowerParams(archs.user, rngFor(cfg.seed, 'init:user')),
    item: initTowerParams(archs.item, rngFor(cfg.seed, 'init:item')),
  };
  const mm = matMulFor(deps.tf, deps.backend);
  const runners = await startRunners(archs, initial, deps, mm);
  let run: EpochsResult;
  try {
    run = await runEpochs({ cfg, deps, p, archs, initial, runners, mm, valInput });
  } finally {
    await runners.user.close();
    await runners.item.close();
  }

  const models = {
    user: buildTowerModel(p.spec, 'user', archs.user, run.best.params.user),
    item: buildTowerModel(p.spec, 'item', archs.item, run.best.params.item),
  };
  const finalInput = testInput ?? valInput;
  deps.onProgress?.({ kind: 'evaluate', split: testInput ? 'test' : 'validation', users: finalInput.set.users.length });
  const emb = embedWithModels(p, models, finalInput, cfg.dim, EVAL_CHUNK);
  const finalModel = evaluateEmbeddings(finalInput.set, emb.userEmb, emb.itemEmb, p.itemIds.length, cfg.dim, mm);
  const finalPopularity = testInput ? evaluatePopularity(testInput.set, testLikes) : run.valPopularity;
  return {
    spec: p.spec,
    archs,
    params: run.best.params,
    models,
    metrics: { model: finalModel, popularity: finalPopularity, evaluatedOn: testInput ? 'test' : 'validation' },
    validation: { model: run.best.val, popularity: run.valPopularity },
    history: run.history,
    bestEpoch: run.best.epoch,
    stoppedEarly: run.stoppedEarly,
    counts: {
      items: p.itemIds.length,
      users: p.userIds.length,
      train: split.train.length,
      val: split.val.length,
      test: split.test.length,
      trainExamples: nExamples,
      valUsers: valInput.set.users.length,
      testUsers: testInput?.set.users.length ?? 0,
      timeOrdered: split.timeOrdered,
    },
    featureStats: p.encodeStats,
    throughput: {
      examplesPerSec: run.examples / Math.max(run.seconds, 1e-9),
      gflopsPerSec: run.flops / 1e9 / Math.max(run.seconds, 1e-9),
      matmul: mm.name,
      threads: runners.threads,
    },
    prepared: p,
  };
}

interface EpochsContext {
  cfg: TrainConfig;
  deps: TrainDeps;
  p: Prepared;
  archs: { user: TowerArch; item: TowerArch };
  initial: { user: TowerParams; item: TowerParams };
  runners: { user: TowerRunner; item: TowerRunner };
  mm: MatMul;
  valInput: EvalInput;
}

interface EpochsResult {
  best: { epoch: number; value: number; params: { user: TowerParams; item: TowerParams }; val: RankingMetrics };
  history: EpochRecord[];
  stoppedEarly: boolean;
  valPopularity: RankingMetrics;
  examples: number;
  seconds: number;
  flops: number;
}

/** The epochs: seeded shuffle, batches (the next one built while the towers run backward), validation, early stop. */
async function runEpochs(c: EpochsContext): Promise<EpochsResult> {
  const { cfg, deps, p, archs, runners, mm, valInput } = c;
  const emit = (e: TrainEvent) => deps.onProgress?.(e);
  const now = deps.now ?? (() => performance.now());
  const nExamples = p.examples.user.length;
  const stepper = new TwoTowerStep(runners.user, runners.item, mm, {
    temperature: cfg.temperature,
    logQCorrection: cfg.logQCorrection,
    adam: { ...DEFAULT_ADAM, learningRate: cfg.learningRate },
  });
  const batchSize = Math.min(cfg.batchSize, nExamples);
  const builder = new BatchBuilder(p, batchSize, cfg.hardNegatives);
  const batches = Math.ceil(nExamples / batchSize);
  const out: EpochsResult = {
    best: { epoch: 0, value: -Infinity, params: { user: cloneParams(c.initial.user), item: cloneParams(c.initial.item) }, val: {} },
    history: [],
    stoppedEarly: false,
    valPopularity: evaluatePopularity(valInput.set, p.itemLikes),
    examples: 0,
    seconds: 0,
    flops: 0,
  };
  for (let epoch = 1; epoch <= cfg.epochs; epoch++) {
    emit({ kind: 'epoch-start', epoch, epochs: cfg.epochs, batches });
    const order = rngFor(cfg.seed, `epoch:${epoch}`).shuffle(Int32Array.from({ length: nExamples }, (_, i) => i)) as Int32Array;
    const negRng = rngFor(cfg.seed, `hard-negatives:${epoch}`);
    // A final batch of one row has no in-batch negatives: it is skipped.
    const usable = (bi: number) => bi < batches && Math.min(nExamples, (bi + 1) * batchSize) - bi * batchSize >= 2;
    const build = (bi: number) => builder.build(order, bi * batchSize, Math.min(nExamples, (bi + 1) * batchSize), negRng);
    const t0 = now();
    let lossSum = 0;
    let seen = 0;
    if (usable(0)) build(0);
    for (let bi = 0; usable(bi); bi++) {
      if (deps.signal?.aborted) throw new InterruptedError('Interrupted during training; nothing was written. Run the command again to start over.');
      const rows = builder.rows;
      const hard = builder.hardCount;
      const loss = await stepper.run(builder, () => {
        if (usable(bi + 1)) build(bi + 1);
      });
      out.flops += TwoTowerStep.flops(archs.user, archs.item, rows, hard);
      lossSum += loss * rows;
      seen += rows;
      const rate = seen / Math.max((now() - t0) / 1000, 1e-9);
      emit({ kind: 'batch', epoch, batch: bi + 1, batches, loss: lossSum / seen, examplesPerSec: rate, etaSeconds: (nExamples - seen) / rate });
      // Let signals, timers and progress rendering run between steps.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    const seconds = (now() - t0) / 1000;
    out.examples += seen;
    out.seconds += seconds;
    const { itemEmb, userEmb } = await embedForEval(p, runners, valInput, EVAL_CHUNK);
    const val = evaluateEmbeddings(valInput.set, userEmb, itemEmb, p.itemIds.length, cfg.dim, mm);
    const value = val[cfg.earlyStopMetric] ?? Number.NaN;
    const improved = value > out.best.value;
    if (improved) out.best = { epoch, value, params: { user: await runners.user.params(), item: await runners.item.params() }, val };
    const record: EpochRecord = { epoch, loss: lossSum / Math.max(1, seen), examplesPerSec: seen / Math.max(seconds, 1e-9), seconds, val };
    out.history.push(record);
    emit({ kind: 'epoch-end', epoch, epochs: cfg.epochs, loss: record.loss, examplesPerSec: record.examplesPerSec, seconds, val, improved, bestEpoch: out.best.epoch });
    if (epoch - out.best.epoch >= cfg.patience && epoch < cfg.epochs) {
      out.stoppedEarly = true;
      emit({ kind: 'early-stop', epoch, bestEpoch: out.best.epoch, metric: cfg.earlyStopMetric, best: out.best.value });
      break;
    }
  }
  return out;
}

/** One runner per tower: in this thread, or each in a worker thread when `threads` ≥ 2 and the worker is built. */
async function startRunners(
  archs: { user: TowerArch; item: TowerArch },
  params: { user: TowerParams; item: TowerParams },
  deps: TrainDeps,
  mm: MatMul,
): Promise<{ user: TowerRunner; item: TowerRunner; threads: number }> {
  const script = (deps.threads ?? 1) >= 2 ? towerWorkerPath() : undefined;
  if (!script) {
    return { user: new LocalTowerRunner('user', archs.user, params.user, mm), item: new LocalTowerRunner('item', archs.item, params.item, mm), threads: 1 };
  }
  const [user, item] = await Promise.all([
    WorkerTowerRunner.start('user', archs.user, params.user, deps.backend, script),
    WorkerTowerRunner.start('item', archs.item, params.item, deps.backend, script),
  ]);
  return { user, item, threads: 2 };
}
