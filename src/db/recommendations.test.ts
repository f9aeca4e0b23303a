/**
 * The app's serving rule (app-schema §3) on real PGlite + pgvector, for vector and halfvec columns, against the
 * same rule computed in JS: query = mean of the liked items' embeddings (else the user's embedding, else nothing);
 * candidates of the served version only, with a sample video, undecided, without an excluded tag; ranked by L2
 * distance with score 1 − distance.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EmbeddingType } from './migrations/index.js';
import type { PgliteDb } from './pglite.js';
import { decidedVideos, popularityRanking, recentLikes, servedRecommendations, undecidedBy, videoCards } from './recommendations.js';
import { createTestDb } from '../testing/pglite.js';

const U1 = '00000000-0000-4000-8000-000000000001'; // likes v0, v1; nopes v2; excluded tag 'x'
const U2 = '00000000-0000-4000-8000-000000000002'; // no decisions, a user embedding
const U3 = '00000000-0000-4000-8000-000000000003'; // nothing at all
const U4 = '00000000-0000-4000-8000-000000000004'; // likes v3 (popularity)
const vid = (i: number) => `10000000-0000-4000-8000-${String(i).padStart(12, '0')}`;

/** 10 videos; v5 has no sample video; v6 carries the tag U1 excluded. Embeddings: unit vectors in 4-d. */
const EMB: number[][] = [
  [1, 0, 0, 0],
  [0.8, 0.6, 0, 0],
  [0, 0, 1, 0],
  [0.6, 0.8, 0, 0],
  [0, 1, 0, 0],
  [0.9, 0.436, 0, 0],
  [0.95, 0.312, 0, 0],
  [0, 0, 0, 1],
  [0.5, 0.5, 0.5, 0.5],
  [0.707, 0, 0.707, 0],
];

const norm = (v: number[]) => {
  const n = Math.hypot(...v);
  return v.map((x) => x / n);
};

async function seed(db: PgliteDb): Promise<void> {
  await db.query(`INSERT INTO auth.users (id) SELECT unnest($1::uuid[])`, [[U1, U2, U3, U4]]);
  for (let i = 0; i < EMB.length; i++) {
    await db.query(
      `INSERT INTO public.videos (id, external_id, title, maker, source, sample_video_url) VALUES ($1, $2, $3, $4, 'FANZA', $5)`,
      [vid(i), `abc${i}`, `title ${i}`, i % 2 ? 'maker-odd' : 'maker-even', i === 5 ? null : `https://x.invalid/${i}`],
    );
  }
  await db.query(`INSERT INTO public.tags (name, tag_group_id) VALUES ('x', (SELECT id FROM public.tag_groups WHERE name = 'ジャンル')), ('hidden', (SELECT id FROM public.tag_groups WHERE name = 'その他'))`);
  await db.query(`INSERT INTO public.video_tags (video_id, tag_id) SELECT $1::uuid, id FROM public.tags WHERE name = 'x'`, [vid(6)]);
  await db.query(`INSERT INTO public.video_tags (video_id, tag_id) SELECT $1::uuid, id FROM public.tags`, [vid(0)]);
  await db.query(`INSERT INTO public.user_excluded_tags (user_id, tag_id) SELECT $1::uuid, id FROM public.tags WHERE name = 'x'`, [U1]);
  await db.query(`INSERT INTO public.performers (name, fanza_actress_id) VALUES ('A', '101')`);
  await db.query(`INSERT INTO public.video_performers (video_id, performer_id) SELECT $1::uuid, id FROM public.performers`, [vid(1)]);
  const decide = (u: string, v: number, d: string, t: string) =>
    db.query(`INSERT INTO public.user_video_decisions (user_id, video_id, decision_type, created_at) VALUES ($1, $2, $3, $4)`, [u, vid(v), d, t]);
  await decide(U1, 0, 'swipe_like', '2026-01-01T00:00:00Z');
  await decide(U1, 1, 'grid_like', '2026-01-02T00:00:00Z');
  await decide(U1, 2, 'swipe_nope', '2026-01-03T00:00:00Z');
  await decide(U4, 3, 'swipe_like', '2026-01-01T00:00:00Z');
  await decide(U4, 0, 'swipe_like', '2026-01-01T00:00:00Z');
  // The old version: its rows were updated earlier, so serving ignores them (v7 only exists in the old version).
  for (let i = 0; i < EMB.length; i++) {
    const version = i === 7 ? 'old' : 'new';
    await db.query(`INSERT INTO public.video_embeddings (video_id, embedding, model_version, updated_at) VALUES ($1, $2, $3, $4)`, [
      vid(i),
      `[${EMB[i].join(',')}]`,
      version,
      version === 'new' ? '2026-02-01T00:00:00Z' : '2026-01-01T00:00:00Z',
    ]);
  }
  await db.query(`INSERT INTO public.user_embeddings (user_id, embedding, model_version) VALUES ($1, $2, 'new')`, [U2, `[${norm([0, 0, 0.2, 1]).join(',')}]`]);
}

