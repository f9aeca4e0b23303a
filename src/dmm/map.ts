/**
 * One parsed ItemList item → the app's catalog rows (app-schema §4). Pure: no I/O, no clock.
 */
import type { CatalogPerformer, CatalogSource, CatalogVideo } from '../db/catalog-types.js';
import type { ApiInfoEntry, ApiItem } from './schema.js';

/** The floors the app syncs and the `videos.source` each maps to (other floors have no source in the app). */
export const FLOOR_SOURCES: Readonly<Record<string, CatalogSource>> = {
  'digital/videoa': 'FANZA',
  'digital/videoc': 'FANZA_AMATEUR',
};

/** Amateur items without sample images get this many derived from their list image. */
const DERIVED_AMATEUR_SAMPLES = 5;
const NAME_SEPARATOR = ' / ';

export interface MapItemOptions {
  /** The normal (non-API) affiliate id, used only to build `affiliate_url` when the item has no affiliateURL. */
  linkAffiliateId?: string;
}

export type MapResult = { ok: true; video: CatalogVideo } | { ok: false; reason: string };

/**
 * `volume` → seconds: `H:MM:SS` or `MM:SS` (videoc), a plain number of minutes (videoa, mono), `N分`.
 * Anything else (pages of a book, empty) → null.
 */
export function parseDurationSeconds(volume: string | undefined): number | null {
  if (!volume) return null;
  const v = volume.trim();
  let m = /^(\d+):(\d{1,2}):(\d{1,2})$/.exec(v);
  if (m) return Number(m[1]) * 3600 + Number(m[2]) * 60 + Number(m[3]);
  m = /^(\d+):(\d{1,2})$/.exec(v);
  if (m) return Number(m[1]) * 60 + Number(m[2]);
  m = /^(\d+)\s*分?$/.exec(v);
  if (m) return Number(m[1]) * 60;
  return null;
}

/** The content id in a product URL: current `?id=<cid>` and legacy `/cid=<cid>/` forms (§4.2.5). */
export function contentIdFromUrl(url: string): string | null {
  const m = /[?&]id=([^&#/]+)/.exec(url) ?? /\/cid=([^/?#&]+)/.exec(url);
  return m ? decodeURIComponent(m[1]).toLowerCase() : null;
}

const first = <T>(...xs: (T | undefined | null)[]): T | null => {
  for (const x of xs) if (x !== undefined && x !== null && (typeof x !== 'string' || x !== '')) return x;
  return null;
};

function joinNames(entries: readonly ApiInfoEntry[] | undefined): string | null {
  const names = [...new Set((entries ?? []).map((e) => e.name))];
  return names.length ? names.join(NAME_SEPARATOR) : null;
}

function imageUrls(item: ApiItem, source: CatalogSource): string[] {
  const s = item.sampleImageURL;
  const large = s?.sample_l?.image;
  const small = s?.sample_s?.image;
  const samples = large && large.length ? large : small && small.length ? small : [];
  if (samples.length || source !== 'FANZA_AMATEUR') return samples;
  const list = item.imageURL?.list;
  if (!list || !/jm\.jpg$/.test(list)) return [];
  return Array.from({ length: DERIVED_AMATEUR_SAMPLES }, (_, i) =>
    list.replace(/jm\.jpg$/, `js-${String(i + 1).padStart(3, '0')}.jpg`),
  );
}

function performersOf(item: ApiItem): CatalogPerformer[] {
  const byId = new Map<string, CatalogPerformer>();
  for (const a of item.iteminfo?.actress ?? []) byId.set(String(a.id), { fanzaActressId: String(a.id), name: a.name });
  return [...byId.values()];
}

function fallbackAffiliateUrl(url: string, linkAffiliateId: string | undefined): string | null {
  if (!linkAffiliateId) return null;
  return `https://al.fanza.co.jp/?lurl=${encodeURIComponent(url)}&af_id=${encodeURIComponent(linkAffiliateId)}&ch=link_tool&ch_id=link`;
}

/** Map one item per app-schema §4; an item of a floor the app does not sync is refused with the reason. */
export function mapItem(item: ApiItem, opts: MapItemOptions = {}): MapResult {
  const floor = `${item.service_code}/${item.floor_code}`;
  const source = FLOOR_SOURCES[floor];
  if (!source) {
    return {
      ok: false,
      reason: `floor ${floor} has no catalog source (synced floors: ${Object.entries(FLOOR_SOURCES)
        .map(([f, s]) => `${f} → ${s}`)
        .join(', ')})`,
    };
  }
  const img = item.imageURL;
  const movie = item.sampleMovieURL;
  const sampleVideo = first(movie?.size_720_480, movie?.size_644_414, movie?.size_560_360, movie?.size_476_306);
  const info = item.iteminfo;
  const video: CatalogVideo = {
    externalId: item.content_id,
    title: item.title,
    durationSeconds: parseDurationSeconds(item.volume),
    thumbnailUrl: first(img?.large, img?.list, img?.small),
    thumbnailVerticalUrl: first(img?.small, img?.large, img?.list),
    previewVideoUrl: sampleVideo,
    sampleVideoUrl: sampleVideo,
    distributionCode: item.jancode ?? null,
    makerCode: first(item.maker_product, item.product_id),
    director: joinNames(info?.director),
    series: joinNames(info?.series),
    maker: joinNames(info?.maker),
    label: joinNames(info?.label),
    price: item.prices?.price?.value ?? null,
    productReleasedAt: item.date,
    imageUrls: imageUrls(item, source),
    source,
    productUrl: item.URL,
    affiliateUrl: item.affiliateURL ?? fallbackAffiliateUrl(item.URL, opts.linkAffiliateId),
    tags: [...new Set((info?.genre ?? []).map((g) => g.name))],
    performers: performersOf(item),
  };
  return { ok: true, video };
}
