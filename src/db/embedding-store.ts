/**
 * Where embeddings are written (issue 7, app-schema §3). The serving query only serves the model version of the most
 * recently updated `video_embeddings` row, so a new version must appear everywhere at once:
 *
 *   1. rows are binary-COPied into per-run staging tables (same column type as live), each batch in one transaction
 *      together with its shard's keyset checkpoint (a killed run resumes without gaps or duplicates);
 *   2. the switch copies every staged row into the live tables, items and users together, in ONE transaction that
 *      also removes rows of any other version (vectors of another model live in another space: serving them is
 *      wrong), so a reader sees the old version everywhere or the new one everywhere;
 *   3. afterwards a fresh read verifies that exactly one version remains.
 */
import { createHash } from 'node:crypto';
import { ConflictError, ValidationFailedError } from '../errors.js';
import type { CopyColumn, Db, Queryable } from './types.js';
import type { EmbeddingColumn } from './introspect.js';

export type EmbedTarget = 'items' | 'users';
export const EMBED_TARGETS: readonly EmbedTarget[] = ['items', 'users'];

/** The live tables and the entity tables their keys reference. */
export const LIVE = {
  items: { table: 'public.video_embeddings', key: 'video_id', entity: 'public.videos' },
  users: { table: 'public.user_embeddings', key: 'user_id', entity: 'auth.users' },
} as const;

/** Index rebuilds need memory; pgvector falls back to a much slower on-disk build when the graph does not fit. */
const INDEX_BUILD_MEMORY = '1GB';

export interface EmbeddingRow {
  id: string;
  embedding: Float32Array | number[];
}

export interface RunSpec {
  runId: string;
  modelVersion: string;
  shardCount: number;
  targets: readonly EmbedTarget[];
  /** The live columns' type, read from the database (both targets must agree). */
  column: Pick<EmbeddingColumn, 'type' | 'dim'>;
  modelSha256?: string;
}

export interface RunRecord {
  runId: string;
  modelVersion: string;
  status: 'running' | 'staged' | 'switched' | 'failed' | 'abandoned';
  shardCount: number;
  targets: EmbedTarget[];
  embeddingType: string | null;
  dim: number | null;
  startedAt: Date;
  switchedAt: Date | null;
}

export interface ShardState {
  target: EmbedTarget;
  shardIndex: number;
  shardCount: number;
  lastKey: string | null;
  rowsWritten: number;
  rowsSkipped: number;
  done: boolean;
}

/** Staging table of a run: a short hash keeps the identifier valid whatever the version string holds. */
export function stagingTable(runId: string, target: EmbedTarget): string {
  const h = createHash('sha256').update(runId).digest('hex').slice(0, 12);
  return `am_ml.embed_stage_${target}_${h}`;
}

export function embeddingCopyColumn(column: Pick<EmbeddingColumn, 'type' | 'dim'>): CopyColumn {
  return { name: 'embedding', type: { kind: column.type, dim: column.dim } };
}

function rowToRun(r: Record<string, unknown>): RunRecord {
  return {
    runId: String(r.run_id),
    modelVersion: String(r.model_version),
    status: r.status as RunRecord['status'],
    shardCount: Number(r.shard_count),
    targets: (r.targets as EmbedTarget[]) ?? [...EMBED_TARGETS],
    embeddingType: (r.embedding_type as string) ?? null,
    dim: r.dim === null || r.dim === undefined ? null : Number(r.dim),
    startedAt: r.started_at as Date,
    switchedAt: (r.switched_at as Date) ?? null,
  };
}

export async function getRun(db: Queryable, runId: string): Promise<RunRecord | null> {
  const { rows } = await db.query('SELECT * FROM am_ml.embedding_runs WHERE run_id = $1', [runId]);
  return rows.length ? rowToRun(rows[0]) : null;
}

/**
 * Create the run (or join it: shards of the same run share it) and its staging tables. A run that exists with other
 * parameters is a conflict: mixing shard layouts or column types would stage rows that cannot be switched together.
 */
