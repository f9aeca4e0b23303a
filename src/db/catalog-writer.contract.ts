/**
 * The `CatalogWriter` contract (STYLE.md §8: one suite for every backend). `describeCatalogWriter(name, open)` runs
 * it against a database that `open` returns: migrated, with empty catalog and sync tables (PGlite in every test
 * run; a scratch Postgres when one is configured; never a production database).
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { UsageError, ValidationFailedError } from '../errors.js';
import type { CatalogChunk, CatalogVideo, CatalogWriter, ChangedVideo, SyncCheckpoint } from './catalog-types.js';
import { createCatalogWriter } from './catalog-writer.js';
import type { Db, Queryable } from './types.js';

const SCOPE = { floors: ['digital/videoa'], from: '2024-01-01', to: '2024-01-31' };
const WINDOW = { floor: 'digital/videoa', start: new Date('2023-12-31T15:00:00Z'), end: new Date('2024-01-31T14:59:59Z') };

export function video(id: string, over: Partial<CatalogVideo> = {}): CatalogVideo {
  return {
    externalId: id,
    title: `title ${id}`,
    durationSeconds: 7200,
    thumbnailUrl: `https://example.invalid/${id}pl.jpg`,
    thumbnailVerticalUrl: `https://example.invalid/${id}ps.jpg`,
    previewVideoUrl: `https://example.invalid/${id}/720`,
    sampleVideoUrl: `https://example.invalid/${id}/720`,
    distributionCode: null,
    makerCode: id.toUpperCase(),
    director: 'director',
    series: null,
    maker: 'maker',
    label: 'label',
    price: 210,
    productReleasedAt: new Date('2024-01-10T01:00:00Z'),
    imageUrls: [`https://example.invalid/${id}-1.jpg`],
    source: 'FANZA',
    productUrl: `https://example.invalid/?id=${id}`,
    affiliateUrl: `https://example.invalid/af?id=${id}`,
    tags: ['ハイビジョン', '単体作品'],
    performers: [{ fanzaActressId: '1000001', name: '架空 はなこ' }],
    ...over,
  };
}

function chunk(runId: string, videos: CatalogVideo[], over: Partial<CatalogChunk> = {}): CatalogChunk {
  return { runId, videos, checkpoints: [], failures: [], resolved: [], ...over };
}

const checkpoint = (nextOffset: number, status: SyncCheckpoint['status'] = 'paging'): SyncCheckpoint => ({
  ...WINDOW,
  status,
  totalCount: 1000,
  nextOffset,
});

async function rowsOf(db: Queryable, externalId: string) {
  const v = await db.query<{ id: string; title: string; has_performer: boolean }>(
    'SELECT id::text AS id, title, has_performer FROM public.videos WHERE external_id = $1',
    [externalId],
  );
  if (!v.rows.length) return null;
  const tags = await db.query<{ name: string; grp: string | null }>(
    `SELECT t.name, g.name AS grp FROM public.video_tags vt JOIN public.tags t ON t.id = vt.tag_id
       LEFT JOIN public.tag_groups g ON g.id = t.tag_group_id WHERE vt.video_id = $1 ORDER BY t.name`,
    [v.rows[0].id],
  );
  const perf = await db.query<{ fanza_actress_id: string; name: string }>(
    `SELECT p.fanza_actress_id, p.name FROM public.video_performers vp JOIN public.performers p ON p.id = vp.performer_id
      WHERE vp.video_id = $1 ORDER BY p.fanza_actress_id`,
    [v.rows[0].id],
  );
  return { ...v.rows[0], tags: tags.rows, performers: perf.rows };
}

export function describeCatalogWriter(name: string, open: () => Promise<Db>, close: (db: Db) => Promise<void> = (db) => db.close()): void {
  describe(`CatalogWriter contract: ${name}`, () => {
    let db: Db;
    let writer: CatalogWriter;
    let runId: string;
    let hookCalls: ChangedVideo[][];
    let hook: ((tx: Queryable, rows: readonly ChangedVideo[]) => Promise<void>) | undefined;

    beforeAll(async () => {
      db = await open();
    });
    afterAll(() => close(db));
    beforeEach(async () => {
      await db.exec(`
        TRUNCATE public.video_tags, public.video_performers, public.videos, public.tags, public.performers CASCADE;
        TRUNCATE am_ml.sync_runs, am_ml.sync_checkpoints, am_ml.sync_failures;`);
      hookCalls = [];
      hook = undefined;
      writer = createCatalogWriter(db, {
        afterChunk: async (tx, rows) => {
          hookCalls.push([...rows]);
          await hook?.(tx, rows);
        },
      });
      await writer.prepare();
      runId = (await writer.openRun(SCOPE, 'auto', { newRunId: 'run-1' })).runId;
    });

    it('inserts videos with tags, performers and has_performer in one chunk, and reports them to afterChunk', async () => {
      const r = await writer.writeChunk(
        chunk(runId, [video('aaa00001'), video('aaa00002', { performers: [], tags: ['まだ誰も知らないジャンル'] })]),
      );
      expect(r).toMatchObject({ inserted: 2, updated: 0, unchanged: 0, rejected: [], newTags: 3, newPerformers: 1 });
      const a = await rowsOf(db, 'aaa00001');
      expect(a).toMatchObject({ title: 'title aaa00001', has_performer: true });
      expect(a!.tags).toEqual([
        { name: 'ハイビジョン', grp: 'その他' },
        { name: '単体作品', grp: 'ジャンル' },
      ]);
      expect(a!.performers).toEqual([{ fanza_actress_id: '1000001', name: '架空 はなこ' }]);
      const b = await rowsOf(db, 'aaa00002');
      expect(b).toMatchObject({ has_performer: false, performers: [], tags: [{ name: 'まだ誰も知らないジャンル', grp: '未分類' }] });
      expect(hookCalls).toHaveLength(1);
      expect(hookCalls[0].map((c) => [c.externalId, c.change, c.id])).toEqual(
        expect.arrayContaining([
          ['aaa00001', 'inserted', a!.id],
          ['aaa00002', 'inserted', b!.id],
        ]),
      );
    });

    it('changes nothing when the same chunk is written again', async () => {
      const vids = [video('aaa00001'), video('aaa00002')];
      await writer.writeChunk(chunk(runId, vids));
      const before = await db.query('SELECT * FROM public.videos ORDER BY external_id');
      const r = await writer.writeChunk(chunk(runId, vids));
      expect(r).toMatchObject({ inserted: 0, updated: 0, unchanged: 2, newTags: 0, newPerformers: 0 });
      expect((await db.query('SELECT * FROM public.videos ORDER BY external_id')).rows).toEqual(before.rows);
      expect(hookCalls).toHaveLength(1); // no changed rows, no hook call
    });

    it('replaces tags and performers, updates has_performer, and counts the video as updated', async () => {
      await writer.writeChunk(chunk(runId, [video('aaa00001')]));
      const r = await writer.writeChunk(chunk(runId, [video('aaa00001', { tags: ['単体作品', '美少女'], performers: [] })]));
      expect(r).toMatchObject({ inserted: 0, updated: 1, unchanged: 0 });
      const a = await rowsOf(db, 'aaa00001');
      expect(a!.tags.map((t) => t.name)).toEqual(['単体作品', '美少女']);
      expect(a).toMatchObject({ has_performer: false, performers: [] });
      expect(hookCalls[1]).toEqual([{ id: a!.id, externalId: 'aaa00001', change: 'updated' }]);
      const c = await writer.writeChunk(chunk(runId, [video('aaa00001', { tags: ['単体作品', '美少女'], performers: [], title: 'new title' })]));
      expect(c).toMatchObject({ updated: 1 });
      expect((await rowsOf(db, 'aaa00001'))!.title).toBe('new title');
    });

    it('leaves no join row without its video, tag or performer', async () => {
      await writer.writeChunk(chunk(runId, [video('aaa00001'), video('aaa00002', { tags: ['x', 'y'] })]));
      await writer.writeChunk(chunk(runId, [video('aaa00001', { tags: ['z'], performers: [{ fanzaActressId: '5', name: 'n' }] })]));
      const orphans = await db.query<{ n: number }>(`
        SELECT (SELECT count(*) FROM public.video_tags vt WHERE NOT EXISTS (SELECT 1 FROM public.videos v WHERE v.id = vt.video_id)
                                                          OR NOT EXISTS (SELECT 1 FROM public.tags t WHERE t.id = vt.tag_id))
             + (SELECT count(*) FROM public.video_performers vp WHERE NOT EXISTS (SELECT 1 FROM public.videos v WHERE v.id = vp.video_id)
                                                          OR NOT EXISTS (SELECT 1 FROM public.performers p WHERE p.id = vp.performer_id)) AS n`);
      expect(Number(orphans.rows[0].n)).toBe(0);
      // The foreign keys still hold for everyone else: deleting a video cascades to its join rows.
      await db.query(`DELETE FROM public.videos WHERE external_id = 'aaa00001'`);
      const left = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM public.video_tags`);
      expect(left.rows[0].n).toBe(2);
    });

    it('de-duplicates keys within a chunk (last occurrence wins)', async () => {
      const r = await writer.writeChunk(
        chunk(runId, [
          video('aaa00001', { title: 'first', tags: ['巨乳', '巨乳'] }),
          video('aaa00002', { performers: [{ fanzaActressId: '77', name: 'old name' }] }),
          video('aaa00003', { performers: [{ fanzaActressId: '77', name: 'new name' }, { fanzaActressId: '77', name: 'new name' }] }),
          video('aaa00001', { title: 'second', tags: ['巨乳'] }),
        ]),
      );
      expect(r.inserted).toBe(3);
      expect((await rowsOf(db, 'aaa00001'))!.title).toBe('second');
      const p = await db.query('SELECT name FROM public.performers WHERE fanza_actress_id = $1', ['77']);
      expect(p.rows).toEqual([{ name: 'new name' }]);
    });

    it('keeps the group of a tag that already exists', async () => {
      await db.query(
        `INSERT INTO public.tags (name, tag_group_id) SELECT 'ハイビジョン', id FROM public.tag_groups WHERE name = 'プレイ'`,
      );
      await writer.writeChunk(chunk(runId, [video('aaa00001')]));
      const t = await db.query(
        `SELECT g.name FROM public.tags t JOIN public.tag_groups g ON g.id = t.tag_group_id WHERE t.name = 'ハイビジョン'`,
      );
      expect(t.rows).toEqual([{ name: 'プレイ' }]);
    });

    it('sets aside an item that would violate UNIQUE (source, distribution_code, maker_code) and writes the rest', async () => {
      await writer.writeChunk(chunk(runId, [video('aaa00001', { distributionCode: '4549831291424', makerCode: 'JUY-553' })]));
      const r = await writer.writeChunk(
        chunk(runId, [video('bbb00001', { distributionCode: '4549831291424', makerCode: 'JUY-553' }), video('bbb00002')]),
      );
      expect(r.inserted).toBe(1);
      expect(r.rejected).toEqual([{ externalId: 'bbb00001', reason: expect.stringMatching(/already belongs to video aaa00001/) }]);
      expect(await rowsOf(db, 'bbb00001')).toBeNull();
      const f = await db.query(`SELECT kind, content_id FROM am_ml.sync_failures WHERE resolved_at IS NULL`);
      expect(f.rows).toEqual([{ kind: 'item', content_id: 'bbb00001' }]);
    });

    it('commits the checkpoint with the rows, and rolls both back when afterChunk throws', async () => {
      await writer.writeChunk(chunk(runId, [video('aaa00001')], { checkpoints: [checkpoint(101), checkpoint(201)] }));
      const cp = await db.query('SELECT next_offset, status FROM am_ml.sync_checkpoints');
      expect(cp.rows).toEqual([{ next_offset: 201, status: 'paging' }]);
      hook = async () => {
        throw new ValidationFailedError('embedding failed');
      };
      await expect(writer.writeChunk(chunk(runId, [video('aaa00002')], { checkpoints: [checkpoint(301)] }))).rejects.toThrow(
        'embedding failed',
      );
      expect(await rowsOf(db, 'aaa00002')).toBeNull();
      expect((await db.query('SELECT next_offset FROM am_ml.sync_checkpoints')).rows).toEqual([{ next_offset: 201 }]);
    });

    it('lets afterChunk read what the chunk wrote, inside the transaction', async () => {
      let seen: unknown[] = [];
      let role = '';
      hook = async (tx, rows) => {
        role = (await tx.query<{ session_replication_role: string }>('SHOW session_replication_role')).rows[0].session_replication_role;
        const r = await tx.query(
          `SELECT v.external_id, array_agg(t.name ORDER BY t.name) AS tags FROM public.videos v
             JOIN public.video_tags vt ON vt.video_id = v.id JOIN public.tags t ON t.id = vt.tag_id
            WHERE v.id = ANY($1::uuid[]) GROUP BY v.external_id`,
          [rows.map((x) => x.id)],
        );
        seen = r.rows;
      };
      await writer.writeChunk(chunk(runId, [video('aaa00001')]));
      expect(seen).toEqual([{ external_id: 'aaa00001', tags: ['ハイビジョン', '単体作品'] }]);
      expect(role).toBe('origin'); // triggers run normally for whatever the hook writes
    });

    it('computes a dry run without writing anything or calling afterChunk', async () => {
      const r = await writer.writeChunk(chunk(runId, [video('aaa00001')], { checkpoints: [checkpoint(101)] }), { dryRun: true });
      expect(r).toMatchObject({ inserted: 1 });
      expect(await rowsOf(db, 'aaa00001')).toBeNull();
      expect((await db.query('SELECT 1 FROM am_ml.sync_checkpoints')).rows).toEqual([]);
      expect(hookCalls).toEqual([]);
    });

    it('keeps one open failure per key, counts attempts, and resolves failures of written items', async () => {
      const failure = {
        kind: 'item' as const,
        key: 'item:ccc00001',
        ...{ floor: WINDOW.floor, windowStart: WINDOW.start, windowEnd: WINDOW.end },
        pageOffset: 1,
        contentId: 'ccc00001',
        reason: 'title is missing',
        raw: { content_id: 'ccc00001' },
      };
      await writer.writeChunk(chunk(runId, [], { failures: [failure] }));
      await writer.writeChunk(chunk(runId, [], { failures: [{ ...failure, reason: 'date is missing' }] }));
      expect(await writer.openFailures(['digital/videoa'])).toEqual([
        expect.objectContaining({ key: 'item:ccc00001', attempts: 2, reason: 'date is missing', pageOffset: 1 }),
      ]);
      await writer.writeChunk(chunk(runId, [video('ccc00001')]));
      expect(await writer.openFailures(['digital/videoa'])).toEqual([]);
      const pageFailure = { ...failure, kind: 'page' as const, key: 'page:x:101', contentId: null, pageOffset: 101, reason: 'HTTP 503' };
      await writer.writeChunk(chunk(runId, [], { failures: [pageFailure] }));
      await writer.writeChunk(chunk(runId, [], { resolved: [{ key: 'page:x:101', resolution: 'refetched' }] }));
      expect(await writer.openFailures(['digital/videoa'])).toEqual([]);
      const closed = await db.query(`SELECT failure_key, resolution FROM am_ml.sync_failures ORDER BY failure_key`);
      expect(closed.rows).toEqual([
        { failure_key: 'item:ccc00001', resolution: 'written' },
        { failure_key: 'page:x:101', resolution: 'refetched' },
      ]);
    });

    it('finds, resumes, restarts and finishes runs by scope', async () => {
      const again = await writer.openRun(SCOPE, 'auto', { newRunId: 'run-2' });
      expect(again).toMatchObject({ runId: 'run-1', resumed: true });
      await writer.writeChunk(chunk(runId, [], { checkpoints: [checkpoint(101)] }));
      expect((await writer.openRun(null, 'resume', { newRunId: 'x' })).checkpoints).toEqual([checkpoint(101)]);
      const other = await writer.openRun({ ...SCOPE, to: '2024-02-29' }, 'auto', { newRunId: 'run-3' });
      expect(other).toMatchObject({ runId: 'run-3', resumed: false, checkpoints: [] });
      const restarted = await writer.openRun(SCOPE, 'restart', { newRunId: 'run-4' });
      expect(restarted).toMatchObject({ runId: 'run-4', resumed: false, checkpoints: [] });
      await writer.finishRun('run-4', { ok: true }, true);
      await expect(writer.openRun(SCOPE, 'resume', { newRunId: 'run-5' })).rejects.toBeInstanceOf(UsageError);
      expect(await writer.openRun(SCOPE, 'auto', { newRunId: 'run-5' })).toMatchObject({ runId: 'run-5', resumed: false });
      const runs = await db.query('SELECT run_id, status FROM am_ml.sync_runs ORDER BY run_id');
      expect(runs.rows).toEqual([
        { run_id: 'run-1', status: 'abandoned' },
        { run_id: 'run-3', status: 'running' },
        { run_id: 'run-4', status: 'done' },
        { run_id: 'run-5', status: 'running' },
      ]);
    });

    it('reports per-window totals, stored counts and open failures for reconciliation', async () => {
      await writer.writeChunk(
        chunk(runId, [video('aaa00001'), video('aaa00002'), video('aaa00003', { productReleasedAt: new Date('2025-01-01T00:00:00Z') })], {
          checkpoints: [{ ...checkpoint(4, 'done'), totalCount: 4 }],
          finishedWindows: [{ ...WINDOW, source: 'FANZA' }],
          failures: [
            { kind: 'item', key: 'item:zzz', floor: WINDOW.floor, windowStart: WINDOW.start, windowEnd: WINDOW.end, pageOffset: 1, contentId: 'zzz', reason: 'broken' },
          ],
        }),
      );
      expect(await writer.runWindows(runId, { 'digital/videoa': 'FANZA' })).toEqual([
        { floor: 'digital/videoa', windowStart: WINDOW.start, windowEnd: WINDOW.end, totalCount: 4, storedCount: 2, openInvalidItems: 1, openFailedPages: 0 },
      ]);
    });

    it('refuses to write into a database without the sync tables, naming what is missing', async () => {
      await db.exec('ALTER TABLE am_ml.sync_checkpoints RENAME COLUMN status TO status_renamed');
      try {
        await expect(createCatalogWriter(db).prepare()).rejects.toThrow(/am_ml\.sync_checkpoints lacks column\(s\) status/);
      } finally {
        await db.exec('ALTER TABLE am_ml.sync_checkpoints RENAME COLUMN status_renamed TO status');
      }
    });
  });
}
