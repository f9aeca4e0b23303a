/**
 * Benchmarks for issue 3 (`npm run bench`):
 *
 * - `sync-dmm.replay-rps20`: a sync at --rps 20 from the replay server (on its own thread, like the remote API)
 *   into the embedded database (a PGlite folder, the default). Items/s against the request budget: the most items
 *   the token bucket allows in the run's time, rps × 100 items a second plus its initial burst. Goal ≥ 0.95, i.e.
 *   the run is limited by --rps, not by the database.
 * - `sync-dmm.60k-memory`: a 60,000-item sync at the highest --rps, with the main thread's peak live heap (sampled
 *   after a full GC each second) and the process's peak RSS, next to the same for a 6,000-item catalog: memory is
 *   bounded by the chunk size, not the catalog, when the two live peaks are about equal. RSS also holds the
 *   database thread's WebAssembly memory, which grows with the database, not with the sync.
 */
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import { init } from '../commands/init.js';
import { DEFAULT_DATABASE_URL } from '../config.js';
import { createCatalogWriter } from '../db/catalog-writer.js';
import { openDb } from '../db/open.js';
import { createDmmClient, DMM_MAX_HITS, MAX_RPS } from '../dmm/client.js';
import { DEFAULT_CHUNK_SIZE, syncCatalog } from '../dmm/sync.js';
import { startFakeDmmServerInWorker } from '../testing/fake-dmm-server-worker.js';
import type { Benchmark, BenchContext } from './types.js';

const MB = 1024 * 1024;
/** Live-heap samples: a full GC, then heapUsed (what the sync holds, not garbage waiting for collection). */
const MEMORY_SAMPLE_MS = 1000;

/** A handle on V8's collector without --expose-gc on the command line (the bench runner starts plain node). */
function collector(): () => void {
  v8.setFlagsFromString('--expose-gc');
  return vm.runInNewContext('gc') as () => void;
}

interface SyncRun {
  items: number;
  /** The sync itself: first request to last commit (what --rps limits). */
  seconds: number;
  /** Opening and closing the embedded database around it. */
  setupSeconds: number;
  requests: number;
  writingSeconds: number;
  fetcherBlockedSeconds: number;
  /** Largest live heap of the main thread during the sync (after a full GC). */
  peakLiveHeapMB: number;
  /** Whole process, including the database thread's WebAssembly memory (which grows with the database). */
  peakRssMB: number;
}

/**
 * One sync the way `am-ml sync-dmm` runs it (same client, writer and pipeline), timed around the sync itself so
 * the database's open and close are reported apart from the rate the run sustains.
 */
async function runSync(ctx: BenchContext, name: string, items: number, days: number, rps: number): Promise<SyncRun> {
  const cwd = path.join(ctx.tmp, name);
  await init({ cwd, env: {} });
  const from = '2024-01-01';
  const to = new Date(Date.UTC(2024, 0, days)).toISOString().slice(0, 10);
  const server = await startFakeDmmServerInWorker({ catalog: { seed: 42, items, from, to } });
  try {
    const t0 = performance.now();
    const db = await openDb({ url: DEFAULT_DATABASE_URL, cwd, pgliteWorker: true }); // as sync-dmm opens it
    const client = createDmmClient({ baseUrl: server.url, apiId: server.env.DMM_API_ID, affiliateId: server.env.DMM_AFFILIATE_ID, rps });
    const gc = collector();
    gc();
    let peakHeap = process.memoryUsage().heapUsed;
    let peakRss = process.memoryUsage().rss;
    const sampler = setInterval(() => {
      gc();
      const m = process.memoryUsage();
      peakHeap = Math.max(peakHeap, m.heapUsed);
      peakRss = Math.max(peakRss, m.rss);
    }, MEMORY_SAMPLE_MS);
    let r;
    const t1 = performance.now();
    try {
      r = await syncCatalog({ client, writer: createCatalogWriter(db), floors: ['digital/videoa'], from, to, chunkSize: DEFAULT_CHUNK_SIZE });
    } finally {
      clearInterval(sampler);
    }
    const seconds = (performance.now() - t1) / 1000;
    await db.close();
    const setupSeconds = (performance.now() - t0) / 1000 - seconds;
    if (r.items.inserted !== items || r.reconciliation?.unexplained !== 0) {
      throw new Error(`benchmark sync stored ${r.items.inserted} of ${items} items`);
    }
    ctx.log(`${name}: ${items} items in ${seconds.toFixed(1)} s (+${setupSeconds.toFixed(1)} s database open/close), ${r.requests} requests`);
    return {
      items,
      seconds,
      setupSeconds,
      requests: r.requests,
      writingSeconds: r.timing.writingMs / 1000,
      fetcherBlockedSeconds: r.timing.fetcherBlockedMs / 1000,
      peakLiveHeapMB: peakHeap / MB,
      peakRssMB: peakRss / MB,
    };
  } finally {
    await server.close();
  }
}

