/**
 * `CatalogWriter` over any `Db` (PGlite or postgres://): writes DMM catalog chunks into the app's tables.
 *
 * Each chunk is ONE transaction of set-based statements (app-schema §7.15–7.17): the chunk's videos, tag links and
 * performer links are loaded with binary COPY into temporary staging tables, then merged with
 * `INSERT … SELECT … ON CONFLICT` on the unique keys (videos.external_id, tags.name, performers.fanza_actress_id,
 * the join tables' primary keys). Keys are de-duplicated within the chunk first (Postgres rejects a statement that
 * touches one row twice). `has_performer` is written with the video, the join rows are replaced by the API's set,
 * and the sync checkpoint and failure rows are committed in the same transaction, so a crash at any point leaves
 * either the whole chunk with its checkpoint or neither.
 *
 * Updates only touch rows whose values differ (`IS DISTINCT FROM`), so syncing the same data twice changes nothing.
 * Run, checkpoint and failure bookkeeping outside the chunks is in `sync-runs.ts`.
 */
import { InternalError } from '../errors.js';
import type {
  AfterChunkHook,
  CatalogChunk,
  CatalogVideo,
  CatalogWriter,
  ChangedVideo,
  ChunkWriteResult,
  SyncCheckpoint,
  SyncFailureRecord,
} from './catalog-types.js';
import { DEFAULT_TAG_GROUP, genreGroupPairs } from './genre-groups.js';
import { assertColumns } from './introspect.js';
import { finishSyncRun, openSyncFailures, openSyncRun, syncRunWindows } from './sync-runs.js';
import type { CopyColumn, Db, Queryable } from './types.js';

export interface CatalogWriterOptions {
  /** Runs inside each chunk's transaction with the inserted/updated videos (see `AfterChunkHook`). */
  afterChunk?: AfterChunkHook;
}

/** Columns of public.videos the sync writes, in staging order. */
const VIDEO_COLUMNS = [
  ['external_id', 'text'],
  ['title', 'text'],
  ['duration_seconds', 'int4'],
  ['thumbnail_url', 'text'],
  ['thumbnail_vertical_url', 'text'],
  ['preview_video_url', 'text'],
  ['sample_video_url', 'text'],
  ['distribution_code', 'text'],
  ['maker_code', 'text'],
  ['director', 'text'],
  ['series', 'text'],
  ['maker', 'text'],
  ['label', 'text'],
  ['price', 'float8'],
  ['product_released_at', 'timestamptz'],
  ['image_urls', 'text[]'],
  ['source', 'text'],
  ['product_url', 'text'],
  ['affiliate_url', 'text'],
  ['has_performer', 'bool'],
] as const satisfies readonly (readonly [string, CopyColumn['type']])[];

const STAGE_VIDEO_COPY: CopyColumn[] = [{ name: 'ord', type: 'int4' }, ...VIDEO_COLUMNS.map(([name, type]) => ({ name, type }))];
const STAGE_TAG_COPY: CopyColumn[] = [
  { name: 'external_id', type: 'text' },
  { name: 'name', type: 'text' },
];
const STAGE_PERFORMER_COPY: CopyColumn[] = [
  { name: 'ord', type: 'int4' },
  { name: 'external_id', type: 'text' },
  { name: 'actress_id', type: 'text' },
  { name: 'name', type: 'text' },
];

/** What the sync needs from the app schema (checked once before the first write). */
const REQUIRED_COLUMNS: Record<string, readonly string[]> = {
  'public.videos': ['id', ...VIDEO_COLUMNS.map(([c]) => c)],
  'public.tags': ['id', 'name', 'tag_group_id'],
  'public.tag_groups': ['id', 'name'],
  'public.video_tags': ['video_id', 'tag_id'],
  'public.performers': ['id', 'name', 'fanza_actress_id'],
  'public.video_performers': ['video_id', 'performer_id'],
  'am_ml.sync_checkpoints': ['run_id', 'floor', 'window_start', 'window_end', 'status', 'total_count', 'next_offset', 'stored_count'],
  'am_ml.sync_failures': ['failure_key', 'kind', 'content_id', 'reason', 'raw', 'attempts', 'resolved_at', 'resolution', 'run_id'],
  'am_ml.sync_runs': ['run_id', 'scope_key', 'scope', 'status', 'summary'],
};

