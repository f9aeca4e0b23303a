/**
 * Fixtures for embed tests: an initialised embedded database seeded with a generated catalog and decisions (app
 * schema, real PGlite + pgvector), and a tiny two-tower model trained from it and published to a file:// store.
 */
import path from 'node:path';
import { init } from '../commands/init.js';
import { publish } from '../commands/publish.js';
import { train } from '../commands/train.js';
import { openDb } from '../db/open.js';
import type { EmbeddingType } from '../db/migrations/index.js';
import type { CatalogItem } from '../ml/data/dataset.js';
import type { LoadedTwoTower } from '../ml/load-model.js';
import { loadTwoTowerFromDir } from '../ml/load-model-fs.js';
import type { Interaction } from '../ml/data/types.js';
import { generateCatalog, generateInteractions } from '../ml/synthetic.js';
import { seedCatalog, seedDecisions } from './app-db-seed.js';
import { recordingReporter } from './recording-reporter.js';

export const TINY_DIM = 16;

export interface SeededDb {
  url: string;
  /** item_id (external id) → videos.id */
  videoIds: Map<string, string>;
  items: CatalogItem[];
  interactions: Interaction[];
}

export interface SeedOptions {
  cwd: string;
  /** Folder name of the database under cwd. */
  name: string;
  embeddingType?: EmbeddingType;
  dim?: number;
  items?: number;
  users?: number;
  seed?: number;
}

/** `am-ml init` a database at `<cwd>/<name>` and fill it with a catalog and decisions. */
export async function seededAppDb(o: SeedOptions): Promise<SeededDb> {
  const url = `pglite://${path.join(o.cwd, o.name)}`;
  await init({ cwd: o.cwd, env: {}, db: url, store: `file://${path.join(o.cwd, 'store')}`, dim: o.dim ?? TINY_DIM, vectorType: o.embeddingType ?? 'halfvec' });
  const seed = o.seed ?? 3;
  const items = generateCatalog({ seed, items: o.items ?? 400, genres: 8, tags: 40 });
  const planted = generateInteractions(items, { seed: seed + 1, users: o.users ?? 150, clusters: 5, likesPerUser: [6, 16], userIdFormat: 'uuid' });
  const db = await openDb({ url, cwd: o.cwd });
  try {
    const videoIds = await seedCatalog(db, items);
    await seedDecisions(db, planted.interactions, videoIds);
    return { url, videoIds, items, interactions: planted.interactions };
  } finally {
    await db.close();
  }
}

/** Train a tiny model from a seeded database into `<cwd>/<out>`. */
export async function trainTiny(cwd: string, dbUrl: string, out: string, seed = 7): Promise<string> {
  await train({
    cwd,
    env: {},
    db: dbUrl,
    reporter: recordingReporter(),
    fromDb: true,
    dim: TINY_DIM,
    hidden: [32],
    bagDim: 8,
    epochs: 2,
    batchSize: 128,
    seed,
    threads: 1,
    out,
  });
  return path.join(cwd, out);
}

/** Publish a run folder to `<cwd>/store` as `version` (current unless activate is false). */
export async function publishTo(cwd: string, runDir: string, version: string, activate = true): Promise<void> {
  await publish({ cwd, env: {}, store: `file://${path.join(cwd, 'store')}`, modelDir: runDir, version, activate, reporter: recordingReporter() });
}

/** A seeded database with a tiny model trained from it, published as the current version `v1`, and loaded. */
export async function publishedTinyModel(o: SeedOptions): Promise<{ seeded: SeededDb; runDir: string; model: LoadedTwoTower }> {
  const seeded = await seededAppDb(o);
  const runDir = await trainTiny(o.cwd, seeded.url, 'run1');
  await publishTo(o.cwd, runDir, 'v1');
  return { seeded, runDir, model: await loadTwoTowerFromDir(runDir) };
}
