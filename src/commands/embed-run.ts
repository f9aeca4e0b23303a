/**
 * The database side of `am-ml embed`, composed from core modules: item and user sources (db/embed-source), the
 * three-stage pipeline (db/embed-pipeline), staging and the one-transaction switch (db/embedding-store), and the
 * model's batches (ml/embed-batch). `embed.ts` handles flags, model resolution and output.
 */
import { ConflictError, throwIfAborted, UsageError, ValidationFailedError } from '../errors.js';
import { type EmbedShardEvent, runShard, type SourcePage } from '../db/embed-pipeline.js';
import { CANDIDATES_SQL, countCandidates, readItemPage, readItemsByIds, readUserHistories, readUserPage } from '../db/embed-source.js';
import {
  abandonRun,
  assertSingleVersion,
  dropStaging,
  type EmbeddingRow,
  type EmbedTarget,
  getRun,
  type IndexPolicy,
  LIVE,
  liveVersions,
  servedVersion,
  shardStates,
  startRun,
  switchVersion,
  type SwitchResult,
  writeLiveRows,
} from '../db/embedding-store.js';
import { assertEmbeddingDim, type EmbeddingColumn, embeddingColumn } from '../db/introspect.js';
import { checkDecisionTypes } from '../db/training-data.js';
import type { Db, Queryable } from '../db/types.js';
import type { CatalogItem } from '../ml/data/dataset.js';
import type { UserHistoryRef } from '../ml/embed-batch.js';
import type { Embedder } from '../ml/embedder.js';

/** Rows per read, inference and COPY batch: large pages amortise PGlite's per-statement cost (measured). */
export const DEFAULT_EMBED_BATCH = 4096;
/** Rows re-embedded after a switch to prove inference is deterministic (app-schema §7.5). */
const DETERMINISM_SAMPLE = 64;

export interface TargetCounts {
  read: number;
  embedded: number;
  skipped: number;
  /** Pipeline timings of this process's shard (full runs). */
  timings?: { waitReadMs: number; embedMs: number; waitWriteMs: number };
}

export interface EmbedRunContext {
  db: Db;
  /** The towers (in a worker thread for `am-ml embed`). */
  embedder: Embedder;
  version: string;
  targets: EmbedTarget[];
  batchSize: number;
  minHistory: number;
  signal?: AbortSignal;
  onShardProgress?: (e: EmbedShardEvent) => void;
  onPhase?: (text: string) => () => void;
}

/** Read both live columns and check them against the model (exit 4 before anything is written). */
export async function checkColumns(db: Queryable, targets: readonly EmbedTarget[], dim: number): Promise<EmbeddingColumn> {
  const cols = await Promise.all(targets.map((t) => embeddingColumn(db, LIVE[t].table)));
  for (const c of cols) assertEmbeddingDim(c, dim);
  if (cols.length === 2 && cols[0].formatted !== cols[1].formatted) {
    throw new ValidationFailedError(
      `Schema drift: ${cols[0].table}.embedding is ${cols[0].formatted} but ${cols[1].table}.embedding is ${cols[1].formatted}; both must have the same type.`,
      { code: 'SCHEMA_DRIFT', details: { expected: cols[0].formatted, found: cols[1].formatted } },
    );
  }
  return cols[0];
}

// ---------------------------------------------------------------------------------------------------------------
// Sources: pages of items / users turned into embedding rows
// ---------------------------------------------------------------------------------------------------------------

interface UserPayload {
  users: UserHistoryRef[];
}

function itemSource(db: Queryable, batch: number, filter: Parameters<typeof readItemPage>[3]) {
  return async (after: string | null): Promise<SourcePage<CatalogItem[]> | null> => {
    const items = await readItemPage(db, after, batch, filter);
    if (items.length === 0) return null;
    return { lastKey: items[items.length - 1].item_id, count: items.length, last: items.length < batch, payload: items };
  };
}

/** Histories of a page of users (item rows are fetched only if the embedder lacks them). */
async function readUserPayload(db: Queryable, caps: Embedder['caps'], ids: string[]): Promise<UserPayload> {
  const histories = await readUserHistories(db, ids, caps);
  return { users: ids.map((id) => ({ userId: id, likes: histories.get(id)!.likes, nopes: histories.get(id)!.nopes })) };
}

function userSource(db: Queryable, batch: number, caps: Embedder['caps'], filter: Parameters<typeof readUserPage>[3]) {
  return async (after: string | null): Promise<SourcePage<UserPayload> | null> => {
    const ids = await readUserPage(db, after, batch, filter);
    if (ids.length === 0) return null;
    return { lastKey: ids[ids.length - 1], count: ids.length, last: ids.length < batch, payload: await readUserPayload(db, caps, ids) };
  };
}

