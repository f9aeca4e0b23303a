/**
 * The contract between the DMM sync (`dmm/sync.ts`) and the database (`db/catalog-writer.ts`). The sync only
 * imports these *types*; it never sees SQL. One implementation exists (`createCatalogWriter` over any `Db`); the
 * contract suite `db/catalog-writer.contract.ts` runs against PGlite in every test run.
 *
 * Rows are already mapped to the app's columns (app-schema §4) by `dmm/map.ts`.
 */
import type { Queryable } from './types.js';

/** `videos.source` values the sync writes (digital/videoa → FANZA, digital/videoc → FANZA_AMATEUR). */
export type CatalogSource = 'FANZA' | 'FANZA_AMATEUR';

export interface CatalogPerformer {
  /** DMM actress id as text: `performers.fanza_actress_id` (the upsert key; names are not unique). */
  fanzaActressId: string;
  name: string;
}

/** One video as the app stores it, plus its tag names and performers (written in the same transaction). */
export interface CatalogVideo {
  /** FANZA content_id → `videos.external_id` (the upsert key). */
  externalId: string;
  title: string;
  durationSeconds: number | null;
  thumbnailUrl: string | null;
  thumbnailVerticalUrl: string | null;
  previewVideoUrl: string | null;
  sampleVideoUrl: string | null;
  distributionCode: string | null;
  makerCode: string | null;
  director: string | null;
  series: string | null;
  maker: string | null;
  label: string | null;
  price: number | null;
  productReleasedAt: Date;
  imageUrls: string[];
  source: CatalogSource;
  productUrl: string | null;
  affiliateUrl: string | null;
  /** Genre names → `tags` (upsert on name) + `video_tags`. The stored set is replaced by this one. */
  tags: string[];
  /** → `performers` (upsert on fanza_actress_id) + `video_performers`; sets `has_performer`. Replaced likewise. */
  performers: CatalogPerformer[];
  /** Where the sync found the item; attributes a failure of this row to its window. Not stored in `videos`. */
  origin?: { floor: string; windowStart: Date; windowEnd: Date; pageOffset: number };
}

/** A release-date window of one floor (`digital/videoa`), bounds inclusive, as instants. */
export interface SyncWindow {
  /** `service/floor`, e.g. `digital/videoa`. */
  floor: string;
  start: Date;
  end: Date;
}

export type CheckpointStatus = 'split' | 'paging' | 'done';

/** Where paging of one window stands. Committed in the same transaction as the rows it covers. */
export interface SyncCheckpoint extends SyncWindow {
  status: CheckpointStatus;
  /** `total_count` the API reported for the window (null for a split window never probed as a leaf). */
  totalCount: number | null;
  /** 1-based offset of the next page to fetch. */
  nextOffset: number;
}

/** What a finished window holds, written with its `done` checkpoint. */
export interface StoredWindowCount {
  /** Distinct videos of the window's source whose release date lies in the window, after this chunk. */
  storedCount: number;
}

export type SyncFailureKind = 'page' | 'item';

/** A page that failed after every retry, or an item that failed validation. Retried first by the next run. */
export interface SyncFailureRecord {
  kind: SyncFailureKind;
  /**
   * Identity of the failure, so a failure seen again updates its open row (attempts + 1) instead of adding one:
   * `item:<content_id>`, or for pages and items without a content id the page position.
   */
  key: string;
  floor: string | null;
  windowStart: Date | null;
  windowEnd: Date | null;
  pageOffset: number | null;
  contentId: string | null;
  /** Human-readable reason, already redacted. */
  reason: string;
  /** The offending item (redacted), for items. */
  raw?: unknown;
}

export interface OpenSyncFailure extends SyncFailureRecord {
  id: number;
  attempts: number;
  firstFailedAt: Date;
}

/** Everything one chunk transaction writes. */
export interface CatalogChunk {
  runId: string;
  videos: CatalogVideo[];
  /** Checkpoint rows to upsert (their data is in `videos` of this or an earlier chunk). */
  checkpoints: SyncCheckpoint[];
  /** Windows finished by this chunk: their stored count is computed inside the transaction. */
  finishedWindows?: (SyncWindow & { source: CatalogSource })[];
  failures: SyncFailureRecord[];
  /** Open failures (by key) that this chunk resolves, with why (`refetched`, `written`, `gone`). */
  resolved: { key: string; resolution: string }[];
}

