/**
 * Totals vs stored (app-schema §7.7): for every window a run finished, the API's `total_count` against the videos
 * stored for that window, with the difference explained by open failures (invalid items, failed pages).
 */
import type { CatalogWriter } from '../db/catalog-types.js';
import { DMM_MAX_HITS } from './client.js';
import { FLOOR_SOURCES } from './map.js';
import { windowLabel } from './windows.js';

export interface WindowGap {
  window: string;
  apiTotal: number;
  stored: number;
  invalidItems: number;
  failedPages: number;
  unexplained: number;
}

export interface SyncReconciliation {
  /** Sum of total_count over the run's finished windows. */
  apiTotal: number;
  /** Videos stored whose source and release date fall in those windows. */
  stored: number;
  /** apiTotal − stored (negative: more stored than listed). */
  difference: number;
  explained: { invalidItems: number; failedPageItems: number };
  /** Stored but no longer listed by the API (delisted, or the release date moved). */
  extraStored: number;
  unexplained: number;
  /** Windows whose difference is not explained. */
  gaps: WindowGap[];
  windows: number;
}

export async function reconcile(writer: CatalogWriter, runId: string): Promise<SyncReconciliation> {
  const rows = await writer.runWindows(runId, FLOOR_SOURCES);
  const rec: SyncReconciliation = {
    apiTotal: 0,
    stored: 0,
    difference: 0,
    explained: { invalidItems: 0, failedPageItems: 0 },
    extraStored: 0,
    unexplained: 0,
    gaps: [],
    windows: rows.length,
  };
  for (const r of rows) {
    rec.apiTotal += r.totalCount;
    rec.stored += r.storedCount;
    const diff = r.totalCount - r.storedCount;
    if (diff < 0) {
      rec.extraStored += -diff;
      continue;
    }
    const invalid = Math.min(diff, r.openInvalidItems);
    const pageItems = Math.min(diff - invalid, r.openFailedPages * DMM_MAX_HITS);
    rec.explained.invalidItems += invalid;
    rec.explained.failedPageItems += pageItems;
    const unexplained = diff - invalid - pageItems;
    if (unexplained > 0) {
      rec.unexplained += unexplained;
      rec.gaps.push({
        window: windowLabel({ floor: r.floor, start: r.windowStart, end: r.windowEnd }),
        apiTotal: r.totalCount,
        stored: r.storedCount,
        invalidItems: r.openInvalidItems,
        failedPages: r.openFailedPages,
        unexplained,
      });
    }
  }
  rec.difference = rec.apiTotal - rec.stored;
  return rec;
}