export async function startRun(db: Db, spec: RunSpec): Promise<RunRecord> {
  return db.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`am_ml.embed:${spec.runId}`]);
    const existing = await getRun(tx, spec.runId);
    if (existing) {
      const mismatch: string[] = [];
      if (existing.modelVersion !== spec.modelVersion) mismatch.push(`model version ${existing.modelVersion} vs ${spec.modelVersion}`);
      if (existing.shardCount !== spec.shardCount) mismatch.push(`shard count ${existing.shardCount} vs ${spec.shardCount}`);
      if (existing.embeddingType !== spec.column.type || existing.dim !== spec.column.dim) {
        mismatch.push(`column ${existing.embeddingType}(${existing.dim}) vs ${spec.column.type}(${spec.column.dim})`);
      }
      if ([...existing.targets].sort().join() !== [...spec.targets].sort().join()) {
        mismatch.push(`targets ${existing.targets.join('+')} vs ${spec.targets.join('+')}`);
      }
      if (mismatch.length) {
        throw new ConflictError(`Embedding run ${spec.runId} already exists with other parameters (${mismatch.join('; ')}).`, {
          code: 'EMBED_RUN_MISMATCH',
          hint: 'Use the same --shard n and targets for every shard of a run, or start over with --restart.',
        });
      }
      if (existing.status === 'switched') return existing;
    } else {
      await tx.query(
        `INSERT INTO am_ml.embedding_runs (run_id, model_version, status, shard_count, embedding_type, dim, targets, model_sha256)
         VALUES ($1, $2, 'running', $3, $4, $5, $6, $7)`,
        [spec.runId, spec.modelVersion, spec.shardCount, spec.column.type, spec.column.dim, spec.targets, spec.modelSha256 ?? null],
      );
    }
    for (const target of spec.targets) {
      // A bare heap, no index: COPY into it is what makes staging fast. Duplicates cannot arise (each batch commits
      // with its checkpoint), and would make the switch's upsert fail loudly rather than pass silently.
      await tx.exec(
        `CREATE TABLE IF NOT EXISTS ${stagingTable(spec.runId, target)} (id uuid NOT NULL, embedding ${spec.column.type}(${spec.column.dim}) NOT NULL)`,
      );
      for (let i = 0; i < spec.shardCount; i++) {
        await tx.query(
          `INSERT INTO am_ml.embedding_shards (run_id, target, shard_index, shard_count) VALUES ($1, $2, $3, $4)
           ON CONFLICT (run_id, target, shard_index) DO NOTHING`,
          [spec.runId, target, i, spec.shardCount],
        );
      }
    }
    return (await getRun(tx, spec.runId))!;
  });
}

export async function shardStates(db: Queryable, runId: string): Promise<ShardState[]> {
  const { rows } = await db.query(
    'SELECT * FROM am_ml.embedding_shards WHERE run_id = $1 ORDER BY target, shard_index',
    [runId],
  );
  return rows.map((r) => ({
    target: r.target as EmbedTarget,
    shardIndex: Number(r.shard_index),
    shardCount: Number(r.shard_count),
    lastKey: (r.last_key as string) ?? null,
    rowsWritten: Number(r.rows_written),
    rowsSkipped: Number(r.rows_skipped),
    done: Boolean(r.done),
  }));
}

export interface StageBatchInput {
  runId: string;
  target: EmbedTarget;
  shardIndex: number;
  column: Pick<EmbeddingColumn, 'type' | 'dim'>;
  rows: readonly EmbeddingRow[];
  /** Keyset position after this batch (the largest id read, embedded or skipped). */
  lastKey: string;
  /** Rows read but not embedded (e.g. users without history). */
  skipped: number;
  /** This was the shard's last batch. */
  done: boolean;
}

/** Stage one batch and move the shard's checkpoint, atomically. */
export async function stageBatch(db: Db, input: StageBatchInput): Promise<void> {
  await db.transaction(async (tx) => {
    if (input.rows.length) {
      await tx.copyRows(
        stagingTable(input.runId, input.target),
        [{ name: 'id', type: 'uuid' }, embeddingCopyColumn(input.column)],
        input.rows.map((r) => [r.id, r.embedding]),
      );
    }
    const r = await tx.query(
      `UPDATE am_ml.embedding_shards
          SET last_key = $4, rows_written = rows_written + $5, rows_skipped = rows_skipped + $6, done = $7, updated_at = now()
        WHERE run_id = $1 AND target = $2 AND shard_index = $3 AND done = false`,
      [input.runId, input.target, input.shardIndex, input.lastKey, input.rows.length, input.skipped, input.done],
    );
    if (r.rowCount !== 1) {
      throw new ConflictError(`Shard ${input.shardIndex} of ${input.target} in run ${input.runId} is already complete or missing.`, {
        code: 'EMBED_SHARD_DONE',
        hint: 'Another process may be running the same shard; run each --shard i/n once.',
      });
    }
  });
}