function embedUsersPayload(ctx: EmbedRunContext, db: Queryable, p: UserPayload) {
  return ctx.embedder.embedUsers(p.users, [], (ids) => readItemsByIds(db, ids), ctx.minHistory) as Promise<{ rows: EmbeddingRow[]; skipped: number }>;
}

// ---------------------------------------------------------------------------------------------------------------
// Full runs: stage this process's shards, then switch when every shard is done
// ---------------------------------------------------------------------------------------------------------------

export interface FullRunOptions {
  shard: { index: number; count: number };
  resume: boolean;
  restart: boolean;
  /** Only attempt the switch (after other processes staged every shard). */
  finalizeOnly: boolean;
  indexPolicy: IndexPolicy;
  modelSha256: string;
}

export interface FullRunResult {
  runId: string;
  status: 'switched' | 'waiting-for-shards' | 'already-switched';
  counts: Record<EmbedTarget, TargetCounts>;
  switch?: SwitchResult;
  pendingShards?: string[];
  determinism?: { checked: number; maxAbsDiff: number; tolerance: number };
  column: string;
}

/** The run of this version to join or resume, or a fresh id (`<version>#<n>`) after switched ones. */
async function runIdFor(db: Queryable, version: string): Promise<{ runId: string; existing: boolean }> {
  const { rows } = await db.query<{ run_id: string; status: string }>(
    `SELECT run_id, status FROM am_ml.embedding_runs WHERE model_version = $1 ORDER BY started_at DESC, run_id DESC LIMIT 1`,
    [version],
  );
  if (rows.length && rows[0].status !== 'switched') return { runId: rows[0].run_id, existing: true };
  const { rows: n } = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM am_ml.embedding_runs WHERE model_version = $1', [version]);
  return { runId: `${version}#${n[0].n + 1}`, existing: false };
}

export async function runFull(ctx: EmbedRunContext, opts: FullRunOptions): Promise<FullRunResult> {
  const { db, embedder, version, targets } = ctx;
  const column = await checkColumns(db, targets, embedder.dim);
  if (targets.includes('users')) await checkDecisionTypes(db);
  const counts: Record<EmbedTarget, TargetCounts> = { items: { read: 0, embedded: 0, skipped: 0 }, users: { read: 0, embedded: 0, skipped: 0 } };

  let { runId, existing } = await runIdFor(db, version);
  if (existing && opts.restart) {
    await abandonRun(db, runId);
    ({ runId } = await runIdFor(db, version));
    existing = false;
  }
  if (existing && !opts.resume && !opts.finalizeOnly) {
    const mine = (await shardStates(db, runId)).filter((s) => s.shardIndex === opts.shard.index && (s.lastKey !== null || s.done));
    if (mine.length) {
      throw new UsageError(
        `An interrupted embedding run of ${version} exists (${runId}); shard ${opts.shard.index}/${opts.shard.count} already staged rows.`,
        { hint: 'Pass --resume to continue it from its checkpoint, or --restart to discard the staged rows and start over.' },
      );
    }
  }
  if (!existing && opts.finalizeOnly) {
    throw new ConflictError(`There is no embedding run of ${version} to finalize.`, {
      code: 'EMBED_RUN_MISSING',
      hint: 'Run the shards first (am-ml embed --shard i/n), then --finalize.',
    });
  }
  const run = await startRun(db, { runId, modelVersion: version, shardCount: opts.shard.count, targets, column, modelSha256: opts.modelSha256 });
  if (run.status === 'switched') return { runId, status: 'already-switched', counts, column: column.formatted };

  if (!opts.finalizeOnly) {
    for (const target of targets) {
      const state = (await shardStates(db, runId)).find((s) => s.target === target && s.shardIndex === opts.shard.index);
      if (!state || state.done) continue;
      const filter = opts.shard.count > 1 ? { shard: opts.shard } : {};
      const common = { db, runId, target, shardIndex: opts.shard.index, column, startAfter: state.lastKey, signal: ctx.signal, onProgress: ctx.onShardProgress };
      const r =
        target === 'items'
          ? await runShard({
              ...common,
              read: itemSource(db, ctx.batchSize, filter),
              // The embedder keeps these encodings: users' histories reference them without a second read.
              embed: async (items: CatalogItem[]) => ({ rows: await embedder.embedItems(items), skipped: 0 }),
            })
          : await runShard({ ...common, read: userSource(db, ctx.batchSize, embedder.caps, filter), embed: (p: UserPayload) => embedUsersPayload(ctx, db, p) });
      counts[target] = { read: r.read, embedded: r.embedded, skipped: r.skipped, timings: r.timings };
    }
  }

  const pending = (await shardStates(db, runId)).filter((s) => !s.done);
  if (pending.length) {
    return {
      runId,
      status: 'waiting-for-shards',
      counts,
      pendingShards: pending.map((s) => `${s.target} ${s.shardIndex}/${s.shardCount}`),
      column: column.formatted,
    };
  }
  throwIfAborted(ctx.signal, `Every shard of ${runId} is staged; run \`am-ml embed --finalize\` to switch.`);
  const done = ctx.onPhase?.(`Switching the live tables to ${version} (one transaction)`);
  let sw: SwitchResult;
  try {
    sw = await switchVersion(
      db,
      {
        runId,
        modelVersion: version,
        targets,
        indexPolicy: opts.indexPolicy,
        column,
        embedStragglers: (tx, target, ids) => embedStragglers(tx, ctx, target, ids),
      },
      CANDIDATES_SQL,
    );
  } catch (err) {
    // Two shards finishing together: the other one switched first.
    if (err instanceof ConflictError && err.code === 'EMBED_RUN_SWITCHED') return { runId, status: 'already-switched', counts, column: column.formatted };
    throw err;
  } finally {
    done?.();
  }
  await assertSingleVersion(db, version, targets);
  await dropStaging(db, runId);
  const determinism = await checkDeterminism(db, ctx, column);
  await db.query(`UPDATE am_ml.embedding_runs SET summary = $2 WHERE run_id = $1`, [runId, JSON.stringify({ counts, switch: sw, determinism })]);
  return { runId, status: 'switched', counts, switch: sw, determinism, column: column.formatted };
}

