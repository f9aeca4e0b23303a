/**
 * `am-ml embed`: re-embed every item and user into the live pgvector tables with one model version, switching
 * versions atomically; `--missing` for the daily new rows of the version already served; `--shard i/n` +
 * `--finalize` for parallel CI jobs; `--dataset <dir> --to <dir>` offline into JSONL files.
 *
 * One writer (app-schema §3, §7.9): only the store's current version may be written to the live tables. A model
 * folder that is not the current published version needs `--unpublished` (recorded in the result).
 */
import path from 'node:path';
import { type EmbedTarget, EMBED_TARGETS, type IndexPolicy, LIVE, liveVersions } from '../db/embedding-store.js';
import { openDb } from '../db/open.js';
import type { Db } from '../db/types.js';
import { ConflictError, UsageError } from '../errors.js';
import { DEFAULT_MIN_HISTORY } from '../ml/embed-batch.js';
import { type Embedder, localEmbedder } from '../ml/embedder.js';
import type { LoadedTwoTower } from '../ml/load-model.js';
import type { BackendChoice } from '../ml/tf.js';
import { readCurrent } from '../registry/registry.js';
import { AMML_VERSION, amMlGitCommit } from '../version.js';
import { type CommonOptions, configOf, cwdOf, reporterOf } from './common.js';
import {
  DEFAULT_EMBED_BATCH,
  type DryRunResult,
  type EmbedRunContext,
  type FullRunResult,
  type MissingRunResult,
  progressTotals,
  runDry,
  runFull,
  runMissing,
  type TargetCounts,
} from './embed-run.js';
import { type ResolvedModelRef, resolveModel } from './model-ref.js';
import { DEFAULT_MODEL_NAME, openModelStore, registryContext } from './store.js';

export interface EmbedOptions extends CommonOptions {
  items?: boolean;
  users?: boolean;
  /** Both targets (the default when neither --items nor --users is given). */
  all?: boolean;
  /** `current` (default), a published version id, or a model folder. */
  model?: string;
  /** Model name in the store. @default two_tower */
  name?: string;
  /** Rows per batch (read, inference, COPY). @default 4096 */
  batchSize?: number;
  /** Only rows lacking an embedding of the served version, written directly (no switch). */
  missing?: boolean;
  /** `i/n`, 1-based: this process embeds the ids whose stable hash falls in shard i of n. */
  shard?: string;
  /** Only switch (every shard already staged). */
  finalize?: boolean;
  resume?: boolean;
  restart?: boolean;
  dryRun?: boolean;
  dataset?: string;
  to?: string;
  /** `auto`: rebuild ANN indexes inside the switch on PGlite, keep them (readers never wait) on postgres://. */
  indexPolicy?: 'auto' | IndexPolicy;
  /** Users with fewer decisions get no embedding. @default 1 */
  minHistory?: number;
  /** Allow writing a model that is not the store's current version. */
  unpublished?: boolean;
  backend?: BackendChoice;
}

export interface EmbedResult {
  mode: 'full' | 'missing' | 'dry-run' | 'dataset';
  model: { version: string; runId: string; dir: string; source: string; published: boolean; dim: number };
  targets: EmbedTarget[];
  database?: string;
  column?: string;
  run?: { id: string; status: FullRunResult['status']; pendingShards?: string[]; shard: string };
  counts: Record<EmbedTarget, TargetCounts>;
  switch?: FullRunResult['switch'];
  determinism?: FullRunResult['determinism'];
  dryRun?: Omit<DryRunResult, 'column'>;
  dataset?: { dir: string; out: string; files: string[]; items: number; users: number; usersSkipped: number };
  tf?: { backend: string };
  durationMs: number;
  amMl: { version: string; gitCommit: string | null };
}

export function parseShard(spec: string | undefined): { index: number; count: number } {
  if (spec === undefined) return { index: 0, count: 1 };
  const m = /^(\d+)\/(\d+)$/.exec(spec.trim());
  const i = m ? Number(m[1]) : NaN;
  const n = m ? Number(m[2]) : NaN;
  if (!m || n < 1 || i < 1 || i > n || n > 1024) {
    throw new UsageError(`--shard '${spec}' must be i/n with 1 ≤ i ≤ n ≤ 1024 (e.g. --shard 2/4 for the second of four jobs).`);
  }
  return { index: i - 1, count: n };
}