/** The rule in JS over the fixture. */
function expected(query: number[], exclude: number[], limit: number): { id: string; score: number }[] {
  return EMB.map((e, i) => ({ i, d: Math.hypot(...e.map((x, k) => x - query[k])) }))
    .filter(({ i }) => i !== 5 && i !== 7 && !exclude.includes(i))
    .sort((a, b) => a.d - b.d)
    .slice(0, limit)
    .map(({ i, d }) => ({ id: vid(i), score: 1 - d }));
}

for (const type of ['vector', 'halfvec'] as EmbeddingType[]) {
  describe(`serving rule on ${type}(4)`, () => {
    let db: PgliteDb;
    // halfvec stores float16: about three significant digits.
    const tol = type === 'halfvec' ? 2e-3 : 1e-6;
    beforeAll(async () => {
      db = await createTestDb({ embeddingType: type, dim: 4 });
      await seed(db);
    });
    afterAll(async () => db.close());

    it('ranks the served version by distance to the mean of the liked items, skipping decided, sample-less and excluded videos', async () => {
      const r = await servedRecommendations(db, U1, 5);
      expect(r.source).toBe('liked-items-mean');
      expect(r.modelVersion).toBe('new');
      const mean = EMB[0].map((x, k) => (x + EMB[1][k]) / 2);
      const want = expected(mean, [0, 1, 2, 6], 5);
      expect(r.items.map((i) => i.videoId)).toEqual(want.map((w) => w.id));
      r.items.forEach((item, k) => expect(Math.abs(item.score - want[k].score)).toBeLessThan(tol));
    });

    it("falls back to the user's embedding without likes, and to nothing without either", async () => {
      const r = await servedRecommendations(db, U2, 3);
      expect(r.source).toBe('user-embedding');
      expect(r.items.map((i) => i.videoId)).toEqual(expected(norm([0, 0, 0.2, 1]), [], 3).map((w) => w.id));
      const none = await servedRecommendations(db, U3, 3);
      expect(none).toEqual({ source: 'none', modelVersion: 'new', items: [] });
    });

    it('reads recent likes newest first, cards with shown genres, training tags and performers, and the popularity feed', async () => {
      const likes = await recentLikes(db, U1, 10);
      expect(likes.map((l) => l.videoId)).toEqual([vid(1), vid(0)]);
      expect(likes[0].likedAt).toBe('2026-01-02T00:00:00.000Z');
      const [card] = await videoCards(db, [vid(0)]);
      // 'hidden' is in その他: used for training, not shown in the app.
      expect(card).toMatchObject({ externalId: 'abc0', genres: ['x'], tags: ['hidden', 'x'], maker: 'maker-even' });
      expect((await videoCards(db, [vid(1)]))[0].performers).toEqual([{ id: '101', name: 'A' }]);
      // v0 has two likes (U1, U4), v1 and v3 one each (ties by id); U1 decided v0, v1 and v2 → only v3 is left.
      const ranking = await popularityRanking(db, 10);
      expect(ranking).toEqual([vid(0), vid(1), vid(3)]);
      const decided = await decidedVideos(db, [U1, U3]);
      expect([...decided.get(U1)!].sort()).toEqual([vid(0), vid(1), vid(2)]);
      expect(undecidedBy(ranking, decided.get(U1)!, 2)).toEqual([vid(3)]);
      expect(undecidedBy(ranking, decided.get(U3)!, 2)).toEqual([vid(0), vid(1)]);
    });
  });
}