/** Entities created after staging began, embedded inside the switch transaction. */
async function embedStragglers(tx: Queryable, ctx: EmbedRunContext, target: EmbedTarget, ids: string[]): Promise<EmbeddingRow[]> {
  const out: EmbeddingRow[] = [];
  for (let s = 0; s < ids.length; s += ctx.batchSize) {
    const chunk = ids.slice(s, s + ctx.batchSize);
    if (target === 'items') out.push(...(await ctx.embedder.embedItems(await readItemsByIds(tx, chunk))));
    else out.push(...(await embedUsersPayload(ctx, tx, await readUserPayload(tx, ctx.embedder.caps, chunk))).rows);
  }
  return out;
}

/** Parse pgvector's text form. */
const parseVector = (t: string): number[] => t.slice(1, -1).split(',').map(Number);

/**
 * Re-embed a fixed sample of items and compare with what was stored: the same version must give the same vector
 * (up to halfvec's float16 rounding; for vector columns up to float32 rounding, since the sample runs in a smaller
 * batch and TF.js's matmul blocking depends on the batch: measured ≤ 3e-8). Catches non-deterministic inference,
 * a model that did not load its weights, and rows written for the wrong ids.
 */
async function checkDeterminism(db: Queryable, ctx: EmbedRunContext, column: EmbeddingColumn): Promise<FullRunResult['determinism']> {
  if (!ctx.targets.includes('items')) return undefined;
  const { rows } = await db.query<{ id: string; e: string }>(
    `SELECT video_id::text AS id, embedding::text AS e FROM public.video_embeddings ORDER BY md5(video_id::text) LIMIT $1`,
    [DETERMINISM_SAMPLE],
  );
  if (rows.length === 0) return { checked: 0, maxAbsDiff: 0, tolerance: 0 };
  const items = await readItemsByIds(db, rows.map((r) => r.id));
  const fresh = new Map((await ctx.embedder.embedItems(items)).map((r) => [r.id, r.embedding]));
  // float16 keeps ~3 significant digits: half an ulp at 1.0 is 2^-11.
  const tolerance = column.type === 'halfvec' ? 2 ** -11 + 1e-7 : 1e-6;
  let maxAbsDiff = 0;
  for (const r of rows) {
    const again = fresh.get(r.id);
    if (!again) continue; // the video was deleted meanwhile
    const stored = parseVector(r.e);
    for (let i = 0; i < stored.length; i++) maxAbsDiff = Math.max(maxAbsDiff, Math.abs(stored[i] - again[i]));
  }
  if (maxAbsDiff > tolerance) {
    throw new ValidationFailedError(
      `Re-embedding ${rows.length} stored items with ${ctx.version} gave different vectors (max abs diff ${maxAbsDiff}, tolerance ${tolerance}).`,
      { code: 'NONDETERMINISTIC', details: { maxAbsDiff, tolerance, checked: rows.length } },
    );
  }
  return { checked: rows.length, maxAbsDiff, tolerance };
}

// ---------------------------------------------------------------------------------------------------------------
// --missing: rows lacking the active version, written straight into the live tables
// ---------------------------------------------------------------------------------------------------------------

export interface MissingRunResult {
  counts: Record<EmbedTarget, TargetCounts>;
  column: string;
}

