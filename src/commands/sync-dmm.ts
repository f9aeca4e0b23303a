/**
 * `am-ml sync-dmm`: bring the FANZA catalog (DMM Affiliate API ItemList) into the app's tables, in resumable,
 * rate-limited chunks. The work is in `dmm/sync.ts`; this command checks flags, loads config, builds the client and
 * the writer, and draws progress.
 */
import type { AfterChunkHook } from '../db/catalog-types.js';
import { createCatalogWriter } from '../db/catalog-writer.js';
import { openDb } from '../db/open.js';
import { createDmmClient, DEFAULT_RPS, MAX_RPS } from '../dmm/client.js';
import { FLOOR_SOURCES } from '../dmm/map.js';
import { DEFAULT_CHUNK_SIZE, type SyncEvent, type SyncResult, syncCatalog } from '../dmm/sync.js';
import { jstDate, jstDayStart } from '../dmm/windows.js';
import { redact, UsageError } from '../errors.js';
import { AMML_VERSION } from '../version.js';
import { type CommonOptions, configOf, cwdOf, reporterOf } from './common.js';
import { type ChunkEmbedder, chunkEmbedder, type SyncEmbedMode, type SyncEmbedStatus } from './sync-embed.js';

/** Default range: the incremental pass of dmm-api.md §8.4 (recent releases plus upcoming pre-orders). */
export const DEFAULT_DAYS_BACK = 14;
export const DEFAULT_DAYS_AHEAD = 14;
export const DEFAULT_FLOORS = ['videoa', 'videoc'];
export const MAX_CHUNK_SIZE = 10_000;
/** Invalid items printed as warnings (all are in the result and the failure table). */
const WARN_INVALID_LIMIT = 5;

export interface SyncDmmOptions extends CommonOptions {
  /** `videoa`, `videoc` (or `digital/videoa`, …). @default ['videoa', 'videoc'] */
  floors?: string[];
  /** YYYY-MM-DD (JST). @default 14 days ago */
  from?: string;
  /** YYYY-MM-DD (JST), inclusive. @default 14 days ahead (pre-orders) */
  to?: string;
  /** Videos per transaction. @default 500 */
  chunk?: number;
  /** Requests per second. @default 1 */
  rps?: number;
  /** Stop after this many items; the run stays open and the next invocation continues it. */
  maxItems?: number;
  /** Continue an unfinished run (fail if there is none). */
  resume?: boolean;
  /** Abandon an unfinished run with the same scope and start over. */
  restart?: boolean;
  dryRun?: boolean;
  /** Overrides DMM_API_BASE_URL (a replay server). */
  apiBaseUrl?: string;
  /** Runs inside each chunk's transaction with the inserted/updated videos (tests; overrides `embed`). */
  afterChunk?: AfterChunkHook;
  /**
   * Embed new and updated items with the current model inside each chunk's transaction: `auto` when the live tables
   * already serve the current version, `require` fails the sync otherwise, `off` never. @default 'auto'
   */
  embed?: SyncEmbedMode;
  /** Model name in the store (for `embed`). @default two_tower */
  name?: string;
  /** Injected transport (tests). @default global fetch */
  fetch?: typeof fetch;
  /** Wall clock. @default Date.now */
  now?: () => number;
}

export interface SyncDmmResult extends SyncResult {
  database: string;
  /** Whether new items were embedded during the sync, with which version, or why not. */
  embedding: SyncEmbedStatus;
  /** The API base URL (no credentials: they travel as query parameters, never shown). */
  apiBaseUrl: string;
}

function normaliseFloors(floors: readonly string[]): string[] {
  const out = new Set<string>();
  for (const raw of floors.flatMap((f) => f.split(','))) {
    const f = raw.trim();
    if (!f) continue;
    const full = f.includes('/') ? f : `digital/${f}`;
    if (!FLOOR_SOURCES[full]) {
      throw new UsageError(
        `--floor ${f} is not a floor am-ml syncs; use ${Object.keys(FLOOR_SOURCES)
          .map((k) => k.split('/')[1])
          .join(' or ')} (the app stores them as ${Object.values(FLOOR_SOURCES).join(' and ')}).`,
      );
    }
    out.add(full);
  }
  if (!out.size) throw new UsageError('--floor needs at least one floor (videoa, videoc).');
  return [...out].sort();
}

function checkDate(flag: string, value: string): void {
  if (jstDayStart(value) === null) throw new UsageError(`${flag} must be a date as YYYY-MM-DD, not '${value}'.`);
}