/** Mark a shard complete without a batch (it had nothing left to read). */
export async function finishShard(db: Queryable, runId: string, target: EmbedTarget, shardIndex: number): Promise<void> {
  await db.query(
    `UPDATE am_ml.embedding_shards SET done = true, updated_at = now() WHERE run_id = $1 AND target = $2 AND shard_index = $3`,
    [runId, target, shardIndex],
  );
}

export interface LiveVersionCount {
  version: string | null;
  rows: number;
}

/** Versions present in a live table with their row counts (newest first by latest update). */
export async function liveVersions(db: Queryable, target: EmbedTarget): Promise<LiveVersionCount[]> {
  const { rows } = await db.query<{ version: string | null; rows: number }>(
    `SELECT model_version AS version, count(*)::int AS rows FROM ${LIVE[target].table}
      GROUP BY model_version ORDER BY max(updated_at) DESC NULLS LAST`,
  );
  return rows;
}

/** The version serving uses: the model_version of the most recently updated video_embeddings row. */
export async function servedVersion(db: Queryable): Promise<string | null> {
  const { rows } = await db.query<{ v: string | null }>(
    `SELECT model_version AS v FROM public.video_embeddings ORDER BY updated_at DESC NULLS LAST LIMIT 1`,
  );
  return rows.length ? rows[0].v : null;
}

/** Fail (exit 6) unless every live row of the given targets carries `version`. */
export async function assertSingleVersion(db: Queryable, version: string, targets: readonly EmbedTarget[]): Promise<void> {
  const problems: string[] = [];
  for (const t of targets) {
    const others = (await liveVersions(db, t)).filter((v) => v.version !== version);
    if (others.length) {
      problems.push(`${LIVE[t].table} has ${others.map((o) => `${o.rows} row(s) of ${o.version ?? 'no version'}`).join(', ')}`);
    }
  }
  if (problems.length) {
    throw new ConflictError(`Mixed model versions after writing ${version}: ${problems.join('; ')}.`, {
      code: 'MIXED_VERSIONS',
      hint: 'Another writer (for example the old daily embedding job) is writing embeddings. Stop it, then run `am-ml embed` again to switch everything to one version.',
      details: { expected: version, problems },
    });
  }
}

export type IndexPolicy = 'keep' | 'rebuild';

export interface SwitchInput {
  runId: string;
  modelVersion: string;
  targets: readonly EmbedTarget[];
  /**
   * `keep`: upsert with the ANN indexes in place (readers never wait; slow per row on PGlite).
   * `rebuild`: drop the embedding indexes, write, recreate them, all inside the switch transaction (fast for bulk
   * writes; readers of the table wait for the commit).
   */
  indexPolicy: IndexPolicy;
  /**
   * Runs inside the switch transaction before the upsert, with the ids that are live entities but have no staged
   * row (created after staging began). It must stage them (return the rows) so the switch leaves nothing behind.
   */
  embedStragglers?: (tx: Queryable, target: EmbedTarget, ids: string[]) => Promise<EmbeddingRow[]>;
  column: Pick<EmbeddingColumn, 'type' | 'dim'>;
}

export interface SwitchResult {
  written: Record<EmbedTarget, number>;
  removedOtherVersions: Record<EmbedTarget, number>;
  stragglers: Record<EmbedTarget, number>;
  indexesRebuilt: string[];
}

/** Entity ids that should have an embedding but have no staged row. */
async function missingFromStaging(tx: Queryable, runId: string, target: EmbedTarget, candidatesSql: string): Promise<string[]> {
  const { rows } = await tx.query<{ id: string }>(
    `SELECT c.id FROM (${candidatesSql}) c
      WHERE NOT EXISTS (SELECT 1 FROM ${stagingTable(runId, target)} s WHERE s.id = c.id) ORDER BY c.id`,
  );
  return rows.map((r) => r.id);
}

