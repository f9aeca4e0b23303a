/**
 * `am-ml train`: train the two-tower model on one data source, evaluate it on the full catalog next to a popularity
 * baseline, and write a run folder that `am-ml publish` and `am-ml embed` consume as is. `--gate` turns the metrics
 * into the exit code (4 when a gate fails; the run folder and its metrics are written either way).
 */
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { DEFAULT_HOME_DIR } from '../config.js';
import { ConfigError, UsageError, ValidationFailedError } from '../errors.js';
import { makeRunId } from '../ml/artifacts.js';
import type { BadRow } from '../ml/data/types.js';
import { DEFAULT_FEATURE_CONFIG } from '../ml/features/index.js';
import { describeFailedGates, type GateOutcome, parseGates } from '../ml/gate.js';
import { prepare } from '../ml/prepare.js';
import { assertRunFolderFree } from '../ml/run-folder.js';
import { splitInteractions } from '../ml/split.js';
import type { BackendChoice } from '../ml/tf.js';
import { DEFAULT_TRAIN_CONFIG, type TrainConfig } from '../ml/train.js';
import { amMlGitCommit, AMML_VERSION } from '../version.js';
import { type CommonOptions, configOf, cwdOf, reporterOf } from './common.js';
import { loadTrainingData, type TrainSource } from './train-data.js';
import { trainProgress } from './train-progress.js';

export interface TrainOptions extends CommonOptions {
  fromDb?: boolean;
  reviews?: string;
  dataset?: string;
  dim?: number;
  epochs?: number;
  batchSize?: number;
  lr?: number;
  temperature?: number;
  /** Validation share of each user's positives. @default 0.1 */
  val?: number;
  /** Test share (0: final metrics on validation). @default 0.1 */
  test?: number;
  patience?: number;
  seed?: number;
  hidden?: number[];
  bagDim?: number;
  /** Item-id bags in both towers. @default true */
  itemId?: boolean;
  hardNegatives?: boolean;
  logQ?: boolean;
  valUsers?: number;
  /** Run folder. @default .am-ml/runs/<runId> */
  out?: string;
  gate?: string[];
  backend?: BackendChoice;
  /** `auto`: 2 when the machine has two or more cores. */
  threads?: 'auto' | number;
  maxBadFraction?: number;
  positiveMinStars?: number;
  negativeMaxStars?: number;
  /** Read and check the data, build the features, report; train nothing and write nothing. */
  dryRun?: boolean;
  /** Clock (tests). */
  now?: () => Date;
}

export interface TrainResult {
  dryRun: boolean;
  runId: string;
  out: string | null;
  source: string;
  data: { summary: Record<string, number>; notes: string[]; badRows: BadRow[] };
  counts: Record<string, number | boolean>;
  vocabularies: Record<string, number>;
  backend?: { name: string; tfjs: string; threads: number; matmul: string };
  epochs?: { run: number; best: number; stoppedEarly: boolean };
  metrics?: { evaluatedOn: string; users: number; model: Record<string, number>; popularity: Record<string, number> };
  throughput?: { examplesPerSec: number; gflopsPerSec: number };
  gates: GateOutcome[];
}

function sourceOf(o: TrainOptions, cwd: string): TrainSource {
  const given = [o.fromDb ? '--from-db' : null, o.reviews ? '--reviews' : null, o.dataset ? '--dataset' : null].filter(Boolean);
  if (given.length !== 1) {
    throw new UsageError(
      given.length === 0 ? 'Say where the training data comes from: --from-db, --reviews <csv> or --dataset <dir>.' : `Use only one data source; got ${given.join(' and ')}.`,
    );
  }
  if (o.dataset) return { kind: 'dataset', dir: path.resolve(cwd, o.dataset) };
  if (o.reviews) return { kind: 'reviews', file: path.resolve(cwd, o.reviews) };
  return { kind: 'db' };
}