export async function syncDmm(opts: SyncDmmOptions = {}): Promise<SyncDmmResult> {
  if (opts.resume && opts.restart) {
    throw new UsageError('--resume and --restart contradict each other: --resume continues the unfinished run, --restart abandons it. Pass one.');
  }
  const now = opts.now ?? Date.now;
  const floors = normaliseFloors(opts.floors ?? DEFAULT_FLOORS);
  if (opts.from !== undefined) checkDate('--from', opts.from);
  if (opts.to !== undefined) checkDate('--to', opts.to);
  const from = opts.from ?? jstDate(now(), -DEFAULT_DAYS_BACK);
  const to = opts.to ?? jstDate(now(), DEFAULT_DAYS_AHEAD);
  if (jstDayStart(from)! > jstDayStart(to)!) throw new UsageError(`--from ${from} is after --to ${to}.`);
  const chunk = opts.chunk ?? DEFAULT_CHUNK_SIZE;
  if (!Number.isInteger(chunk) || chunk < 1 || chunk > MAX_CHUNK_SIZE) {
    throw new UsageError(`--chunk must be a whole number from 1 to ${MAX_CHUNK_SIZE}, not ${chunk}.`);
  }
  const rps = opts.rps ?? DEFAULT_RPS;
  if (!(rps > 0) || rps > MAX_RPS) throw new UsageError(`--rps must be above 0 and at most ${MAX_RPS}, not ${rps}.`);
  if (opts.maxItems !== undefined && (!Number.isInteger(opts.maxItems) || opts.maxItems < 1)) {
    throw new UsageError(`--max-items must be a whole number of at least 1, not ${opts.maxItems}.`);
  }
  if (opts.apiBaseUrl !== undefined && !/^https?:\/\/\S+$/.test(opts.apiBaseUrl)) {
    throw new UsageError(`--api-base-url must be an http(s) URL, not '${redact(opts.apiBaseUrl)}'.`);
  }

  const cwd = cwdOf(opts);
  const reporter = reporterOf(opts);
  const config = configOf(opts, ['db', 'dmm']);
  const baseUrl = opts.apiBaseUrl ?? config.dmmApiBaseUrl;
  const client = createDmmClient({
    baseUrl,
    apiId: config.dmmApiId,
    affiliateId: config.dmmAffiliateId,
    rps,
    fetch: opts.fetch,
    onRetry: (e) => reporter.debug(`retry ${e.attempt} in ${(e.delayMs / 1000).toFixed(1)} s (${e.kind}): ${e.reason}`),
  });
  // An explicit scope is always given except for a bare --resume, which continues the latest unfinished run.
  const explicitScope = opts.floors !== undefined || opts.from !== undefined || opts.to !== undefined;

  // The embedded database runs on its own thread: fetching and parsing pages and writing chunks then use both
  // cores instead of taking turns on one (PGlite blocks the event loop while a statement runs).
  const db = await openDb({ url: config.databaseUrl, cwd, caFile: config.databaseCaFile, pgliteWorker: true });
  let bar: ReturnType<typeof reporter.progress> | undefined;
  let embedder: ChunkEmbedder | undefined;
  try {
    embedder = opts.afterChunk || opts.dryRun
      ? { hook: opts.afterChunk, status: { mode: opts.embed ?? 'auto', enabled: Boolean(opts.afterChunk), itemsEmbedded: 0, reason: opts.dryRun ? '--dry-run' : undefined }, dispose() {} }
      : await chunkEmbedder(opts, db, opts.embed ?? 'auto');
    if (embedder.status.reason && !opts.dryRun && embedder.status.mode === 'auto') {
      reporter.info(`New items will not be embedded during this sync: ${embedder.status.reason}.`);
    }
    const writer = createCatalogWriter(db, { afterChunk: embedder.hook });
    let invalidWarned = 0;
    let seen = 0;
    let planned = 0;
    const onProgress = (e: SyncEvent) => {
      switch (e.kind) {
        case 'run':
          reporter.info(
            `${e.resumed ? 'Resuming' : 'Starting'} sync run ${e.runId}: ${e.floors.join(', ')} ${e.from}..${e.to} → ${db.displayUrl}` +
              (e.openFailures ? ` (retrying ${e.openFailures} earlier failure(s) first)` : ''),
          );
          bar = reporter.progress('Syncing DMM catalog', 0, 'items');
          break;
        case 'planned':
          planned = e.items;
          bar?.setTotal(Math.max(planned, seen));
          break;
        case 'page':
          seen += e.items;
          bar?.update(seen, `${client.stats.requests} requests`);
          break;
        case 'window':
          if (e.action === 'split') reporter.debug(`split ${e.window} (${e.total} items)`);
          else reporter.debug(`${e.action} ${e.window}${e.total !== undefined ? ` (${e.total})` : ''}`);
          break;
        case 'invalid-item':
          if (invalidWarned++ < WARN_INVALID_LIMIT) reporter.warn(`invalid item ${e.contentId ?? '(no content_id)'}: ${e.reason}`);
          break;
        case 'page-failed':
          reporter.warn(`page at offset ${e.offset} of ${e.window} failed after retries: ${e.reason}`);
          break;
        case 'unknown-keys':
          reporter.info(`the API sent item field(s) am-ml does not know yet (kept, not stored): ${e.keys.join(', ')}`);
          break;
        case 'chunk':
          break;
      }
    };
    const result = await syncCatalog({
      client,
      writer,
      floors,
      from,
      to,
      chunkSize: chunk,
      maxItems: opts.maxItems,
      mode: opts.resume ? 'resume' : opts.restart ? 'restart' : 'auto',
      dryRun: opts.dryRun,
      linkAffiliateId: config.dmmLinkAffiliateId,
      amMlVersion: AMML_VERSION,
      now,
      onProgress,
      signal: opts.signal,
      ...(opts.resume && !explicitScope ? { resumeLatest: true } : {}),
    });
    return { ...result, database: db.displayUrl, apiBaseUrl: redact(baseUrl), embedding: embedder.status };
  } finally {
    bar?.stop();
    embedder?.dispose();
    await db.close();
  }
}

