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
import { type EvalSet, evaluateEmbeddings, evaluatePopularity, type RankingMetrics } from './evaluate.js';
import {
  DEFAULT_FEATURE_CONFIG,
  type FeatureConfig,
  type FeatureSpec,
  type FeatureStats,
  packItems,
  TowerBuffers,
  UserRowWriter,
  writeItemRow,
} from './features/index.js';
import { type AdamConfig, DEFAULT_ADAM } from './kernels/adam.js';
import { type MatMul, matMulFor, transpose } from './kernels/matmul.js';
import { buildTowerModel, predictTower, towerArch } from './model.js';
import { appendHistories, type Histories, historiesOf, type Prepared, prepare } from './prepare.js';
import { rngFor } from './rng.js';
import { type Split, splitInteractions } from './split.js';
import type { Tf } from './tf.js';
import { cloneParams, initTowerParams, type TowerArch, type TowerParams, towerForwardFlops } from './tower.js';
import { LocalTowerRunner, softmaxRows, type TowerRunner, towerWorkerPath, WorkerTowerRunner } from './tower-runner.js';

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
  models: { user: import('./tf.js').tf.LayersModel; item: import('./tf.js').tf.LayersModel };
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

/**
 * One optimisation step over a built batch; returns the loss. The towers' forward passes run concurrently (on two
 * cores with worker runners); the softmax runs here; `during` runs while the towers' backward passes are in flight
 * (the loop builds the next batch there). Shared by the loop, tests and the benchmark.
 */
export class TwoTowerStep {
  private step = 0;
  private scores = new Float32Array(0);
  constructor(
    readonly user: TowerRunner,
    readonly item: TowerRunner,
    private readonly mm: MatMul,
    private readonly cfg: { temperature: number; logQCorrection: boolean; adam: AdamConfig },
  ) {}

  async run(batch: BatchBuilder, during?: () => void): Promise<number> {
    const b = batch.rows;
    const d = this.user.arch.outputDim;
    const [u, v] = await Promise.all([this.user.forward(batch.user, b), this.item.forward(batch.item, b + batch.hardCount)]);
    const hardRow = batch.hardRow.slice(0, b);
    const hardScores = new Float32Array(b);
    for (let r = 0; r < b; r++) {
      const h = hardRow[r];
      if (h < 0) {
        hardScores[r] = Number.NaN;
        continue;
      }
      let s = 0;
      for (let c = 0; c < d; c++) s += u[r * d + c] * v[h * d + c];
      hardScores[r] = s;
    }
    // The softmax rows are split in two halves, always: the user tower's runner scores the second half (on its
    // own thread when it has one) while this thread scores the first. Same split with one thread, same numbers.
    const half = b >> 1;
    const side = {
      vPosT: transpose(v.subarray(0, b * d), b, d),
      b,
      temperature: this.cfg.temperature,
      logQ: this.cfg.logQCorrection ? batch.logQ.slice(0, b) : new Float32Array(b),
      itemKey: batch.itemKey.slice(0, b),
      userKey: batch.userKey.slice(0, b),
    };
    const second = this.user.softmaxRows({ ...side, rowStart: half, rows: b - half, hardScores: hardScores.slice(half) });
    // A fresh matrix per step: a worker runner takes ownership of it (transfer), and the first half goes straight in.
    const g = new Float32Array(b * b);
    if (this.scores.length < half * b) this.scores = new Float32Array(half * b);
    const first = softmaxRows(u, { ...side, rowStart: 0, rows: half, hardScores: hardScores.subarray(0, half) }, this.mm, this.scores.subarray(0, half * b), g.subarray(0, half * b));
    const rest = await second;
    g.set(rest.gScores, half * b);
    const gHard = new Float32Array(b);
    gHard.set(first.gHard, 0);
    gHard.set(rest.gHard, half);
    this.step++;
    // The user tower's copy of G is cloned, the item tower's transferred (a buffer can be transferred once).
    const backward = Promise.all([
      this.user.backward({ coef: g, b, other: v, gHard, hardRow }, this.step, this.cfg.adam, [v.buffer]),
      this.item.backward({ coef: g, b, other: u, gHard, hardRow }, this.step, this.cfg.adam, [g.buffer, u.buffer]),
    ]);
    during?.();
    await backward;
    return first.loss + rest.loss;
  }

