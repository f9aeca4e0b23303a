/**
 * Applies pending migrations, each in its own transaction under an advisory lock (two concurrent `migrate` runs
 * serialise instead of racing), and records them in `am_ml.schema_migrations`. Safe to run any number of times.
 */
import { DbError, UsageError } from '../errors.js';
import { hnswIndexSql } from './migrations/0001-app-schema.js';
import { type EmbeddingType, type Migration, MIGRATIONS } from './migrations/index.js';
import type { Db } from './types.js';

export const DEFAULT_EMBEDDING_TYPE: EmbeddingType = 'halfvec';
export const DEFAULT_EMBEDDING_DIM = 128;
/** pgvector's limits: vector up to 16,000 dims (HNSW 2,000), halfvec up to 16,000 (HNSW 4,000). */
export const MAX_EMBEDDING_DIM = 16_000;
const MIGRATION_LOCK_KEY = 'am_ml.migrate';

export type MigrateEvent =
  | { kind: 'extension'; name: string; action: 'present' | 'created' }
  | { kind: 'migration'; id: number; name: string }
  | { kind: 'index'; name: string };

export interface MigrateOptions {
  embeddingType?: EmbeddingType;
  dim?: number;
  /**
   * Create the HNSW index on video_embeddings. @default true on postgres://, false on the embedded PGlite (see
   * MigrationContext.annIndex). `true` also adds the index to a database migrated earlier without it.
   */
  annIndex?: boolean;
  /** Report what would be applied without applying it. */
  dryRun?: boolean;
  /** CLI version recorded with each applied migration. */
  amMlVersion?: string;
  onProgress?: (e: MigrateEvent) => void;
  migrations?: readonly Migration[];
}

export interface MigrateResult {
  applied: { id: number; name: string }[];
  alreadyApplied: number;
  schemaVersion: number;
  dryRun: boolean;
}

/** Make sure pgvector is installed, or say exactly how to get it. */
export async function ensureVectorExtension(db: Db, onProgress?: (e: MigrateEvent) => void): Promise<void> {
  const { rows } = await db.query<{ installed_version: string | null }>(
    `SELECT installed_version FROM pg_available_extensions WHERE name = 'vector'`,
  );
  if (rows.length === 0) {
    throw new DbError(
      `The database ${db.displayUrl} does not have the pgvector extension ('vector') available, and am-ml's embedding tables need it.`,
      {
        code: 'DB_EXTENSION_MISSING',
        service: db.driver,
        target: db.displayUrl,
        hint:
          'Install pgvector on the server (Debian/Ubuntu: apt install postgresql-<major>-pgvector; from source: https://github.com/pgvector/pgvector), ' +
          'then run `am-ml db migrate` again. On Supabase, enable "vector" under Database → Extensions. The embedded default (pglite://) has it built in.',
      },
    );
  }
  if (rows[0].installed_version) {
    onProgress?.({ kind: 'extension', name: 'vector', action: 'present' });
    return;
  }
  await db.exec('CREATE EXTENSION IF NOT EXISTS vector');
  onProgress?.({ kind: 'extension', name: 'vector', action: 'created' });
}

async function ensureBookkeeping(db: Db): Promise<void> {
  await db.exec(`
CREATE SCHEMA IF NOT EXISTS am_ml;
CREATE TABLE IF NOT EXISTS am_ml.schema_migrations (
  id int PRIMARY KEY,
  name text NOT NULL,
  am_ml_version text,
  applied_at timestamptz NOT NULL DEFAULT now()
);`);
}

/** Ids of applied migrations (empty when am-ml never touched this database). */
export async function appliedMigrationIds(db: Db): Promise<number[]> {
  const { rows } = await db.query<{ exists: boolean }>(
    `SELECT to_regclass('am_ml.schema_migrations') IS NOT NULL AS exists`,
  );
  if (!rows[0].exists) return [];
  const r = await db.query<{ id: number }>('SELECT id FROM am_ml.schema_migrations ORDER BY id');
  return r.rows.map((x) => Number(x.id));
}

export function checkEmbeddingShape(embeddingType: string, dim: number): void {
  if (embeddingType !== 'vector' && embeddingType !== 'halfvec') {
    throw new UsageError(`--vector-type must be vector or halfvec, not '${embeddingType}'.`);
  }
  if (!Number.isInteger(dim) || dim < 1 || dim > MAX_EMBEDDING_DIM) {
    throw new UsageError(`--dim must be a whole number from 1 to ${MAX_EMBEDDING_DIM}, not '${dim}'.`);
  }
}

export async function migrate(db: Db, opts: MigrateOptions = {}): Promise<MigrateResult> {
  const embeddingType = opts.embeddingType ?? DEFAULT_EMBEDDING_TYPE;
  const dim = opts.dim ?? DEFAULT_EMBEDDING_DIM;
  checkEmbeddingShape(embeddingType, dim);
  const migrations = opts.migrations ?? MIGRATIONS;
  const annIndex = opts.annIndex ?? db.driver !== 'pglite';
  const done = new Set(await appliedMigrationIds(db));
  const pending = migrations.filter((m) => !done.has(m.id));
  const latest = migrations.length ? migrations[migrations.length - 1].id : 0;
  if (opts.dryRun) {
    return {
      applied: pending.map((m) => ({ id: m.id, name: m.name })),
      alreadyApplied: done.size,
      schemaVersion: Math.max(0, ...done),
      dryRun: true,
    };
  }
  await ensureVectorExtension(db, opts.onProgress);
  await ensureBookkeeping(db);
  const applied: { id: number; name: string }[] = [];
  for (const m of pending) {
    const wasApplied = await db.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock(hashtext($1))', [MIGRATION_LOCK_KEY]);
      // Another process may have applied it while we waited for the lock.
      const again = await tx.query('SELECT 1 FROM am_ml.schema_migrations WHERE id = $1', [m.id]);
      if (again.rows.length) return false;
      await tx.exec(m.sql({ embeddingType, dim, annIndex }));
      await tx.query('INSERT INTO am_ml.schema_migrations (id, name, am_ml_version) VALUES ($1, $2, $3)', [
        m.id,
        m.name,
        opts.amMlVersion ?? null,
      ]);
      return true;
    });
    if (wasApplied) {
      applied.push({ id: m.id, name: m.name });
      opts.onProgress?.({ kind: 'migration', id: m.id, name: m.name });
    }
  }
  if (opts.annIndex === true && !applied.some((m) => m.id === 1)) {
    const before = await db.query(`SELECT to_regclass('public.video_embeddings_hnsw_cosine_idx') IS NULL AS missing`);
    if ((before.rows[0] as { missing: boolean }).missing) {
      await db.exec(hnswIndexSql);
      opts.onProgress?.({ kind: 'index', name: 'video_embeddings_hnsw_cosine_idx' });
    }
  }
  return { applied, alreadyApplied: done.size, schemaVersion: latest, dryRun: false };
}
