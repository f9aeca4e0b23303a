/**
 * Bulk, resumable DMM catalog sync (specs/dmm-api.md §8; app-schema §4, §7.6, §7.7, §7.15–7.17).
 *
 * Two tasks run at once and meet in a bounded queue, so fetching and writing overlap and the run is paced by the
 * client's `rps`, not by the database:
 *
 *  - the fetcher retries the failures left by earlier runs first (pages by position, items by content id), then
 *    walks each floor's date range: it probes a window (the probe asks for a full page, which doubles as page 1),
 *    splits windows whose total reaches the split threshold (halving down to a day, then to an hour), refuses to
 *    page a minimum-size window at the 50,000 cap, and pages accepted windows with `sort=date`, prefetching pages
 *    in order. Items are parsed and mapped as they arrive; invalid ones become failure records; duplicates within
 *    a window are dropped. A page that still fails after the client's retries is recorded and skipped; several in a
 *    row stop the run. Errors are never read as the end of the data.
 *  - the writer cuts the stream into chunks of `chunkSize` videos and writes each in one transaction with every
 *    checkpoint, failure and resolution whose position the chunk covers: a crash leaves the database at a
 *    checkpoint that matches its rows, and a rerun resumes there.
 *
 * At the end the run's windows are reconciled: what the API said exists vs what is stored, the difference
 * explained by invalid items and failed pages.
 */
import { randomBytes } from 'node:crypto';
import type { ChunkWriteResult, OpenSyncFailure, SyncFailureRecord, SyncWindow } from '../db/catalog-types.js';
import { InterruptedError, redactValue, throwIfAborted } from '../errors.js';
import { DMM_MAX_HITS, DMM_MAX_OFFSET, DmmRequestError, MAX_CONCURRENT_REQUESTS } from './client.js';
import { intakeItem } from './intake.js';
import { FLOOR_SOURCES } from './map.js';
import { reconcile } from './reconcile.js';
import type { ItemListPage } from './schema.js';
import { EntryQueue, writeChunks } from './sync-pipeline.js';
import { type SyncCatalogOptions, type SyncEvent, SyncIncompleteError, type SyncResult, WindowTooLargeError } from './sync-types.js';
import { apiDate, MIN_WINDOW_MS, rootWindow, splitWindow, windowKey, windowLabel } from './windows.js';

/** A window whose total reaches this is split (below the 50,000 cap, so items added while paging still fit). */
export const SPLIT_THRESHOLD = 40_000;
export const DEFAULT_CHUNK_SIZE = 500;
/** Pages in a row that fail after retries before the run stops (the API is down, not one bad page). */
export const MAX_CONSECUTIVE_PAGE_FAILURES = 3;
/** Videos buffered between fetcher and writer, in chunks (bounds memory to the chunk size). */
const QUEUE_CHUNKS = 2;
export type { SyncReconciliation, WindowGap } from './reconcile.js';
export {
  type SyncCatalogOptions,
  type SyncEvent,
  SyncIncompleteError,
  type SyncResult,
  WindowTooLargeError,
} from './sync-types.js';
/** Items parsed between two turns of the event loop. */
const YIELD_EVERY_ITEMS = 20;
/** Failures listed by name in the result (all are counted and stored). */
const MAX_LISTED_FAILURES = 50;

function newRunId(now: number): string {
  const ts = new Date(now).toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  return `sync-${ts}-${randomBytes(3).toString('hex')}`;
}

function splitFloor(floor: string): { service: string; floor: string } {
  const [service, f] = floor.split('/');
  return { service, floor: f };
}

interface PageOutcome {
  offset: number;
  page?: ItemListPage;
  error?: DmmRequestError;
}