/** Definitions of ANN indexes on a live table's embedding column (HNSW / IVFFlat). */
async function annIndexes(tx: Queryable, table: string): Promise<{ name: string; def: string }[]> {
  const [schema, name] = table.split('.');
  const { rows } = await tx.query<{ name: string; def: string }>(
    `SELECT indexname AS name, indexdef AS def FROM pg_indexes
      WHERE schemaname = $1 AND tablename = $2 AND indexdef ~* 'USING (hnsw|ivfflat)'`,
    [schema, name],
  );
  return rows;
}

/**
 * Switch the live tables to the run's version in one transaction: stage stragglers, (optionally drop indexes),
 * upsert every staged row with `updated_at = now()` (one timestamp for the whole transaction, so the serving rule's
 * "most recent row" carries the new version), delete rows of any other version, recreate indexes, record the switch.
 *
 * `candidates` gives, per target, the SQL selecting the ids that should end up embedded (all videos; users with
 * history), used to find stragglers.
 */
export async function switchVersion(
  db: Db,
  input: SwitchInput,
  candidates: Partial<Record<EmbedTarget, string>>,
): Promise<SwitchResult> {
  const result: SwitchResult = {
    written: { items: 0, users: 0 },
    removedOtherVersions: { items: 0, users: 0 },
    stragglers: { items: 0, users: 0 },
    indexesRebuilt: [],
  };
  await db.transaction(async (tx) => {
    // Writers wait; readers do not (SHARE ROW EXCLUSIVE conflicts with every write lock but not with SELECT).
    await tx.exec(`LOCK TABLE ${input.targets.map((t) => LIVE[t].table).join(', ')} IN SHARE ROW EXCLUSIVE MODE`);
    const run = await getRun(tx, input.runId);
    if (!run) throw new ConflictError(`Embedding run ${input.runId} does not exist.`, { code: 'EMBED_RUN_MISSING' });
    if (run.status === 'switched') {
      throw new ConflictError(`Embedding run ${input.runId} was already switched at ${run.switchedAt?.toISOString()}.`, {
        code: 'EMBED_RUN_SWITCHED',
      });
    }
    const pending = (await shardStates(tx, input.runId)).filter((s) => !s.done && input.targets.includes(s.target));
    if (pending.length) {
      throw new ConflictError(
        `Cannot switch to ${input.modelVersion}: ${pending.length} shard(s) are not complete (${pending
          .map((s) => `${s.target} ${s.shardIndex}/${s.shardCount}`)
          .join(', ')}).`,
        { code: 'EMBED_SHARDS_PENDING', hint: 'Run the remaining shards (or --resume them), then --finalize.' },
      );
    }
    for (const target of input.targets) {
      const sql = candidates[target];
      if (!sql) continue;
      const ids = await missingFromStaging(tx, input.runId, target, sql);
      if (ids.length && input.embedStragglers) {
        const rows = await input.embedStragglers(tx, target, ids);
        if (rows.length) {
          await tx.copyRows(
            stagingTable(input.runId, target),
            [{ name: 'id', type: 'uuid' }, embeddingCopyColumn(input.column)],
            rows.map((r) => [r.id, r.embedding]),
          );
        }
        result.stragglers[target] = rows.length;
      }
    }
    const dropped: { name: string; def: string }[] = [];
    if (input.indexPolicy === 'rebuild') {
      for (const target of input.targets) {
        for (const idx of await annIndexes(tx, LIVE[target].table)) {
          await tx.exec(`DROP INDEX ${LIVE[target].table.split('.')[0]}.${idx.name}`);
          dropped.push(idx);
        }
      }
    }
    for (const target of input.targets) {
      const live = LIVE[target];
      const staged = stagingTable(input.runId, target);
      const up = await tx.query(
        `INSERT INTO ${live.table} (${live.key}, embedding, model_version, updated_at)
         SELECT s.id, s.embedding, $1, now() FROM ${staged} s
          WHERE EXISTS (SELECT 1 FROM ${live.entity} e WHERE e.id = s.id)
         ON CONFLICT (${live.key}) DO UPDATE
           SET embedding = EXCLUDED.embedding, model_version = EXCLUDED.model_version, updated_at = EXCLUDED.updated_at`,
        [input.modelVersion],
      );
      result.written[target] = up.rowCount;
      const del = await tx.query(`DELETE FROM ${live.table} WHERE model_version IS DISTINCT FROM $1`, [input.modelVersion]);
      result.removedOtherVersions[target] = del.rowCount;
    }
    if (dropped.length) {
      await tx.exec(`SET LOCAL maintenance_work_mem = '${INDEX_BUILD_MEMORY}'`);
      for (const idx of dropped) {
        await tx.exec(idx.def);
        result.indexesRebuilt.push(idx.name);
      }
    }
    await tx.query(
      `UPDATE am_ml.embedding_runs SET status = 'switched', switched_at = now(), finished_at = now(),
              items_written = $2, users_written = $3 WHERE run_id = $1`,
      [input.runId, result.written.items, result.written.users],
    );
    await tx.query(
      `INSERT INTO am_ml.settings (key, value, updated_at) VALUES ('active_embedding_version', $1, now())
       ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()`,
      [JSON.stringify({ version: input.modelVersion, runId: input.runId })],
    );
  });
  return result;
}