function configFrom(o: TrainOptions): TrainConfig {
  if (o.negativeMaxStars !== undefined && o.positiveMinStars !== undefined && o.negativeMaxStars >= o.positiveMinStars) {
    throw new UsageError(`--negative-max-stars (${o.negativeMaxStars}) must be below --positive-min-stars (${o.positiveMinStars}).`);
  }
  if ((o.val ?? 0.1) + (o.test ?? 0.1) >= 1) throw new UsageError('--val and --test must add up to less than 1.');
  const d = DEFAULT_TRAIN_CONFIG;
  return {
    ...d,
    dim: o.dim ?? d.dim,
    hidden: o.hidden ?? d.hidden,
    epochs: o.epochs ?? d.epochs,
    batchSize: o.batchSize ?? d.batchSize,
    learningRate: o.lr ?? d.learningRate,
    temperature: o.temperature ?? d.temperature,
    seed: o.seed ?? d.seed,
    valFraction: o.val ?? d.valFraction,
    testFraction: o.test ?? d.testFraction,
    patience: o.patience ?? d.patience,
    valUsers: o.valUsers ?? d.valUsers,
    hardNegatives: o.hardNegatives ?? d.hardNegatives,
    logQCorrection: o.logQ ?? d.logQCorrection,
    features: { ...DEFAULT_FEATURE_CONFIG, bagDim: o.bagDim ?? DEFAULT_FEATURE_CONFIG.bagDim, itemIdEmbedding: o.itemId ?? true },
  };
}

export async function train(opts: TrainOptions = {}): Promise<TrainResult> {
  const cwd = cwdOf(opts);
  const reporter = reporterOf(opts);
  const source = sourceOf(opts, cwd);
  const gates = parseGates(opts.gate ?? []);
  const cfg = configFrom(opts);
  const createdAt = (opts.now?.() ?? new Date()).toISOString();
  const runId = makeRunId(new Date(createdAt));
  const out = path.resolve(cwd, opts.out ?? path.join(DEFAULT_HOME_DIR, 'runs', runId));
  if (!opts.dryRun) assertRunFolderFree(out);
  const dbCfg = source.kind === 'dataset' ? undefined : configOf(opts, ['db']);

  const data = await loadTrainingData({
    source,
    cwd,
    db: { url: dbCfg?.databaseUrl ?? '', caFile: dbCfg?.databaseCaFile },
    reporter,
    maxBadFraction: opts.maxBadFraction,
    positiveMinStars: opts.positiveMinStars,
    negativeMaxStars: opts.negativeMaxStars,
  });
  for (const b of data.badRows) reporter.warn(`${b.file}:${b.line}: ${b.reason}`);
  for (const n of data.notes) reporter.warn(n);
  const base = { runId, source: data.source, data: { summary: data.summary, notes: data.notes, badRows: data.badRows }, gates: [] as GateOutcome[] };

  if (opts.dryRun) {
    const split = splitInteractions(data.interactions, { valFraction: cfg.valFraction, testFraction: cfg.testFraction, seed: cfg.seed });
    const p = prepare(data, split, cfg.features);
    return {
      ...base,
      dryRun: true,
      out: null,
      counts: { items: p.itemIds.length, users: p.userIds.length, train: split.train.length, val: split.val.length, test: split.test.length, trainExamples: p.examples.user.length, timeOrdered: split.timeOrdered },
      vocabularies: Object.fromEntries(p.spec.vocabularies.map((v) => [v.name, v.tokens.length])),
    };
  }

  const tfm = await import('../ml/tf.js');
  let info: Awaited<ReturnType<typeof tfm.initTf>>;
  try {
    info = await tfm.initTf(opts.backend ?? 'auto');
  } catch (err) {
    if (err instanceof tfm.BackendUnavailableError) {
      throw new ConfigError(err.message, [{ key: 'backend', message: err.reason, source: '--backend' }], { hint: 'Use --backend auto, wasm or cpu.' });
    }
    throw err;
  }
  for (const n of info.notes) reporter.debug(n);
  const threads = opts.threads === undefined || opts.threads === 'auto' ? (availableParallelism() >= 2 ? 2 : 1) : opts.threads;
  const { trainTwoTower } = await import('../ml/train.js');
  const { finishRun } = await import('../ml/run.js');
  const progress = trainProgress(reporter);
  let result;
  try {
    result = await trainTwoTower(data, cfg, { tf: tfm.tf, backend: info.backend, threads, signal: opts.signal, onProgress: progress.onEvent });
  } finally {
    progress.close();
  }
  const phase = reporter.phase(`Writing the run folder ${out}`);
  let finished;
  try {
    finished = await finishRun(result, data, {
      out,
      runId,
      createdAt,
      gates,
      amMl: { version: AMML_VERSION, gitCommit: amMlGitCommit() },
      tf: info,
      config: cfg,
      threads: result.throughput.threads,
    });
    phase.succeed(`Run ${runId} written to ${out}`);
  } catch (err) {
    phase.fail();
    throw err;
  } finally {
    result.models.user.dispose();
    result.models.item.dispose();
  }
  const summary: TrainResult = {
    ...base,
    dryRun: false,
    out,
    counts: result.counts,
    vocabularies: Object.fromEntries(result.spec.vocabularies.map((v) => [v.name, v.tokens.length])),
    backend: { name: info.backend, tfjs: info.version, threads: result.throughput.threads, matmul: result.throughput.matmul },
    epochs: { run: result.history.length, best: result.bestEpoch, stoppedEarly: result.stoppedEarly },
    metrics: { evaluatedOn: result.metrics.evaluatedOn, users: result.metrics.model.users, model: result.metrics.model, popularity: result.metrics.popularity },
    throughput: { examplesPerSec: result.throughput.examplesPerSec, gflopsPerSec: result.throughput.gflopsPerSec },
    gates: finished.gates,
  };
  if (finished.gates.some((g) => !g.passed)) {
    throw new ValidationFailedError(
      `Quality gate failed: ${describeFailedGates(finished.gates, Object.keys(finished.headline))}. The run was still written to ${out} (see metrics.json).`,
      { code: 'GATE_FAILED', hint: 'Do not publish this run; look at metrics.json and the per-epoch validation metrics.', details: { result: summary } },
    );
  }
  return summary;
}

