/**
 * What `am-ml embed` reads: keyset pages of items (the catalog reader train uses, so features come from the same
 * rows) and of users, each optionally limited to one shard or to rows lacking the active version; plus the SQL
 * that names every entity that should end up embedded (the switch uses it to find stragglers) and counts for
 * progress bars.
 *
 * Users are the app's users (`auth.users`); their histories come from `readUserHistories` (latest decision per
 * video, newest first, capped as in training).
 */
import type { CatalogItem } from '../ml/data/dataset.js';
import { type CatalogFilter, HISTORICAL_SOURCES, readCatalogPage, readUserHistories, shardPredicate, type UserHistoryIds } from './training-data.js';
import type { Queryable } from './types.js';

export interface PageFilter {
  shard?: { index: number; count: number };
  lackingVersion?: string;
}

/** Items with id > afterId in id order. */
export function readItemPage(db: Queryable, afterId: string | null, limit: number, filter: PageFilter = {}): Promise<CatalogItem[]> {
  return readCatalogPage(db, afterId, limit, filter as CatalogFilter);
}

/** Catalog rows for the given video ids (items referenced by user histories). */
export function readItemsByIds(db: Queryable, ids: readonly string[]): Promise<CatalogItem[]> {
  if (ids.length === 0) return Promise.resolve([]);
  return readCatalogPage(db, null, ids.length, { ids });
}

/** User ids with id > afterId in id order. */
export async function readUserPage(db: Queryable, afterId: string | null, limit: number, filter: PageFilter = {}): Promise<string[]> {
  const params: unknown[] = [afterId, limit];
  const extra: string[] = [];
  if (filter.shard) {
    params.push(filter.shard.index, filter.shard.count);
    extra.push(shardPredicate('u.id', `$${params.length - 1}`, `$${params.length}`));
  }
  if (filter.lackingVersion !== undefined) {
    params.push(filter.lackingVersion);
    extra.push(`NOT EXISTS (SELECT 1 FROM public.user_embeddings e WHERE e.user_id = u.id AND e.model_version = $${params.length})`);
  }
  const { rows } = await db.query<{ id: string }>(
    `SELECT u.id::text AS id FROM auth.users u
      WHERE ($1::uuid IS NULL OR u.id > $1::uuid)${extra.map((e) => ` AND ${e}`).join('')}
      ORDER BY u.id LIMIT $2`,
    params,
  );
  return rows.map((r) => r.id);
}

export { readUserHistories, type UserHistoryIds };

/** SQL listing every entity that should have an embedding after a full run (for stragglers in the switch). */
export const CANDIDATES_SQL = {
  items: `SELECT v.id FROM public.videos v WHERE v.source <> ALL(ARRAY[${HISTORICAL_SOURCES.map((s) => `'${s}'`).join(', ')}]::text[])`,
  /**
   * App users with at least one decision on a video: the others have no history to embed (and only app users can
   * have a user_embeddings row). Probed per user through the decisions' user index: a DISTINCT over every decision
   * took 0.5–0.9 s of the switch transaction at 1.2M decisions, this 50 ms.
   */
  users: `SELECT u.id FROM auth.users u WHERE EXISTS (SELECT 1 FROM public.user_video_decisions d WHERE d.user_id = u.id AND d.video_id IS NOT NULL)`,
} as const;

/** How many items / users a shard will read (for progress totals). */
export async function countCandidates(
  db: Queryable,
  target: 'items' | 'users',
  filter: PageFilter = {},
): Promise<number> {
  const params: unknown[] = [];
  const extra: string[] = [];
  const alias = target === 'items' ? 'v' : 'u';
  if (filter.shard) {
    params.push(filter.shard.index, filter.shard.count);
    extra.push(shardPredicate(`${alias}.id`, '$1', '$2'));
  }
  if (filter.lackingVersion !== undefined) {
    params.push(filter.lackingVersion);
    extra.push(
      target === 'items'
        ? `NOT EXISTS (SELECT 1 FROM public.video_embeddings e WHERE e.video_id = v.id AND e.model_version = $${params.length})`
        : `NOT EXISTS (SELECT 1 FROM public.user_embeddings e WHERE e.user_id = u.id AND e.model_version = $${params.length})`,
    );
  }
  const from =
    target === 'items'
      ? `public.videos v WHERE v.source <> ALL(ARRAY[${HISTORICAL_SOURCES.map((s) => `'${s}'`).join(', ')}]::text[])`
      : 'auth.users u WHERE true';
  const { rows } = await db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM ${from}${extra.map((e) => ` AND ${e}`).join('')}`,
    params,
  );
  return rows[0].n;
}
