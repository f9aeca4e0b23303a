/**
 * Sync bookkeeping in schema `am_ml` (migration 100): runs and their scope, checkpoints, failures, and the
 * per-window totals the reconciliation reads. The chunk writes themselves are in `catalog-writer.ts`.
 */
import { InternalError, UsageError } from '../errors.js';
import type {
  CatalogSource,
  OpenSyncFailure,
  RunMode,
  RunSummaryRow,
  SyncCheckpoint,
  SyncRunScope,
  SyncRunState,
} from './catalog-types.js';
import type { Db, Queryable } from './types.js';

/** Thrown inside a dry run's transaction to roll it back after the lookup. */
class PlanOnly extends InternalError {
  constructor(readonly state: SyncRunState) {
    super('dry run rollback');
  }
}

export function scopeKey(scope: SyncRunScope): string {
  return JSON.stringify({ floors: [...scope.floors].sort(), from: scope.from, to: scope.to });
}

interface CheckpointRow {
  floor: string;
  window_start: Date | string;
  window_end: Date | string;
  status: SyncCheckpoint['status'];
  total_count: number | null;
  next_offset: number;
}

function toDate(v: Date | string): Date {
  return v instanceof Date ? v : new Date(v);
}

async function openRunInTx(
  tx: Queryable,
  scope: SyncRunScope | null,
  mode: RunMode,
  meta: { newRunId: string; amMlVersion?: string },
): Promise<SyncRunState> {
  let runId: string | undefined;
  let runScope = scope;
  if (mode === 'restart' && scope) {
    await tx.query(
      `UPDATE am_ml.sync_runs SET status = 'abandoned', updated_at = now() WHERE scope_key = $1 AND status = 'running'`,
      [scopeKey(scope)],
    );
  } else {
    const found = await tx.query<{ run_id: string; scope: SyncRunScope }>(
      scope
        ? `SELECT run_id, scope FROM am_ml.sync_runs WHERE scope_key = $1 AND status = 'running' ORDER BY started_at DESC LIMIT 1`
        : `SELECT run_id, scope FROM am_ml.sync_runs WHERE status = 'running' ORDER BY started_at DESC LIMIT 1`,
      scope ? [scopeKey(scope)] : [],
    );
    if (found.rows.length) {
      runId = found.rows[0].run_id;
      runScope = typeof found.rows[0].scope === 'string' ? JSON.parse(found.rows[0].scope) : found.rows[0].scope;
    } else if (mode === 'resume') {
      throw new UsageError(
        scope
          ? `--resume: there is no unfinished sync run for ${scope.floors.join(',')} ${scope.from}..${scope.to} to resume.`
          : '--resume: there is no unfinished sync run to resume.',
        { code: 'NOTHING_TO_RESUME', hint: 'Run without --resume to start a new sync run.' },
      );
    }
  }
  if (!runScope) throw new UsageError('A sync run needs floors and a date range.');
  const resumed = runId !== undefined;
  if (!runId) {
    runId = meta.newRunId;
    await tx.query(
      `INSERT INTO am_ml.sync_runs (run_id, scope_key, scope, status, am_ml_version) VALUES ($1, $2, $3, 'running', $4)`,
      [runId, scopeKey(runScope), JSON.stringify(runScope), meta.amMlVersion ?? null],
    );
  } else {
    await tx.query(`UPDATE am_ml.sync_runs SET updated_at = now() WHERE run_id = $1`, [runId]);
  }
  const cps = await tx.query<CheckpointRow>(
    `SELECT floor, window_start, window_end, status, total_count, next_offset
       FROM am_ml.sync_checkpoints WHERE run_id = $1`,
    [runId],
  );
  return {
    runId,
    resumed,
    scope: runScope,
    checkpoints: cps.rows.map((r) => ({
      floor: r.floor,
      start: toDate(r.window_start),
      end: toDate(r.window_end),
      status: r.status,
      totalCount: r.total_count === null ? null : Number(r.total_count),
      nextOffset: Number(r.next_offset),
    })),
  };
}

/**
 * Find or create the run for `scope` per `mode` (see `RunMode`) and load its checkpoints. A dry run plans with
 * the same lookup but leaves no trace: its transaction is rolled back.
 */