const f3 = (v: number | undefined) => (v === undefined ? '-' : v.toFixed(3));

export function formatTrain(r: TrainResult): string {
  const lines: string[] = [];
  if (r.dryRun) {
    lines.push(`Dry run: nothing trained or written. Source ${r.source}.`);
    lines.push(`items ${r.counts.items}, users ${r.counts.users}, interactions train ${r.counts.train} / val ${r.counts.val} / test ${r.counts.test}, training positives ${r.counts.trainExamples}${r.counts.timeOrdered ? ' (time-ordered split)' : ' (random split: no timestamps)'}`);
    lines.push(`vocabularies: ${Object.entries(r.vocabularies).map(([k, v]) => `${k} ${v}`).join(', ')}`);
    return lines.join('\n');
  }
  const m = r.metrics!;
  lines.push(`Full-catalog evaluation on the ${m.evaluatedOn} split (${m.users} users, ${r.counts.items} items):`);
  lines.push(`  ${'metric'.padEnd(14)}${'model'.padStart(8)}${'popularity'.padStart(12)}`);
  for (const k of ['recall@10', 'recall@50', 'recall@100', 'ndcg@10', 'coverage@100']) {
    lines.push(`  ${k.padEnd(14)}${f3(m.model[k]).padStart(8)}${f3(m.popularity[k]).padStart(12)}`);
  }
  lines.push(`Best epoch ${r.epochs!.best} of ${r.epochs!.run}${r.epochs!.stoppedEarly ? ' (stopped early)' : ''}; ${Math.round(r.throughput!.examplesPerSec)} examples/s on ${r.backend!.name} × ${r.backend!.threads} thread(s).`);
  for (const g of r.gates) lines.push(`gate ${g.expression}: ${g.passed ? 'passed' : 'FAILED'} (${g.actual ?? 'missing'})`);
  lines.push(`Run ${r.runId}: ${r.out}`);
  return lines.join('\n');
}
