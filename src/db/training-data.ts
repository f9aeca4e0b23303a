/**
 * What `am-ml train --from-db` (and `am-ml embed`, for item features and user histories) reads from the app's
 * database, as plain rows. The SQL lives here because ml never imports db; the shapes are ml's types.
 *
 * - Catalog: every video except the historical sources the serving RPCs filter out, with its training tags (tags
 *   whose group has `use_for_training`; tags without a group are not used) and its performers (keyed by the DMM
 *   actress id, `performers.id` when that is null: names are not unique). Keyset-paged by id.
 * - Decisions: `user_video_decisions`, latest decision per (user, video). The `decision_type` CHECK constraint is
 *   read first and must allow exactly the values am-ml knows (app-schema §7.14).
 */
import { ValidationFailedError } from '../errors.js';
import type { CatalogItem } from '../ml/data/dataset.js';
import type { DecisionRow } from '../ml/data/decisions.js';
import { assertColumns, checkConstraintValues } from './introspect.js';
import type { Queryable } from './types.js';

/** Sources the serving RPCs no longer show (app-schema §1.1). */
export const HISTORICAL_SOURCES = ['FANZA_ANIME', 'FANZA_COMIC'] as const;
export const CATALOG_PAGE_ROWS = 5000;

/** The values am-ml maps (swipe/grid like → positive, nope → explicit negative). */
export const KNOWN_DECISION_TYPES = ['swipe_like', 'swipe_nope', 'grid_like', 'grid_nope'] as const;

const CATALOG_COLUMNS = {
  'public.videos': ['id', 'external_id', 'title', 'maker', 'series', 'label', 'source', 'price', 'product_released_at', 'duration_seconds'],
  'public.video_tags': ['video_id', 'tag_id'],
  'public.tags': ['id', 'name', 'tag_group_id'],
  'public.tag_groups': ['id', 'use_for_training'],
  'public.video_performers': ['video_id', 'performer_id'],
  'public.performers': ['id', 'fanza_actress_id'],
};

interface CatalogRow {
  item_id: string;
  external_id: string | null;
  title: string | null;
  maker: string | null;
  series: string | null;
  label: string | null;
  source: string | null;
  price: number | null;
  released_at: Date | string | null;
  duration_seconds: number | null;
  tags: string[] | null;
  performers: string[] | null;
}

const toMs = (v: Date | string | null): number | null => {
  if (v === null) return null;
  const ms = v instanceof Date ? v.getTime() : Date.parse(v);
  return Number.isFinite(ms) ? ms : null;
};

/** Narrowing of a catalog page (for `am-ml embed`): one shard, items lacking a version, or given ids. */
export interface CatalogFilter {
  /** Only ids whose stable hash falls in this shard (see `shardPredicate`). */
  shard?: { index: number; count: number };
  /** Only videos without a `video_embeddings` row of this model version. */
  lackingVersion?: string;
  /** Only these videos.id values. */
  ids?: readonly string[];
}

/**
 * SQL deciding whether `idExpr` belongs to shard `$index` of `$count`: the first 28 bits of md5(id) modulo the
 * count. Stable across runs, machines and Postgres versions, so n CI jobs split the work the same way every time.
 */
export function shardPredicate(idExpr: string, indexParam: string, countParam: string): string {
  return `((('x' || substr(md5(${idExpr}::text), 1, 7))::bit(28)::int % ${countParam}::int) = ${indexParam}::int)`;
}

/** One page of catalog items with id > `afterId` (in id order), optionally narrowed by `filter`. */
export async function readCatalogPage(
  db: Queryable,
  afterId: string | null,
  limit = CATALOG_PAGE_ROWS,
  filter: CatalogFilter = {},
): Promise<CatalogItem[]> {
  const extra: string[] = [];
  const params: unknown[] = [[...HISTORICAL_SOURCES], afterId, limit];
  if (filter.shard) {
    params.push(filter.shard.index, filter.shard.count);
    extra.push(shardPredicate('v.id', `$${params.length - 1}`, `$${params.length}`));
  }
  if (filter.lackingVersion !== undefined) {
    params.push(filter.lackingVersion);
    extra.push(`NOT EXISTS (SELECT 1 FROM public.video_embeddings e WHERE e.video_id = v.id AND e.model_version = $${params.length})`);
  }
  if (filter.ids) {
    params.push(filter.ids);
    extra.push(`v.id = ANY($${params.length}::uuid[])`);
  }
  const { rows } = await db.query<CatalogRow>(
    `SELECT v.id::text AS item_id, v.external_id, v.title, v.maker, v.series, v.label, v.source,
            v.price::float8 AS price, v.product_released_at AS released_at, v.duration_seconds,
            ARRAY(SELECT t.name FROM public.video_tags vt
                    JOIN public.tags t ON t.id = vt.tag_id
                    JOIN public.tag_groups g ON g.id = t.tag_group_id
                   WHERE vt.video_id = v.id AND g.use_for_training
                   ORDER BY t.name) AS tags,
            ARRAY(SELECT COALESCE(p.fanza_actress_id, p.id::text) FROM public.video_performers vp
                    JOIN public.performers p ON p.id = vp.performer_id
                   WHERE vp.video_id = v.id
                   ORDER BY 1) AS performers
       FROM public.videos v
      WHERE v.source <> ALL($1::text[]) AND ($2::uuid IS NULL OR v.id > $2::uuid)${extra.map((e) => ` AND ${e}`).join('')}
      ORDER BY v.id
      LIMIT $3`,
    params,
  );
  return rows.map((r) => ({
    item_id: r.item_id,
    external_id: r.external_id,
    title: r.title,
    tags: r.tags ?? [],
    performers: r.performers ?? [],
    maker: r.maker,
    series: r.series,
    label: r.label,
    source: r.source,
    price: r.price,
    released_at: toMs(r.released_at),
    duration_seconds: r.duration_seconds,
  }));
}

