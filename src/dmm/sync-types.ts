/**
 * The sync's public shapes: options, progress events, the result (the `--json` summary of `am-ml sync-dmm`),
 * and the errors that end a run.
 */
import type { CatalogWriter, RunMode, SyncWindow } from '../db/catalog-types.js';
import { ExternalServiceError } from '../errors.js';
import type { DmmClient } from './client.js';
import type { SyncReconciliation } from './reconcile.js';
import { windowLabel } from './windows.js';

export type SyncEvent =
  | { kind: 'run'; runId: string; resumed: boolean; floors: string[]; from: string; to: string; openFailures: number }
  | { kind: 'window'; action: 'probe' | 'split' | 'page' | 'skip' | 'empty' | 'done'; window: string; total?: number }
  /** Items the accepted windows hold so far (grows as windows are probed): the progress bar's total. */
  | { kind: 'planned'; items: number }
  | { kind: 'page'; window: string; offset: number; items: number }
  | { kind: 'chunk'; videos: number; inserted: number; updated: number; unchanged: number; written: number }
  | { kind: 'invalid-item'; contentId: string | null; reason: string }
  | { kind: 'page-failed'; window: string; offset: number; reason: string }
  | { kind: 'unknown-keys'; keys: string[] };

export interface SyncCatalogOptions {
  client: DmmClient;
  writer: CatalogWriter;
  /** `service/floor` codes, e.g. `digital/videoa`. */
  floors: readonly string[];
  /** YYYY-MM-DD (JST), inclusive. */
  from: string;
  to: string;
  /** Videos per transaction. @default DEFAULT_CHUNK_SIZE */
  chunkSize?: number;
  /** Stop after this many items (valid or not) in this invocation; the run stays open and resumes. */
  maxItems?: number;
  /** @default 'auto' */
  mode?: RunMode;
  /** With mode `resume`: continue the latest unfinished run whatever its scope (`floors`/`from`/`to` unused). */
  resumeLatest?: boolean;
  /** Fetch and compute everything, roll every chunk back. */
  dryRun?: boolean;
  /** @default SPLIT_THRESHOLD */
  splitThreshold?: number;
  /** @default DMM_MAX_OFFSET */
  offsetCap?: number;
  /** @default MIN_WINDOW_MS */
  minWindowMs?: number;
  /** Pages of one window requested ahead. @default MAX_CONCURRENT_REQUESTS */
  prefetchPages?: number;
  linkAffiliateId?: string;
  amMlVersion?: string;
  /** Id for a new run. @default sync-<UTC timestamp>-<random> */
  newRunId?: string;
  /** Wall clock for durations. @default Date.now */
  now?: () => number;
  onProgress?: (e: SyncEvent) => void;
  signal?: AbortSignal;
}

export interface SyncResult {
  runId: string;
  resumed: boolean;
  floors: string[];
  from: string;
  to: string;
  dryRun: boolean;
  /** `max-items`: stopped early; the run stays open and the next invocation continues it. */
  stoppedBy: 'completed' | 'max-items';
  requests: number;
  retries: number;
  pages: number;
  items: { seen: number; inserted: number; updated: number; unchanged: number; invalid: number; duplicates: number };
  windows: { probed: number; split: number; paged: number; empty: number; skippedDone: number };
  retriedFailures: { pages: number; items: number; resolved: number; stillFailing: number };
  failures: {
    pages: { count: number; list: { window: string; offset: number; reason: string }[] };
    items: { count: number; list: { contentId: string | null; reason: string }[] };
  };
  newTags: number;
  newPerformers: number;
  /** Null on dry runs (nothing stored to compare) and when the run stopped early. */
  reconciliation: SyncReconciliation | null;
  unknownKeys: string[];
  durationMs: number;
  /**
   * Where the time went: `writingMs` in chunk transactions, `fetcherBlockedMs` with the fetcher waiting for the
   * writer (a run limited by --rps, not by the database, keeps this near zero).
   */
  timing: { writingMs: number; fetcherBlockedMs: number; chunks: number };
}

/** A probed window still at the offset cap at the minimum window size (§8.2 step 4). */
export class WindowTooLargeError extends ExternalServiceError {
  constructor(window: SyncWindow, total: number, cap: number) {
    super(
      `The DMM API reports ${total >= cap ? `${cap} or more` : total} items for ${windowLabel(window)}, a window that cannot be split further; paging it would silently drop everything past position ${cap}.`,
      {
        code: 'DMM_WINDOW_TOO_LARGE',
        service: 'DMM API',
        hint: 'This is not expected for one hour of releases. Check the floor and dates; nothing past the last checkpoint was written.',
        details: { window: windowLabel(window), total },
      },
    );
  }
}

/** Page failures remain after the run: the data is incomplete until a rerun retries them. */
export class SyncIncompleteError extends ExternalServiceError {
  constructor(message: string, details: Record<string, unknown>) {
    super(message, {
      code: 'DMM_SYNC_INCOMPLETE',
      service: 'DMM API',
      hint: 'Run the same command again: failed pages and items are retried first.',
      details,
    });
  }
}

// ---------------------------------------------------------------------------------------------------------------
