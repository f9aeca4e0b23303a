/**
 * sha256 of large exports on both cores, without copying a byte between threads. An export hashes every byte twice
 * (the source file for provenance, each written shard for the manifest), which alone costs more than reading and
 * writing the model; done on one thread it would triple the export time. So bytes live in SharedArrayBuffers and
 * one worker thread (sha256-worker.ts) hashes them in place:
 * - `readFileHashed` reads a file in chunks while the worker hashes each chunk as soon as it has landed;
 * - `startHashJobs` hands a list of jobs (one per shard) to the worker and the main thread at once: both claim the
 *   next job from a shared counter, so whichever core is free takes it.
 * Small inputs (below PARALLEL_HASH_MIN_BYTES) do without the worker, whose start costs ~25 ms: the source file is
 * hashed by WebCrypto on the libuv pool (which copies its input, cheap at that size), the shards on this thread.
 * Without the worker script (running the TypeScript sources unbuilt) everything is hashed on the main thread too.
 */
import { createHash, webcrypto } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync, readSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';

export interface SharedRange {
  buffer: SharedArrayBuffer;
  offset: number;
  length: number;
}

export type HashRequest =
  | { id: number; op: 'follow'; buffer: SharedArrayBuffer; total: number; progress: Int32Array }
  | { id: number; op: 'jobs'; jobs: SharedRange[][]; counter: Int32Array };

type HashDone = { id: number; ok: true; hex?: string; results?: Array<[number, string]> };
export type HashResponse = HashDone | { id: number; ok: false; message: string };

/** Below this many bytes, hashing on the main thread is cheaper than starting the worker. */
export const PARALLEL_HASH_MIN_BYTES = 8 * 2 ** 20;

/** Read size per step of `readFileHashed`: the worker starts hashing after the first chunk. */
const READ_CHUNK_BYTES = 4 * 2 ** 20;

export function sha256OfPieces(pieces: readonly Uint8Array[]): string {
  const hash = createHash('sha256');
  for (const p of pieces) hash.update(p);
  return hash.digest('hex');
}

/** The worker script: next to this module when built; from dist/ when running the TypeScript sources (tests). */
function workerScript(): string | undefined {
  const here = fileURLToPath(import.meta.url);
  const candidate = here.endsWith('.ts') ? here.replace(/[\\/]src[\\/]ml[\\/]keras[\\/]parallel-sha256\.ts$/, '/dist/ml/keras/sha256-worker.js') : here.replace(/parallel-sha256\.js$/, 'sha256-worker.js');
  return existsSync(candidate) ? candidate : undefined;
}

type DistributiveOmit<T, K extends keyof T> = T extends unknown ? Omit<T, K> : never;

/** One long-lived worker, unref'd while idle so that it never keeps the process alive. */
class HashWorker {
  private readonly worker: Worker;
  private readonly pending = new Map<number, { resolve: (r: HashDone) => void; reject: (e: Error) => void }>();
  private nextId = 1;
  broken = false;

  constructor(script: string) {
    this.worker = new Worker(script);
    this.worker.unref();
    this.worker.on('message', (res: HashResponse) => {
      const p = this.pending.get(res.id);
      if (!p) return;
      this.pending.delete(res.id);
      if (this.pending.size === 0) this.worker.unref();
      if (res.ok) p.resolve(res);
      else p.reject(new Error(`sha256 worker: ${res.message}`));
    });
    const fail = (err: Error) => {
      this.broken = true;
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    };
    this.worker.on('error', fail);
    this.worker.on('exit', (code) => fail(new Error(`sha256 worker exited (code ${code})`)));
  }

  async terminate(): Promise<void> {
    await this.worker.terminate();
  }

  request(req: DistributiveOmit<HashRequest, 'id'>): Promise<HashDone> {
    if (this.broken) return Promise.reject(new Error('sha256 worker is not running'));
    const id = this.nextId++;
    return new Promise<HashDone>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      // Referenced while it owes an answer: an awaited hash must keep the process alive.
      this.worker.ref();
      this.worker.postMessage({ ...req, id });
    });
  }
}

let shared: HashWorker | null | undefined;

/** The shared worker, started on first use; undefined when it cannot run here. */
function hashWorker(): HashWorker | undefined {
  if (shared?.broken) shared = undefined;
  if (shared === undefined) {
    const script = workerScript();
    shared = script ? new HashWorker(script) : null;
  }
  return shared ?? undefined;
}

