import type { Migration } from './types.js';

/**
 * Bookkeeping for re-embedding runs (issue 7). A run embeds one model version; its rows go into staging tables
 * (created per run with the live columns' exact type) and reach the live tables in one switch transaction.
 * Shards (`--shard i/n`) checkpoint their keyset position per target, in the same transaction as their rows, so a
 * killed shard resumes exactly where its last committed batch ended.
 */
export const embeddingStaging: Migration = {
  id: 200,
  name: 'embedding-staging',
  sql: () => `
ALTER TABLE am_ml.embedding_runs ADD COLUMN IF NOT EXISTS embedding_type text;
ALTER TABLE am_ml.embedding_runs ADD COLUMN IF NOT EXISTS dim int;
ALTER TABLE am_ml.embedding_runs ADD COLUMN IF NOT EXISTS targets text[] NOT NULL DEFAULT '{items,users}';
ALTER TABLE am_ml.embedding_runs ADD COLUMN IF NOT EXISTS model_sha256 text;
ALTER TABLE am_ml.embedding_runs ADD COLUMN IF NOT EXISTS switched_at timestamptz;

CREATE TABLE IF NOT EXISTS am_ml.embedding_shards (
  run_id text NOT NULL REFERENCES am_ml.embedding_runs(run_id) ON DELETE CASCADE,
  target text NOT NULL CHECK (target IN ('items', 'users')),
  shard_index int NOT NULL,
  shard_count int NOT NULL,
  last_key uuid,
  rows_written bigint NOT NULL DEFAULT 0,
  rows_skipped bigint NOT NULL DEFAULT 0,
  done boolean NOT NULL DEFAULT false,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (run_id, target, shard_index)
);
`,
};
