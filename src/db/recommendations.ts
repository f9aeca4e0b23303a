/**
 * Recommendations computed the way the app serves them (app-schema §3, `get_videos_recommendations`), so that what
 * `am-ml quickstart` prints is what a user of the app would see:
 *
 *   1. query vector = the mean of the `video_embeddings` of the user's last 200 likes; only when that is empty, the
 *      user's `user_embeddings` row; with neither, nothing;
 *   2. candidates = `video_embeddings` rows of the served version (the `model_version` of the most recently updated
 *      row), with a sample video, not decided by the user, without a tag the user excluded;
 *   3. ranked by L2 distance `<->`, score = 1 − distance.
 *
 * Plus what is needed to show them: a user's recent likes, and the videos' titles, maker, genres (tag groups shown
 * in the app) and performers. The popularity feed (most liked videos the user has not decided) is the comparison.
 */
import type { Queryable } from './types.js';

/** The serving RPC averages this many of the newest likes. */
export const SERVING_LIKES_WINDOW = 200;
const LIKE_TYPES = ['swipe_like', 'grid_like'];

export interface VideoCard {
  videoId: string;
  externalId: string | null;
  title: string;
  maker: string | null;
  /** Tags in groups the app shows (`tag_groups.show_in_ui`), by name. */
  genres: string[];
  /** Tags in groups used for training (what the model reads), by name. */
  tags: string[];
  /** DMM actress id (`fanza_actress_id`, else the row id) and name. */
  performers: { id: string; name: string }[];
}

export interface ScoredVideo extends VideoCard {
  score: number;
}

export interface ServedRecommendations {
  /** Where the query vector came from. */
  source: 'liked-items-mean' | 'user-embedding' | 'none';
  /** The served version the candidates were restricted to. */
  modelVersion: string | null;
  items: ScoredVideo[];
}

/** Cards for the given videos, in the order given. */
export async function videoCards(db: Queryable, videoIds: readonly string[]): Promise<VideoCard[]> {
  if (!videoIds.length) return [];
  const { rows } = await db.query<{
    id: string;
    external_id: string | null;
    title: string;
    maker: string | null;
    genres: string[] | null;
    tags: string[] | null;
    performers: { id: string; name: string }[] | null;
  }>(
    `SELECT v.id::text AS id, v.external_id, v.title, v.maker,
            ARRAY(SELECT t.name FROM public.video_tags vt
                    JOIN public.tags t ON t.id = vt.tag_id
                    JOIN public.tag_groups g ON g.id = t.tag_group_id
                   WHERE vt.video_id = v.id AND g.show_in_ui
                   ORDER BY t.name) AS genres,
            ARRAY(SELECT t.name FROM public.video_tags vt
                    JOIN public.tags t ON t.id = vt.tag_id
                    JOIN public.tag_groups g ON g.id = t.tag_group_id
                   WHERE vt.video_id = v.id AND g.use_for_training
                   ORDER BY t.name) AS tags,
            (SELECT json_agg(json_build_object('id', COALESCE(p.fanza_actress_id, p.id::text), 'name', p.name) ORDER BY p.name)
               FROM public.video_performers vp JOIN public.performers p ON p.id = vp.performer_id
              WHERE vp.video_id = v.id) AS performers
       FROM unnest($1::uuid[]) AS wanted(id) JOIN public.videos v ON v.id = wanted.id`,
    [videoIds],
  );
  const byId = new Map(rows.map((r) => [r.id, r]));
  return videoIds.flatMap((id) => {
    const r = byId.get(id);
    return r ? [{ videoId: r.id, externalId: r.external_id, title: r.title, maker: r.maker, genres: r.genres ?? [], tags: r.tags ?? [], performers: r.performers ?? [] }] : [];
  });
}

/** The user's newest likes (latest decision per video), newest first. */
export async function recentLikes(db: Queryable, userId: string, limit: number): Promise<(VideoCard & { likedAt: string | null })[]> {
  const { rows } = await db.query<{ video_id: string; created_at: Date | string | null }>(
    `SELECT video_id::text AS video_id, created_at FROM (
       SELECT DISTINCT ON (video_id) video_id, decision_type, created_at
         FROM public.user_video_decisions
        WHERE user_id = $1::uuid AND video_id IS NOT NULL
        ORDER BY video_id, created_at DESC NULLS LAST, id DESC
     ) latest
      WHERE decision_type = ANY($3::text[])
      ORDER BY created_at DESC NULLS LAST, video_id
      LIMIT $2`,
    [userId, limit, LIKE_TYPES],
  );
  const cards = await videoCards(db, rows.map((r) => r.video_id));
  const at = new Map(rows.map((r) => [r.video_id, r.created_at]));
  return cards.map((c) => {
    const t = at.get(c.videoId);
    return { ...c, likedAt: t === null || t === undefined ? null : new Date(t).toISOString() };
  });
}