export async function openSyncRun(
  db: Db,
  scope: SyncRunScope | null,
  mode: RunMode,
  meta: { newRunId: string; amMlVersion?: string; dryRun?: boolean },
): Promise<SyncRunState> {
  if (!meta.dryRun) return db.transaction((tx) => openRunInTx(tx, scope, mode, meta));
  try {
    await db.transaction(async (tx) => {
      throw new PlanOnly(await openRunInTx(tx, scope, mode, meta));
    });
  } catch (err) {
    if (err instanceof PlanOnly) return err.state;
    throw err;
  }
  throw new InternalError('dry-run transaction was not rolled back');
}

export async function openSyncFailures(db: Queryable, floors: readonly string[]): Promise<OpenSyncFailure[]> {
  const r = await db.query<{
    id: number;
    kind: 'page' | 'item';
    failure_key: string;
    floor: string | null;
    window_start: Date | string | null;
    window_end: Date | string | null;
    page_offset: number | null;
    content_id: string | null;
    reason: string;
    attempts: number;
    first_failed_at: Date | string;
  }>(
    `SELECT id, kind, failure_key, floor, window_start, window_end, page_offset, content_id, reason, attempts, first_failed_at
       FROM am_ml.sync_failures
      WHERE resolved_at IS NULL AND (floor IS NULL OR floor = ANY($1::text[]))
      ORDER BY first_failed_at, id`,
    [[...floors]],
  );
  return r.rows.map((f) => ({
    id: Number(f.id),
    kind: f.kind,
    key: f.failure_key,
    floor: f.floor,
    windowStart: f.window_start === null ? null : toDate(f.window_start),
    windowEnd: f.window_end === null ? null : toDate(f.window_end),
    pageOffset: f.page_offset === null ? null : Number(f.page_offset),
    contentId: f.content_id,
    reason: f.reason,
    attempts: Number(f.attempts),
    firstFailedAt: toDate(f.first_failed_at),
  }));
}

export async function syncRunWindows(
  db: Queryable,
  runId: string,
  sources: Readonly<Record<string, CatalogSource>>,
): Promise<RunSummaryRow[]> {
  const r = await db.query<{
    floor: string;
    window_start: Date | string;
    window_end: Date | string;
    total_count: number;
    stored: number;
    invalid: number;
    pages: number;
  }>(
    `SELECT c.floor, c.window_start, c.window_end, c.total_count,
            (SELECT count(*)::int FROM public.videos v
              WHERE v.source = s.source AND v.product_released_at BETWEEN c.window_start AND c.window_end) AS stored,
            (SELECT count(*)::int FROM am_ml.sync_failures f
              WHERE f.resolved_at IS NULL AND f.kind = 'item' AND f.run_id = c.run_id AND f.floor = c.floor
                AND f.window_start = c.window_start AND f.window_end = c.window_end) AS invalid,
            (SELECT count(*)::int FROM am_ml.sync_failures f
              WHERE f.resolved_at IS NULL AND f.kind = 'page' AND f.floor = c.floor
                AND f.window_start = c.window_start AND f.window_end = c.window_end) AS pages
       FROM am_ml.sync_checkpoints c
       JOIN jsonb_each_text($2::jsonb) AS s(floor, source) ON s.floor = c.floor
      WHERE c.run_id = $1 AND c.status = 'done'
      ORDER BY c.floor, c.window_start`,
    [runId, JSON.stringify(sources)],
  );
  return r.rows.map((w) => ({
    floor: w.floor,
    windowStart: toDate(w.window_start),
    windowEnd: toDate(w.window_end),
    totalCount: Number(w.total_count ?? 0),
    storedCount: Number(w.stored),
    openInvalidItems: Number(w.invalid),
    openFailedPages: Number(w.pages),
  }));
}

export async function finishSyncRun(db: Db, runId: string, summary: unknown, done: boolean): Promise<void> {
  await db.transaction(async (tx) => {
    await tx.query(
      `UPDATE am_ml.sync_runs SET summary = $2, updated_at = now(),
              status = CASE WHEN $3 THEN 'done' ELSE status END,
              finished_at = CASE WHEN $3 THEN now() ELSE finished_at END
        WHERE run_id = $1`,
      [runId, JSON.stringify(summary), done],
    );
    if (done) {
      // Keep the checkpoints of this run (and unfinished ones) for inspection; older finished runs' go.
      await tx.query(
        `DELETE FROM am_ml.sync_checkpoints c USING am_ml.sync_runs r
          WHERE c.run_id = r.run_id AND r.run_id <> $1 AND r.status IN ('done', 'abandoned')`,
        [runId],
      );
    }
  });
}