  /** FLOPs of a step of this shape (matmuls and bag sums; forward + backward ≈ 3 × forward). */
  static flops(user: TowerArch, item: TowerArch, b: number, hard: number): number {
    return 3 * (towerForwardFlops(user, b) + towerForwardFlops(item, b + hard)) + 3 * 2 * b * b * user.outputDim;
  }
}

/** Evaluation users, their held-out positives, exclusions and histories. */
export interface EvalInput {
  set: EvalSet;
  history: Histories;
  /** Training likes per item seen by the popularity baseline. */
  itemLikes: Float64Array;
}

function evalInput(p: Prepared, heldOutRows: Split['train'], history: Histories, itemLikes: Float64Array, maxUsers: number, seed: number, label: string): EvalInput {
  const held: number[][] = Array.from({ length: p.userIds.length }, () => []);
  for (const r of heldOutRows) {
    if (r.label !== 1) continue;
    const u = p.userIndex.get(r.userId);
    const i = p.itemIndex.get(r.itemId);
    if (u !== undefined && i !== undefined) held[u].push(i);
  }
  let users = held.map((h, u) => (h.length > 0 ? u : -1)).filter((u) => u >= 0);
  if (users.length > maxUsers) {
    users = (rngFor(seed, `eval-users:${label}`).shuffle(users) as number[]).slice(0, maxUsers).sort((a, b) => a - b);
  }
  const set: EvalSet = {
    users: Int32Array.from(users),
    heldOut: users.map((u) => Int32Array.from(held[u])),
    exclude: users.map((u) => Int32Array.from(new Set([...history.likes[u], ...history.nopes[u]])).sort()),
  };
  return { set, history, itemLikes };
}

/** Embed every catalog item and the evaluation users with the runners (both towers at once). */
async function embedForEval(p: Prepared, runners: { user: TowerRunner; item: TowerRunner }, input: EvalInput, chunk: number) {
  const d = runners.user.arch.outputDim;
  const n = p.encoded.length;
  const items = (async () => {
    const out = new Float32Array(n * d);
    const buf = new TowerBuffers(p.spec, 'item', chunk);
    for (let s = 0; s < n; s += chunk) {
      const c = Math.min(chunk, n - s);
      for (let r = 0; r < c; r++) writeItemRow(buf, r, p.encoded[s + r]);
      out.set(await runners.item.embed(buf, c), s * d);
    }
    return out;
  })();
  const usersDone = (async () => {
    const users = input.set.users;
    const out = new Float32Array(users.length * d);
    const buf = new TowerBuffers(p.spec, 'user', chunk);
    const writer = new UserRowWriter(p.spec);
    for (let s = 0; s < users.length; s += chunk) {
      const c = Math.min(chunk, users.length - s);
      for (let r = 0; r < c; r++) {
        const u = users[s + r];
        writer.write(buf, r, packedLikes(p, input.history, u), packedNopes(p, input.history, u));
      }
      out.set(await runners.user.embed(buf, c), s * d);
    }
    return out;
  })();
  const [itemEmb, userEmb] = await Promise.all([items, usersDone]);
  return { itemEmb, userEmb };
}

/** Embed with the saved-form layers models: what the final metrics are computed from. */
function embedWithModels(p: Prepared, models: TrainResult['models'], input: EvalInput, dim: number, chunk: number) {
  const n = p.encoded.length;
  const itemEmb = new Float32Array(n * dim);
  const ibuf = new TowerBuffers(p.spec, 'item', chunk);
  for (let s = 0; s < n; s += chunk) {
    const c = Math.min(chunk, n - s);
    for (let r = 0; r < c; r++) writeItemRow(ibuf, r, p.encoded[s + r]);
    itemEmb.set(predictTower(models.item, ibuf.toInputs(c).arrays), s * dim);
  }
  const users = input.set.users;
  const userEmb = new Float32Array(users.length * dim);
  const ubuf = new TowerBuffers(p.spec, 'user', chunk);
  const writer = new UserRowWriter(p.spec);
  for (let s = 0; s < users.length; s += chunk) {
    const c = Math.min(chunk, users.length - s);
    for (let r = 0; r < c; r++) {
      const u = users[s + r];
      writer.write(ubuf, r, packedLikes(p, input.history, u), packedNopes(p, input.history, u));
    }
    userEmb.set(predictTower(models.user, ubuf.toInputs(c).arrays), s * dim);
  }
  return { itemEmb, userEmb };
}

