/**
 * Test helper: compare every catalog row in the database with the raw API items a replay server served. The
 * expectations are computed here from the raw JSON, independently of `dmm/map.ts`, so a mapping bug cannot hide
 * behind the code it would test.
 */
import type { Queryable } from '../db/types.js';

export interface StoredVideo {
  external_id: string;
  title: string;
  source: string;
  product_released_at: string;
  maker: string | null;
  label: string | null;
  series: string | null;
  director: string | null;
  price: number | null;
  duration_seconds: number | null;
  thumbnail_url: string | null;
  sample_video_url: string | null;
  image_urls: string[];
  product_url: string | null;
  affiliate_url: string | null;
  has_performer: boolean;
  tags: string[];
  performers: string[];
}

type Raw = Record<string, unknown>;
const asList = (v: unknown): Raw[] => (v === undefined || v === null ? [] : Array.isArray(v) ? (v as Raw[]) : [v as Raw]);
const isIntId = (id: unknown) => (typeof id === 'number' && Number.isInteger(id)) || (typeof id === 'string' && /^\d+$/.test(id));
const names = (v: unknown) => {
  const ns = asList(v)
    .filter((e) => isIntId(e.id) && Number(e.id) !== 99999 && e.name !== '----')
    .map((e) => String(e.name));
  return ns.length ? [...new Set(ns)].join(' / ') : null;
};

/** The row the app should hold for a raw item (only for items of digital/videoa and digital/videoc). */
export function expectedRow(raw: Raw): StoredVideo {
  const info = (raw.iteminfo ?? {}) as Raw;
  const floor = String(raw.floor_code);
  const date = String(raw.date).replace(/\//g, '-').replace(' ', 'T');
  const prices = (raw.prices ?? {}) as Raw;
  const movie = raw.sampleMovieURL as Raw | undefined;
  const img = (raw.imageURL ?? {}) as Raw;
  const samples = raw.sampleImageURL as { sample_l?: { image: string[] }; sample_s?: { image: string[] } } | undefined;
  let imageUrls = samples?.sample_l?.image ?? samples?.sample_s?.image ?? [];
  if (!imageUrls.length && floor === 'videoc' && String(img.list).endsWith('jm.jpg')) {
    imageUrls = [1, 2, 3, 4, 5].map((i) => String(img.list).replace(/jm\.jpg$/, `js-00${i}.jpg`));
  }
  const volume = String(raw.volume ?? '');
  const hms = /^(\d+):(\d+):(\d+)$/.exec(volume);
  const performers = asList(info.actress)
    .filter((a) => isIntId(a.id))
    .map((a) => `${Number(a.id)}:${String(a.name)}`);
  return {
    external_id: String(raw.content_id),
    title: String(raw.title),
    source: floor === 'videoa' ? 'FANZA' : 'FANZA_AMATEUR',
    product_released_at: new Date(`${date}+09:00`).toISOString(),
    maker: names(info.maker),
    label: names(info.label),
    series: names(info.series),
    director: names(info.director),
    price: prices.price === undefined ? null : Number(String(prices.price).replace(/[^0-9.]/g, '')),
    duration_seconds: hms ? Number(hms[1]) * 3600 + Number(hms[2]) * 60 + Number(hms[3]) : volume ? Number(volume) * 60 : null,
    thumbnail_url: (img.large as string) ?? null,
    sample_video_url: (movie?.size_720_480 as string) ?? null,
    image_urls: imageUrls,
    product_url: String(raw.URL),
    affiliate_url: (raw.affiliateURL as string) ?? null,
    has_performer: performers.length > 0,
    tags: [...new Set(asList(info.genre).map((g) => String(g.name)))].sort(),
    performers: [...new Set(performers)].sort(),
  };
}

/** Every stored video with its tag names and `actress id:name` performers, keyed by external_id. */
export async function storedVideos(db: Queryable): Promise<Map<string, StoredVideo>> {
  const { rows } = await db.query<StoredVideo & { product_released_at: Date }>(`
    SELECT v.external_id, v.title, v.source, v.product_released_at, v.maker, v.label, v.series, v.director,
           v.price, v.duration_seconds, v.thumbnail_url, v.sample_video_url, v.image_urls, v.product_url,
           v.affiliate_url, v.has_performer,
           COALESCE((SELECT array_agg(t.name ORDER BY t.name) FROM video_tags vt JOIN tags t ON t.id = vt.tag_id
                      WHERE vt.video_id = v.id), '{}') AS tags,
           COALESCE((SELECT array_agg(p.fanza_actress_id || ':' || p.name ORDER BY p.fanza_actress_id || ':' || p.name)
                       FROM video_performers vp JOIN performers p ON p.id = vp.performer_id
                      WHERE vp.video_id = v.id), '{}') AS performers
      FROM videos v`);
  return new Map(
    rows.map((r) => [
      r.external_id,
      {
        ...r,
        price: r.price === null ? null : Number(r.price),
        product_released_at: new Date(r.product_released_at).toISOString(),
        image_urls: r.image_urls ?? [],
      },
    ]),
  );
}

/** Row counts of the catalog tables (duplicates would show here). */
export async function catalogCounts(db: Queryable): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const t of ['videos', 'tags', 'video_tags', 'performers', 'video_performers']) {
    const { rows } = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM public.${t}`);
    out[t] = rows[0].n;
  }
  return out;
}

/** A full, ordered dump of the catalog tables (ids included): equal dumps mean nothing changed. */
export async function catalogDump(db: Queryable): Promise<string> {
  const parts: string[] = [];
  for (const [t, order] of [
    ['videos', 'external_id'],
    ['tags', 'name'],
    ['video_tags', 'video_id, tag_id'],
    ['performers', 'fanza_actress_id'],
    ['video_performers', 'video_id, performer_id'],
  ]) {
    const { rows } = await db.query(`SELECT * FROM public.${t} ORDER BY ${order}`);
    parts.push(`${t}:${JSON.stringify(rows)}`);
  }
  return parts.join('\n');
}