/** The whole training catalog, page by page. */
export async function readCatalog(db: Queryable, onPage?: (rowsSoFar: number) => void): Promise<CatalogItem[]> {
  await assertColumns(db, CATALOG_COLUMNS);
  const out: CatalogItem[] = [];
  let after: string | null = null;
  for (;;) {
    const page = await readCatalogPage(db, after);
    out.push(...page);
    onPage?.(out.length);
    if (page.length < CATALOG_PAGE_ROWS) return out;
    after = page[page.length - 1].item_id;
  }
}

/**
 * Check the `decision_type` CHECK constraint allows exactly the known values. A database still on the old
 * `like`/`nope` values, or with values am-ml cannot map, is schema drift (exit 4), reported with both lists.
 */
export async function checkDecisionTypes(db: Queryable): Promise<string[] | null> {
  const allowed = await checkConstraintValues(db, 'public.user_video_decisions', 'decision_type');
  if (allowed === null) return null;
  const known = new Set<string>(KNOWN_DECISION_TYPES);
  const unknown = allowed.filter((v) => !known.has(v));
  const missing = KNOWN_DECISION_TYPES.filter((v) => !allowed.includes(v));
  if (unknown.length || missing.length) {
    throw new ValidationFailedError(
      `Schema drift: user_video_decisions.decision_type allows ${allowed.join(', ')}; am-ml expects ${KNOWN_DECISION_TYPES.join(', ')}.`,
      {
        code: 'SCHEMA_DRIFT',
        hint: 'The app renamed like/nope to swipe_like/swipe_nope (May 2026); migrate the constraint and the rows, or update am-ml.',
        details: { expected: [...KNOWN_DECISION_TYPES], found: allowed },
      },
    );
  }
  return allowed;
}

/** Latest decision per (user, video), with videos only (anonymous rows without a video are skipped). */
export async function readDecisions(db: Queryable): Promise<{ rows: DecisionRow[]; constraint: string[] | null }> {
  await assertColumns(db, { 'public.user_video_decisions': ['id', 'user_id', 'video_id', 'decision_type', 'created_at'] });
  const constraint = await checkDecisionTypes(db);
  const { rows } = await db.query<{ user_id: string; video_id: string; decision_type: string; created_at: Date | string | null }>(
    `SELECT DISTINCT ON (user_id, video_id) user_id::text AS user_id, video_id::text AS video_id, decision_type, created_at
       FROM public.user_video_decisions
      WHERE video_id IS NOT NULL
      ORDER BY user_id, video_id, created_at DESC NULLS LAST, id DESC`,
  );
  return {
    rows: rows.map((r) => ({ userId: r.user_id, itemId: r.video_id, decisionType: r.decision_type, createdAt: toMs(r.created_at) })),
    constraint,
  };
}

/** Catalog items by lower-cased external id (the reviews CSV joins on it). */
export function catalogByExternalId(items: readonly CatalogItem[]): Map<string, CatalogItem> {
  return new Map(items.filter((i) => i.external_id).map((i) => [i.external_id!.toLowerCase(), i]));
}

export interface UserHistoryIds {
  /** videos.id of the user's likes / nopes, newest first (latest decision per video). */
  likes: string[];
  nopes: string[];
}

/**
 * The newest `maxLikes` likes and `maxNopes` nopes of each user (latest decision per video wins), newest first: the
 * history `buildUserInputs` expects, in the order training used (for `am-ml embed` and tests). Users without
 * decisions get empty lists.
 */
export async function readUserHistories(
  db: Queryable,
  userIds: readonly string[],
  caps: { maxLikes: number; maxNopes: number },
): Promise<Map<string, UserHistoryIds>> {
  const out = new Map<string, UserHistoryIds>(userIds.map((u) => [u, { likes: [], nopes: [] }]));
  if (userIds.length === 0) return out;
  const { rows } = await db.query<{ user_id: string; video_id: string; liked: boolean }>(
    `WITH latest AS (
       SELECT DISTINCT ON (user_id, video_id) id, user_id, video_id, decision_type, created_at
         FROM public.user_video_decisions
        WHERE user_id = ANY($1::uuid[]) AND video_id IS NOT NULL
        ORDER BY user_id, video_id, created_at DESC NULLS LAST, id DESC
     ), ranked AS (
       SELECT user_id, video_id, decision_type IN ('swipe_like', 'grid_like') AS liked,
              row_number() OVER (PARTITION BY user_id, decision_type IN ('swipe_like', 'grid_like')
                                 ORDER BY created_at DESC NULLS LAST, id DESC) AS rn
         FROM latest
        WHERE decision_type = ANY($4::text[])
     )
     SELECT user_id::text AS user_id, video_id::text AS video_id, liked
       FROM ranked
      WHERE (liked AND rn <= $2) OR (NOT liked AND rn <= $3)
      ORDER BY user_id, liked DESC, rn`,
    [userIds, caps.maxLikes, caps.maxNopes, [...KNOWN_DECISION_TYPES]],
  );
  for (const r of rows) {
    const h = out.get(r.user_id);
    if (h) (r.liked ? h.likes : h.nopes).push(r.video_id);
  }
  return out;
}