const nonUpdatedColumns = new Set(['external_id']);
const UPDATE_COLUMNS = VIDEO_COLUMNS.map(([c]) => c).filter((c) => !nonUpdatedColumns.has(c));

/**
 * Staging tables live for the session and are emptied at every commit (`ON COMMIT DELETE ROWS`): creating and
 * dropping them per chunk measured ~20 ms a chunk on PGlite. `IF NOT EXISTS` makes each transaction self-sufficient
 * on any pooled connection. Rolled-back transactions (dry runs, failures) discard their rows too.
 */
const STAGING_DDL = `
CREATE TEMP TABLE IF NOT EXISTS am_ml_stage_videos (
  ord int NOT NULL, external_id text NOT NULL, title text NOT NULL, duration_seconds int, thumbnail_url text,
  thumbnail_vertical_url text, preview_video_url text, sample_video_url text, distribution_code text, maker_code text,
  director text, series text, maker text, label text, price float8, product_released_at timestamptz,
  image_urls text[], source text NOT NULL, product_url text, affiliate_url text, has_performer boolean NOT NULL
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS am_ml_stage_tags (external_id text NOT NULL, name text NOT NULL) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS am_ml_stage_performers (
  ord int NOT NULL, external_id text NOT NULL, actress_id text NOT NULL, name text NOT NULL
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS am_ml_stage_ids (id uuid NOT NULL, external_id text NOT NULL, is_new boolean NOT NULL)
  ON COMMIT DELETE ROWS;`;

/** The chunk's rows keyed by external_id, last occurrence wins; tags and performers de-duplicated per video. */
function dedupeVideos(videos: readonly CatalogVideo[]): CatalogVideo[] {
  const byId = new Map<string, CatalogVideo>();
  for (const v of videos) {
    byId.delete(v.externalId); // keep the position of the last occurrence
    byId.set(v.externalId, v);
  }
  return [...byId.values()].map((v) => {
    const performers = new Map<string, { fanzaActressId: string; name: string }>();
    for (const p of v.performers) performers.set(p.fanzaActressId, p);
    return { ...v, tags: [...new Set(v.tags)], performers: [...performers.values()] };
  });
}

/** Last checkpoint per window wins (one statement may not update a row twice). */
function dedupeCheckpoints(cps: readonly SyncCheckpoint[]): SyncCheckpoint[] {
  const byKey = new Map<string, SyncCheckpoint>();
  for (const c of cps) byKey.set(`${c.floor}|${c.start.toISOString()}|${c.end.toISOString()}`, c);
  return [...byKey.values()];
}

function dedupeFailures(fs: readonly SyncFailureRecord[]): SyncFailureRecord[] {
  const byKey = new Map<string, SyncFailureRecord>();
  for (const f of fs) byKey.set(f.key, f);
  return [...byKey.values()];
}

/** Thrown inside a dry-run transaction to roll it back after computing what it would do. */
class DryRunRollback extends InternalError {
  constructor(readonly result: ChunkWriteResult) {
    super('dry run rollback');
  }
}