function targetsOf(opts: EmbedOptions): EmbedTarget[] {
  if (opts.all || (!opts.items && !opts.users)) return [...EMBED_TARGETS];
  return EMBED_TARGETS.filter((t) => (t === 'items' ? opts.items : opts.users));
}

/** Flag combinations, checked before any work (each message names both flags). */
function checkFlags(opts: EmbedOptions): void {
  const both = (a: string, b: string) => new UsageError(`${a} and ${b} cannot be used together.`);
  if (opts.dataset !== undefined || opts.to !== undefined) {
    if (!opts.dataset || !opts.to) throw new UsageError('--dataset <dir> and --to <dir> go together.');
    for (const [flag, on] of [['--missing', opts.missing], ['--shard', opts.shard], ['--finalize', opts.finalize], ['--resume', opts.resume], ['--restart', opts.restart]] as const) {
      if (on) throw both('--dataset', flag);
    }
  }
  if (opts.missing) {
    for (const [flag, on] of [['--finalize', opts.finalize], ['--resume', opts.resume], ['--restart', opts.restart]] as const) {
      if (on) throw both('--missing', flag);
    }
  }
  if (opts.resume && opts.restart) throw both('--resume', '--restart');
  if (opts.finalize && opts.shard) throw both('--finalize', '--shard');
  if (opts.finalize && opts.restart) throw both('--finalize', '--restart');
  if (opts.all && (opts.items || opts.users)) throw both('--all', opts.items ? '--items' : '--users');
  if (opts.batchSize !== undefined && (!Number.isInteger(opts.batchSize) || opts.batchSize < 1)) {
    throw new UsageError(`--batch-size must be a positive whole number, not ${opts.batchSize}.`);
  }
}

/** Only the store's current version may be written to the live tables (one writer). */
async function assertActiveVersion(opts: EmbedOptions, ref: ResolvedModelRef): Promise<void> {
  if (!ref.published) {
    if (opts.unpublished) return;
    throw new ConflictError(
      `The model ${ref.dir} (run ${ref.manifest.runId}) is not a published version; only the store's current version may be written to the live tables.`,
      {
        code: 'VERSION_NOT_ACTIVE',
        hint: `Publish it (am-ml publish ${ref.dir}) and embed --model current, or pass --unpublished to write it anyway (for a database no Edge Function serves).`,
      },
    );
  }
  const opened = await openModelStore(opts);
  const current = await readCurrent(registryContext(opened, opts, opts.name));
  const currentVersion = current.pointer?.current.version ?? null;
  if (currentVersion !== ref.version && !opts.unpublished) {
    throw new ConflictError(
      `${ref.version} is not the current version of ${opts.name ?? DEFAULT_MODEL_NAME} in ${opened.store.url} (current: ${currentVersion ?? 'none'}); only the current version may be written to the live tables.`,
      {
        code: 'VERSION_NOT_ACTIVE',
        hint: currentVersion ? `Run \`am-ml rollback --to ${ref.version}\` first, or embed --model current.` : `Publish a version first (am-ml publish <run>).`,
        details: { model: ref.version, current: currentVersion },
      },
    );
  }
}

/** A single-target switch would leave the other table in another model's space. */
async function assertSingleTargetAllowed(db: Db, targets: EmbedTarget[], version: string, missing: boolean): Promise<void> {
  if (missing || targets.length === 2) return;
  const other = EMBED_TARGETS.find((t) => !targets.includes(t))!;
  const versions = (await liveVersions(db, other)).filter((v) => v.version !== version);
  if (versions.length) {
    throw new UsageError(
      `Switching only ${targets[0]} to ${version} would leave ${LIVE[other].table} at ${versions.map((v) => v.version).join(', ')}: a new version switches items and users together.`,
      { hint: 'Drop --items/--users (or use --all), or use --missing to add rows of the version already served.' },
    );
  }
}