/** Drop a run's staging tables (after a switch, or when abandoning a run). */
export async function dropStaging(db: Queryable, runId: string): Promise<void> {
  for (const target of EMBED_TARGETS) await db.exec(`DROP TABLE IF EXISTS ${stagingTable(runId, target)}`);
}

/** Forget a run's progress and staged rows (`--restart`). A switched run is history and is kept. */
export async function abandonRun(db: Db, runId: string): Promise<void> {
  await db.transaction(async (tx) => {
    await dropStaging(tx, runId);
    await tx.query(`DELETE FROM am_ml.embedding_runs WHERE run_id = $1 AND status <> 'switched'`, [runId]);
  });
}

/**
 * Write rows of the active version straight into a live table (call inside a transaction: it uses a temp table) (daily `--missing` items, new items during
 * sync-dmm). Refuses unless the live table serves exactly this version already: writing another version row by
 * row is the partial switch the serving rule punishes.
 */
export async function writeLiveRows(
  tx: Queryable,
  target: EmbedTarget,
  version: string,
  column: Pick<EmbeddingColumn, 'type' | 'dim'>,
  rows: readonly EmbeddingRow[],
  opts: {
    /**
     * `full`: no row of another version may exist (a scan of the table). `served`: the newest row must carry this
     * version (an index lookup), for callers that ran the full check once before many small writes (sync chunks).
     */
    check?: 'full' | 'served';
  } = {},
): Promise<number> {
  if (rows.length === 0) return 0;
  for (const r of rows) {
    if (r.embedding.length !== column.dim) {
      throw new ValidationFailedError(
        `Dimension mismatch: an embedding has ${r.embedding.length} values but ${LIVE[target].table}.embedding is ${column.type}(${column.dim}).`,
        { code: 'DIMENSION_MISMATCH', details: { expected: column.dim, found: r.embedding.length } },
      );
    }
  }
  const versions =
    opts.check === 'served' && target === 'items'
      ? await (async () => {
          const served = await servedVersion(tx);
          return served === null || served === version ? [] : [{ version: served, rows: 1 }];
        })()
      : (await liveVersions(tx, target)).filter((v) => v.version !== version);
  if (versions.length) {
    throw new ConflictError(
      `Refusing to add ${version} rows to ${LIVE[target].table}: it holds ${versions.map((v) => `${v.rows} row(s) of ${v.version}`).join(', ')}.`,
      {
        code: 'VERSION_NOT_ACTIVE',
        hint: `Run a full \`am-ml embed\` to switch every row to ${version} atomically first.`,
      },
    );
  }
  const live = LIVE[target];
  const temp = `pg_temp.am_ml_live_${target}`;
  await tx.exec(`CREATE TEMP TABLE IF NOT EXISTS am_ml_live_${target} (id uuid PRIMARY KEY, embedding ${column.type}(${column.dim}))`);
  await tx.copyRows(temp, [{ name: 'id', type: 'uuid' }, embeddingCopyColumn(column)], rows.map((r) => [r.id, r.embedding]));
  const r = await tx.query(
    `INSERT INTO ${live.table} (${live.key}, embedding, model_version, updated_at)
     SELECT s.id, s.embedding, $1, now() FROM ${temp} s WHERE EXISTS (SELECT 1 FROM ${live.entity} e WHERE e.id = s.id)
     ON CONFLICT (${live.key}) DO UPDATE
       SET embedding = EXCLUDED.embedding, model_version = EXCLUDED.model_version, updated_at = EXCLUDED.updated_at`,
    [version],
  );
  await tx.exec(`DROP TABLE ${temp}`);
  return r.rowCount;
}