export async function runMissing(ctx: EmbedRunContext, shard?: { index: number; count: number }): Promise<MissingRunResult> {
  const { db, embedder, version, targets } = ctx;
  const column = await checkColumns(db, targets, embedder.dim);
  const served = await servedVersion(db);
  if (served === null) {
    throw new ConflictError(`No model version is live yet, so there is nothing to add ${version} rows to.`, {
      code: 'VERSION_NOT_ACTIVE',
      hint: 'Run a full `am-ml embed` (without --missing) to switch every row to the current version.',
    });
  }
  if (served !== version) {
    throw new ConflictError(`The live tables serve ${served}, not ${version}; --missing only adds rows of the version already served.`, {
      code: 'VERSION_NOT_ACTIVE',
      hint: `Run a full \`am-ml embed\` to switch every row to ${version} atomically.`,
      details: { served, model: version },
    });
  }
  await assertSingleVersion(db, version, targets);
  if (targets.includes('users')) await checkDecisionTypes(db);
  const counts: Record<EmbedTarget, TargetCounts> = { items: { read: 0, embedded: 0, skipped: 0 }, users: { read: 0, embedded: 0, skipped: 0 } };
  const filter = { lackingVersion: version, ...(shard && shard.count > 1 ? { shard } : {}) };
  for (const target of targets) {
    let after: string | null = null;
    for (;;) {
      throwIfAborted(ctx.signal, `Rows written so far are live with ${version}; run --missing again to continue.`);
      let page: SourcePage<CatalogItem[] | UserPayload> | null;
      page = target === 'items' ? await itemSource(db, ctx.batchSize, filter)(after) : await userSource(db, ctx.batchSize, embedder.caps, filter)(after);
      if (!page) break;
      const embedded =
        target === 'items'
          ? { rows: (await embedder.embedItems(page.payload as CatalogItem[])) as EmbeddingRow[], skipped: 0 }
          : await embedUsersPayload(ctx, db, page.payload as UserPayload);
      await db.transaction((tx) => writeLiveRows(tx, target, version, column, embedded.rows));
      counts[target].read += page.count;
      counts[target].embedded += embedded.rows.length;
      counts[target].skipped += embedded.skipped;
      ctx.onShardProgress?.({ kind: 'batch', target, shardIndex: 0, read: page.count, embedded: embedded.rows.length, skipped: embedded.skipped });
      if (page.last) break;
      after = page.lastKey;
    }
  }
  await assertSingleVersion(db, version, targets);
  return { counts, column: column.formatted };
}

// ---------------------------------------------------------------------------------------------------------------
// --dry-run: every check, one batch per target in memory, nothing written
// ---------------------------------------------------------------------------------------------------------------

export interface DryRunResult {
  column: string;
  candidates: Record<EmbedTarget, number>;
  sample: Record<EmbedTarget, TargetCounts>;
  served: { version: string | null; versions: Record<EmbedTarget, { version: string | null; rows: number }[]> };
}

export async function runDry(ctx: EmbedRunContext, missing: boolean): Promise<DryRunResult> {
  const { db, embedder, version, targets } = ctx;
  const column = await checkColumns(db, targets, embedder.dim);
  if (targets.includes('users')) await checkDecisionTypes(db);
  const filter = missing ? { lackingVersion: version } : {};
  const candidates = { items: 0, users: 0 };
  const sample: Record<EmbedTarget, TargetCounts> = { items: { read: 0, embedded: 0, skipped: 0 }, users: { read: 0, embedded: 0, skipped: 0 } };
  for (const target of targets) {
    candidates[target] = await countCandidates(db, target, filter);
    if (target === 'items') {
      const page = await itemSource(db, ctx.batchSize, filter)(null);
      if (page) sample.items = { read: page.count, embedded: (await embedder.embedItems(page.payload)).length, skipped: 0 };
    } else {
      const page = await userSource(db, ctx.batchSize, embedder.caps, filter)(null);
      if (page) {
        const r = await embedUsersPayload(ctx, db, page.payload);
        sample.users = { read: page.count, embedded: r.rows.length, skipped: r.skipped };
      }
    }
  }
  return {
    column: column.formatted,
    candidates,
    sample,
    served: { version: await servedVersion(db), versions: { items: await liveVersions(db, 'items'), users: await liveVersions(db, 'users') } },
  };
}

/** Totals for progress bars. */
export async function progressTotals(db: Queryable, targets: readonly EmbedTarget[], filter: Parameters<typeof countCandidates>[2]): Promise<Record<EmbedTarget, number>> {
  const out = { items: 0, users: 0 };
  for (const t of targets) out[t] = await countCandidates(db, t, filter);
  return out;
}

export { getRun };