export async function embed(opts: EmbedOptions = {}): Promise<EmbedResult> {
  const started = Date.now();
  checkFlags(opts);
  const shard = parseShard(opts.shard);
  const targets = targetsOf(opts);
  const cwd = cwdOf(opts);
  const reporter = reporterOf(opts);
  const batchSize = opts.batchSize ?? DEFAULT_EMBED_BATCH;

  const ref = await resolveModel({ ...opts, model: opts.model ?? 'current' });
  if (!opts.dataset) await assertActiveVersion(opts, ref);

  const phase = reporter.phase(`Loading ${ref.version} (strict weights, feature spec hash, probe check)`);
  // Offline mode embeds in this thread; database modes run the towers in a worker thread, so this thread stays
  // free to drive reads and writes while a batch is being embedded.
  let embedder: Embedder & { backend: string };
  let model: LoadedTwoTower | undefined;
  try {
    if (opts.dataset) {
      const { initTf } = await import('../ml/tf.js');
      const tf = await initTf(opts.backend ?? 'auto');
      const { loadTwoTowerFromDir } = await import('../ml/load-model-fs.js');
      model = await loadTwoTowerFromDir(ref.dir, { batchSize });
      embedder = { ...localEmbedder(model), backend: tf.backend };
    } else {
      const { startWorkerEmbedder } = await import('../ml/embedder.js');
      embedder = await startWorkerEmbedder({ modelDir: ref.dir, backend: opts.backend ?? 'auto', batchSize });
    }
    phase.succeed(`Loaded ${ref.version}: ${embedder.dim}-d towers, probe matches (TF.js ${embedder.backend})`);
  } catch (err) {
    phase.fail();
    throw err;
  }
  const base = {
    model: { version: ref.version, runId: ref.manifest.runId, dir: ref.dir, source: ref.source, published: ref.published, dim: embedder.dim },
    targets,
    tf: { backend: embedder.backend },
    amMl: { version: AMML_VERSION, gitCommit: amMlGitCommit() },
  };
  const empty = (): Record<EmbedTarget, TargetCounts> => ({ items: { read: 0, embedded: 0, skipped: 0 }, users: { read: 0, embedded: 0, skipped: 0 } });

  try {
    if (opts.dataset) {
      const { embedDataset } = await import('../ml/embed-dataset.js');
      const bars: Partial<Record<string, ReturnType<typeof reporter.progress>>> = {};
      const r = await embedDataset({
        model: model!,
        datasetDir: path.resolve(cwd, opts.dataset),
        outDir: path.resolve(cwd, opts.to!),
        batchSize,
        minHistory: opts.minHistory,
        signal: opts.signal,
        onProgress: (e) => {
          bars[e.kind] ??= reporter.progress(`Embedding ${e.kind}`, e.total, e.kind);
          bars[e.kind]!.update(e.done);
        },
      });
      Object.values(bars).forEach((b) => b?.stop());
      const counts = empty();
      counts.items = { read: r.items, embedded: r.items, skipped: 0 };
      counts.users = { read: r.users + r.usersSkipped, embedded: r.users, skipped: r.usersSkipped };
      return {
        ...base,
        mode: 'dataset',
        counts,
        dataset: { dir: opts.dataset, out: opts.to!, files: r.files, items: r.items, users: r.users, usersSkipped: r.usersSkipped },
        durationMs: Date.now() - started,
      };
    }

    const config = configOf(opts, ['db']);
    // PGlite on its own thread: reads and COPY run on one core while features and towers run on the other.
    const db = await openDb({ url: config.databaseUrl, cwd, caFile: config.databaseCaFile, pgliteWorker: true });
    try {
      await assertSingleTargetAllowed(db, targets, ref.version, Boolean(opts.missing));
      const bars = new Map<EmbedTarget, { bar: ReturnType<typeof reporter.progress>; done: number }>();
      const ctx: EmbedRunContext = {
        db,
        embedder,
        version: ref.version,
        targets,
        batchSize,
        minHistory: opts.minHistory ?? DEFAULT_MIN_HISTORY,
        signal: opts.signal,
        onShardProgress: (e) => {
          if (e.kind !== 'batch') return;
          const b = bars.get(e.target);
          if (b) b.bar.update((b.done += e.read), `${e.embedded} embedded, ${e.skipped} skipped`);
        },
        onPhase: (text) => {
          const p = reporter.phase(text);
          return () => p.succeed();
        },
      };
      const common = { ...base, database: db.displayUrl };
      if (opts.dryRun) {
        const r = await runDry(ctx, Boolean(opts.missing));
        const { column, ...rest } = r;
        return { ...common, mode: 'dry-run', column, counts: r.sample, dryRun: rest, durationMs: Date.now() - started };
      }
      if (!opts.finalize) {
        const totals = await progressTotals(db, targets, { ...(opts.missing ? { lackingVersion: ref.version } : {}), ...(shard.count > 1 ? { shard } : {}) });
        for (const t of targets) bars.set(t, { bar: reporter.progress(`Embedding ${t}`, totals[t], t), done: 0 });
      }
      try {
        if (opts.missing) {
          const r: MissingRunResult = await runMissing(ctx, shard);
          return { ...common, mode: 'missing', column: r.column, counts: r.counts, durationMs: Date.now() - started };
        }
        const indexPolicy: IndexPolicy = !opts.indexPolicy || opts.indexPolicy === 'auto' ? (db.driver === 'pglite' ? 'rebuild' : 'keep') : opts.indexPolicy;
        const r = await runFull(ctx, {
          shard,
          resume: Boolean(opts.resume),
          restart: Boolean(opts.restart),
          finalizeOnly: Boolean(opts.finalize),
          indexPolicy,
          modelSha256: ref.manifestSha256,
        });
        return {
          ...common,
          mode: 'full',
          column: r.column,
          run: { id: r.runId, status: r.status, pendingShards: r.pendingShards, shard: `${shard.index + 1}/${shard.count}` },
          counts: r.counts,
          switch: r.switch,
          determinism: r.determinism,
          durationMs: Date.now() - started,
        };
      } finally {
        for (const b of bars.values()) b.bar.stop();
      }
    } finally {
      await db.close();
    }
  } finally {
    await embedder.close();
    model?.dispose();
  }
}

