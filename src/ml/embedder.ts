/**
 * Where embedding batches run. `localEmbedder` runs the towers in this thread; `startWorkerEmbedder` loads the
 * model in a worker thread (its own TF.js instance, same backend) so the caller's thread stays free to drive the
 * database: with PGlite on a thread of its own, every statement of a read or a staged batch needs a turn of the
 * caller's event loop, which synchronous tower inference (wasm is single-threaded in Node) would otherwise take.
 *
 * Both keep a bounded cache of encoded catalog items: items embedded earlier need no second read when users'
 * histories reference them. A user batch that references items the embedder lacks asks for them (`fetchItems`),
 * so the cache only ever saves work, never changes results.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { AmMlError, ConfigError, InternalError, ValidationFailedError } from '../errors.js';
import type { CatalogItem } from './data/dataset.js';
import { DEFAULT_ITEM_CACHE_ENTRIES, type EmbeddedRow, embedAndCacheItems, embedUserRows, EncodedItemCache, type UserHistoryRef } from './embed-batch.js';
import type { LoadedTwoTower } from './load-model.js';

export interface UserBatchOutput {
  rows: EmbeddedRow[];
  skipped: number;
}

export interface Embedder {
  readonly dim: number;
  /** History caps of the frozen spec (newest likes / nopes a user row uses). */
  readonly caps: { maxLikes: number; maxNopes: number };
  /** Embed items (and remember their encodings for later user batches). */
  embedItems(items: readonly CatalogItem[]): Promise<EmbeddedRow[]>;
  /**
   * Embed users from their histories. `known` are catalog rows the caller already read for this batch;
   * `fetchItems` reads any others the embedder needs.
   */
  embedUsers(
    users: readonly UserHistoryRef[],
    known: readonly CatalogItem[],
    fetchItems: (ids: string[]) => Promise<CatalogItem[]>,
    minHistory: number,
  ): Promise<UserBatchOutput>;
  close(): Promise<void>;
}

/** Distinct item ids a batch of users references. */
function referenced(users: readonly UserHistoryRef[]): string[] {
  const s = new Set<string>();
  for (const u of users) {
    for (const id of u.likes) s.add(id);
    for (const id of u.nopes) s.add(id);
  }
  return [...s];
}

/** Cache, fetch what is missing, embed; split batches whose references would not fit the cache at once. */
async function embedUsersWithCache(
  model: LoadedTwoTower,
  cache: EncodedItemCache,
  users: readonly UserHistoryRef[],
  known: readonly CatalogItem[],
  fetchItems: (ids: string[]) => Promise<CatalogItem[]>,
  minHistory: number,
  capacity: number,
): Promise<UserBatchOutput> {
  const refs = referenced(users);
  if (refs.length > capacity / 2 && users.length > 1) {
    const mid = Math.ceil(users.length / 2);
    const a = await embedUsersWithCache(model, cache, users.slice(0, mid), known, fetchItems, minHistory, capacity);
    const b = await embedUsersWithCache(model, cache, users.slice(mid), known, fetchItems, minHistory, capacity);
    return { rows: [...a.rows, ...b.rows], skipped: a.skipped + b.skipped };
  }
  cache.add(known.filter((i) => !cache.has(i.item_id)));
  const missing = cache.missing(refs);
  if (missing.length) cache.add(await fetchItems(missing));
  const r = embedUserRows(model, cache, users, minHistory);
  return { rows: r.rows, skipped: r.skipped };
}