const RPS = 20;
/** 30,000 items: 300 pages, 15 s at the budget; long enough that the bucket's 1-second burst is a small part. */
const RPS_ITEMS = 30_000;

export const benchmarks: Benchmark[] = [
  {
    name: 'sync-dmm.replay-rps20',
    issue: 3,
    description: `Sync ${RPS_ITEMS.toLocaleString('en')} items at --rps ${RPS} from the replay server into the PGlite default; items/s vs the request budget.`,
    repeats: 3,
    units: { itemsPerSec: 'items/s', budgetItemsPerSec: 'items/s', ratioToBudget: '', seconds: 's', setupSeconds: 's', writingSeconds: 's', fetcherBlockedSeconds: 's', requests: '' },
    goals: [{ metric: 'ratioToBudget', op: '>=', value: 0.95, description: '≥ 0.95 of the request budget (rps × 100 items/s) at --rps 20' }],
    async run(ctx) {
      const r = await runSync(ctx, 'rps20', RPS_ITEMS, 60, RPS);
      // The bucket starts full (burst = rps tokens), so the budget is rps × (seconds + 1) requests of 100 items.
      const budgetItems = (RPS * r.seconds + RPS) * DMM_MAX_HITS;
      return {
        itemsPerSec: r.items / r.seconds,
        budgetItemsPerSec: RPS * DMM_MAX_HITS,
        ratioToBudget: r.items / budgetItems,
        seconds: r.seconds,
        setupSeconds: r.setupSeconds,
        writingSeconds: r.writingSeconds,
        fetcherBlockedSeconds: r.fetcherBlockedSeconds,
        requests: r.requests,
      };
    },
  },
  {
    name: 'sync-dmm.60k-memory',
    issue: 3,
    description: 'Sync 60,000 items (and 6,000 for comparison) at the highest --rps; peak memory is bounded by the chunk, not the catalog.',
    repeats: 1,
    units: {
      itemsPerSec: 'items/s',
      seconds: 's',
      writingSeconds: 's',
      peakLiveHeapMB: 'MB',
      peakLiveHeapMB6k: 'MB',
      liveHeapRatio60kTo6k: '',
      peakRssMB: 'MB',
      peakRssMB6k: 'MB',
    },
    goals: [
      {
        metric: 'liveHeapRatio60kTo6k',
        op: '<=',
        value: 1.5,
        description: 'peak live heap for 60,000 items within 1.5× that for 6,000 (bounded by the chunk size, not the catalog)',
      },
    ],
    async run(ctx) {
      const small = await runSync(ctx, 'mem6k', 6_000, 60, MAX_RPS);
      const big = await runSync(ctx, 'mem60k', 60_000, 60, MAX_RPS);
      return {
        itemsPerSec: big.items / big.seconds,
        seconds: big.seconds,
        writingSeconds: big.writingSeconds,
        peakLiveHeapMB: big.peakLiveHeapMB,
        peakLiveHeapMB6k: small.peakLiveHeapMB,
        liveHeapRatio60kTo6k: big.peakLiveHeapMB / small.peakLiveHeapMB,
        peakRssMB: big.peakRssMB,
        peakRssMB6k: small.peakRssMB,
      };
    },
  },
];
