/**
 * One raw API item → a catalog video, or a failure record saying why not (schema rejection, unsynced floor).
 * The raw item is kept (redacted) in the failure so it can be inspected and re-parsed without a re-fetch.
 */
import type { CatalogVideo, SyncFailureRecord, SyncWindow } from '../db/catalog-types.js';
import { redactValue } from '../errors.js';
import { mapItem } from './map.js';
import { parseItem } from './schema.js';
import { windowKey } from './windows.js';

export interface ItemOrigin {
  /** The window the item was paged from (null for a re-fetch by content id without a known window). */
  window: SyncWindow | null;
  pageOffset: number | null;
  /** Position on its page: identifies an item that has no readable content id. */
  index: number;
}

export type Intake =
  | { ok: true; video: CatalogVideo; unknownKeys: string[] }
  | { ok: false; failure: SyncFailureRecord };

export function intakeItem(raw: unknown, origin: ItemOrigin, opts: { linkAffiliateId?: string } = {}): Intake {
  const w = origin.window;
  const where = {
    floor: w?.floor ?? null,
    windowStart: w?.start ?? null,
    windowEnd: w?.end ?? null,
    pageOffset: origin.pageOffset,
  };
  const parsed = parseItem(raw);
  if (!parsed.ok) {
    const key = parsed.contentId
      ? `item:${parsed.contentId}`
      : `item:${w ? windowKey(w) : 'cid'}:${origin.pageOffset ?? 0}:${origin.index}`;
    return {
      ok: false,
      failure: { kind: 'item', key, ...where, contentId: parsed.contentId, reason: parsed.reason, raw: redactValue(raw) },
    };
  }
  const mapped = mapItem(parsed.item, opts);
  if (!mapped.ok) {
    const cid = parsed.item.content_id;
    return {
      ok: false,
      failure: { kind: 'item', key: `item:${cid}`, ...where, contentId: cid, reason: mapped.reason, raw: redactValue(raw) },
    };
  }
  const video: CatalogVideo = w
    ? { ...mapped.video, origin: { floor: w.floor, windowStart: w.start, windowEnd: w.end, pageOffset: origin.pageOffset ?? 0 } }
    : mapped.video;
  return { ok: true, video, unknownKeys: parsed.unknownKeys };
}
