/**
 * Release-date windows for bulk paging (specs/dmm-api.md §8.2). A window is `[start, end]`, both inclusive, at
 * second precision, in JST wall-clock terms for the API. Root windows cover whole days; a window is halved on a
 * day boundary while it spans two days or more, then on an hour boundary, down to `MIN_WINDOW_MS`. Splits are
 * deterministic, so a resumed run finds the same windows in its checkpoints.
 */
import type { SyncWindow } from '../db/catalog-types.js';

export const DAY_MS = 86_400_000;
export const HOUR_MS = 3_600_000;
/** The smallest window the sync splits to (§8.2 step 3). */
export const MIN_WINDOW_MS = HOUR_MS;
const JST_OFFSET_MS = 9 * HOUR_MS;
const DATE_RE = /^(\d{4})-(\d{2})-(\d{2})$/;

/** `YYYY-MM-DD` → the instant of 00:00:00 JST that day; null when not a real date. */
export function jstDayStart(date: string): number | null {
  const m = DATE_RE.exec(date);
  if (!m) return null;
  const [y, mo, d] = m.slice(1).map(Number);
  const utc = Date.UTC(y, mo - 1, d);
  const check = new Date(utc);
  if (check.getUTCFullYear() !== y || check.getUTCMonth() !== mo - 1 || check.getUTCDate() !== d) return null;
  return utc - JST_OFFSET_MS;
}

/** Today's date in JST (`YYYY-MM-DD`), shifted by `days`. */
export function jstDate(nowMs: number, days = 0): string {
  return new Date(nowMs + JST_OFFSET_MS + days * DAY_MS).toISOString().slice(0, 10);
}

/** The API's date parameter: `YYYY-MM-DDTHH:MM:SS`, JST wall clock, no zone. */
export function apiDate(ms: number): string {
  return new Date(ms + JST_OFFSET_MS).toISOString().slice(0, 19);
}

/** A readable window label for messages: `digital/videoa 2024-01-01T00:00:00..2024-01-31T23:59:59`. */
export function windowLabel(w: SyncWindow): string {
  return `${w.floor} ${apiDate(w.start.getTime())}..${apiDate(w.end.getTime())}`;
}

export function windowKey(w: SyncWindow): string {
  return `${w.floor}|${w.start.toISOString()}|${w.end.toISOString()}`;
}

/** The whole-day window of a floor from `from` 00:00:00 to `to` 23:59:59 JST. */
export function rootWindow(floor: string, from: string, to: string): SyncWindow {
  const a = jstDayStart(from);
  const b = jstDayStart(to);
  if (a === null || b === null || b < a) throw new RangeError(`bad date range ${from}..${to}`);
  return { floor, start: new Date(a), end: new Date(b + DAY_MS - 1000) };
}

/** Halve a window on a day (then hour) boundary; null at the minimum size. */
export function splitWindow(w: SyncWindow, minWindowMs = MIN_WINDOW_MS): [SyncWindow, SyncWindow] | null {
  const start = w.start.getTime();
  const span = w.end.getTime() + 1000 - start;
  let unit: number;
  if (span >= 2 * DAY_MS) unit = DAY_MS;
  else if (span >= 2 * HOUR_MS && HOUR_MS >= minWindowMs) unit = HOUR_MS;
  else return null;
  if (span / 2 < minWindowMs) return null;
  const units = Math.floor(span / unit);
  const mid = start + Math.floor(units / 2) * unit;
  return [
    { floor: w.floor, start: w.start, end: new Date(mid - 1000) },
    { floor: w.floor, start: new Date(mid), end: w.end },
  ];
}
