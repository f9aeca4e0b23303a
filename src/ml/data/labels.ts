/** Parsing of interaction labels and timestamps shared by the file sources. Pure module. */
import type { Label } from './types.js';

const POSITIVE = new Set(['1', 'like', 'liked', 'positive', 'pos', 'true', 'swipe_like', 'grid_like']);
const NEGATIVE = new Set(['0', 'nope', 'noped', 'negative', 'neg', 'false', 'swipe_nope', 'grid_nope']);

/** `1`/`like`/`positive`/`true` → 1, `0`/`nope`/`negative`/`false` → 0 (case-insensitive); else null. */
export function parseLabel(raw: string): Label | null {
  const v = raw.trim().toLowerCase();
  if (POSITIVE.has(v)) return 1;
  if (NEGATIVE.has(v)) return 0;
  return null;
}

/**
 * A timestamp cell: ISO 8601 (a zone-less value is read as UTC), or a number: epoch seconds when below 1e11,
 * else epoch milliseconds. Returns NaN when unparseable, undefined when empty.
 */
export function parseTimestamp(raw: string): number | undefined {
  const v = raw.trim();
  if (v === '') return undefined;
  if (/^-?\d+(\.\d+)?$/.test(v)) {
    const n = Number(v);
    return Math.abs(n) < 1e11 ? n * 1000 : n;
  }
  const iso = /^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?$/.test(v) ? `${v.replace(' ', 'T')}${v.length > 10 ? 'Z' : 'T00:00:00Z'}` : v;
  const ms = Date.parse(iso);
  return Number.isFinite(ms) ? ms : Number.NaN;
}
