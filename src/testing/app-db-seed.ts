/**
 * Seed the app schema (in PGlite) with a catalog and decisions, for `train --from-db` / `--reviews` tests: videos,
 * tags in a training group (plus one in a non-training group, which must be ignored), performers with DMM actress
 * ids, and user_video_decisions with auth.users rows.
 */
import type { Queryable } from '../db/types.js';
import type { CatalogItem } from '../ml/data/dataset.js';
import type { Interaction } from '../ml/data/types.js';
import { tokensOf } from '../ml/features/index.js';

/** A tag every video gets in the non-training group セール (sale): it must never reach the features. */
export const SALE_TAG = 'セール中';

/** Insert the catalog; returns item_id → videos.id. Items keep `item_id` as `external_id`. */
export async function seedCatalog(db: Queryable, items: readonly CatalogItem[]): Promise<Map<string, string>> {
  const { rows } = await db.query<{ id: string; external_id: string }>(
    `INSERT INTO public.videos (external_id, title, maker, series, label, source, price, product_released_at, duration_seconds)
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::numeric[], $8::timestamptz[], $9::int[])
     RETURNING id::text, external_id`,
    [
      items.map((i) => i.item_id),
      items.map((i) => i.title ?? i.item_id),
      items.map((i) => tokensOf(i.maker)[0] ?? null),
      items.map((i) => tokensOf(i.series)[0] ?? null),
      items.map((i) => tokensOf(i.label)[0] ?? null),
      items.map((i) => tokensOf(i.source)[0] ?? 'FANZA'),
      items.map((i) => (typeof i.price === 'number' ? i.price : null)),
      items.map((i) => (typeof i.released_at === 'string' ? `${i.released_at}T00:00:00+09:00` : null)),
      items.map((i) => (typeof i.duration_seconds === 'number' ? i.duration_seconds : null)),
    ],
  );
  const ids = new Map(rows.map((r) => [r.external_id, r.id]));
  const tags = [...new Set(items.flatMap((i) => tokensOf(i.tags)))];
  await db.query(
    `INSERT INTO public.tags (name, tag_group_id) SELECT n, (SELECT id FROM public.tag_groups WHERE name = 'ジャンル') FROM unnest($1::text[]) n`,
    [tags],
  );
  await db.query(`INSERT INTO public.tags (name, tag_group_id) VALUES ($1, (SELECT id FROM public.tag_groups WHERE name = 'セール'))`, [SALE_TAG]);
  const pairs = items.flatMap((i) => [...tokensOf(i.tags), SALE_TAG].map((t) => [ids.get(i.item_id)!, t]));
  await db.query(
    `INSERT INTO public.video_tags (video_id, tag_id) SELECT v::uuid, t.id FROM unnest($1::text[], $2::text[]) AS x(v, n) JOIN public.tags t ON t.name = x.n`,
    [pairs.map((p) => p[0]), pairs.map((p) => p[1])],
  );
  const performers = [...new Set(items.flatMap((i) => tokensOf(i.performers)))];
  await db.query(`INSERT INTO public.performers (name, fanza_actress_id) SELECT 'name of ' || a, a FROM unnest($1::text[]) a`, [performers]);
  const vp = items.flatMap((i) => tokensOf(i.performers).map((p) => [ids.get(i.item_id)!, p]));
  await db.query(
    `INSERT INTO public.video_performers (video_id, performer_id)
     SELECT v::uuid, p.id FROM unnest($1::text[], $2::text[]) AS x(v, a) JOIN public.performers p ON p.fanza_actress_id = x.a`,
    [vp.map((p) => p[0]), vp.map((p) => p[1])],
  );
  return ids;
}

/**
 * Insert decisions (likes as swipe_like, nopes as grid_nope); user ids must be UUIDs. Idempotent: users and
 * (user, video) pairs already present are left as they are (the quickstart seeds the same log on every run).
 * Returns how many users and decisions were new.
 */
export async function seedDecisions(
  db: Queryable,
  interactions: readonly Interaction[],
  videoIds: ReadonlyMap<string, string>,
): Promise<{ users: number; decisions: number }> {
  const users = [...new Set(interactions.map((i) => i.userId))];
  const u = await db.query('INSERT INTO auth.users (id) SELECT u::uuid FROM unnest($1::text[]) u ON CONFLICT (id) DO NOTHING', [users]);
  const d = await db.query(
    `INSERT INTO public.user_video_decisions (user_id, video_id, decision_type, created_at)
     SELECT u::uuid, v::uuid, d, t FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[]) AS x(u, v, d, t)
     ON CONFLICT (user_id, video_id) DO NOTHING`,
    [
      interactions.map((i) => i.userId),
      interactions.map((i) => videoIds.get(i.itemId)!),
      interactions.map((i) => (i.label === 1 ? 'swipe_like' : 'grid_nope')),
      interactions.map((i) => (i.timestamp === undefined ? null : new Date(i.timestamp).toISOString())),
    ],
  );
  return { users: u.rowCount, decisions: d.rowCount };
}
