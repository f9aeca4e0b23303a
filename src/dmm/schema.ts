/**
 * zod schemas for the DMM Affiliate API v3 ItemList response (specs/dmm-api.md §3–§4, §6, §9), parsed at the edge:
 * code behind this module trusts the inferred types.
 *
 * Every documented or observed quirk is accepted and normalised (§4.2):
 *   numbers sent as strings (counts, ids, prices) · `items` absent or `[]` on an empty page · `review`,
 *   `sampleMovieURL`, `sampleImageURL`, `sample_l`, `volume` and every `iteminfo` key missing · a single object
 *   where an array is expected (`iteminfo.*`, `campaign`, `directory`, `sample_*.image`) · legacy `_ruby` /
 *   `_classify` pseudo-entries with string ids (folded or dropped) · placeholder entries (id 99999, name `----`) ·
 *   three date formats, read as JST · prices with a trailing `~`/`～` · legacy `URLsp`/`affiliateURLsp` · unknown
 *   keys (kept, and reported once by the sync).
 *
 * Items are parsed one by one so that one broken item never costs its page: a broken item (missing content_id,
 * title, URL, date, service/floor code; an unreadable date; a wrong type in a field the catalog uses) is rejected
 * with a reason naming the field, and the sync records it in the failure table.
 */
import { z } from 'zod';

// ---------------------------------------------------------------------------------------------------------------
// Scalars
// ---------------------------------------------------------------------------------------------------------------

const describe = (v: unknown): string =>
  v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v === 'string' ? `"${v.slice(0, 40)}"` : typeof v;

/** An integer sent as a number or a numeric string ("200", "50000"). */
const intLike = z.unknown().transform((v, ctx): number => {
  if (typeof v === 'number' && Number.isInteger(v)) return v;
  if (typeof v === 'string' && /^\s*-?\d+\s*$/.test(v)) return Number(v);
  ctx.issues.push({ code: 'custom', message: `expected an integer (number or numeric string), found ${describe(v)}`, input: v });
  return z.NEVER;
});

/** A string that may arrive as a number (jancode, volume, review average). */
const stringLike = z.unknown().transform((v, ctx): string => {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  ctx.issues.push({ code: 'custom', message: `expected a string, found ${describe(v)}`, input: v });
  return z.NEVER;
});

const requiredString = (what: string) =>
  z.unknown().transform((v, ctx): string => {
    if (typeof v === 'string' && v.trim() !== '') return v;
    ctx.issues.push({
      code: 'custom',
      message: v === undefined ? `${what} is missing` : `${what} must be a non-empty string, found ${describe(v)}`,
      input: v,
    });
    return z.NEVER;
  });

/** Empty strings mean "missing" in DMM data (`list_price: ""`). */
const optionalString = stringLike.optional().transform((v) => (v === undefined || v.trim() === '' ? undefined : v));

/** Wrap a single object where an array is expected (API v2 and the reference's drawings). */
function arrayOrOne<T extends z.ZodType>(item: T) {
  return z.preprocess((v) => (v === undefined || v === null ? undefined : Array.isArray(v) ? v : [v]), z.array(item).optional());
}

// ---------------------------------------------------------------------------------------------------------------
// Dates (§4.2.8): "YYYY-MM-DD HH:MM:SS", "YYYY/MM/DD HH:MM:SS", "YYYY/M/D H:MM", date only; no timezone → JST
// ---------------------------------------------------------------------------------------------------------------

const JST_OFFSET_MS = 9 * 3600 * 1000;
const DATE_RE = /^(\d{4})[-/](\d{1,2})[-/](\d{1,2})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?$/;

/** Parse a DMM date (wall-clock JST) to an instant, or null when it is not one of the known formats. */
export function parseDmmDate(text: string): Date | null {
  const m = DATE_RE.exec(text.trim());
  if (!m) return null;
  const [y, mo, d, h = '0', mi = '0', s = '0'] = m.slice(1);
  const parts = [y, mo, d, h, mi, s].map(Number);
  const [Y, M, D, H, Mi, S] = parts;
  if (M < 1 || M > 12 || D < 1 || D > 31 || H > 23 || Mi > 59 || S > 59) return null;
  const utc = Date.UTC(Y, M - 1, D, H, Mi, S);
  const check = new Date(utc);
  if (check.getUTCDate() !== D || check.getUTCMonth() !== M - 1) return null; // 2024-02-31
  return new Date(utc - JST_OFFSET_MS);
}

const dmmDate = z.unknown().transform((v, ctx): Date => {
  if (typeof v !== 'string') {
    ctx.issues.push({ code: 'custom', message: v === undefined ? 'date is missing' : `date must be a string, found ${describe(v)}`, input: v });
    return z.NEVER;
  }
  const d = parseDmmDate(v);
  if (!d) {
    ctx.issues.push({
      code: 'custom',
      message: `date "${v.slice(0, 40)}" is not a DMM date (YYYY-MM-DD HH:MM:SS, YYYY/MM/DD HH:MM:SS or YYYY/M/D H:MM)`,
      input: v,
    });
    return z.NEVER;
  }
  return d;
});

