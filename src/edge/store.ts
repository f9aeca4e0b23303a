/**
 * Reading a model store over HTTP from the Edge runtime (Deno): the `current.json` pointer and the files of a
 * version folder, with `fetch` only. Two ways to reach the objects, both as the registry lays them out
 * (`<prefix>/<name>/current.json`, version folders at the bucket-relative paths the pointer records):
 *
 * - `supabase://<bucket>/<prefix>` with the project URL and a key: Storage's authenticated download endpoint
 *   `GET <url>/storage/v1/object/authenticated/<bucket>/<path>` with `Authorization: Bearer <key>` and `apikey`.
 *   Edge Functions get `SUPABASE_URL` and `SUPABASE_SERVICE_ROLE_KEY` from the platform, so this is the default:
 *   the `models` bucket stays private.
 * - Any HTTP folder that mirrors the bucket (`baseUrl` + `/<path>`): a public bucket
 *   (`<url>/storage/v1/object/public/<bucket>`), a CDN, or a static server over a local `file://` store.
 *
 * Signed URLs are not offered: they are minted per object, so a reader would need one per file of every future
 * version, which only the service key can mint anyway.
 *
 * No Node APIs. Retries network errors, 408, 429 and 5xx a few times; a missing object is `null`, not an error.
 */
import { StorageError } from '../errors.js';

/** Per-request time limit. */
export const STORE_REQUEST_TIMEOUT_MS = 15_000;
/** Attempts per object (first try included) on network errors and retryable statuses. */
export const STORE_ATTEMPTS = 3;
const RETRY_BASE_DELAY_MS = 200;

export interface EdgeStoreConfig {
  /** URL of the bucket root: object `p` is at `<objectBaseUrl>/<p>`. */
  objectBaseUrl: string;
  /** Folder of the store inside the bucket (`prod` for `supabase://models/prod`; '' for the bucket root). */
  prefix: string;
  /** Sent with every request (the Supabase key). Never shown in messages. */
  headers?: Record<string, string>;
  /** How the store is named in messages and results (no secrets). */
  display: string;
}

export interface StoreReader {
  readonly display: string;
  readonly prefix: string;
  /**
   * Bytes of the object at a bucket-relative path, or null when it does not exist.
   * @throws StorageError when the store fails after retries (network, 5xx, 401/403).
   */
  get(path: string, opts?: { fresh?: boolean; signal?: AbortSignal }): Promise<Uint8Array | null>;
}

export interface StoreDeps {
  fetch?: typeof fetch;
  sleep?: (ms: number) => Promise<void>;
  timeoutMs?: number;
}

/**
 * `supabase://<bucket>/<prefix>` (the `AMML_MODEL_STORE` syntax) or an `http(s)://` bucket-root URL, to a config.
 * For `supabase://` the project URL and key are required; for http(s) the prefix comes from `opts.prefix`.
 * @throws Error naming the problem when the URL is not one of these.
 */
export function edgeStoreConfig(storeUrl: string, opts: { supabaseUrl?: string; key?: string; prefix?: string } = {}): EdgeStoreConfig {
  const m = /^supabase:\/\/([^/]+)\/?(.*)$/.exec(storeUrl.trim());
  if (m) {
    const [, bucket, rawPrefix] = m;
    if (!opts.supabaseUrl || !opts.key) {
      throw new Error(`The model store ${storeUrl} needs the project URL and a key (SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY).`);
    }
    const prefix = rawPrefix.replace(/^\/+|\/+$/g, '');
    const base = opts.supabaseUrl.replace(/\/+$/, '');
    return {
      objectBaseUrl: `${base}/storage/v1/object/authenticated/${encodeURIComponent(bucket)}`,
      prefix,
      headers: { authorization: `Bearer ${opts.key}`, apikey: opts.key },
      display: `supabase://${bucket}${prefix ? `/${prefix}` : ''}`,
    };
  }
  if (/^https?:\/\//.test(storeUrl)) {
    const u = new URL(storeUrl);
    const prefix = (opts.prefix ?? '').replace(/^\/+|\/+$/g, '');
    return { objectBaseUrl: storeUrl.replace(/\/+$/, ''), prefix, display: `${u.origin}${u.pathname.replace(/\/+$/, '')}${prefix ? ` (${prefix})` : ''}` };
  }
  throw new Error(`Unsupported model store URL '${storeUrl}': use supabase://<bucket>/<prefix> or the http(s) URL of the bucket root.`);
}

class RetryableStatus extends Error {}

/** Storage answers a missing object with 404, or with 400 and `{"statusCode":"404"}` in the body. */
async function isNotFound(res: Response): Promise<boolean> {
  if (res.status === 404) return true;
  if (res.status !== 400) return false;
  try {
    const body = (await res.clone().json()) as { statusCode?: string; error?: string };
    return body.statusCode === '404' || body.error === 'not_found';
  } catch {
    return false;
  }
}

function encodePath(p: string): string {
  return p.split('/').map(encodeURIComponent).join('/');
}

export function httpStoreReader(cfg: EdgeStoreConfig, deps: StoreDeps = {}): StoreReader {
  const doFetch = deps.fetch ?? globalThis.fetch.bind(globalThis);
  const sleep = deps.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const timeoutMs = deps.timeoutMs ?? STORE_REQUEST_TIMEOUT_MS;
  return {
    display: cfg.display,
    prefix: cfg.prefix,
    async get(path, opts = {}) {
      // A fresh read (the pointer) must not come from a cache between us and Storage.
      const url = `${cfg.objectBaseUrl}/${encodePath(path)}${opts.fresh ? `?t=${Date.now()}` : ''}`;
      const where = `${cfg.display}/${path}`;
      let lastReason = '';
      for (let attempt = 1; attempt <= STORE_ATTEMPTS; attempt++) {
        const signals = [AbortSignal.timeout(timeoutMs), ...(opts.signal ? [opts.signal] : [])];
        try {
          const headers = opts.fresh ? { ...cfg.headers, 'cache-control': 'no-cache' } : cfg.headers;
          const res = await doFetch(url, { headers, signal: AbortSignal.any(signals) });
          if (res.ok) return new Uint8Array(await res.arrayBuffer());
          if (await isNotFound(res)) {
            await res.body?.cancel();
            return null;
          }
          const text = (await res.text()).slice(0, 200);
          if (res.status === 408 || res.status === 429 || res.status >= 500) throw new RetryableStatus(`HTTP ${res.status}: ${text}`);
          throw new StorageError(`Reading ${where} failed: HTTP ${res.status}: ${text}`, { service: 'storage', status: res.status });
        } catch (err) {
          if (err instanceof StorageError) throw err;
          if (opts.signal?.aborted) throw new StorageError(`Reading ${where} was aborted.`, { service: 'storage', cause: err });
          lastReason = err instanceof RetryableStatus ? err.message : `network error (${(err as Error).message})`;
          if (attempt < STORE_ATTEMPTS) await sleep(RETRY_BASE_DELAY_MS * 4 ** (attempt - 1));
        }
      }
      throw new StorageError(`Reading ${where} failed after ${STORE_ATTEMPTS} attempts: ${lastReason}`, { service: 'storage' });
    },
  };
}
