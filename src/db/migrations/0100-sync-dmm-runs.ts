import type { Migration } from './types.js';

/**
 * Sync-dmm bookkeeping on top of migration 2 (which created `am_ml.sync_checkpoints` and `am_ml.sync_failures`):
 *
 * - `am_ml.sync_runs`: one row per sync run (its scope: floors and date range). Checkpoints belong to a run, so an
 *   interrupted run resumes where it stopped while a finished run's scope can be synced again from scratch (a
 *   scheduled sync of the last N days must re-read them, not skip them as done).
 * - `sync_checkpoints` gains `run_id` (part of the key), `status` (`split` = the window was split into halves,
 *   `paging` = `next_offset` is where paging stands, `done`) and `stored_count` (videos stored for the window when it
 *   finished, for the totals-vs-stored reconciliation).
 * - `sync_failures` gains `failure_key` (one open row per failing page or item: a repeat failure increments
 *   `attempts`), `run_id` and `resolution` (why it was closed: refetched, written, gone).
 */
export const syncDmmRuns: Migration = {
  id: 100,
  name: 'sync-dmm-runs',
  sql: () => `
CREATE TABLE IF NOT EXISTS am_ml.sync_runs (
  run_id text PRIMARY KEY,
  scope_key text NOT NULL,
  scope jsonb NOT NULL,
  status text NOT NULL CHECK (status IN ('running', 'done', 'abandoned')),
  am_ml_version text,
  summary jsonb,
  started_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  finished_at timestamptz
);
CREATE INDEX IF NOT EXISTS idx_sync_runs_scope ON am_ml.sync_runs (scope_key, started_at DESC);

ALTER TABLE am_ml.sync_checkpoints ADD COLUMN IF NOT EXISTS run_id text NOT NULL DEFAULT 'legacy';
ALTER TABLE am_ml.sync_checkpoints ADD COLUMN IF NOT EXISTS status text NOT NULL DEFAULT 'paging';
ALTER TABLE am_ml.sync_checkpoints ADD COLUMN IF NOT EXISTS stored_count int;
UPDATE am_ml.sync_checkpoints SET status = 'done' WHERE done AND status <> 'done';
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'sync_checkpoints_status_check'
                   AND conrelid = 'am_ml.sync_checkpoints'::regclass) THEN
    ALTER TABLE am_ml.sync_checkpoints
      ADD CONSTRAINT sync_checkpoints_status_check CHECK (status IN ('split', 'paging', 'done'));
  END IF;
  -- The key grows a run id: the same window is paged again by a later run.
  IF EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = 'sync_checkpoints_pkey'
               AND c.conrelid = 'am_ml.sync_checkpoints'::regclass
               AND array_length(c.conkey, 1) = 3) THEN
    ALTER TABLE am_ml.sync_checkpoints DROP CONSTRAINT sync_checkpoints_pkey;
    ALTER TABLE am_ml.sync_checkpoints ADD CONSTRAINT sync_checkpoints_pkey PRIMARY KEY (run_id, floor, window_start, window_end);
  END IF;
END $$;

ALTER TABLE am_ml.sync_failures ADD COLUMN IF NOT EXISTS failure_key text;
ALTER TABLE am_ml.sync_failures ADD COLUMN IF NOT EXISTS run_id text;
ALTER TABLE am_ml.sync_failures ADD COLUMN IF NOT EXISTS resolution text;
UPDATE am_ml.sync_failures
   SET failure_key = CASE WHEN kind = 'item' AND content_id IS NOT NULL THEN 'item:' || content_id
                          ELSE kind || ':legacy:' || id END
 WHERE failure_key IS NULL;
CREATE UNIQUE INDEX IF NOT EXISTS uq_sync_failures_open_key ON am_ml.sync_failures (failure_key) WHERE resolved_at IS NULL;
`,
};