export function createCatalogWriter(db: Db, opts: CatalogWriterOptions = {}): CatalogWriter {
  const groupPairs = genreGroupPairs();
  const groupGenres = groupPairs.map((p) => p.genre);
  const groupNames = groupPairs.map((p) => p.group);

  /**
   * On the embedded database only, skip the per-row foreign-key triggers while writing join rows (returned as SQL
   * to prepend or append to a statement, saving round trips). Each row's video_id and tag_id/performer_id come from
   * a join against the parent rows in this same transaction, and PGlite has a single connection, so no other
   * session can remove a parent in between: the checks cannot fail, and they were ~40 % of a chunk's time in
   * WebAssembly. Never on a server (other sessions exist; the app's own triggers must run). Switched back before
   * anything else runs, so the afterChunk hook sees normal triggers.
   */
  function relaxJoinChecks(relax: boolean): string {
    if (db.driver !== 'pglite') return '';
    return `SET LOCAL session_replication_role = ${relax ? 'replica' : 'origin'};`;
  }

  async function writeInTx(tx: Queryable, chunk: CatalogChunk, dryRun: boolean): Promise<ChunkWriteResult> {
    const videos = dedupeVideos(chunk.videos);
    const result: ChunkWriteResult = {
      inserted: 0,
      updated: 0,
      unchanged: 0,
      rejected: [],
      windowCounts: [],
      newTags: 0,
      newPerformers: 0,
    };
    const changed = new Map<string, ChangedVideo>();
    const failures = [...chunk.failures];

    if (videos.length) {
      await tx.exec(STAGING_DDL);
      await tx.copyRows(
        'am_ml_stage_videos',
        STAGE_VIDEO_COPY,
        videos.map((v, ord) => [
          ord,
          v.externalId,
          v.title,
          v.durationSeconds,
          v.thumbnailUrl,
          v.thumbnailVerticalUrl,
          v.previewVideoUrl,
          v.sampleVideoUrl,
          v.distributionCode,
          v.makerCode,
          v.director,
          v.series,
          v.maker,
          v.label,
          v.price,
          v.productReleasedAt,
          v.imageUrls,
          v.source,
          v.productUrl,
          v.affiliateUrl,
          v.performers.length > 0,
        ]),
      );
      await tx.copyRows(
        'am_ml_stage_tags',
        STAGE_TAG_COPY,
        videos.flatMap((v) => v.tags.map((t) => [v.externalId, t])),
      );
      let pOrd = 0;
      await tx.copyRows(
        'am_ml_stage_performers',
        STAGE_PERFORMER_COPY,
        videos.flatMap((v) => v.performers.map((p) => [pOrd++, v.externalId, p.fanzaActressId, p.name])),
      );

      // The app's UNIQUE (source, distribution_code, maker_code) would abort the whole chunk on one clash; set the
      // clashing items aside as failures instead (against stored rows, or an earlier row of this chunk).
      const clashes = await tx.query<{ external_id: string; other: string }>(`
        WITH s AS (
          SELECT ord, external_id, source, distribution_code, maker_code FROM am_ml_stage_videos
           WHERE distribution_code IS NOT NULL AND maker_code IS NOT NULL)
        SELECT s.external_id, v.external_id AS other FROM s
          JOIN public.videos v ON v.source = s.source AND v.distribution_code = s.distribution_code
                              AND v.maker_code = s.maker_code AND v.external_id IS DISTINCT FROM s.external_id
        UNION ALL
        SELECT s.external_id, f.external_id FROM s
          JOIN s f ON f.source = s.source AND f.distribution_code = s.distribution_code
                  AND f.maker_code = s.maker_code AND f.ord < s.ord`);
      if (clashes.rows.length) {
        const seen = new Set<string>();
        const byId = new Map(videos.map((v) => [v.externalId, v]));
        for (const c of clashes.rows) {
          if (seen.has(c.external_id)) continue;
          seen.add(c.external_id);
          const v = byId.get(c.external_id)!;
          const reason = `source/distribution_code/maker_code (${v.source}, ${v.distributionCode}, ${v.makerCode}) already belongs to video ${c.other}; the app's unique key allows one video per triple`;
          result.rejected.push({ externalId: c.external_id, reason });
          failures.push({
            kind: 'item',
            key: `item:${c.external_id}`,
            floor: v.origin?.floor ?? null,
            windowStart: v.origin?.windowStart ?? null,
            windowEnd: v.origin?.windowEnd ?? null,
            pageOffset: v.origin?.pageOffset ?? null,
            contentId: c.external_id,
            reason,
          });
        }
        const ids = [...seen];
        await tx.query('DELETE FROM am_ml_stage_videos WHERE external_id = ANY($1::text[])', [ids]);
        await tx.query('DELETE FROM am_ml_stage_tags WHERE external_id = ANY($1::text[])', [ids]);
        await tx.query('DELETE FROM am_ml_stage_performers WHERE external_id = ANY($1::text[])', [ids]);
      }
      const staged = videos.length - result.rejected.length;

      const cols = VIDEO_COLUMNS.map(([c]) => c);
      const upserted = await tx.query<{ id: string; external_id: string; inserted: boolean }>(`
        INSERT INTO public.videos (${cols.join(', ')})
        SELECT ${cols.map((c) => (c === 'price' ? 'price::numeric' : c)).join(', ')} FROM am_ml_stage_videos ORDER BY ord
        ON CONFLICT (external_id) DO UPDATE SET ${UPDATE_COLUMNS.map((c) => `${c} = EXCLUDED.${c}`).join(', ')}
        WHERE (${UPDATE_COLUMNS.map((c) => `videos.${c}`).join(', ')}) IS DISTINCT FROM
              (${UPDATE_COLUMNS.map((c) => `EXCLUDED.${c}`).join(', ')})
        RETURNING id::text AS id, external_id, (xmax = 0) AS inserted`);
      for (const r of upserted.rows) {
        changed.set(r.external_id, { id: r.id, externalId: r.external_id, change: r.inserted ? 'inserted' : 'updated' });
      }

      // Ids of every staged video (changed or not): the join rows of all of them are brought in line. Videos
      // inserted by this chunk have no join rows yet, so the deletes below only look at the others.
      const idRows = await tx.query<{ id: string; external_id: string }>(
        `INSERT INTO am_ml_stage_ids (id, external_id, is_new)
         SELECT v.id, s.external_id, n.id IS NOT NULL
           FROM am_ml_stage_videos s JOIN public.videos v ON v.external_id = s.external_id
           LEFT JOIN unnest($1::uuid[]) AS n(id) ON n.id = v.id
         RETURNING id::text AS id, external_id`,
        [upserted.rows.filter((r) => r.inserted).map((r) => r.id)],
      );
      const externalIdOf = new Map(idRows.rows.map((r) => [r.id, r.external_id]));
      const anyExisting = idRows.rows.length > upserted.rows.filter((r) => r.inserted).length;

      // Tags: new names get their tag group (mapping, else the default group; NULL if production lacks it).
      const newTags = await tx.query(
        `
        INSERT INTO public.tags (name, tag_group_id)
        SELECT n.name, COALESCE(g.id, d.id)
          FROM (SELECT DISTINCT name FROM am_ml_stage_tags) n
          LEFT JOIN unnest($1::text[], $2::text[]) AS m(genre, grp) ON m.genre = n.name
          LEFT JOIN public.tag_groups g ON g.name = m.grp
          LEFT JOIN public.tag_groups d ON d.name = $3
         WHERE NOT EXISTS (SELECT 1 FROM public.tags t WHERE t.name = n.name)
         ORDER BY n.name
        ON CONFLICT (name) DO NOTHING
        RETURNING id`,
        [groupGenres, groupNames, DEFAULT_TAG_GROUP],
      );
      result.newTags = newTags.rowCount;

      const touched = new Set<string>();
      const touch = (rows: { video_id: string }[]) => {
        for (const r of rows) touched.add(externalIdOf.get(r.video_id)!);
      };
      if (anyExisting) {
        const removed = await tx.query<{ video_id: string }>(`
          DELETE FROM public.video_tags vt USING am_ml_stage_ids i
           WHERE vt.video_id = i.id AND NOT i.is_new
             AND NOT EXISTS (SELECT 1 FROM am_ml_stage_tags st JOIN public.tags t ON t.name = st.name
                              WHERE st.external_id = i.external_id AND t.id = vt.tag_id)
          RETURNING vt.video_id::text AS video_id`);
        touch(removed.rows);
      }
      // New videos cannot conflict: a plain INSERT skips the speculative-insertion path of ON CONFLICT. From here to
      // the last join row, the embedded database skips per-row FK triggers (see relaxJoinChecks).
      await tx.exec(`${relaxJoinChecks(true)}
        INSERT INTO public.video_tags (video_id, tag_id)
        SELECT DISTINCT i.id, t.id
          FROM am_ml_stage_tags st JOIN am_ml_stage_ids i USING (external_id) JOIN public.tags t ON t.name = st.name
         WHERE i.is_new;`);
      if (anyExisting) {
        const added = await tx.query<{ video_id: string }>(`
          INSERT INTO public.video_tags (video_id, tag_id)
          SELECT DISTINCT i.id, t.id
            FROM am_ml_stage_tags st JOIN am_ml_stage_ids i USING (external_id) JOIN public.tags t ON t.name = st.name
           WHERE NOT i.is_new
          ON CONFLICT (video_id, tag_id) DO NOTHING
          RETURNING video_id::text AS video_id`);
        touch(added.rows);
      }

      // Performers: upsert on the DMM actress id (names are not unique); the last name seen in the chunk wins.
      const perf = await tx.query<{ inserted: boolean }>(`
        INSERT INTO public.performers (name, fanza_actress_id)
        SELECT DISTINCT ON (actress_id) name, actress_id FROM am_ml_stage_performers ORDER BY actress_id, ord DESC
        ON CONFLICT (fanza_actress_id) DO UPDATE SET name = EXCLUDED.name
        WHERE performers.name IS DISTINCT FROM EXCLUDED.name
        RETURNING (xmax = 0) AS inserted`);
      result.newPerformers = perf.rows.filter((r) => r.inserted).length;

      if (anyExisting) {
        const removed = await tx.query<{ video_id: string }>(`
          DELETE FROM public.video_performers vp USING am_ml_stage_ids i
           WHERE vp.video_id = i.id AND NOT i.is_new
             AND NOT EXISTS (SELECT 1 FROM am_ml_stage_performers sp JOIN public.performers p ON p.fanza_actress_id = sp.actress_id
                              WHERE sp.external_id = i.external_id AND p.id = vp.performer_id)
          RETURNING vp.video_id::text AS video_id`);
        touch(removed.rows);
      }
      await tx.exec(`
        INSERT INTO public.video_performers (video_id, performer_id)
        SELECT DISTINCT i.id, p.id
          FROM am_ml_stage_performers sp JOIN am_ml_stage_ids i USING (external_id)
          JOIN public.performers p ON p.fanza_actress_id = sp.actress_id
         WHERE i.is_new;
        ${anyExisting ? '' : relaxJoinChecks(false)}`);
      if (anyExisting) {
        const added = await tx.query<{ video_id: string }>(`
          INSERT INTO public.video_performers (video_id, performer_id)
          SELECT DISTINCT i.id, p.id
            FROM am_ml_stage_performers sp JOIN am_ml_stage_ids i USING (external_id)
            JOIN public.performers p ON p.fanza_actress_id = sp.actress_id
           WHERE NOT i.is_new
          ON CONFLICT (video_id, performer_id) DO NOTHING
          RETURNING video_id::text AS video_id`);
        touch(added.rows);
        await tx.exec(relaxJoinChecks(false) || 'SELECT 1');
      }

      for (const [id, externalId] of externalIdOf) {
        if (touched.has(externalId) && !changed.has(externalId)) changed.set(externalId, { id, externalId, change: 'updated' });
      }
      for (const c of changed.values()) {
        if (c.change === 'inserted') result.inserted++;
        else result.updated++;
      }
      result.unchanged = staged - result.inserted - result.updated;

      // An item that is written now no longer fails.
      await tx.query(`
        UPDATE am_ml.sync_failures f SET resolved_at = now(), resolution = 'written'
          FROM am_ml_stage_videos s
         WHERE f.failure_key = 'item:' || s.external_id AND f.resolved_at IS NULL`);
    }

    if (chunk.resolved.length) {
      await tx.query(
        `UPDATE am_ml.sync_failures f SET resolved_at = now(), resolution = r.resolution
           FROM jsonb_to_recordset($1::jsonb) AS r(key text, resolution text)
          WHERE f.failure_key = r.key AND f.resolved_at IS NULL`,
        [JSON.stringify(chunk.resolved)],
      );
    }
    const newFailures = dedupeFailures(failures);
    if (newFailures.length) {
      await tx.query(
        `INSERT INTO am_ml.sync_failures
           (kind, failure_key, floor, window_start, window_end, page_offset, content_id, reason, raw, run_id)
         SELECT kind, key, floor, window_start, window_end, page_offset, content_id, reason, raw, $2
           FROM jsonb_to_recordset($1::jsonb) AS f(kind text, key text, floor text, window_start timestamptz,
                window_end timestamptz, page_offset int, content_id text, reason text, raw jsonb)
         ON CONFLICT (failure_key) WHERE resolved_at IS NULL DO UPDATE
           SET attempts = sync_failures.attempts + 1, reason = EXCLUDED.reason, raw = EXCLUDED.raw,
               floor = EXCLUDED.floor, window_start = EXCLUDED.window_start, window_end = EXCLUDED.window_end,
               page_offset = EXCLUDED.page_offset, last_failed_at = now(), run_id = EXCLUDED.run_id`,
        [
          JSON.stringify(
            newFailures.map((f) => ({
              kind: f.kind,
              key: f.key,
              floor: f.floor,
              window_start: f.windowStart?.toISOString() ?? null,
              window_end: f.windowEnd?.toISOString() ?? null,
              page_offset: f.pageOffset,
              content_id: f.contentId,
              reason: f.reason,
              raw: f.raw ?? null,
            })),
          ),
          chunk.runId,
        ],
      );
    }

    const cps = dedupeCheckpoints(chunk.checkpoints);
    if (cps.length) {
      await tx.query(
        `INSERT INTO am_ml.sync_checkpoints (run_id, floor, window_start, window_end, status, total_count, next_offset, done, updated_at)
         SELECT $1, c.floor, c.window_start, c.window_end, c.status, c.total_count, c.next_offset, c.status = 'done', now()
           FROM jsonb_to_recordset($2::jsonb) AS c(floor text, window_start timestamptz, window_end timestamptz,
                status text, total_count int, next_offset int)
         ON CONFLICT (run_id, floor, window_start, window_end) DO UPDATE
           SET status = EXCLUDED.status, total_count = EXCLUDED.total_count, next_offset = EXCLUDED.next_offset,
               done = EXCLUDED.done, updated_at = now()`,
        [
          chunk.runId,
          JSON.stringify(
            cps.map((c) => ({
              floor: c.floor,
              window_start: c.start.toISOString(),
              window_end: c.end.toISOString(),
              status: c.status,
              total_count: c.totalCount,
              next_offset: c.nextOffset,
            })),
          ),
        ],
      );
    }
    for (const w of chunk.finishedWindows ?? []) {
      const r = await tx.query<{ n: number }>(
        `WITH n AS (SELECT count(*)::int AS n FROM public.videos
                     WHERE source = $5 AND product_released_at BETWEEN $3 AND $4)
         UPDATE am_ml.sync_checkpoints c SET stored_count = n.n FROM n
          WHERE c.run_id = $1 AND c.floor = $2 AND c.window_start = $3 AND c.window_end = $4
         RETURNING n.n`,
        [chunk.runId, w.floor, w.start.toISOString(), w.end.toISOString(), w.source],
      );
      result.windowCounts.push({ storedCount: r.rows[0]?.n ?? 0 });
    }

    if (!dryRun && opts.afterChunk && changed.size) await opts.afterChunk(tx, [...changed.values()]);
    return result;
  }

  return {
    async prepare() {
      await assertColumns(db, REQUIRED_COLUMNS);
    },

    openRun: (scope, mode, meta) => openSyncRun(db, scope, mode, meta),
    openFailures: (floors) => openSyncFailures(db, floors),

    async writeChunk(chunk: CatalogChunk, wopts: { dryRun?: boolean } = {}): Promise<ChunkWriteResult> {
      if (!wopts.dryRun) return db.transaction((tx) => writeInTx(tx, chunk, false));
      try {
        await db.transaction(async (tx) => {
          throw new DryRunRollback(await writeInTx(tx, chunk, true));
        });
      } catch (err) {
        if (err instanceof DryRunRollback) return err.result;
        throw err;
      }
      throw new InternalError('dry-run transaction was not rolled back');
    },

    runWindows: (runId, sources) => syncRunWindows(db, runId, sources),
    finishRun: (runId, summary, done) => finishSyncRun(db, runId, summary, done),
  };
}
