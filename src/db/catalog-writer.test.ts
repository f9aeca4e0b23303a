import { startNativePostgres } from '../testing/native-postgres.js';
import { createTestDb } from '../testing/pglite.js';
import { describeCatalogWriter } from './catalog-writer.contract.js';
import { migrate } from './migrate.js';
import { MIGRATIONS } from './migrations/index.js';
import { PGLITE_MEMORY } from './pglite.js';
import { openPgliteWorker } from './pglite-worker.js';
import { openPostgres } from './postgres.js';
import type { Db } from './types.js';

// The contract runs against the embedded default in every test run, in process and on a worker thread (the way
// sync-dmm opens it)…
describeCatalogWriter('pglite', () => createTestDb());
describeCatalogWriter('pglite (worker thread)', async () => {
  const db = await openPgliteWorker({ dir: PGLITE_MEMORY });
  await migrate(db);
  return db;
});

// …and over the wire protocol against a throwaway native PostgreSQL (binary COPY FROM STDIN into the staging
// tables, pooled connections). That server has no pgvector, so the embedding columns, which the catalog writer
// never touches, are created as real[]; every other statement is the real migration.
const stops = new Map<Db, () => Promise<void>>();
describeCatalogWriter(
  'postgres (native cluster)',
  async () => {
    const pg = await startNativePostgres();
    const db = await openPostgres({ url: pg.url, poolMax: 2 });
    await db.exec('CREATE SCHEMA IF NOT EXISTS am_ml');
    for (const m of MIGRATIONS.filter((x) => x.id < 200)) {
      await db.exec(m.sql({ embeddingType: 'vector', dim: 8, annIndex: false }).replace(/\bvector\(8\)/g, 'real[]'));
    }
    stops.set(db, () => pg.stop());
    return db;
  },
  async (db) => {
    await db.close();
    await stops.get(db)?.();
  },
);