// ---------------------------------------------------------------------------------------------------------------
// iteminfo entries (§4.2.3, §4.2.4, §4.2.6)
// ---------------------------------------------------------------------------------------------------------------

export interface ApiInfoEntry {
  id: number;
  name: string;
  ruby?: string;
}

const PLACEHOLDER_ID = 99999;
const PLACEHOLDER_NAME = '----';

const rawEntry = z.looseObject({ id: z.unknown(), name: z.unknown(), ruby: z.unknown().optional() });

/**
 * Normalise one iteminfo list: integer ids only (numeric strings accepted), `<id>_ruby` folded into the base entry's
 * `ruby`, other pseudo-entries (`_classify`) and placeholders dropped, entries without a name dropped.
 */
function normaliseEntries(entries: z.infer<typeof rawEntry>[]): ApiInfoEntry[] {
  const out: ApiInfoEntry[] = [];
  const rubies = new Map<number, string>();
  for (const e of entries) {
    const id = typeof e.id === 'number' ? e.id : typeof e.id === 'string' && /^\d+$/.test(e.id) ? Number(e.id) : NaN;
    if (!Number.isInteger(id)) {
      const m = typeof e.id === 'string' ? /^(\d+)_ruby$/.exec(e.id) : null;
      if (m && typeof e.name === 'string') rubies.set(Number(m[1]), e.name);
      continue;
    }
    if (typeof e.name !== 'string' || e.name.trim() === '') continue;
    if (id === PLACEHOLDER_ID || e.name.trim() === PLACEHOLDER_NAME) continue;
    out.push({ id, name: e.name.trim(), ...(typeof e.ruby === 'string' && e.ruby ? { ruby: e.ruby } : {}) });
  }
  for (const e of out) if (!e.ruby && rubies.has(e.id)) e.ruby = rubies.get(e.id);
  return out;
}

const infoList = arrayOrOne(rawEntry).transform((v) => normaliseEntries(v ?? []));

const INFO_KEYS = [
  'genre',
  'series',
  'maker',
  'actress',
  'actor',
  'director',
  'author',
  'label',
  'type',
  'color',
  'size',
  'manufacture',
  'keyword',
  'artist',
  'fighter',
] as const;

const IteminfoSchema = z.looseObject(Object.fromEntries(INFO_KEYS.map((k) => [k, infoList])) as Record<
  (typeof INFO_KEYS)[number],
  typeof infoList
>);

// ---------------------------------------------------------------------------------------------------------------
// Item
// ---------------------------------------------------------------------------------------------------------------

const imageList = z.preprocess(
  (v) => (typeof v === 'string' ? [v] : v),
  z.array(z.string({ message: 'sample image URLs must be strings' })),
);

const ImageUrlSchema = z.looseObject({ list: optionalString, small: optionalString, large: optionalString });
const SampleImageSchema = z.looseObject({
  sample_s: z.looseObject({ image: imageList.optional() }).optional(),
  sample_l: z.looseObject({ image: imageList.optional() }).optional(),
});
const SampleMovieSchema = z.looseObject({
  size_476_306: optionalString,
  size_560_360: optionalString,
  size_644_414: optionalString,
  size_720_480: optionalString,
  pc_flag: intLike.optional(),
  sp_flag: intLike.optional(),
});

export interface ApiPrice {
  /** The number in `price` ("210~" → 210), or null when missing or empty. */
  value: number | null;
  /** `~`/`～` suffix: "from this price" (several delivery types). */
  from: boolean;
  raw: string;
}

/** §4.2.9: strip a trailing `~`/`～`, keep a "from" flag; everything but digits and `.` is dropped. */
export function parsePrice(raw: string): ApiPrice {
  const from = /[~～]\s*$/.test(raw);
  const digits = raw.replace(/[^0-9.]/g, '');
  const value = digits === '' || !Number.isFinite(Number(digits)) ? null : Number(digits);
  return { value, from, raw };
}

const PricesSchema = z.looseObject({
  price: optionalString.transform((v) => (v === undefined ? undefined : parsePrice(v))),
  list_price: optionalString,
  deliveries: z.unknown().optional(),
});

const ReviewSchema = z.looseObject({ count: intLike.optional(), average: stringLike.optional() });

/** Top-level item keys we know (documented, legacy or observed); anything else is reported as new. */
export const KNOWN_ITEM_KEYS = new Set([
  'service_code',
  'service_name',
  'floor_code',
  'floor_name',
  'category_name',
  'content_id',
  'product_id',
  'title',
  'volume',
  'number',
  'review',
  'URL',
  'affiliateURL',
  'URLsp',
  'affiliateURLsp',
  'imageURL',
  'tachiyomi',
  'sampleImageURL',
  'sampleMovieURL',
  'prices',
  'date',
  'iteminfo',
  'campaign',
  'cdinfo',
  'jancode',
  'maker_product',
  'isbn',
  'stock',
  'directory',
  'comment',
  'bandaiinfo',
]);

