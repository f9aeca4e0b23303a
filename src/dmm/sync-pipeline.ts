/**
 * The hand-off between the sync's fetcher and its writer: a bounded queue of entries in fetch order, and the loop
 * that cuts it into chunk transactions.
 *
 * Entries other than videos (checkpoints, failures, resolutions, finished windows) are placed by position: each
 * belongs to the chunk that holds every video queued before it. So a checkpoint is committed only together with
 * (or after) the rows it covers, and a crash at any moment leaves a checkpoint that matches the stored rows.
 */
import type {
  CatalogChunk,
  CatalogVideo,
  CatalogWriter,
  ChunkWriteResult,
  SyncCheckpoint,
  SyncFailureRecord,
  SyncWindow,
} from '../db/catalog-types.js';
import { FLOOR_SOURCES } from './map.js';

export type Entry =
  | { t: 'video'; video: CatalogVideo }
  | { t: 'checkpoint'; cp: SyncCheckpoint }
  | { t: 'failure'; f: SyncFailureRecord }
  | { t: 'resolve'; key: string; resolution: string }
  | { t: 'window-done'; w: SyncWindow };

/** FIFO with backpressure on the number of videos held (other entries are small and never block). */
export class EntryQueue {
  private items: Entry[] = [];
  private videos = 0;
  private closed = false;
  private cancelled: unknown = undefined;
  private wakePull?: () => void;
  private wakePush: (() => void)[] = [];
  constructor(private readonly maxVideos: number) {}

  /** Queue an entry; a video waits while the queue is full. Throws once the writer has failed. */
  /** Milliseconds the fetcher spent waiting for room (the writer was the bottleneck meanwhile). */
  blockedMs = 0;

  async push(e: Entry): Promise<void> {
    if (e.t === 'video' && this.videos >= this.maxVideos && this.cancelled === undefined) {
      const t = performance.now();
      while (this.videos >= this.maxVideos && this.cancelled === undefined) {
        await new Promise<void>((r) => this.wakePush.push(r));
      }
      this.blockedMs += performance.now() - t;
    }
    if (this.cancelled !== undefined) throw this.cancelled;
    this.items.push(e);
    if (e.t === 'video') this.videos++;
    this.wakePull?.();
  }

  /** Everything queued (waits for at least one entry), or null once closed and drained. */
  async drain(): Promise<Entry[] | null> {
    while (!this.items.length && !this.closed) await new Promise<void>((r) => (this.wakePull = r));
    this.wakePull = undefined;
    if (!this.items.length) return null;
    const out = this.items;
    this.items = [];
    this.videos = 0;
    for (const w of this.wakePush.splice(0)) w();
    return out;
  }

  /** The fetcher is finished (or failed): the writer drains what is left and stops. */
  close(): void {
    this.closed = true;
    this.wakePull?.();
  }

  /** The writer failed: make the fetcher's next push throw. */
  cancel(err: unknown): void {
    this.cancelled = err;
    for (const w of this.wakePush.splice(0)) w();
  }
}

export interface WriteChunksOptions {
  writer: CatalogWriter;
  runId: string;
  chunkSize: number;
  dryRun: boolean;
  /** After each committed (or, dry, rolled-back) chunk, with the number of videos it held and the time it took. */
  onChunk(result: ChunkWriteResult, videos: number, ms: number): void;
}

/** Consume the queue until it is closed and drained, writing chunks of `chunkSize` videos. */
export async function writeChunks(queue: EntryQueue, opts: WriteChunksOptions): Promise<void> {
  const { chunkSize } = opts;
  let videos: CatalogVideo[] = [];
  // Non-video entries, each with the number of videos queued before it.
  let marks: { pos: number; e: Entry }[] = [];

  const flush = async (n: number) => {
    const take = videos.slice(0, n);
    videos = videos.slice(n);
    const chunk: CatalogChunk = { runId: opts.runId, videos: take, checkpoints: [], failures: [], resolved: [], finishedWindows: [] };
    const rest: typeof marks = [];
    for (const m of marks) {
      if (m.pos > n) {
        rest.push({ pos: m.pos - n, e: m.e });
        continue;
      }
      const e = m.e;
      if (e.t === 'checkpoint') chunk.checkpoints.push(e.cp);
      else if (e.t === 'failure') chunk.failures.push(e.f);
      else if (e.t === 'resolve') chunk.resolved.push({ key: e.key, resolution: e.resolution });
      else if (e.t === 'window-done') chunk.finishedWindows!.push({ ...e.w, source: FLOOR_SOURCES[e.w.floor] });
    }
    marks = rest;
    const empty = !take.length && !chunk.checkpoints.length && !chunk.failures.length && !chunk.resolved.length && !chunk.finishedWindows!.length;
    if (empty) return;
    const t = performance.now();
    const r = await opts.writer.writeChunk(chunk, { dryRun: opts.dryRun });
    opts.onChunk(r, take.length, performance.now() - t);
  };

  for (;;) {
    const batch = await queue.drain();
    if (!batch) break;
    for (const e of batch) {
      if (e.t === 'video') videos.push(e.video);
      else marks.push({ pos: videos.length, e });
    }
    // A full chunk is written once what follows its last video has arrived (normally that page's checkpoint),
    // so the chunk carries the checkpoint that covers it.
    while (videos.length > chunkSize || (videos.length === chunkSize && marks.some((m) => m.pos >= chunkSize))) {
      await flush(chunkSize);
    }
  }
  await flush(videos.length);
}
