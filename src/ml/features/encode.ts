/**
 * Raw item attributes → vocabulary indices and numeric columns, with explicit handling of every odd value:
 * null, undefined, empty or whitespace-only strings and empty lists are *missing*; NaN, Infinity, unparseable
 * numbers and values of the wrong type are *invalid* (treated as missing); tokens not in a vocabulary are *unknown*
 * (mapped to a hashed OOV bucket, or dropped when the vocabulary has none). Every case is counted in FeatureStats,
 * never silently absorbed (app-schema §7.2). Pure module.
 */
import { hashString } from '../rng.js';
import { type FeatureSpec, type NumericField, type NumericTransform, type Vocabulary } from './spec.js';

/** A token value as sources deliver it; anything else is counted as invalid. */
export type TokenValue = string | number | null | undefined;

/**
 * An item as the feature code sees it (the `items.jsonl` line format of `am-ml train --dataset`). Unknown fields
 * are ignored; missing ones are allowed. Multi-valued attributes are lists; a single value is accepted for any
 * attribute.
 */
export interface ItemAttributes {
  item_id: string;
  tags?: readonly TokenValue[] | TokenValue;
  performers?: readonly TokenValue[] | TokenValue;
  maker?: readonly TokenValue[] | TokenValue;
  series?: readonly TokenValue[] | TokenValue;
  label?: readonly TokenValue[] | TokenValue;
  source?: readonly TokenValue[] | TokenValue;
  price?: number | string | null;
  /** ISO date/time (`2024-05-01`, `2024-05-01T10:00:00+09:00`) or epoch milliseconds. */
  released_at?: string | number | null;
  duration_seconds?: number | string | null;
}

/** An item turned into indices: per vocabulary (spec order) its distinct indices, ascending; plus numerics. */
export interface EncodedItem {
  tokens: Int32Array[];
  numeric: Float32Array;
}

export interface FieldStats {
  /** Rows with no usable value. */
  missing: number;
  /** Values of the wrong type, NaN, Infinity, unparseable dates/numbers. */
  invalid: number;
  /** Tokens not in the vocabulary (sent to an OOV bucket, or dropped when `dropped` counts them too). */
  unknown: number;
  /** Unknown tokens that were dropped because the vocabulary has no OOV bucket. */
  dropped: number;
  /** Tokens beyond the per-item / per-bag length cap. */
  truncated: number;
}

/** Counts of everything unusual the feature code met, per vocabulary / numeric field. */
export interface FeatureStats {
  rows: number;
  fields: Record<string, FieldStats>;
}

export function emptyStats(): FeatureStats {
  return { rows: 0, fields: {} };
}

export function fieldStats(stats: FeatureStats, name: string): FieldStats {
  let f = stats.fields[name];
  if (!f) {
    f = { missing: 0, invalid: 0, unknown: 0, dropped: 0, truncated: 0 };
    stats.fields[name] = f;
  }
  return f;
}

export function mergeStats(into: FeatureStats, from: FeatureStats): FeatureStats {
  into.rows += from.rows;
  for (const [name, f] of Object.entries(from.fields)) {
    const t = fieldStats(into, name);
    t.missing += f.missing;
    t.invalid += f.invalid;
    t.unknown += f.unknown;
    t.dropped += f.dropped;
    t.truncated += f.truncated;
  }
  return into;
}

// ---------------------------------------------------------------------------------------------------------------

/** Canonical form of a token: NFKC (full-/half-width variants of Japanese names agree), trimmed. */
export function normalizeToken(v: unknown): { token: string } | { missing: true } | { invalid: true } {
  if (v === null || v === undefined) return { missing: true };
  if (typeof v === 'number') return Number.isFinite(v) ? { token: String(v) } : { invalid: true };
  if (typeof v !== 'string') return { invalid: true };
  const t = v.normalize('NFKC').trim();
  return t === '' ? { missing: true } : { token: t };
}

/** Distinct normalised tokens of an attribute value (list or single value), in first-seen order. */
export function tokensOf(value: unknown, counters?: { invalid: number }): string[] {
  const list: readonly unknown[] = Array.isArray(value) ? value : value === undefined || value === null ? [] : [value];
  const out: string[] = [];
  const seen = new Set<string>();
  for (const raw of list) {
    const n = normalizeToken(raw);
    if ('token' in n) {
      if (!seen.has(n.token)) {
        seen.add(n.token);
        out.push(n.token);
      }
    } else if ('invalid' in n && counters) counters.invalid++;
  }
  return out;
}

const MS_PER_YEAR = 365.25 * 24 * 3600 * 1000;
const EPOCH_2000_MS = Date.UTC(2000, 0, 1);
/** A date without a zone is a JST calendar date in DMM data; read it as such so results do not depend on TZ. */
const DATE_ONLY_RE = /^\d{4}-\d{2}-\d{2}$/;
const DATE_TIME_NO_ZONE_RE = /^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?$/;

