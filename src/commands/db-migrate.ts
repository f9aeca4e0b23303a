/** `am-ml db migrate`: apply pending migrations to any --db (embedded or postgres://). */
import { embeddingColumn } from '../db/introspect.js';
import { migrate } from '../db/migrate.js';
import type { EmbeddingType } from '../db/migrations/index.js';
import { openDb } from '../db/open.js';
import { AMML_VERSION } from '../version.js';
import { type CommonOptions, configOf, cwdOf, reporterOf } from './common.js';

export interface DbMigrateOptions extends CommonOptions {
  /** Dimension for embedding columns this run creates. @default 128 */
  dim?: number;
  /** Type for embedding columns this run creates. @default 'halfvec' */
  vectorType?: EmbeddingType;
  /** Create the HNSW index on video_embeddings. @default true on postgres://, false on PGlite */
  annIndex?: boolean;
  dryRun?: boolean;
}

export interface DbMigrateResult {
  database: string;
  driver: string;
  dryRun: boolean;
  applied: { id: number; name: string }[];
  alreadyApplied: number;
  schemaVersion: number;
  embeddingColumns?: { videos: string; users: string };
}

export async function dbMigrate(opts: DbMigrateOptions = {}): Promise<DbMigrateResult> {
  const cwd = cwdOf(opts);
  const reporter = reporterOf(opts);
  const config = configOf(opts, ['db']);
  const db = await openDb({ url: config.databaseUrl, cwd, caFile: config.databaseCaFile });
  try {
    const phase = reporter.phase(`Migrating ${db.displayUrl}`);
    try {
      const r = await migrate(db, {
        embeddingType: opts.vectorType,
        dim: opts.dim,
        annIndex: opts.annIndex,
        dryRun: opts.dryRun,
        amMlVersion: AMML_VERSION,
        onProgress: (e) => {
          if (e.kind === 'migration') reporter.info(`applied migration ${e.id} ${e.name}`);
          if (e.kind === 'extension' && e.action === 'created') reporter.info(`created extension ${e.name}`);
          if (e.kind === 'index') reporter.info(`created index ${e.name}`);
        },
      });
      phase.succeed(
        r.dryRun
          ? `${r.applied.length} migration(s) pending`
          : r.applied.length
            ? `Applied ${r.applied.length} migration(s)`
            : 'Schema already up to date',
      );
      const columns = r.dryRun
        ? undefined
        : {
            videos: (await embeddingColumn(db, 'public.video_embeddings')).formatted,
            users: (await embeddingColumn(db, 'public.user_embeddings')).formatted,
          };
      return {
        database: db.displayUrl,
        driver: db.driver,
        dryRun: r.dryRun,
        applied: r.applied,
        alreadyApplied: r.alreadyApplied,
        schemaVersion: r.schemaVersion,
        embeddingColumns: columns,
      };
    } catch (err) {
      phase.fail();
      throw err;
    }
  } finally {
    await db.close();
  }
}

export function formatDbMigrate(r: DbMigrateResult): string {
  const what = r.dryRun ? 'pending' : 'applied';
  const lines = [
    `${r.database} (${r.driver})`,
    r.applied.length ? `${what}: ${r.applied.map((m) => `${m.id} ${m.name}`).join(', ')}` : `nothing ${what}`,
    `schema version ${r.schemaVersion}`,
  ];
  if (r.embeddingColumns) {
    lines.push(`embeddings: video_embeddings ${r.embeddingColumns.videos}, user_embeddings ${r.embeddingColumns.users}`);
  }
  return lines.join('\n');
}
