/**
 * `am-ml init`: create `.am-ml/`, the embedded database with the app schema, and the local model store folder.
 * Safe to run twice: the second run applies nothing and reports what exists.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { DEFAULT_HOME_DIR, resolveUrlPath } from '../config.js';
import { embeddingColumn } from '../db/introspect.js';
import { checkEmbeddingShape, DEFAULT_EMBEDDING_DIM, DEFAULT_EMBEDDING_TYPE, migrate } from '../db/migrate.js';
import type { EmbeddingType } from '../db/migrations/index.js';
import { openDb } from '../db/open.js';
import { ValidationFailedError } from '../errors.js';
import { AMML_VERSION } from '../version.js';
import { type CommonOptions, configOf, cwdOf, reporterOf } from './common.js';

export interface InitOptions extends CommonOptions {
  /** Dimension of embedding columns created now. @default 128 */
  dim?: number;
  /** Type of embedding columns created now. @default 'halfvec' */
  vectorType?: EmbeddingType;
  /** Create the HNSW index on video_embeddings. @default true on postgres://, false on PGlite */
  annIndex?: boolean;
}

export interface InitResult {
  home: string;
  database: { url: string; driver: string; appliedMigrations: string[]; schemaVersion: number; created: boolean };
  embeddingColumns: { videos: string; users: string };
  store: { url: string; path?: string; created: boolean };
}

export async function init(opts: InitOptions = {}): Promise<InitResult> {
  const cwd = cwdOf(opts);
  const reporter = reporterOf(opts);
  const requestedType = opts.vectorType ?? DEFAULT_EMBEDDING_TYPE;
  const requestedDim = opts.dim ?? DEFAULT_EMBEDDING_DIM;
  checkEmbeddingShape(requestedType, requestedDim);
  const config = configOf(opts, ['db', 'store']);

  const home = path.resolve(cwd, DEFAULT_HOME_DIR);
  mkdirSync(home, { recursive: true });
  const gitignore = path.join(home, '.gitignore');
  // The embedded database and model cache are machine-local; keep them out of the user's repository.
  if (!existsSync(gitignore)) writeFileSync(gitignore, '*\n');

  const phase = reporter.phase(`Preparing the database ${config.databaseUrl}`);
  const db = await openDb({ url: config.databaseUrl, cwd, caFile: config.databaseCaFile });
  let result: InitResult['database'];
  let columns: InitResult['embeddingColumns'];
  try {
    const m = await migrate(db, { embeddingType: requestedType, dim: requestedDim, annIndex: opts.annIndex, amMlVersion: AMML_VERSION });
    const videos = await embeddingColumn(db, 'public.video_embeddings');
    const users = await embeddingColumn(db, 'public.user_embeddings');
    const explicit = opts.dim !== undefined || opts.vectorType !== undefined;
    for (const col of [videos, users]) {
      if (explicit && (col.dim !== requestedDim || col.type !== requestedType)) {
        throw new ValidationFailedError(
          `${col.table}.embedding already exists as ${col.formatted}, not ${requestedType}(${requestedDim}); init does not change existing columns.`,
          {
            code: 'DIMENSION_MISMATCH',
            hint: 'Changing the embedding type or dimension is a schema migration (drop the index, alter the column, recreate the index), or start from an empty --db.',
            details: { expected: `${requestedType}(${requestedDim})`, found: col.formatted },
          },
        );
      }
    }
    if (m.applied.length) {
      await db.query(
        `INSERT INTO am_ml.settings (key, value) VALUES ('init', $1) ON CONFLICT (key) DO NOTHING`,
        [JSON.stringify({ embeddingType: requestedType, dim: requestedDim, amMlVersion: AMML_VERSION })],
      );
    }
    result = {
      url: db.displayUrl,
      driver: db.driver,
      appliedMigrations: m.applied.map((a) => `${a.id} ${a.name}`),
      schemaVersion: m.schemaVersion,
      created: m.alreadyApplied === 0,
    };
    columns = { videos: videos.formatted, users: users.formatted };
    phase.succeed(
      m.applied.length
        ? `Database ready (${db.displayUrl}): applied ${m.applied.length} migration(s)`
        : `Database already up to date (${db.displayUrl})`,
    );
  } catch (err) {
    phase.fail();
    throw err;
  } finally {
    await db.close();
  }

  let store: InitResult['store'] = { url: config.modelStore, created: false };
  if (config.modelStore.startsWith('file://')) {
    const dir = resolveUrlPath(config.modelStore, cwd);
    const created = !existsSync(dir);
    mkdirSync(dir, { recursive: true });
    store = { url: config.modelStore, path: dir, created };
  }
  return { home, database: result, embeddingColumns: columns, store };
}

export function formatInit(r: InitResult): string {
  return [
    `am-ml home:      ${r.home}`,
    `database:        ${r.database.url} (${r.database.driver}, schema version ${r.database.schemaVersion}${
      r.database.appliedMigrations.length ? `, applied ${r.database.appliedMigrations.join(', ')}` : ', nothing to apply'
    })`,
    `embeddings:      video_embeddings ${r.embeddingColumns.videos}, user_embeddings ${r.embeddingColumns.users}`,
    `model store:     ${r.store.url}${r.store.path ? ` (${r.store.path}${r.store.created ? ', created' : ''})` : ''}`,
  ].join('\n');
}