/** The serving rule of `get_videos_recommendations` (see the module comment). */
export async function servedRecommendations(db: Queryable, userId: string, limit: number): Promise<ServedRecommendations> {
  const { rows } = await db.query<{ video_id: string | null; score: number | null; model_version: string | null; source: ServedRecommendations['source'] }>(
    `WITH liked AS (
       SELECT video_id FROM public.user_video_decisions
        WHERE user_id = $1::uuid AND decision_type = ANY($4::text[]) AND video_id IS NOT NULL
        ORDER BY created_at DESC NULLS LAST
        LIMIT $3
     ), liked_mean AS (
       SELECT avg(e.embedding) AS v FROM liked l JOIN public.video_embeddings e ON e.video_id = l.video_id
     ), query AS (
       SELECT COALESCE((SELECT v FROM liked_mean), (SELECT embedding FROM public.user_embeddings WHERE user_id = $1::uuid)) AS v,
              CASE WHEN (SELECT v FROM liked_mean) IS NOT NULL THEN 'liked-items-mean'
                   WHEN EXISTS (SELECT 1 FROM public.user_embeddings WHERE user_id = $1::uuid AND embedding IS NOT NULL) THEN 'user-embedding'
                   ELSE 'none' END AS source
     ), latest AS (
       SELECT model_version FROM public.video_embeddings ORDER BY updated_at DESC NULLS LAST LIMIT 1
     ), ranked AS (
       SELECT e.video_id, e.embedding <-> q.v AS distance, e.model_version
         FROM public.video_embeddings e
         JOIN public.videos v ON v.id = e.video_id
         CROSS JOIN query q
        WHERE q.v IS NOT NULL
          AND e.model_version = (SELECT model_version FROM latest)
          AND v.sample_video_url IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM public.user_video_decisions d WHERE d.user_id = $1::uuid AND d.video_id = e.video_id)
          AND NOT EXISTS (SELECT 1 FROM public.video_tags vt JOIN public.user_excluded_tags x ON x.tag_id = vt.tag_id
                           WHERE x.user_id = $1::uuid AND vt.video_id = e.video_id)
        ORDER BY distance, e.video_id
        LIMIT $2
     )
     SELECT q.source, r.video_id::text AS video_id, (1 - r.distance)::float8 AS score,
            COALESCE(r.model_version, (SELECT model_version FROM latest)) AS model_version
       FROM query q LEFT JOIN ranked r ON true
      ORDER BY r.distance NULLS LAST, r.video_id`,
    [userId, limit, SERVING_LIKES_WINDOW, LIKE_TYPES],
  );
  const source = rows[0]?.source ?? 'none';
  const hits = rows.filter((r) => r.video_id !== null);
  const cards = await videoCards(db, hits.map((r) => r.video_id!));
  const score = new Map(hits.map((r) => [r.video_id!, r.score ?? 0]));
  return { source, modelVersion: rows[0]?.model_version ?? null, items: cards.map((c) => ({ ...c, score: score.get(c.videoId)! })) };
}

/**
 * The popularity feed for comparison: videos with a sample by number of likes (ties by id), most liked first. A
 * user's feed is this list without the videos they decided (`undecidedBy`), so one ranking serves every user.
 */
export async function popularityRanking(db: Queryable, limit: number): Promise<string[]> {
  const { rows } = await db.query<{ video_id: string }>(
    `SELECT d.video_id::text AS video_id
       FROM public.user_video_decisions d
       JOIN public.videos v ON v.id = d.video_id
      WHERE d.decision_type = ANY($2::text[]) AND v.sample_video_url IS NOT NULL
      GROUP BY d.video_id
      ORDER BY count(*) DESC, d.video_id
      LIMIT $1`,
    [limit, LIKE_TYPES],
  );
  return rows.map((r) => r.video_id);
}

/** Every video each user decided (likes and nopes), for the given users. */
export async function decidedVideos(db: Queryable, userIds: readonly string[]): Promise<Map<string, Set<string>>> {
  const out = new Map<string, Set<string>>(userIds.map((u) => [u, new Set()]));
  const { rows } = await db.query<{ user_id: string; video_id: string }>(
    `SELECT user_id::text AS user_id, video_id::text AS video_id FROM public.user_video_decisions
      WHERE user_id = ANY($1::uuid[]) AND video_id IS NOT NULL`,
    [userIds],
  );
  for (const r of rows) out.get(r.user_id)?.add(r.video_id);
  return out;
}

/** The popularity feed of one user: the ranking without what they decided, first `limit`. */
export function undecidedBy(ranking: readonly string[], decided: ReadonlySet<string>, limit: number): string[] {
  return ranking.filter((id) => !decided.has(id)).slice(0, limit);
}

/** Performer names by DMM actress id (`fanza_actress_id`); ids without a row are left out. */
export async function performerNames(db: Queryable, ids: readonly string[]): Promise<Map<string, string>> {
  if (!ids.length) return new Map();
  const { rows } = await db.query<{ id: string; name: string }>(
    `SELECT fanza_actress_id AS id, name FROM public.performers WHERE fanza_actress_id = ANY($1::text[])`,
    [ids],
  );
  return new Map(rows.map((r) => [r.id, r.name]));
}