export type VideoChange = 'inserted' | 'updated';

/** A video the chunk inserted or changed (unchanged videos are not listed). */
export interface ChangedVideo {
  /** `videos.id` */
  id: string;
  externalId: string;
  change: VideoChange;
}

export interface ChunkWriteResult {
  inserted: number;
  updated: number;
  unchanged: number;
  /** Items left out of the chunk because they would violate a unique key other than external_id. */
  rejected: { externalId: string; reason: string }[];
  /** Stored counts of `finishedWindows`, in the same order. */
  windowCounts: StoredWindowCount[];
  newTags: number;
  newPerformers: number;
}

/**
 * Hook run inside each chunk's transaction, after the videos, tags, performers, join rows, `has_performer` and
 * the checkpoint are written and before COMMIT. `rows` lists the inserted and updated videos (unchanged ones are
 * left out); everything about them (tags, performers) is readable through `tx`. A throw rolls the whole chunk back,
 * checkpoint included, and fails the sync (the next run redoes the chunk). Not called for empty chunks or dry runs.
 *
 * The embed issue uses it to embed new items with the current model in the same transaction, so synced items are
 * servable at once.
 */
export type AfterChunkHook = (tx: Queryable, rows: readonly ChangedVideo[]) => Promise<void>;

export interface SyncRunScope {
  /** `service/floor` list, sorted. */
  floors: string[];
  /** YYYY-MM-DD (JST), inclusive. */
  from: string;
  to: string;
}

export interface SyncRunState {
  runId: string;
  /** True when an unfinished run with this scope was picked up. */
  resumed: boolean;
  scope: SyncRunScope;
  checkpoints: SyncCheckpoint[];
}

export type RunMode =
  /** Resume an unfinished run with the same scope, else start a new one. */
  | 'auto'
  /** Resume an unfinished run (the same scope, or the latest when `scope` is null); fail if there is none. */
  | 'resume'
  /** Abandon unfinished runs with the same scope and start a new one. */
  | 'restart';

export interface RunSummaryRow {
  floor: string;
  windowStart: Date;
  windowEnd: Date;
  totalCount: number;
  storedCount: number;
  openInvalidItems: number;
  openFailedPages: number;
}

/**
 * Persistence for the DMM sync: runs, checkpoints, failures, and chunk writes. Every write of catalog rows goes
 * through `writeChunk`, one transaction per chunk.
 */
export interface CatalogWriter {
  /**
   * Check the tables and columns the sync writes (schema drift → ValidationFailedError naming what is missing).
   * @throws ValidationFailedError
   */
  prepare(): Promise<void>;
  /**
   * Find or create the run for `scope` per `mode`; returns its checkpoints.
   * @throws UsageError for `resume` with nothing to resume
   */
  openRun(
    scope: SyncRunScope | null,
    mode: RunMode,
    meta: { newRunId: string; amMlVersion?: string; /** Plan only: record nothing. */ dryRun?: boolean },
  ): Promise<SyncRunState>;
  /** Open failures, oldest first (the next run retries them first). */
  openFailures(floors: readonly string[]): Promise<OpenSyncFailure[]>;
  /** One transaction: upserts, join rows, has_performer, failures, checkpoints, then the afterChunk hook. */
  writeChunk(chunk: CatalogChunk, opts?: { dryRun?: boolean }): Promise<ChunkWriteResult>;
  /**
   * Per-window totals of a run's finished leaf windows: the API's total, the videos stored now for the window
   * (its floor's source, release date within the window), and the open failures that explain a gap.
   */
  runWindows(runId: string, sources: Readonly<Record<string, CatalogSource>>): Promise<RunSummaryRow[]>;
  /** Mark the run done (all windows finished) and store its summary. */
  finishRun(runId: string, summary: unknown, done: boolean): Promise<void>;
}
