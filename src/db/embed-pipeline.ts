/**
 * One shard of one target of a re-embedding run, as a three-stage pipeline: read page k+1 (database) while page k
 * is embedded (CPU: features + tower) while page k−1 is staged (database: binary COPY + checkpoint, one
 * transaction). With the embedded database on its own thread (`openDb({pgliteWorker: true})`) or a postgres://
 * pool, the database stages run beside the CPU stage on the other core. Memory holds at most three pages.
 *
 * Pages are keyset-ordered by id; each staged batch moves the shard's checkpoint to the last id it read, so a
 * killed run resumes after the last committed batch with nothing lost and nothing staged twice.
 */
import { throwIfAborted } from '../errors.js';
import { type EmbeddingRow, type EmbedTarget, finishShard, stageBatch } from './embedding-store.js';
import type { EmbeddingColumn } from './introspect.js';
import type { Db } from './types.js';

export interface SourcePage<P> {
  /** Largest key read (embedded or not): the checkpoint after this page. */
  lastKey: string;
  /** Keys read. */
  count: number;
  /** No more pages after this one. */
  last: boolean;
  payload: P;
}

export type EmbedShardEvent =
  | { kind: 'batch'; target: EmbedTarget; shardIndex: number; read: number; embedded: number; skipped: number }
  | { kind: 'shard-done'; target: EmbedTarget; shardIndex: number };

export interface RunShardInput<P> {
  db: Db;
  runId: string;
  target: EmbedTarget;
  shardIndex: number;
  column: Pick<EmbeddingColumn, 'type' | 'dim'>;
  /** Resume after this key (the shard's checkpoint), or null to start. */
  startAfter: string | null;
  /** Read the page after a key; null when nothing is left. */
  read(afterKey: string | null): Promise<SourcePage<P> | null>;
  /** Turn a page into embeddings (rows it cannot embed are counted as skipped). */
  embed(payload: P): Promise<{ rows: EmbeddingRow[]; skipped: number }>;
  signal?: AbortSignal;
  onProgress?: (e: EmbedShardEvent) => void;
}

export interface RunShardResult {
  read: number;
  embedded: number;
  skipped: number;
  batches: number;
  /**
   * Where the time went (ms): waiting for a page that was not read yet, embedding, and waiting for the previous
   * batch's write. With good overlap the waits are small next to the slowest stage.
   */
  timings: { waitReadMs: number; embedMs: number; waitWriteMs: number };
}

/** Attach a no-op handler so a rejected in-flight stage is reported where it is awaited, not as unhandled. */
function settled<T>(p: Promise<T>): Promise<T> {
  p.catch(() => {});
  return p;
}

export async function runShard<P>(input: RunShardInput<P>): Promise<RunShardResult> {
  const result: RunShardResult = { read: 0, embedded: 0, skipped: 0, batches: 0, timings: { waitReadMs: 0, embedMs: 0, waitWriteMs: 0 } };
  const timed = async <T>(key: keyof RunShardResult['timings'], p: Promise<T>): Promise<T> => {
    const t = performance.now();
    try {
      return await p;
    } finally {
      result.timings[key] += performance.now() - t;
    }
  };
  const interrupted = `Shard ${input.shardIndex} of ${input.target} stopped after its last committed batch; run again with --resume to continue.`;
  let next = settled(input.read(input.startAfter));
  let writing: Promise<void> = Promise.resolve();
  let finishedByBatch = false;
  for (;;) {
    throwIfAborted(input.signal, interrupted);
    const page = await timed('waitReadMs', next);
    if (!page) break;
    if (!page.last) next = settled(input.read(page.lastKey));
    const { rows, skipped } = await timed('embedMs', input.embed(page.payload));
    await timed('waitWriteMs', writing);
    throwIfAborted(input.signal, interrupted);
    writing = settled(
      stageBatch(input.db, {
        runId: input.runId,
        target: input.target,
        shardIndex: input.shardIndex,
        column: input.column,
        rows,
        lastKey: page.lastKey,
        skipped,
        done: page.last,
      }).then(() => {
        result.batches++;
        input.onProgress?.({
          kind: 'batch',
          target: input.target,
          shardIndex: input.shardIndex,
          read: page.count,
          embedded: rows.length,
          skipped,
        });
      }),
    );
    result.read += page.count;
    result.embedded += rows.length;
    result.skipped += skipped;
    if (page.last) {
      finishedByBatch = true;
      break;
    }
  }
  await timed('waitWriteMs', writing);
  // A shard that ended on an empty read (its last page was exactly full, or it had nothing) is closed here.
  if (!finishedByBatch) await finishShard(input.db, input.runId, input.target, input.shardIndex);
  input.onProgress?.({ kind: 'shard-done', target: input.target, shardIndex: input.shardIndex });
  return result;
}
