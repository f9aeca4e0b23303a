/**
 * `supabase://<bucket>/<prefix>`: model versions in Supabase Storage through the real `@supabase/supabase-js`
 * storage client (built by the command layer and passed in; this module never reads credentials).
 *
 * Storage API facts this relies on (storage-js 2.109 and the Storage server):
 * - `upload(path, body, {upsert:false})` sends `x-upsert: false`; an existing key is refused with body
 *   `{"statusCode":"409","error":"Duplicate"}` (HTTP 400 on most servers), so create-if-absent is atomic.
 * - Errors carry the real status in the body's `statusCode` (a string); the HTTP status is often just 400.
 * - `list(folder)` returns direct children only; folders have `id: null`; pages of `limit` via `offset`.
 * - `remove(paths)` deletes exact keys and ignores missing ones.
 * - Uploads are single requests: the project's limit is 50 MiB per object, so larger files are refused up front
 *   (TF.js weights come in 4 MiB shards).
 * Every call is retried with capped exponential backoff on network errors, 408, 429 and 5xx.
 */
import type { SupabaseClient } from '@supabase/supabase-js';
import { ConflictError, InterruptedError, StorageError, ValidationFailedError } from '../../errors.js';
import { contentTypeFor, joinStorePath } from '../paths.js';
import { compareAndSwapPointer, type PointerPrimitives } from '../pointer-lock.js';
import { DEFAULT_RETRY_POLICY, type RetryPolicy, type Sleep, withRetry } from '../retry.js';
import type {
  ListOptions,
  ModelStore,
  PutFileOptions,
  StoreCallOptions,
  StoredObject,
  StoreRetryEvent,
  WritePointerOptions,
} from '../types.js';

/** Supabase's default per-object upload limit (the app's project uses it). */
export const SUPABASE_MAX_FILE_BYTES = 50 * 1024 * 1024;
const LIST_PAGE_SIZE = 1000;
const REMOVE_BATCH_SIZE = 500;
/** Parallel folder listings during a recursive walk. */
const LIST_CONCURRENCY = 4;
/** Immutable version files may be cached; the pointer must never be. */
const FILE_CACHE_SECONDS = '3600';
const POINTER_CACHE_SECONDS = '0';
/** Placeholder objects the dashboard creates for empty folders. */
const PLACEHOLDER = '.emptyFolderPlaceholder';

export interface SupabaseStoreOptions {
  client: Pick<SupabaseClient, 'storage'>;
  bucket: string;
  /** Folder inside the bucket ('' = bucket root). */
  prefix: string;
  /** @default 50 MiB */
  maxFileBytes?: number;
  retry?: RetryPolicy;
  sleep?: Sleep;
  random?: () => number;
  onRetry?: (e: StoreRetryEvent) => void;
  now?: () => number;
}

/** What a failed storage-js call tells us, normalised. */
class ApiFailure extends Error {
  constructor(
    message: string,
    readonly status: number | undefined,
    readonly network: boolean,
    override readonly cause?: unknown,
  ) {
    super(message);
  }
}

function toFailure(err: unknown): ApiFailure {
  if (err instanceof ApiFailure) return err;
  const e = err as { __isStorageError?: boolean; name?: string; status?: number; statusCode?: string; message?: string; originalError?: unknown };
  if (e?.__isStorageError && e.name === 'StorageApiError') {
    // The body's statusCode is the real one ("409", "404"); the HTTP status is often a generic 400.
    const bodyCode = Number(e.statusCode);
    const status = Number.isInteger(bodyCode) && bodyCode >= 100 && bodyCode < 600 ? bodyCode : e.status;
    return new ApiFailure(e.message ?? `HTTP ${status}`, status, false, err);
  }
  if (e?.__isStorageError) {
    const orig = e.originalError as { message?: string; cause?: { code?: string; message?: string } } | undefined;
    const detail = orig?.cause?.code ?? orig?.cause?.message ?? orig?.message ?? e.message ?? 'network error';
    return new ApiFailure(`network error (${detail})`, undefined, true, err);
  }
  const plain = err as { name?: string; message?: string; cause?: { code?: string } };
  return new ApiFailure(`network error (${plain?.cause?.code ?? plain?.message ?? String(err)})`, undefined, true, err);
}