export const ApiItemSchema = z.looseObject({
  service_code: requiredString('service_code'),
  floor_code: requiredString('floor_code'),
  service_name: optionalString,
  floor_name: optionalString,
  category_name: optionalString,
  content_id: requiredString('content_id'),
  product_id: optionalString,
  title: requiredString('title'),
  volume: optionalString,
  number: optionalString,
  review: ReviewSchema.optional(),
  URL: requiredString('URL'),
  // §9 lists affiliateURL as required, but app-schema §4 has a fallback for it, so a missing one costs no item.
  affiliateURL: optionalString,
  URLsp: optionalString,
  affiliateURLsp: optionalString,
  imageURL: ImageUrlSchema.optional(),
  sampleImageURL: SampleImageSchema.optional(),
  sampleMovieURL: SampleMovieSchema.optional(),
  prices: PricesSchema.optional(),
  date: dmmDate,
  iteminfo: IteminfoSchema.optional(),
  campaign: arrayOrOne(z.unknown()),
  directory: arrayOrOne(z.unknown()),
  jancode: optionalString,
  maker_product: optionalString,
  isbn: optionalString,
  stock: optionalString,
});
export type ApiItem = z.infer<typeof ApiItemSchema>;

// ---------------------------------------------------------------------------------------------------------------
// Envelope (§3, §4, §6)
// ---------------------------------------------------------------------------------------------------------------

export const ApiErrorResultSchema = z.looseObject({
  status: intLike,
  message: stringLike.optional(),
  errors: z.record(z.string(), z.unknown()).optional(),
});
export type ApiErrorResult = z.infer<typeof ApiErrorResultSchema>;

const ItemListResultSchema = z.looseObject({
  status: intLike,
  result_count: intLike,
  total_count: intLike,
  first_position: intLike,
  // `items` is absent (or `[]`) on an empty result; items stay unparsed here and are checked one by one.
  items: z.preprocess((v) => (v === undefined || v === null ? [] : Array.isArray(v) ? v : [v]), z.array(z.unknown())),
});

export const ApiItemListResponseSchema = z.looseObject({
  request: z.unknown().optional(),
  result: ItemListResultSchema,
});

export interface ItemListPage {
  status: number;
  resultCount: number;
  totalCount: number;
  firstPosition: number;
  /** Raw items; parse each with `parseItem`. */
  items: unknown[];
}

/** Zod issues → one line: `field.path: problem; other: problem`. */
export function formatIssues(issues: readonly { path: readonly PropertyKey[]; message: string }[]): string {
  return issues
    .map((i) => `${i.path.length ? `${i.path.map(String).join('.')}: ` : ''}${i.message}`)
    .join('; ');
}

export type EnvelopeParse =
  | { ok: true; page: ItemListPage }
  | { ok: false; apiError: ApiErrorResult }
  | { ok: false; problem: string };

/**
 * Read an ItemList body: a page, an API error (`result.status` other than 200, §6: compare as a string), or a
 * description of what is malformed.
 */
export function parseItemListBody(body: unknown): EnvelopeParse {
  const result = (body as { result?: unknown } | null)?.result;
  if (!result || typeof result !== 'object') {
    return { ok: false, problem: 'the response has no "result" object' };
  }
  const status = String((result as { status?: unknown }).status ?? '');
  if (status !== '200') {
    const err = ApiErrorResultSchema.safeParse(result);
    if (err.success) return { ok: false, apiError: err.data };
    return { ok: false, problem: `result.status is ${describe((result as { status?: unknown }).status)}, not 200` };
  }
  const parsed = ApiItemListResponseSchema.safeParse(body);
  if (!parsed.success) return { ok: false, problem: `malformed ItemList result: ${formatIssues(parsed.error.issues)}` };
  const r = parsed.data.result;
  return {
    ok: true,
    page: {
      status: r.status,
      resultCount: r.result_count,
      totalCount: r.total_count,
      firstPosition: r.first_position,
      items: r.items,
    },
  };
}

export type ItemParse =
  | { ok: true; item: ApiItem; unknownKeys: string[] }
  | { ok: false; reason: string; contentId: string | null };

/** Parse one raw item; a broken item yields the reason and, when readable, its content_id. */
export function parseItem(raw: unknown): ItemParse {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) {
    return { ok: false, reason: `item is ${describe(raw)}, not an object`, contentId: null };
  }
  const parsed = ApiItemSchema.safeParse(raw);
  if (!parsed.success) {
    const cid = (raw as { content_id?: unknown }).content_id;
    return {
      ok: false,
      reason: formatIssues(parsed.error.issues),
      contentId: typeof cid === 'string' && cid.trim() !== '' ? cid : null,
    };
  }
  const unknownKeys = Object.keys(raw).filter((k) => !KNOWN_ITEM_KEYS.has(k));
  return { ok: true, item: parsed.data, unknownKeys };
}
