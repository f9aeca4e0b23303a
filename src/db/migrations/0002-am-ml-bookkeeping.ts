import type { Migration } from './types.js';

/**
 * am-ml's own state lives in schema `am_ml`, apart from the app's tables: settings chosen at `init`, sync
 * checkpoints and failures (so a killed sync resumes and failed pages are retried first), and embedding runs
 * (so a killed re-embed resumes and a version switch is recorded).
 */
export const amMlBookkeeping: Migration = {
  id: 2,
  name: 'am-ml-bookkeeping',
  sql: () => `
CREATE TABLE IF NOT EXISTS am_ml.settings (
  key text PRIMARY KEY,
  value jsonb NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- One row per (floor, date window): where paging stands. Written in the same transaction as the page's rows.
CREATE TABLE IF NOT EXISTS am_ml.sync_checkpoints (
  floor text NOT NULL,
  window_start timestamptz NOT NULL,
  window_end timestamptz NOT NULL,
  total_count int,
  next_offset int NOT NULL DEFAULT 1,
  done boolean NOT NULL DEFAULT false,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (floor, window_start, window_end)
);

-- Pages that failed after every retry and items that failed validation, with the reason; retried first next run.
CREATE TABLE IF NOT EXISTS am_ml.sync_failures (
  id bigserial PRIMARY KEY,
  kind text NOT NULL CHECK (kind IN ('page', 'item')),
  floor text,
  window_start timestamptz,
  window_end timestamptz,
  page_offset int,
  content_id text,
  reason text NOT NULL,
  raw jsonb,
  attempts int NOT NULL DEFAULT 1,
  first_failed_at timestamptz NOT NULL DEFAULT now(),
  last_failed_at timestamptz NOT NULL DEFAULT now(),
  resolved_at timestamptz
);
CREATE INDEX IF NOT EXISTS idx_sync_failures_open ON am_ml.sync_failures (kind) WHERE resolved_at IS NULL;

-- One row per re-embedding run of a model version into the live tables.
CREATE TABLE IF NOT EXISTS am_ml.embedding_runs (
  run_id text PRIMARY KEY,
  model_version text NOT NULL,
  status text NOT NULL CHECK (status IN ('running', 'staged', 'switched', 'failed', 'abandoned')),
  shard_count int NOT NULL DEFAULT 1,
  items_written bigint NOT NULL DEFAULT 0,
  users_written bigint NOT NULL DEFAULT 0,
  summary jsonb,
  started_at timestamptz NOT NULL DEFAULT now(),
  finished_at timestamptz
);
`,
};