export async function syncCatalog(opts: SyncCatalogOptions): Promise<SyncResult> {
  const now = opts.now ?? Date.now;
  const startedAt = now();
  const { client, writer, signal } = opts;
  const chunkSize = opts.chunkSize ?? DEFAULT_CHUNK_SIZE;
  const threshold = opts.splitThreshold ?? SPLIT_THRESHOLD;
  const cap = opts.offsetCap ?? DMM_MAX_OFFSET;
  const minWindowMs = opts.minWindowMs ?? MIN_WINDOW_MS;
  const prefetch = Math.max(1, opts.prefetchPages ?? MAX_CONCURRENT_REQUESTS);
  const dryRun = opts.dryRun ?? false;
  const emit = (e: SyncEvent) => opts.onProgress?.(e);
  const floors = [...new Set(opts.floors)].sort();
  for (const f of floors) {
    if (!FLOOR_SOURCES[f]) throw new RangeError(`floor ${f} has no catalog source`);
  }

  await writer.prepare();
  const mode = opts.mode ?? 'auto';
  const scope = mode === 'resume' && opts.resumeLatest ? null : { floors, from: opts.from, to: opts.to };
  const run = await writer.openRun(scope, mode, {
    newRunId: opts.newRunId ?? newRunId(now()),
    amMlVersion: opts.amMlVersion,
    dryRun,
  });
  const checkpoints = new Map(run.checkpoints.map((c) => [windowKey(c), c]));
  const openFailures = await writer.openFailures(run.scope.floors);
  emit({ kind: 'run', runId: run.runId, resumed: run.resumed, floors: run.scope.floors, from: run.scope.from, to: run.scope.to, openFailures: openFailures.length });

  const requestsBefore = client.stats.requests;
  const retriesBefore = client.stats.retries;
  const result: SyncResult = {
    runId: run.runId,
    resumed: run.resumed,
    floors: run.scope.floors,
    from: run.scope.from,
    to: run.scope.to,
    dryRun,
    stoppedBy: 'completed',
    requests: 0,
    retries: 0,
    pages: 0,
    items: { seen: 0, inserted: 0, updated: 0, unchanged: 0, invalid: 0, duplicates: 0 },
    windows: { probed: 0, split: 0, paged: 0, empty: 0, skippedDone: 0 },
    retriedFailures: { pages: 0, items: 0, resolved: 0, stillFailing: 0 },
    failures: { pages: { count: 0, list: [] }, items: { count: 0, list: [] } },
    newTags: 0,
    newPerformers: 0,
    reconciliation: null,
    unknownKeys: [],
    durationMs: 0,
    timing: { writingMs: 0, fetcherBlockedMs: 0, chunks: 0 },
  };

  const queue = new EntryQueue(chunkSize * QUEUE_CHUNKS);
  const internal = new AbortController();
  const fetchSignal = signal ? AbortSignal.any([signal, internal.signal]) : internal.signal;
  const unknownKeys = new Set<string>();
  let planned = 0;

  const recordItemFailure = async (f: SyncFailureRecord) => {
    result.items.invalid++;
    result.failures.items.count++;
    if (result.failures.items.list.length < MAX_LISTED_FAILURES) result.failures.items.list.push({ contentId: f.contentId, reason: f.reason });
    emit({ kind: 'invalid-item', contentId: f.contentId, reason: f.reason });
    await queue.push({ t: 'failure', f });
  };

  /** Parse, map and queue a page's items; returns how many were taken (less than all when max-items is hit). */
  async function takeItems(
    items: readonly unknown[],
    origin: { window: SyncWindow | null; pageOffset: number | null },
    seen: Set<string> | null,
  ): Promise<{ taken: number; stop: boolean }> {
    let taken = 0;
    for (let idx = 0; idx < items.length; idx++) {
      // Give the event loop a turn now and then: the database thread's replies wait for it, and a page's items
      // would otherwise run as one long stretch of microtasks.
      if (idx > 0 && idx % YIELD_EVERY_ITEMS === 0) await new Promise<void>((r) => setImmediate(r));
      if (opts.maxItems !== undefined && result.items.seen >= opts.maxItems) return { taken, stop: true };
      const raw = items[idx];
      result.items.seen++;
      taken++;
      const intake = intakeItem(raw, { ...origin, index: idx }, { linkAffiliateId: opts.linkAffiliateId });
      if (!intake.ok) {
        await recordItemFailure(intake.failure);
        continue;
      }
      const fresh = intake.unknownKeys.filter((k) => !unknownKeys.has(k));
      if (fresh.length) {
        for (const k of fresh) unknownKeys.add(k);
        emit({ kind: 'unknown-keys', keys: fresh });
      }
      const video = intake.video;
      if (seen) {
        if (seen.has(video.externalId)) {
          result.items.duplicates++;
          continue;
        }
        seen.add(video.externalId);
      }
      await queue.push({ t: 'video', video });
    }
    return { taken, stop: false };
  }

  const fetchPage = (w: SyncWindow, offset: number): Promise<PageOutcome> =>
    client
      .itemList(
        { ...splitFloor(w.floor), gteDate: apiDate(w.start.getTime()), lteDate: apiDate(w.end.getTime()), sort: 'date', offset, hits: DMM_MAX_HITS },
        fetchSignal,
      )
      .then(
        (page) => ({ offset, page }),
        (err) => {
          if (err instanceof DmmRequestError && err.retryable) return { offset, error: err };
          throw err; // 400, auth, interrupt: stop the run
        },
      );

  let consecutivePageFailures = 0;
  async function pageFailed(w: SyncWindow, offset: number, err: DmmRequestError): Promise<void> {
    consecutivePageFailures++;
    result.failures.pages.count++;
    if (result.failures.pages.list.length < MAX_LISTED_FAILURES) {
      result.failures.pages.list.push({ window: windowLabel(w), offset, reason: err.message });
    }
    emit({ kind: 'page-failed', window: windowLabel(w), offset, reason: err.message });
    await queue.push({
      t: 'failure',
      f: {
        kind: 'page',
        key: `page:${windowKey(w)}:${offset}`,
        floor: w.floor,
        windowStart: w.start,
        windowEnd: w.end,
        pageOffset: offset,
        contentId: null,
        reason: err.message,
      },
    });
  }

  /** Several pages in a row failed after their retries: the API is down, stop (the checkpoint is kept). */
  function stopIfFailingInARow(err: DmmRequestError): void {
    if (consecutivePageFailures < MAX_CONSECUTIVE_PAGE_FAILURES) return;
    throw new DmmRequestError(`${consecutivePageFailures} pages in a row failed after retries; stopping (last: ${err.message}).`, {
      kind: err.kind,
      retryable: true,
      url: err.target ?? '',
      status: err.status,
      attempts: err.attempts,
      hint: 'The API looks unavailable. Run again later: the sync resumes from its checkpoint and retries the failed pages first.',
    });
  }

  /** Retry what earlier runs left failing: pages by position, items by content id. */
  async function retryFailures(failures: OpenSyncFailure[]): Promise<boolean> {
    const pageTasks = new Map<string, { w: SyncWindow; offset: number; keys: string[] }>();
    const cidTasks: OpenSyncFailure[] = [];
    for (const f of failures) {
      if (f.kind === 'item' && f.contentId && f.floor) cidTasks.push(f);
      else if (f.floor && f.windowStart && f.windowEnd && f.pageOffset) {
        const w = { floor: f.floor, start: f.windowStart, end: f.windowEnd };
        const key = `${windowKey(w)}:${f.pageOffset}`;
        const t = pageTasks.get(key) ?? { w, offset: f.pageOffset, keys: [] };
        t.keys.push(f.key);
        pageTasks.set(key, t);
      }
    }
    for (const t of pageTasks.values()) {
      throwIfAborted(fetchSignal);
      result.retriedFailures.pages++;
      const out = await fetchPage(t.w, t.offset);
      result.requests = client.stats.requests - requestsBefore;
      if (out.error) {
        result.retriedFailures.stillFailing++;
        await pageFailed(t.w, t.offset, out.error);
        stopIfFailingInARow(out.error);
        continue;
      }
      consecutivePageFailures = 0;
      result.pages++;
      // Resolve first: a still-broken item on the page is recorded again (as a new open failure) below.
      for (const key of t.keys) await queue.push({ t: 'resolve', key, resolution: 'refetched' });
      result.retriedFailures.resolved += t.keys.length;
      const took = await takeItems(out.page!.items, { window: t.w, pageOffset: t.offset }, null);
      if (took.stop) return true;
    }
    for (const f of cidTasks) {
      throwIfAborted(fetchSignal);
      result.retriedFailures.items++;
      let page: ItemListPage;
      try {
        page = await client.itemList({ ...splitFloor(f.floor!), cid: f.contentId!, hits: 1 }, fetchSignal);
      } catch (err) {
        if (!(err instanceof DmmRequestError && err.retryable)) throw err;
        result.retriedFailures.stillFailing++;
        continue; // stays open; counted, retried next run
      }
      const w = f.windowStart && f.windowEnd ? { floor: f.floor!, start: f.windowStart, end: f.windowEnd } : null;
      if (page.items.length === 0) {
        await queue.push({ t: 'resolve', key: f.key, resolution: 'gone' });
        result.retriedFailures.resolved++;
        continue;
      }
      const invalidBefore = result.items.invalid;
      const took = await takeItems(page.items, { window: w, pageOffset: f.pageOffset }, null);
      if (result.items.invalid > invalidBefore) result.retriedFailures.stillFailing++;
      else result.retriedFailures.resolved++; // resolved by the write ('written')
      if (took.stop) return true;
    }
    return false;
  }

  /** Page one accepted window from `startOffset`; `first` is the probe page when it doubled as page 1. */
  async function pageWindow(w: SyncWindow, total: number, startOffset: number, first: ItemListPage | null): Promise<boolean> {
    const label = windowLabel(w);
    const seen = new Set<string>();
    let windowTotal = total;
    const limit = () => Math.min(windowTotal, cap - DMM_MAX_HITS + 1);
    let nextToSchedule = startOffset;
    const inflight: Promise<PageOutcome>[] = [];
    let stop = false;
    const handle = async (out: PageOutcome): Promise<'continue' | 'restart' | 'end'> => {
      if (out.error) {
        await pageFailed(w, out.offset, out.error);
        await queue.push({ t: 'checkpoint', cp: { ...w, status: 'paging', totalCount: windowTotal, nextOffset: out.offset + DMM_MAX_HITS } });
        stopIfFailingInARow(out.error);
        return 'continue';
      }
      consecutivePageFailures = 0;
      const page = out.page!;
      result.pages++;
      result.requests = client.stats.requests - requestsBefore;
      windowTotal = page.totalCount;
      emit({ kind: 'page', window: label, offset: out.offset, items: page.items.length });
      if (page.items.length === 0) return 'end'; // the window shrank while paging: nothing more to read
      const took = await takeItems(page.items, { window: w, pageOffset: out.offset }, seen);
      if (took.stop) {
        stop = true;
        // A partly taken page is fetched again next time: the checkpoint stays at its start.
        if (took.taken < page.items.length) {
          await queue.push({ t: 'checkpoint', cp: { ...w, status: 'paging', totalCount: windowTotal, nextOffset: out.offset } });
          return 'end';
        }
      }
      // Where the next page starts. The offset we asked for is what this page holds; a first_position that
      // disagrees must not send paging backwards (an API ignoring `offset` would loop forever).
      const next = out.offset + page.items.length;
      await queue.push({ t: 'checkpoint', cp: { ...w, status: 'paging', totalCount: windowTotal, nextOffset: next } });
      if (stop) return 'end';
      // A short or shifted page: continue exactly where it ended instead of at the predicted offset.
      if (next !== out.offset + DMM_MAX_HITS && next <= limit()) {
        nextToSchedule = next;
        return 'restart';
      }
      return 'continue';
    };
    if (first) {
      const r = await handle({ offset: 1, page: first });
      if (r === 'end') return stop;
      nextToSchedule = r === 'restart' ? nextToSchedule : 1 + DMM_MAX_HITS;
    }
    try {
      await pagesInOrder();
    } finally {
      for (const dropped of inflight.splice(0)) dropped.catch(() => {}); // abandoned prefetches: results not needed
    }
    return stop;

    async function pagesInOrder(): Promise<void> {
    for (;;) {
      while (inflight.length < prefetch && nextToSchedule <= limit()) {
        throwIfAborted(fetchSignal);
        const p = fetchPage(w, nextToSchedule);
        // Mark it handled now: it is awaited in order later, and a rejection (Ctrl-C) while an earlier page is
        // still being processed must not count as an unhandled rejection (which ends the process).
        p.catch(() => {});
        inflight.push(p);
        nextToSchedule += DMM_MAX_HITS;
      }
      const p = inflight.shift();
      if (!p) break;
      const r = await handle(await p);
      if (r === 'end' || r === 'restart') {
        for (const dropped of inflight.splice(0)) dropped.catch(() => {}); // results not needed
        if (r === 'end') break;
      }
    }
    }
  }

  async function produce(): Promise<void> {
    if (await retryFailures(openFailures)) {
      result.stoppedBy = 'max-items';
      return;
    }
    for (const floor of run.scope.floors) {
      const stack: SyncWindow[] = [rootWindow(floor, run.scope.from, run.scope.to)];
      while (stack.length) {
        throwIfAborted(fetchSignal);
        const w = stack.pop()!;
        const label = windowLabel(w);
        const cp = checkpoints.get(windowKey(w));
        if (cp?.status === 'done') {
          result.windows.skippedDone++;
          emit({ kind: 'window', action: 'skip', window: label });
          continue;
        }
        if (cp?.status === 'split') {
          const halves = splitWindow(w, minWindowMs);
          if (halves) {
            stack.push(halves[1], halves[0]);
            continue;
          }
        }
        let total: number;
        let startOffset = 1;
        let first: ItemListPage | null = null;
        if (cp?.status === 'paging' && cp.totalCount !== null) {
          total = cp.totalCount;
          startOffset = cp.nextOffset;
          planned += Math.max(0, total - startOffset + 1);
        } else {
          emit({ kind: 'window', action: 'probe', window: label });
          result.windows.probed++;
          const out = await fetchPage(w, 1);
          result.requests = client.stats.requests - requestsBefore;
          if (out.error) {
            // Without its total the window cannot be planned: record the probe like any failed page, go on with
            // the other windows, and leave the run open; the next run probes this window again.
            await pageFailed(w, 1, out.error);
            stopIfFailingInARow(out.error);
            continue;
          }
          consecutivePageFailures = 0;
          first = out.page!;
          total = first.totalCount;
          if (total >= threshold) {
            const halves = splitWindow(w, minWindowMs);
            if (halves) {
              result.windows.split++;
              emit({ kind: 'window', action: 'split', window: label, total });
              await queue.push({ t: 'checkpoint', cp: { ...w, status: 'split', totalCount: total, nextOffset: 1 } });
              stack.push(halves[1], halves[0]);
              continue;
            }
            if (total >= cap) throw new WindowTooLargeError(w, total, cap);
          }
          if (total === 0) {
            result.windows.empty++;
            emit({ kind: 'window', action: 'empty', window: label, total });
            await queue.push({ t: 'checkpoint', cp: { ...w, status: 'done', totalCount: 0, nextOffset: 1 } });
            await queue.push({ t: 'window-done', w });
            continue;
          }
          planned += total;
        }
        emit({ kind: 'planned', items: planned });
        emit({ kind: 'window', action: 'page', window: label, total });
        result.windows.paged++;
        const stopped = await pageWindow(w, total, startOffset, first);
        if (stopped) {
          result.stoppedBy = 'max-items';
          return;
        }
        await queue.push({ t: 'checkpoint', cp: { ...w, status: 'done', totalCount: total, nextOffset: total + 1 } });
        await queue.push({ t: 'window-done', w });
        emit({ kind: 'window', action: 'done', window: label, total });
      }
    }
  }

  // ---- the writer side ---------------------------------------------------------------------------------------
  let written = 0;
  const tally = (r: ChunkWriteResult, videos: number, ms: number) => {
    result.timing.writingMs += ms;
    result.timing.chunks++;
    result.items.inserted += r.inserted;
    result.items.updated += r.updated;
    result.items.unchanged += r.unchanged;
    result.newTags += r.newTags;
    result.newPerformers += r.newPerformers;
    for (const rej of r.rejected) {
      result.items.invalid++;
      result.failures.items.count++;
      if (result.failures.items.list.length < MAX_LISTED_FAILURES) result.failures.items.list.push({ contentId: rej.externalId, reason: rej.reason });
      emit({ kind: 'invalid-item', contentId: rej.externalId, reason: rej.reason });
    }
    written += videos - r.rejected.length;
    emit({ kind: 'chunk', videos, inserted: r.inserted, updated: r.updated, unchanged: r.unchanged, written });
  };

  let producerError: unknown;
  const producer = produce()
    .catch((err) => {
      producerError = err;
    })
    .finally(() => queue.close());
  try {
    await writeChunks(queue, { writer, runId: run.runId, chunkSize, dryRun, onChunk: tally });
  } catch (err) {
    internal.abort();
    queue.cancel(err);
    await producer;
    throw err;
  }
  await producer;
  result.requests = client.stats.requests - requestsBefore;
  result.retries = client.stats.retries - retriesBefore;
  result.unknownKeys = [...unknownKeys];
  result.durationMs = now() - startedAt;
  result.timing.writingMs = Math.round(result.timing.writingMs);
  result.timing.fetcherBlockedMs = Math.round(queue.blockedMs);
  if (producerError) {
    // Everything fetched before the error is written with its checkpoint; the rerun resumes there.
    if (!dryRun) await writer.finishRun(run.runId, redactValue(result), false).catch(() => {});
    if (producerError instanceof InterruptedError || signal?.aborted) {
      throw new InterruptedError(
        `Interrupted. ${written} videos were written with their checkpoint in run ${run.runId}; run the same command again to resume.`,
        { cause: producerError },
      );
    }
    throw producerError;
  }

  const completed = result.stoppedBy === 'completed';
  // A run with pages still failing stays open: the next invocation retries them first and then finds every
  // window done. Invalid items do not hold a run open (they are the API's data; they are retried on every run).
  const pagesFailed = result.failures.pages.count > 0;
  if (!dryRun && completed) result.reconciliation = await reconcile(writer, run.runId);
  if (!dryRun) await writer.finishRun(run.runId, redactValue(result), completed && !pagesFailed);
  const gaps = result.reconciliation?.unexplained ?? 0;
  if (pagesFailed || gaps > 0) {
    const parts: string[] = [];
    if (pagesFailed) parts.push(`${result.failures.pages.count} page(s) still failed after retries (recorded in am_ml.sync_failures)`);
    if (gaps > 0) {
      parts.push(
        `${gaps} item(s) the API listed are not stored and not explained by invalid items or failed pages (${result.reconciliation!.gaps
          .slice(0, 5)
          .map((g) => `${g.window}: listed ${g.apiTotal}, stored ${g.stored}`)
          .join('; ')})`,
      );
    }
    throw new SyncIncompleteError(`The sync is incomplete: ${parts.join('; ')}. Everything else is written.`, {
      result: redactValue(result),
    });
  }
  return result;
}