const EVAL_CHUNK = 1024;

/** A user's history window (newest first), packed for the row writer. */
function packedLikes(p: Prepared, h: Histories, u: number) {
  return packItems(Array.from(h.likes[u].subarray(0, p.spec.user.maxLikes), (i) => p.encoded[i]), p.spec.vocabularies.length);
}
function packedNopes(p: Prepared, h: Histories, u: number) {
  return packItems(Array.from(h.nopes[u].subarray(0, p.spec.user.maxNopes), (i) => p.encoded[i]), p.spec.vocabularies.length);
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
  const { tf, onProgress, signal } = deps;
  const now = deps.now ?? (() => performance.now());
  const emit = (e: TrainEvent) => onProgress?.(e);

  const split = splitInteractions(data.interactions, { valFraction: cfg.valFraction, testFraction: cfg.testFraction, seed: cfg.seed });
  const p = prepare(data, split, cfg.features);
  const nExamples = p.examples.user.length;
  if (nExamples < 2) {
    throw new ValidationFailedError(`Not enough training data: ${nExamples} training positive(s) after the split; at least 2 are needed.`, {
      code: 'DATA_INSUFFICIENT',
      hint: 'Check the data source (labels, matched items), or lower --val/--test.',
    });
  }
  const nUsers = p.userIds.length;
  const valHistory = p.train;
  const valInput = evalInput(p, split.val, valHistory, p.itemLikes, cfg.valUsers, cfg.seed, 'val');
  if (valInput.set.users.length === 0) {
    throw new ValidationFailedError('No user has held-out positives for validation; every user has fewer than 3 positives.', {
      code: 'DATA_INSUFFICIENT',
      hint: 'Training needs users with at least 3 positives (likes) to validate on.',
    });
  }
  const valAfter = historiesOf(split.val, p.userIndex, p.itemIndex, nUsers);
  const testHistory = appendHistories(p.train, valAfter);
  const testLikes = p.itemLikes.slice();
  for (const r of split.val) if (r.label === 1) testLikes[p.itemIndex.get(r.itemId)!]++;
  const useTest = cfg.testFraction > 0 && split.test.some((r) => r.label === 1);
  const testInput = useTest ? evalInput(p, split.test, testHistory, testLikes, cfg.maxTestUsers, cfg.seed, 'test') : undefined;

  emit({
    kind: 'prepared',
    items: p.itemIds.length,
    users: nUsers,
    trainExamples: nExamples,
    valUsers: valInput.set.users.length,
    testUsers: testInput?.set.users.length ?? 0,
    timeOrdered: split.timeOrdered,
    vocabularies: Object.fromEntries(p.spec.vocabularies.map((v) => [v.name, v.tokens.length])),
  });

  const modelCfg = { hidden: cfg.hidden, dim: cfg.dim };
  const archs = { user: towerArch(p.spec, 'user', modelCfg), item: towerArch(p.spec, 'item', modelCfg) };
  const params = {
    user: initTowerParams(archs.user, rngFor(cfg.seed, 'init:user')),
    item: initTowerParams(archs.item, rngFor(cfg.seed, 'init:item')),
  };
  const mm = matMulFor(tf, deps.backend);
  const runners = await startRunners(archs, params, deps, mm);
  try {
    return await trainLoop();
  } finally {
    await runners.user.close();
    await runners.item.close();
  }

  async function trainLoop(): Promise<TrainResult> {
  const stepper = new TwoTowerStep(runners.user, runners.item, mm, {
    temperature: cfg.temperature,
    logQCorrection: cfg.logQCorrection,
    adam: { ...DEFAULT_ADAM, learningRate: cfg.learningRate },
  });
  const batchSize = Math.min(cfg.batchSize, nExamples);
  const builder = new BatchBuilder(p, batchSize, cfg.hardNegatives);
  const batches = Math.ceil(nExamples / batchSize);

  const history: EpochRecord[] = [];
  let best = { epoch: 0, value: -Infinity, params: { user: cloneParams(params.user), item: cloneParams(params.item) }, val: {} as RankingMetrics };
  let stoppedEarly = false;
  let totalExamples = 0;
  let totalSeconds = 0;
  let totalFlops = 0;
  const valPopularity = evaluatePopularity(valInput.set, p.itemLikes);
  for (let epoch = 1; epoch <= cfg.epochs; epoch++) {
    emit({ kind: 'epoch-start', epoch, epochs: cfg.epochs, batches });
    const order = rngFor(cfg.seed, `epoch:${epoch}`).shuffle(Int32Array.from({ length: nExamples }, (_, i) => i)) as Int32Array;
    const negRng = rngFor(cfg.seed, `hard-negatives:${epoch}`);
    const t0 = now();
    let lossSum = 0;
    let seen = 0;
    // A final batch of one row has no in-batch negatives: it is skipped.
    const usable = (bi: number) => bi < batches && Math.min(nExamples, (bi + 1) * batchSize) - bi * batchSize >= 2;
    const build = (bi: number) => builder.build(order, bi * batchSize, Math.min(nExamples, (bi + 1) * batchSize), negRng);
    if (usable(0)) build(0);
    for (let bi = 0; bi < batches && usable(bi); bi++) {
      if (signal?.aborted) throw new InterruptedError('Interrupted during training; nothing was written. Run the command again to start over.');
      const rows = builder.rows;
      const hard = builder.hardCount;
      // The next batch is built while the towers run their backward pass.
      const loss = await stepper.run(builder, () => {
        if (usable(bi + 1)) build(bi + 1);
      });
      totalFlops += TwoTowerStep.flops(archs.user, archs.item, rows, hard);
      lossSum += loss * rows;
      seen += rows;
      const elapsed = (now() - t0) / 1000;
      const rate = seen / Math.max(elapsed, 1e-9);
      emit({ kind: 'batch', epoch, batch: bi + 1, batches, loss: lossSum / seen, examplesPerSec: rate, etaSeconds: (nExamples - seen) / rate });
      // Let timers, signals and progress rendering run between steps.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    const seconds = (now() - t0) / 1000;
    totalExamples += seen;
    totalSeconds += seconds;
    const { itemEmb, userEmb } = await embedForEval(p, runners, valInput, EVAL_CHUNK);
    const val = evaluateEmbeddings(valInput.set, userEmb, itemEmb, p.itemIds.length, cfg.dim, mm);
    const value = val[cfg.earlyStopMetric] ?? Number.NaN;
    const improved = value > best.value;
    if (improved) best = { epoch, value, params: { user: await runners.user.params(), item: await runners.item.params() }, val };
    const record: EpochRecord = { epoch, loss: lossSum / Math.max(1, seen), examplesPerSec: seen / Math.max(seconds, 1e-9), seconds, val };
    history.push(record);
    emit({ kind: 'epoch-end', epoch, epochs: cfg.epochs, loss: record.loss, examplesPerSec: record.examplesPerSec, seconds, val, improved, bestEpoch: best.epoch });
    if (epoch - best.epoch >= cfg.patience && epoch < cfg.epochs) {
      stoppedEarly = true;
      emit({ kind: 'early-stop', epoch, bestEpoch: best.epoch, metric: cfg.earlyStopMetric, best: best.value });
      break;
    }
  }

  const models = {
    user: buildTowerModel(p.spec, 'user', archs.user, best.params.user),
    item: buildTowerModel(p.spec, 'item', archs.item, best.params.item),
  };
  const finalInput = testInput ?? valInput;
  emit({ kind: 'evaluate', split: testInput ? 'test' : 'validation', users: finalInput.set.users.length });
  const emb = embedWithModels(p, models, finalInput, cfg.dim, EVAL_CHUNK);
  const finalModel = evaluateEmbeddings(finalInput.set, emb.userEmb, emb.itemEmb, p.itemIds.length, cfg.dim, mm);
  const finalPopularity = testInput ? evaluatePopularity(testInput.set, testLikes) : valPopularity;

  return {
    spec: p.spec,
    archs,
    params: best.params,
    models,
    metrics: { model: finalModel, popularity: finalPopularity, evaluatedOn: testInput ? 'test' : 'validation' },
    validation: { model: best.val, popularity: valPopularity },
    history,
    bestEpoch: best.epoch,
    stoppedEarly,
    counts: {
      items: p.itemIds.length,
      users: nUsers,
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
      examplesPerSec: totalExamples / Math.max(totalSeconds, 1e-9),
      gflopsPerSec: totalFlops / 1e9 / Math.max(totalSeconds, 1e-9),
      matmul: mm.name,
      threads: runners.threads,
    },
    prepared: p,
  };
  }
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
