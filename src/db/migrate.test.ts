import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ValidationFailedError } from '../errors.js';
import { createTestDb } from '../testing/pglite.js';
import { assertColumns, assertEmbeddingDim, checkConstraintValues, embeddingColumn, tableExists } from './introspect.js';
import { appliedMigrationIds, migrate } from './migrate.js';
import { MIGRATIONS } from './migrations/index.js';
import type { PgliteDb } from './pglite.js';

describe('migrations on PGlite', () => {
  let db: PgliteDb;
  beforeAll(async () => {
    db = await createTestDb({ migrate: false });
  });
  afterAll(() => db.close());

  it('applies every migration once, and nothing the second time', async () => {
    const first = await migrate(db);
    expect(first.applied.map((m) => m.id)).toEqual(MIGRATIONS.map((m) => m.id));
    const second = await migrate(db);
    expect(second.applied).toEqual([]);
    expect(second.alreadyApplied).toBe(MIGRATIONS.length);
    expect(await appliedMigrationIds(db)).toEqual(MIGRATIONS.map((m) => m.id));
  });

  it('creates the app tables, the auth stub and the am_ml bookkeeping schema', async () => {
    for (const t of [
      'public.videos',
      'public.tags',
      'public.tag_groups',
      'public.video_tags',
      'public.performers',
      'public.video_performers',
      'public.user_video_decisions',
      'public.user_features',
      'public.video_embeddings',
      'public.user_embeddings',
      'auth.users',
      'am_ml.settings',
      'am_ml.sync_checkpoints',
      'am_ml.sync_failures',
      'am_ml.embedding_runs',
    ]) {
      expect([t, await tableExists(db, t)]).toEqual([t, true]);
    }
    await assertColumns(db, { 'public.videos': ['external_id', 'has_performer', 'source'] });
    const groups = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM tag_groups');
    expect(groups.rows[0].n).toBe(8);
  });

  it('keeps data when run again', async () => {
    await db.query(`INSERT INTO videos (external_id, title, source) VALUES ('abc00001', 't', 'FANZA')`);
    await migrate(db);
    expect((await db.query('SELECT external_id FROM videos')).rows).toEqual([{ external_id: 'abc00001' }]);
  });

  it('reads embedding column types from the database', async () => {
    const col = await embeddingColumn(db, 'public.video_embeddings');
    expect(col).toMatchObject({ type: 'halfvec', dim: 128, formatted: 'halfvec(128)' });
    expect(() => assertEmbeddingDim(col, 768)).toThrow(ValidationFailedError);
    expect(() => assertEmbeddingDim(col, 768)).toThrow(/model outputs 768-d vectors but public.video_embeddings.embedding is halfvec\(128\)/);
    await expect(embeddingColumn(db, 'public.videos', 'title')).rejects.toThrow(/expected public.videos.title to be vector\(N\) or halfvec\(N\), found text/);
    await expect(embeddingColumn(db, 'public.nope')).rejects.toThrow(/found no such column/);
  });

  it('reports schema drift with expected and found shapes', async () => {
    await expect(assertColumns(db, { 'public.videos': ['external_id', 'recommendation_type'], 'public.missing': ['x'] })).rejects.toThrow(
      /public.videos lacks column\(s\) recommendation_type .*; table public.missing is missing/,
    );
  });

  it('reads CHECK constraint values (decision_type)', async () => {
    expect(await checkConstraintValues(db, 'public.user_video_decisions', 'decision_type')).toEqual([
      'swipe_like',
      'swipe_nope',
      'grid_like',
      'grid_nope',
    ]);
    expect(await checkConstraintValues(db, 'public.videos', 'title')).toBeNull();
  });

  it('leaves the HNSW index out on PGlite by default and adds it when asked', async () => {
    const none = await db.query(`SELECT 1 FROM pg_indexes WHERE indexname = 'video_embeddings_hnsw_cosine_idx'`);
    expect(none.rows).toEqual([]);
    const r = await migrate(db, { annIndex: true });
    expect(r.applied).toEqual([]);
  });

  it('has a working HNSW halfvec_cosine_ops index in the bundled pgvector', async () => {
    const idx = await db.query<{ def: string }>(
      `SELECT indexdef AS def FROM pg_indexes WHERE indexname = 'video_embeddings_hnsw_cosine_idx'`,
    );
    expect(idx.rows[0].def).toMatch(/USING hnsw \(embedding halfvec_cosine_ops\) WITH \(m='16', ef_construction='64'\)/);
    const ids = await db.query<{ id: string }>(
      `INSERT INTO videos (external_id, title, source)
       SELECT 'h' || g, 't', 'FANZA' FROM generate_series(1, 50) g RETURNING id`,
    );
    await db.query(
      `INSERT INTO video_embeddings (video_id, embedding, model_version)
       SELECT id, (SELECT array_agg(random()) FROM generate_series(1, 128))::vector::halfvec(128), 'v1' FROM videos WHERE external_id LIKE 'h%'`,
    );
    await db.exec('SET enable_seqscan = off');
    const plan = await db.query<{ 'QUERY PLAN': string }>(
      `EXPLAIN SELECT video_id FROM video_embeddings ORDER BY embedding <=> (SELECT embedding FROM video_embeddings LIMIT 1) LIMIT 5`,
    );
    await db.exec('SET enable_seqscan = on');
    expect(plan.rows.map((r) => r['QUERY PLAN']).join('\n')).toMatch(/video_embeddings_hnsw_cosine_idx/);
    expect(ids.rows).toHaveLength(50);
  });
});

describe('migrations with vector(768) columns', () => {
  it('creates vector(N) embedding columns and a matching HNSW opclass', async () => {
    const db = await createTestDb({ embeddingType: 'vector', dim: 768, annIndex: true });
    try {
      expect((await embeddingColumn(db, 'public.user_embeddings')).formatted).toBe('vector(768)');
      const idx = await db.query<{ def: string }>(`SELECT indexdef AS def FROM pg_indexes WHERE indexname = 'video_embeddings_hnsw_cosine_idx'`);
      expect(idx.rows[0].def).toMatch(/vector_cosine_ops/);
    } finally {
      await db.close();
    }
  });
});