export function formatEmbed(r: EmbedResult): string {
  const lines = [`model ${r.model.version} (${r.model.dim}-d, ${r.model.source}${r.model.published ? '' : ', unpublished'})`];
  const c = (t: EmbedTarget) => `${t}: ${r.counts[t].embedded} embedded, ${r.counts[t].skipped} skipped of ${r.counts[t].read} read`;
  if (r.mode === 'dataset' && r.dataset) {
    lines.push(`${c('items')}; ${c('users')}`, `wrote ${r.dataset.files.join(', ')}`);
  } else if (r.mode === 'dry-run' && r.dryRun) {
    lines.push(
      `dry run against ${r.database} (${r.column}): nothing written`,
      `would embed ${r.targets.map((t) => `${r.dryRun!.candidates[t]} ${t}`).join(' and ')}; first batch: ${r.targets.map(c).join('; ')}`,
      `served now: ${r.dryRun.served.version ?? 'nothing'}`,
    );
  } else {
    lines.push(`${r.database} (${r.column}): ${r.targets.map(c).join('; ')}`);
    if (r.run) {
      if (r.run.status === 'switched' && r.switch) {
        lines.push(
          `switched items and users to ${r.model.version} in one transaction (run ${r.run.id}): ${r.switch.written.items} item and ${r.switch.written.users} user rows, ` +
            `${r.switch.stragglers.items + r.switch.stragglers.users} stragglers, ${r.switch.removedOtherVersions.items + r.switch.removedOtherVersions.users} rows of other versions removed`,
        );
        if (r.determinism) lines.push(`re-embedded ${r.determinism.checked} stored items: max abs diff ${r.determinism.maxAbsDiff} (tolerance ${r.determinism.tolerance})`);
      } else if (r.run.status === 'waiting-for-shards') {
        lines.push(`shard ${r.run.shard} staged; waiting for ${r.run.pendingShards?.join(', ')} (the last shard to finish, or --finalize, switches)`);
      } else {
        lines.push(`run ${r.run.id} was already switched`);
      }
    } else if (r.mode === 'missing') {
      lines.push(`added to the live tables with ${r.model.version} (no switch needed)`);
    }
  }
  lines.push(`took ${(r.durationMs / 1000).toFixed(1)} s`);
  return lines.join('\n');
}
