/**
 * After training: assemble metrics, the probe and the manifest, evaluate quality gates, and write the run folder
 * (metrics are written whether or not a gate fails). Returns what the command reports.
 */
import type { CatalogItem } from './data/dataset.js';
import type { TrainingData } from './data/types.js';
import { dataSnapshotSha256 } from './data/snapshot.js';
import { evaluateGates, type Gate, type GateOutcome } from './gate.js';
import type { ModelManifest } from './artifacts.js';
import type { UserHistory } from './features/index.js';
import { predictTower } from './model.js';
import { makeProbe, probeInputs } from './probe.js';
import { writeRunFolder } from './run-folder.js';
import type { TfInfo } from './tf.js';
import type { TrainConfig, TrainResult } from './train.js';

export interface FinishRunOptions {
  out: string;
  runId: string;
  createdAt: string;
  gates: readonly Gate[];
  amMl: { version: string; gitCommit: string | null };
  tf: Pick<TfInfo, 'version' | 'backend'>;
  config: TrainConfig;
  threads: number;
}

export interface FinishRunResult {
  manifest: ModelManifest;
  headline: Record<string, number>;
  gates: GateOutcome[];
  dataSha256: string;
}

/** `recall@100`, …, `popularity.recall@100`, …, `val.recall@100`, … (the manifest's flat metrics). */
export function headlineMetrics(result: TrainResult): Record<string, number> {
  const out: Record<string, number> = {};
  const put = (prefix: string, m: Record<string, number>) => {
    for (const [k, v] of Object.entries(m)) if (k !== 'users' && Number.isFinite(v)) out[`${prefix}${k}`] = v;
  };
  put('', result.metrics.model);
  put('popularity.', result.metrics.popularity);
  put('val.', result.validation.model);
  return out;
}

export async function finishRun(result: TrainResult, data: TrainingData, opts: FinishRunOptions): Promise<FinishRunResult> {
  const p = result.prepared;
  const headline = headlineMetrics(result);
  const gates = evaluateGates(opts.gates, headline);
  const dim = result.archs.user.outputDim;
  const catalog = data.items as CatalogItem[];
  // Probe histories: the training histories of the first users with both likes and nopes (else any likes).
  const order = [...p.train.likes.keys()].sort((a, b) => Number(p.train.nopes[b].length > 0) - Number(p.train.nopes[a].length > 0) || a - b);
  const histories: UserHistory[] = order.slice(0, 2).map((u) => ({
    likes: Array.from(p.train.likes[u], (i) => catalog[i]),
    nopes: Array.from(p.train.nopes[u], (i) => catalog[i]),
  }));
  const probe = makeProbe(
    result.spec,
    probeInputs(catalog, histories),
    { item: (a) => predictTower(result.models.item, a), user: (a) => predictTower(result.models.user, a) },
    dim,
  );
  const dataSha256 = dataSnapshotSha256(data);
  const metrics = {
    evaluatedOn: result.metrics.evaluatedOn,
    users: result.metrics.model.users,
    model: result.metrics.model,
    popularity: result.metrics.popularity,
    validation: { bestEpoch: result.bestEpoch, model: result.validation.model, popularity: result.validation.popularity },
    epochs: result.history,
    stoppedEarly: result.stoppedEarly,
    counts: result.counts,
    throughput: result.throughput,
    featureStats: result.featureStats,
    gates,
  };
  const manifest = await writeRunFolder(opts.out, {
    runId: opts.runId,
    createdAt: opts.createdAt,
    spec: result.spec,
    models: result.models,
    dim,
    metrics,
    headline,
    probe,
    amMl: opts.amMl,
    tf: { version: opts.tf.version, backend: opts.tf.backend },
    data: {
      source: data.source,
      sha256: dataSha256,
      summary: { ...data.summary, ...result.counts },
    },
    config: {
      ...opts.config,
      threads: opts.threads,
      gates: gates.map((g) => ({ expression: g.expression, passed: g.passed, actual: g.actual })),
    },
  });
  return { manifest, headline, gates, dataSha256 };
}
