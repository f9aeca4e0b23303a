/**
 * The embedding store on real PGlite + pgvector, for halfvec(128) and vector(768) columns: staging with
 * checkpoints, the one-transaction switch (stragglers, deleted entities, other versions removed), and the serving
 * rule observed by a concurrent reader between the run's transactions.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConflictError, ValidationFailedError } from '../errors.js';
import { createTestDb } from '../testing/pglite.js';
import { roundToFloat16 } from './binary-copy.js';
import {
  assertSingleVersion,
  dropStaging,
  type EmbeddingRow,
  liveVersions,
  servedVersion,
  shardStates,
  stageBatch,
  startRun,
  switchVersion,
  writeLiveRows,
} from './embedding-store.js';
import { embeddingColumn } from './introspect.js';
import type { PgliteDb } from './pglite.js';

function unitVector(dim: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const v = Float32Array.from({ length: dim }, () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32) - 0.5);
  const n = Math.hypot(...v);
  return v.map((x) => x / n);
}

async function seed(db: PgliteDb, videos: number, users: number): Promise<{ videoIds: string[]; userIds: string[] }> {
  await db.query(`INSERT INTO videos (external_id, title, source) SELECT 'v' || g, 't' || g, 'FANZA' FROM generate_series(1, $1::int) g`, [videos]);
  await db.query(`INSERT INTO auth.users (id) SELECT gen_random_uuid() FROM generate_series(1, $1::int)`, [users]);
  const videoIds = (await db.query<{ id: string }>('SELECT id FROM videos ORDER BY id')).rows.map((r) => r.id);
  const userIds = (await db.query<{ id: string }>('SELECT id FROM auth.users ORDER BY id')).rows.map((r) => r.id);
  return { videoIds, userIds };
}

for (const [type, dim] of [
  ['halfvec', 128],
  ['vector', 768],
] as const) {
  describe(`embedding store, ${type}(${dim})`, () => {
    let db: PgliteDb;
    let ids: { videoIds: string[]; userIds: string[] };
    const column = { type, dim };
    const expectValue = (x: number) => (type === 'halfvec' ? roundToFloat16(x) : Math.fround(x));

    beforeAll(async () => {
      db = await createTestDb({ embeddingType: type, dim, annIndex: true });
      ids = await seed(db, 40, 10);
    });
    afterAll(() => db.close());

    const embed = (id: string, version: string): EmbeddingRow => ({ id, embedding: unitVector(dim, [...id + version].reduce((a, c) => a * 31 + c.charCodeAt(0), 7)) });

    it('stages batches with checkpoints and switches items and users in one transaction', async () => {
      expect(await embeddingColumn(db, 'public.video_embeddings')).toMatchObject({ type, dim });
      const run = await startRun(db, { runId: 'run-v1', modelVersion: 'v1', shardCount: 1, targets: ['items', 'users'], column });
      expect(run.status).toBe('running');
      const items = ids.videoIds.map((id) => embed(id, 'v1'));
      await stageBatch(db, { runId: 'run-v1', target: 'items', shardIndex: 0, column, rows: items.slice(0, 25), lastKey: items[24].id, skipped: 0, done: false });
      await stageBatch(db, { runId: 'run-v1', target: 'items', shardIndex: 0, column, rows: items.slice(25), lastKey: items[39].id, skipped: 0, done: true });
      const users = ids.userIds.slice(0, 8).map((id) => embed(id, 'v1'));
      await stageBatch(db, { runId: 'run-v1', target: 'users', shardIndex: 0, column, rows: users, lastKey: ids.userIds[9], skipped: 2, done: true });
      const shards = await shardStates(db, 'run-v1');
      expect(shards.map((s) => [s.target, s.rowsWritten, s.rowsSkipped, s.done])).toEqual([
        ['items', 40, 0, true],
        ['users', 8, 2, true],
      ]);
      const r = await switchVersion(db, { runId: 'run-v1', modelVersion: 'v1', targets: ['items', 'users'], indexPolicy: 'keep', column }, {});
      expect(r.written).toEqual({ items: 40, users: 8 });
      await assertSingleVersion(db, 'v1', ['items', 'users']);
      expect(await servedVersion(db)).toBe('v1');
      // Exactly what was staged (float16-rounded for halfvec).
      const back = await db.query<{ id: string; e: string }>('SELECT video_id AS id, embedding::text AS e FROM video_embeddings');
      const byId = new Map(items.map((x) => [x.id, x.embedding]));
      for (const row of back.rows) {
        const got = row.e.slice(1, -1).split(',').map((t) => Math.fround(Number(t)));
        expect(got).toEqual(Array.from(byId.get(row.id)!, expectValue));
      }
      await dropStaging(db, 'run-v1');
    });

    it('refuses to stage past a completed shard and to reuse a run with other parameters', async () => {
      await expect(
        stageBatch(db, { runId: 'run-v1', target: 'items', shardIndex: 0, column, rows: [], lastKey: ids.videoIds[0], skipped: 0, done: true }),
      ).rejects.toThrow(ConflictError);
      await expect(startRun(db, { runId: 'run-v1', modelVersion: 'v1', shardCount: 3, targets: ['items', 'users'], column })).rejects.toThrow(
        /shard count 1 vs 3/,
      );
    });

    it('embeds stragglers inside the switch, skips deleted entities, and removes rows of other versions', async () => {
      await startRun(db, { runId: 'run-v2', modelVersion: 'v2', shardCount: 2, targets: ['items', 'users'], column });
      // Two shards of items; shard 1 leaves out the last 3 videos (as if they were synced after staging).
      const half = ids.videoIds.slice(0, 20).map((id) => embed(id, 'v2'));
      const rest = ids.videoIds.slice(20, 37).map((id) => embed(id, 'v2'));
      await stageBatch(db, { runId: 'run-v2', target: 'items', shardIndex: 0, column, rows: half, lastKey: half[19].id, skipped: 0, done: true });
      const pending = switchVersion(db, { runId: 'run-v2', modelVersion: 'v2', targets: ['items', 'users'], indexPolicy: 'keep', column }, {});
      await expect(pending).rejects.toThrow(/3 shard\(s\) are not complete \(items 1\/2, users 0\/2, users 1\/2\)/);
      await stageBatch(db, { runId: 'run-v2', target: 'items', shardIndex: 1, column, rows: rest, lastKey: rest[16].id, skipped: 0, done: true });
      await stageBatch(db, { runId: 'run-v2', target: 'users', shardIndex: 0, column, rows: ids.userIds.slice(0, 3).map((id) => embed(id, 'v2')), lastKey: ids.userIds[4], skipped: 0, done: true });
      await stageBatch(db, { runId: 'run-v2', target: 'users', shardIndex: 1, column, rows: [], lastKey: ids.userIds[9], skipped: 5, done: true });
      // A staged video is deleted before the switch: its row must not break the FK.
      await db.query('DELETE FROM videos WHERE id = $1', [half[0].id]);
      const asked: string[][] = [];
      const r = await switchVersion(
        db,
        {
          runId: 'run-v2',
          modelVersion: 'v2',
          targets: ['items', 'users'],
          indexPolicy: 'rebuild',
          column,
          embedStragglers: async (_tx, target, missing) => {
            asked.push([target, ...missing]);
            return target === 'items' ? missing.map((id) => embed(id, 'v2')) : [];
          },
        },
        { items: 'SELECT id FROM public.videos', users: 'SELECT id FROM auth.users WHERE false' },
      );
      expect(asked).toEqual([['items', ...ids.videoIds.slice(37)]]);
      expect(r.stragglers.items).toBe(3);
      expect(r.written.items).toBe(39);
      // Users 3..7 had v1 rows and no v2 history: those stale rows are removed, not served with another model's space.
      expect(r.removedOtherVersions.users).toBe(5);
      expect(r.indexesRebuilt).toEqual(['video_embeddings_hnsw_cosine_idx']);
      expect(await liveVersions(db, 'items')).toEqual([{ version: 'v2', rows: 39 }]);
      expect(await liveVersions(db, 'users')).toEqual([{ version: 'v2', rows: 3 }]);
      const idx = await db.query(`SELECT 1 FROM pg_indexes WHERE indexname = 'video_embeddings_hnsw_cosine_idx'`);
      expect(idx.rows).toHaveLength(1);
    });

    it('writes live rows only for the version already served, and checks dimensions', async () => {
      const [a] = (await db.query<{ id: string }>(`INSERT INTO videos (external_id, title, source) VALUES ('new1', 'n', 'FANZA') RETURNING id`)).rows;
      await expect(db.transaction((tx) => writeLiveRows(tx, 'items', 'v3', column, [embed(a.id, 'v3')]))).rejects.toThrow(/holds 39 row\(s\) of v2/);
      await expect(db.transaction((tx) => writeLiveRows(tx, 'items', 'v2', column, [{ id: a.id, embedding: new Float32Array(dim + 1) }]))).rejects.toThrow(
        ValidationFailedError,
      );
      expect(await db.transaction((tx) => writeLiveRows(tx, 'items', 'v2', column, [embed(a.id, 'v2')]))).toBe(1);
      await assertSingleVersion(db, 'v2', ['items']);
      await db.query(`UPDATE video_embeddings SET model_version = 'rogue' WHERE video_id = $1`, [a.id]);
      await expect(assertSingleVersion(db, 'v2', ['items'])).rejects.toThrow(/Mixed model versions after writing v2: public.video_embeddings has 1 row\(s\) of rogue/);
    });
  });
}