/** Parse a date value to epoch ms; NaN when invalid. Zone-less values are read as JST (+09:00). */
export function parseDateMs(v: unknown): number {
  if (typeof v === 'number') return Number.isFinite(v) ? v : Number.NaN;
  if (typeof v !== 'string') return Number.NaN;
  const s = v.trim();
  if (DATE_ONLY_RE.test(s)) return Date.parse(`${s}T00:00:00+09:00`);
  if (DATE_TIME_NO_ZONE_RE.test(s)) return Date.parse(`${s.replace(' ', 'T')}+09:00`);
  return Date.parse(s);
}

/** The untransformed numeric value, or null (missing) / NaN (invalid). */
function rawNumber(v: unknown, transform: NumericTransform): number | null {
  if (v === null || v === undefined) return null;
  if (typeof v === 'string' && v.trim() === '') return null;
  if (transform === 'years-since-2000') return parseDateMs(v);
  if (typeof v === 'number') return v;
  if (typeof v === 'string') {
    // Prices arrive as "210~" or "1,980"; keep digits, dot and sign as the catalog mapping does (app-schema §4).
    const cleaned = v.replace(/[^0-9.\-]/g, '');
    return cleaned === '' ? Number.NaN : Number(cleaned);
  }
  return Number.NaN;
}

/** Apply a numeric transform (before standardisation). NaN when the input is not usable. */
export function transformNumber(x: number, transform: NumericTransform): number {
  if (!Number.isFinite(x)) return Number.NaN;
  switch (transform) {
    case 'log1p':
      return Math.log1p(Math.max(0, x));
    case 'log1p-minutes':
      return Math.log1p(Math.max(0, x) / 60);
    case 'years-since-2000':
      return (x - EPOCH_2000_MS) / MS_PER_YEAR;
  }
}

/** The transformed value of a numeric attribute, or null when missing/invalid (and counted). */
export function numericValue(attrs: ItemAttributes, f: Pick<NumericField, 'attribute' | 'transform'>, stats?: FieldStats): number | null {
  const raw = rawNumber((attrs as unknown as Record<string, unknown>)[f.attribute], f.transform);
  if (raw === null) {
    if (stats) stats.missing++;
    return null;
  }
  const t = transformNumber(raw, f.transform);
  if (!Number.isFinite(t)) {
    if (stats) stats.invalid++;
    return null;
  }
  return t;
}

// ---------------------------------------------------------------------------------------------------------------

interface VocabLookup {
  vocab: Vocabulary;
  index: Map<string, number>;
}

const lookups = new WeakMap<FeatureSpec, VocabLookup[]>();

/** Token → index maps of every vocabulary, built once per spec object (never from data: the spec is frozen). */
export function vocabLookups(spec: FeatureSpec): VocabLookup[] {
  let l = lookups.get(spec);
  if (!l) {
    l = spec.vocabularies.map((vocab) => {
      const index = new Map<string, number>();
      vocab.tokens.forEach((t, i) => index.set(t, i + 1));
      return { vocab, index };
    });
    lookups.set(spec, l);
  }
  return l;
}

/** Index of a normalised token: its vocabulary slot, an OOV bucket, or -1 (unknown and no buckets). */
export function tokenIndex(l: VocabLookup, token: string): number {
  const i = l.index.get(token);
  if (i !== undefined) return i;
  if (l.vocab.oovBuckets === 0) return -1;
  return 1 + l.vocab.tokens.length + (hashString(token) % l.vocab.oovBuckets);
}

/**
 * Encode one item. Tokens of each vocabulary are looked up, de-duplicated and sorted ascending, so the most
 * frequent known tokens come first and OOV buckets last; beyond `maxPerItem` they are cut (and counted).
 */
export function encodeItem(spec: FeatureSpec, attrs: ItemAttributes, stats?: FeatureStats): EncodedItem {
  const ls = vocabLookups(spec);
  const tokens: Int32Array[] = new Array(ls.length);
  const rec = attrs as unknown as Record<string, unknown>;
  for (let v = 0; v < ls.length; v++) {
    const l = ls[v];
    const fs = stats ? fieldStats(stats, l.vocab.name) : undefined;
    const raw = tokensOf(rec[l.vocab.attribute], fs);
    const idx: number[] = [];
    for (const t of raw) {
      const i = tokenIndex(l, t);
      if (i > l.vocab.tokens.length || i < 0) {
        if (fs) fs.unknown++;
        if (i < 0) {
          if (fs) fs.dropped++;
          continue;
        }
      }
      idx.push(i);
    }
    // OOV buckets can collide: keep distinct indices.
    const uniq = [...new Set(idx)].sort((a, b) => a - b);
    if (uniq.length === 0 && fs) fs.missing++;
    if (uniq.length > l.vocab.maxPerItem) {
      if (fs) fs.truncated += uniq.length - l.vocab.maxPerItem;
      uniq.length = l.vocab.maxPerItem;
    }
    tokens[v] = Int32Array.from(uniq);
  }
  const numeric = new Float32Array(spec.item.numeric.length * 2);
  spec.item.numeric.forEach((f, k) => {
    const value = numericValue(attrs, f, stats ? fieldStats(stats, f.name) : undefined);
    if (value === null) {
      numeric[2 * k] = 0;
      numeric[2 * k + 1] = 1;
    } else {
      numeric[2 * k] = (value - f.mean) / f.std;
      numeric[2 * k + 1] = 0;
    }
  });
  if (stats) stats.rows++;
  return { tokens, numeric };
}