function seconds(ms: number): string {
  return ms < 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms / 1000)} s`;
}

export function formatSyncDmm(r: SyncDmmResult): string {
  const i = r.items;
  const lines = [
    `${r.dryRun ? 'Dry run' : 'Sync run'} ${r.runId}${r.resumed ? ' (resumed)' : ''}: ${r.floors.join(', ')} ${r.from}..${r.to} → ${r.database}`,
    `items: ${i.seen} seen, ${i.inserted} inserted, ${i.updated} updated, ${i.unchanged} unchanged, ${i.invalid} invalid, ${i.duplicates} duplicates`,
    `windows: ${r.windows.probed} probed, ${r.windows.split} split, ${r.windows.paged} paged, ${r.windows.empty} empty, ${r.windows.skippedDone} already done`,
    `requests: ${r.requests} (${r.retries} retries) in ${seconds(r.durationMs)}`,
    r.embedding.enabled
      ? `embedded: ${r.embedding.itemsEmbedded} new/updated item(s) with ${r.embedding.version}, in their chunks' transactions`
      : `embedded: none during the sync (${r.embedding.reason ?? 'disabled'})`,
  ];
  if (r.retriedFailures.pages || r.retriedFailures.items) {
    lines.push(
      `earlier failures retried: ${r.retriedFailures.pages} page(s), ${r.retriedFailures.items} item(s); ${r.retriedFailures.resolved} resolved, ${r.retriedFailures.stillFailing} still failing`,
    );
  }
  const rec = r.reconciliation;
  if (rec) {
    const explained = rec.explained.invalidItems + rec.explained.failedPageItems;
    lines.push(
      `API total ${rec.apiTotal}, stored ${rec.stored}` +
        (rec.difference === 0 && rec.extraStored === 0
          ? ': they match.'
          : `: difference ${rec.difference}${explained ? `, explained by ${rec.explained.invalidItems} invalid item(s) and ${rec.explained.failedPageItems} item(s) on failed pages` : ''}${rec.extraStored ? `; ${rec.extraStored} stored item(s) are no longer listed by the API` : ''}${rec.unexplained ? `; ${rec.unexplained} unexplained` : ''}.`),
    );
  } else if (r.stoppedBy === 'max-items') {
    lines.push(`stopped at --max-items; run the same command again to continue run ${r.runId}.`);
  } else if (r.dryRun) {
    lines.push('dry run: nothing was written.');
  }
  if (r.failures.items.count) {
    lines.push(`invalid items (recorded in am_ml.sync_failures, retried first next run):`);
    for (const f of r.failures.items.list.slice(0, 10)) lines.push(`  ${f.contentId ?? '(no content_id)'}: ${f.reason}`);
    if (r.failures.items.count > 10) lines.push(`  … and ${r.failures.items.count - 10} more`);
  }
  return lines.join('\n');
}