/** The towers in this thread. */
export function localEmbedder(model: LoadedTwoTower, capacity = DEFAULT_ITEM_CACHE_ENTRIES): Embedder {
  const cache = new EncodedItemCache(model, capacity);
  return {
    dim: model.dim,
    caps: { maxLikes: model.spec.user.maxLikes, maxNopes: model.spec.user.maxNopes },
    async embedItems(items) {
      return embedAndCacheItems(model, cache, items);
    },
    embedUsers: (users, known, fetchItems, minHistory) => embedUsersWithCache(model, cache, users, known, fetchItems, minHistory, capacity),
    async close() {},
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Worker protocol
// ---------------------------------------------------------------------------------------------------------------

export type EmbedWorkerRequest =
  | { id: number; op: 'items'; items: CatalogItem[] }
  | { id: number; op: 'users'; users: UserHistoryRef[]; known: CatalogItem[]; minHistory: number }
  | { id: number; op: 'fetched'; forId: number; items: CatalogItem[] }
  | { id: number; op: 'close' };

/** A request without its id (distributive, so each variant keeps its own fields). */
type NewRequest = EmbedWorkerRequest extends infer R ? (R extends EmbedWorkerRequest ? Omit<R, 'id'> : never) : never;

export type EmbedWorkerReply =
  | { id: number; ok: true; ids: string[]; embeddings: Float32Array; skipped: number }
  | { id: number; ok: true; need: string[] }
  | { id: number; ok: true; closed: true }
  | { id: number; ok: false; error: WireError };

export interface WireError {
  name: string;
  message: string;
  code?: string;
  hint?: string;
  details?: Record<string, unknown>;
}

export type EmbedWorkerReady = { ready: true; dim: number; caps: Embedder['caps']; backend: string } | { ready: false; error: WireError };

export function toWireError(err: unknown): WireError {
  const e = err as Partial<AmMlError>;
  return { name: e?.name ?? 'Error', message: e?.message ?? String(err), code: e?.code, hint: e?.hint, details: e?.details };
}

function fromWireError(w: WireError): AmMlError {
  if (w.name === 'ValidationFailedError') return new ValidationFailedError(w.message, { code: w.code, hint: w.hint, details: w.details });
  if (w.name === 'ConfigError') return new ConfigError(w.message, [], { code: w.code, hint: w.hint, details: w.details });
  return new InternalError(`Embedding worker: ${w.message}`, { details: w.details });
}

/** Pack rows into one transferable matrix. */
export function packRows(rows: readonly EmbeddedRow[], dim: number): { ids: string[]; embeddings: Float32Array } {
  const embeddings = new Float32Array(rows.length * dim);
  rows.forEach((r, i) => embeddings.set(r.embedding, i * dim));
  return { ids: rows.map((r) => r.id), embeddings };
}

function unpackRows(ids: readonly string[], m: Float32Array, dim: number): EmbeddedRow[] {
  return ids.map((id, i) => ({ id, embedding: m.subarray(i * dim, (i + 1) * dim) }));
}

/** The compiled worker script (under the test runner this module is TypeScript; the build puts JS in dist/). */
function workerScript(): string {
  const here = fileURLToPath(import.meta.url);
  const js = here.endsWith('.ts') ? here.replace(/[\\/]src[\\/]ml[\\/]embedder\.ts$/, '/dist/ml/embed-worker.js') : here.replace(/embedder\.js$/, 'embed-worker.js');
  if (!existsSync(js)) throw new InternalError(`The embedding worker script ${js} is missing; run npm run build.`);
  return js;
}

export interface WorkerEmbedderOptions {
  modelDir: string;
  backend: string;
  batchSize: number;
  cacheEntries?: number;
}

/** Load the model in a worker thread (verified there: hashes, strict weights, probe) and embed through it. */
export async function startWorkerEmbedder(opts: WorkerEmbedderOptions): Promise<Embedder & { backend: string }> {
  const worker = new Worker(workerScript(), { workerData: { amMlEmbedWorker: true, ...opts } });
  const ready = await new Promise<EmbedWorkerReady>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  if (!ready.ready) {
    await worker.terminate();
    throw fromWireError(ready.error);
  }
  let nextId = 0;
  const pending = new Map<number, (reply: EmbedWorkerReply) => void>();
  let crashed: AmMlError | undefined;
  worker.on('message', (m: EmbedWorkerReply) => pending.get(m.id)?.(m));
  const fail = (err: AmMlError) => {
    crashed = err;
    for (const p of pending.values()) p({ id: -1, ok: false, error: toWireError(err) });
    pending.clear();
  };
  worker.on('error', (err) => fail(new InternalError(`The embedding thread failed: ${err.message}`, { cause: err })));
  worker.on('exit', (code) => {
    if (pending.size) fail(new InternalError(`The embedding thread exited (code ${code}).`));
  });

  /** Send a request; resolve with each reply (a user batch may need a round of item fetching). */
  const send = (req: NewRequest, onReply: (r: EmbedWorkerReply, id: number) => void): number => {
    const id = ++nextId;
    pending.set(id, (r) => onReply(r, id));
    worker.postMessage({ ...req, id });
    return id;
  };
  const ask = (req: NewRequest, needItems?: (ids: string[]) => Promise<CatalogItem[]>) =>
    new Promise<{ rows: EmbeddedRow[]; skipped: number }>((resolve, reject) => {
      if (crashed) return reject(crashed);
      const onReply = (r: EmbedWorkerReply, id: number) => {
        if (!r.ok) {
          pending.delete(id);
          return reject(fromWireError(r.error));
        }
        if ('need' in r) {
          // Keep listening on the same id: the worker answers the batch after the items arrive.
          needItems!(r.need).then(
            (items) => worker.postMessage({ id: ++nextId, op: 'fetched', forId: id, items } satisfies EmbedWorkerRequest),
            (err) => {
              pending.delete(id);
              reject(err);
            },
          );
          return;
        }
        pending.delete(id);
        if ('ids' in r) resolve({ rows: unpackRows(r.ids, r.embeddings, ready.dim), skipped: r.skipped });
        else resolve({ rows: [], skipped: 0 });
      };
      send(req, onReply);
    });

  return {
    dim: ready.dim,
    caps: ready.caps,
    backend: ready.backend,
    async embedItems(items) {
      return (await ask({ op: 'items', items: [...items] })).rows;
    },
    async embedUsers(users, known, fetchItems, minHistory) {
      // The worker's cache must hold every item one batch references at once.
      const capacity = opts.cacheEntries ?? DEFAULT_ITEM_CACHE_ENTRIES;
      const run = async (part: readonly UserHistoryRef[]): Promise<UserBatchOutput> => {
        if (referenced(part).length > capacity / 2 && part.length > 1) {
          const mid = Math.ceil(part.length / 2);
          const a = await run(part.slice(0, mid));
          const b = await run(part.slice(mid));
          return { rows: [...a.rows, ...b.rows], skipped: a.skipped + b.skipped };
        }
        return ask({ op: 'users', users: [...part], known: [...known], minHistory }, fetchItems);
      };
      return run(users);
    },
    async close() {
      if (crashed) {
        await worker.terminate();
        return;
      }
      await ask({ op: 'close' }).catch(() => {});
      await worker.terminate();
    },
  };
}

export { embedUsersWithCache };