/**
 * Stop the shared worker (pending hashes fall back to this thread); the next large hash starts a new one. For tests
 * and for embedders that want no thread left behind; the CLI does not need it (the worker is unref'd when idle).
 */
export async function stopHashWorker(): Promise<void> {
  const w = shared;
  shared = undefined;
  if (w) await w.terminate();
}

/**
 * Read a whole file into shared memory; its sha256 is computed while it is read (by the worker for large files).
 * The caller has checked that `size` is the file's size and within limits.
 */
export function readFileHashed(file: string, size: number): { bytes: Uint8Array; sha256: Promise<string> } {
  const worker = size >= PARALLEL_HASH_MIN_BYTES ? hashWorker() : undefined;
  if (!worker) {
    const b = readFileSync(file);
    const bytes = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
    const sha256 = webcrypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>).then((d) => Buffer.from(d).toString('hex'));
    return { bytes, sha256 };
  }
  const bytes = new Uint8Array(new SharedArrayBuffer(size));
  const progress = new Int32Array(new SharedArrayBuffer(4));
  const fd = openSync(file, 'r');
  const followed = worker.request({ op: 'follow', buffer: bytes.buffer as SharedArrayBuffer, total: size, progress });
  try {
    let done = 0;
    while (done < size) {
      const n = readSync(fd, bytes, done, Math.min(READ_CHUNK_BYTES, size - done), done);
      if (n === 0) throw Object.assign(new Error(`${file} ended after ${done} of ${size} bytes (it changed while being read)`), { code: 'ESHRUNK' });
      done += n;
      Atomics.store(progress, 0, done);
      Atomics.notify(progress, 0);
    }
  } catch (err) {
    Atomics.store(progress, 0, -1);
    Atomics.notify(progress, 0);
    followed.catch(() => {});
    throw err;
  } finally {
    closeSync(fd);
  }
  // A worker that died mid-way costs a second pass on this thread, not a failed export.
  const sha256 = followed.then((r) => r.hex!, () => sha256OfPieces([bytes]));
  return { bytes, sha256 };
}

export interface HashJobs {
  /** Hash the jobs the worker has not claimed on this thread, then wait for the worker's: one hex per job. */
  finish(): Promise<string[]>;
}

const isShared = (p: Uint8Array) => p.buffer instanceof SharedArrayBuffer;

/**
 * Start hashing jobs (each the concatenation of its pieces). Jobs whose pieces all live in SharedArrayBuffers can
 * go to the worker, which starts on them as soon as it is free (after the source file's hash); the rest, and
 * whatever the worker has not claimed when `finish` is called, are hashed on the calling thread.
 */
export function startHashJobs(jobs: readonly (readonly Uint8Array[])[]): HashJobs {
  const shareable = jobs.flatMap((pieces, i) => (pieces.every(isShared) ? [i] : []));
  const sharedBytes = shareable.reduce((a, i) => a + jobs[i].reduce((b, p) => b + p.byteLength, 0), 0);
  const worker = shareable.length > 1 && sharedBytes >= PARALLEL_HASH_MIN_BYTES ? hashWorker() : undefined;
  const counter = new Int32Array(new SharedArrayBuffer(4));
  const fromWorker = worker?.request({
    op: 'jobs',
    jobs: shareable.map((i) => jobs[i].map((p) => ({ buffer: p.buffer as SharedArrayBuffer, offset: p.byteOffset, length: p.byteLength }))),
    counter,
  });
  fromWorker?.catch(() => {});
  return {
    async finish() {
      const out: Array<string | undefined> = new Array(jobs.length).fill(undefined);
      const mine = worker ? new Set(shareable) : new Set<number>();
      for (let i = 0; i < jobs.length; i++) if (!mine.has(i)) out[i] = sha256OfPieces(jobs[i]);
      if (worker) {
        for (let k = Atomics.add(counter, 0, 1); k < shareable.length; k = Atomics.add(counter, 0, 1)) out[shareable[k]] = sha256OfPieces(jobs[shareable[k]]);
        try {
          for (const [k, hex] of (await fromWorker!).results ?? []) out[shareable[k]] = hex;
        } catch {
          // The worker died: whatever it had claimed is hashed below.
        }
      }
      return out.map((hex, i) => hex ?? sha256OfPieces(jobs[i]));
    },
  };
}
