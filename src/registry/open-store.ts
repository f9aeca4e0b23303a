/**
 * Pick the store backend from its URL: `file://<dir>` (relative dirs resolve against cwd) or
 * `supabase://<bucket>/<prefix>`. A plain function, not a global registry (STYLE.md §7): the command passes
 * what the backend needs, including a ready-made Supabase client.
 */
import path from 'node:path';
import { ConfigError } from '../errors.js';
import { localStore } from './backends/local.js';
import { type SupabaseStoreOptions, supabaseStore } from './backends/supabase.js';
import type { RetryPolicy, Sleep } from './retry.js';
import type { ModelStore, StoreRetryEvent } from './types.js';

export type StoreLocation = { scheme: 'file'; dir: string } | { scheme: 'supabase'; bucket: string; prefix: string };

const BUCKET_RE = /^[a-z0-9][a-z0-9._-]{1,62}$/i;
const SEGMENT_RE = /^[A-Za-z0-9._-]+$/;

function bad(url: string, message: string): ConfigError {
  return new ConfigError('The model store URL is not valid.', [
    { key: 'AMML_MODEL_STORE', message: `${message} (got '${url}')`, source: 'set --store or env AMML_MODEL_STORE' },
  ]);
}

/** Parse a store URL; throws ConfigError naming the problem. */
export function parseStoreUrl(url: string, cwd: string): StoreLocation {
  const m = /^([a-z]+):\/\/(.*)$/i.exec(url);
  if (!m) throw bad(url, 'expected file://<dir> or supabase://<bucket>/<prefix>');
  const scheme = m[1].toLowerCase();
  const rest = m[2];
  if (scheme === 'file') return { scheme: 'file', dir: path.resolve(cwd, decodeURIComponent(rest) || '.') };
  if (scheme === 'supabase') {
    const [bucket, ...parts] = rest.split('/').filter((s) => s !== '');
    if (!bucket || !BUCKET_RE.test(bucket)) throw bad(url, 'supabase:// needs a bucket name: supabase://<bucket>/<prefix>');
    for (const p of parts) {
      if (!SEGMENT_RE.test(p) || p === '.' || p === '..') throw bad(url, `prefix segment '${p}' may use only letters, digits, '.', '_' and '-'`);
    }
    return { scheme: 'supabase', bucket, prefix: parts.join('/') };
  }
  throw bad(url, `unknown scheme ${scheme}://; expected file:// or supabase://`);
}

export interface OpenStoreDeps {
  cwd: string;
  /** Builds the Supabase client for supabase:// stores (the command layer reads the credentials). */
  supabase?: () => SupabaseStoreOptions['client'];
  retry?: RetryPolicy;
  sleep?: Sleep;
  onRetry?: (e: StoreRetryEvent) => void;
  now?: () => number;
  /** Override the per-file limit (tests). */
  maxFileBytes?: number;
}

export function openStore(url: string, deps: OpenStoreDeps): ModelStore {
  const loc = parseStoreUrl(url, deps.cwd);
  if (loc.scheme === 'file') return localStore({ dir: loc.dir, now: deps.now, maxFileBytes: deps.maxFileBytes });
  if (!deps.supabase) {
    throw new ConfigError(`${url} needs Supabase credentials.`, [
      { key: 'SUPABASE_URL', message: 'needed by a supabase:// model store' },
      { key: 'SUPABASE_SERVICE_ROLE_KEY', message: 'needed by a supabase:// model store' },
    ]);
  }
  return supabaseStore({
    client: deps.supabase(),
    bucket: loc.bucket,
    prefix: loc.prefix,
    retry: deps.retry,
    sleep: deps.sleep,
    onRetry: deps.onRetry,
    now: deps.now,
    maxFileBytes: deps.maxFileBytes,
  });
}