function retryable(f: ApiFailure): boolean {
  return f.network || f.status === 408 || f.status === 429 || (f.status !== undefined && f.status >= 500);
}

function isAborted(signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}

export function supabaseStore(opts: SupabaseStoreOptions): ModelStore {
  const prefix = opts.prefix.replace(/^\/+|\/+$/g, '');
  const maxFileBytes = opts.maxFileBytes ?? SUPABASE_MAX_FILE_BYTES;
  const policy = opts.retry ?? DEFAULT_RETRY_POLICY;
  const url = `supabase://${opts.bucket}${prefix ? `/${prefix}` : ''}`;
  const api = () => opts.client.storage.from(opts.bucket);
  const key = (p: string) => joinStorePath(prefix, p);
  const rel = (k: string) => (prefix ? k.slice(prefix.length + 1) : k);

  function storageError(f: ApiFailure, op: StoreRetryEvent['op'], p: string): StorageError {
    const target = `${opts.bucket}/${key(p)}`;
    let hint: string | undefined;
    if (f.status === 401 || f.status === 403) {
      hint = 'Check SUPABASE_SERVICE_ROLE_KEY: the model store needs the service-role key (anon keys are subject to storage RLS).';
    } else if (/bucket not found/i.test(f.message)) {
      hint = `Create the bucket '${opts.bucket}' (Dashboard → Storage → New bucket, private), or point --store at an existing one.`;
    } else if (f.network || (f.status !== undefined && f.status >= 500)) {
      hint = 'Supabase Storage did not answer after retries; check SUPABASE_URL and the project status, then re-run (finished uploads are reused).';
    }
    return new StorageError(`Supabase Storage ${op} of ${target} failed: ${f.message}${f.status ? ` (status ${f.status})` : ''}.`, {
      target,
      status: f.status,
      hint,
      cause: f.cause,
    });
  }

  async function call<T>(op: StoreRetryEvent['op'], p: string, signal: AbortSignal | undefined, fn: (attempt: number) => Promise<T>): Promise<T> {
    try {
      return await withRetry(
        async (attempt) => {
          try {
            return await fn(attempt);
          } catch (err) {
            if (err instanceof ConflictError || err instanceof ValidationFailedError || err instanceof InterruptedError) throw err;
            if (isAborted(signal)) throw new InterruptedError();
            throw toFailure(err);
          }
        },
        {
          policy,
          signal,
          sleep: opts.sleep,
          random: opts.random,
          classify: (err) => (err instanceof ApiFailure ? { retry: retryable(err), reason: err.message } : { retry: false, reason: '' }),
          onRetry: (attempt, delayMs, reason) => opts.onRetry?.({ kind: 'retry', op, path: p, attempt, delayMs, reason }),
        },
      );
    } catch (err) {
      if (err instanceof ApiFailure) throw storageError(err, op, p);
      throw err;
    }
  }

  async function download(p: string, signal: AbortSignal | undefined, bypassCache: boolean): Promise<Uint8Array | null> {
    return call('get', p, signal, async () => {
      const options = bypassCache ? { cacheNonce: `${Date.now()}-${Math.random().toString(36).slice(2)}` } : undefined;
      const { data, error } = await api().download(key(p), options, { signal, cache: 'no-store' });
      if (error) {
        const f = toFailure(error);
        // A missing object is "Object not found" (404); a missing bucket is also 404 but must stay an error.
        if (f.status === 404 && !/bucket/i.test(f.message)) return null;
        throw f;
      }
      return new Uint8Array(await data.arrayBuffer());
    });
  }

  async function upload(p: string, body: Uint8Array, overwrite: boolean, opt: { signal?: AbortSignal; contentType?: string; cacheSeconds: string }) {
    if (body.byteLength > maxFileBytes) {
      throw new ValidationFailedError(
        `${p} is ${body.byteLength} bytes, over the store's per-file limit of ${maxFileBytes} bytes (Supabase Storage upload limit).`,
        { code: 'FILE_TOO_LARGE', hint: 'Write the weights in smaller shards (TF.js uses 4 MiB shards) and publish again.' },
      );
    }
    await call('put', p, opt.signal, async (attempt) => {
      const { error } = await api().upload(key(p), body, {
        upsert: overwrite,
        contentType: opt.contentType ?? contentTypeFor(p),
        cacheControl: opt.cacheSeconds,
      });
      if (!error) return;
      const f = toFailure(error);
      // Current servers answer statusCode "409"; old ones passed Postgres' unique violation through.
      const exists = f.status === 409 || /already exists|duplicate key/i.test(f.message);
      if (exists && !overwrite) {
        // A retried create whose first attempt landed (the answer was lost) finds its own bytes: that is success.
        if (attempt > 1) {
          const existing = await download(p, opt.signal, true);
          if (existing && sameBytes(existing, body)) return;
        }
        throw new ConflictError(`${p} already exists in ${url}.`, { code: 'OBJECT_EXISTS', details: { path: p } });
      }
      throw f;
    });
  }

  async function listFolder(folder: string, signal: AbortSignal | undefined): Promise<StoredObject[]> {
    const out: StoredObject[] = [];
    for (let offset = 0; ; offset += LIST_PAGE_SIZE) {
      const page = await call('list', rel(folder) || '', signal, async () => {
        const { data, error } = await api().list(folder, { limit: LIST_PAGE_SIZE, offset, sortBy: { column: 'name', order: 'asc' } }, { signal });
        if (error) throw toFailure(error);
        return data ?? [];
      });
      for (const e of page) {
        if (e.name === PLACEHOLDER) continue;
        const k = folder ? `${folder}/${e.name}` : e.name;
        if (e.id === null) out.push({ path: rel(k), size: 0, folder: true });
        else out.push({ path: rel(k), size: Number(e.metadata?.size ?? 0), updatedAt: e.updated_at ?? e.created_at ?? undefined });
      }
      if (page.length < LIST_PAGE_SIZE) return out;
    }
  }

  const prims: PointerPrimitives = {
    put: (p, body, overwrite, signal) => upload(p, body, overwrite, { signal, cacheSeconds: POINTER_CACHE_SECONDS }),
    read: (p, signal) => download(p, signal, true),
    remove: (p, signal) => removeKeys([p], signal),
  };

  async function removeKeys(paths: readonly string[], signal?: AbortSignal): Promise<void> {
    for (let i = 0; i < paths.length; i += REMOVE_BATCH_SIZE) {
      const batch = paths.slice(i, i + REMOVE_BATCH_SIZE);
      await call('remove', batch[0], signal, async () => {
        const { error } = await api().remove(batch.map(key));
        if (error) throw toFailure(error);
      });
    }
  }

  return {
    url,
    rootPath: prefix,
    maxFileBytes,
    putFile: (p: string, body: Uint8Array, o: PutFileOptions = {}) =>
      upload(p, body, o.overwrite ?? false, { signal: o.signal, contentType: o.contentType, cacheSeconds: FILE_CACHE_SECONDS }),
    getFile: (p: string, o: StoreCallOptions = {}) => download(p, o.signal, false),
    async list(p: string, o: ListOptions = {}) {
      const start = key(p.replace(/\/+$/, ''));
      const recursive = o.recursive ?? true;
      const direct = await listFolder(start, o.signal);
      if (!recursive) return direct;
      const files: StoredObject[] = [];
      const queue = [...direct];
      const workers = Array.from({ length: LIST_CONCURRENCY }, async () => {
        for (let e = queue.shift(); e; e = queue.shift()) {
          if (!e.folder) files.push(e);
          else queue.push(...(await listFolder(key(e.path), o.signal)));
        }
      });
      await Promise.all(workers);
      return files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    },
    remove: (paths: readonly string[], o: StoreCallOptions = {}) => removeKeys(paths, o.signal),
    async readPointer(p: string, o: StoreCallOptions = {}) {
      const bytes = await download(p, o.signal, true);
      return bytes === null ? null : new TextDecoder().decode(bytes);
    },
    writePointer: (p: string, text: string, o: WritePointerOptions) =>
      compareAndSwapPointer(prims, p, text, { expected: o.expected, signal: o.signal, now: opts.now }),
  };
}
