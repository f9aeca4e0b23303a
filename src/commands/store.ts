/**
 * Open the configured model store for a command: `--store` / AMML_MODEL_STORE (config part `store`), and the
 * Supabase credentials (config part `supabase`) only when the store is `supabase://`. Also the Edge Function
 * reload that follows every pointer move, which needs the same client.
 */
import type { SupabaseClient } from '@supabase/supabase-js';
import { type ConfigFor, DEFAULT_HOME_DIR } from '../config.js';
import { parseManifest } from '../ml/artifacts-fs.js';
import type { RegistryContext, RegistryEvent } from '../registry/registry.js';
import { openStore } from '../registry/open-store.js';
import { assertId } from '../registry/paths.js';
import { DEFAULT_RELOAD_FUNCTION, type ReloadResult, triggerReload } from '../registry/reload.js';
import type { RetryPolicy } from '../registry/retry.js';
import type { ModelStore, StoreRetryEvent } from '../registry/types.js';
import { type CommonOptions, configOf, cwdOf, reporterOf } from './common.js';

export const DEFAULT_MODEL_NAME = 'two_tower';
/** Downloaded versions live here, one folder per manifest sha256. */
export const MODEL_CACHE_DIR = `${DEFAULT_HOME_DIR}/cache/models`;

export interface OpenedStore {
  store: ModelStore;
  /** Set for supabase:// stores (used for the Edge Function reload). */
  supabase?: SupabaseClient;
  config: ConfigFor<'store'>;
}

export async function openModelStore(opts: CommonOptions, extra: { onRetry?: (e: StoreRetryEvent) => void; retry?: RetryPolicy } = {}): Promise<OpenedStore> {
  const config = configOf(opts, ['store']);
  let supabase: SupabaseClient | undefined;
  if (config.modelStore.startsWith('supabase://')) {
    const creds = configOf(opts, ['supabase']);
    // Loaded only for supabase:// stores: file:// commands stay free of supabase-js and ws.
    const { createSupabaseClient } = await import('./supabase-client.js');
    supabase = createSupabaseClient(creds.supabaseUrl, creds.supabaseServiceRoleKey);
  }
  const reporter = reporterOf(opts);
  const store = openStore(config.modelStore, {
    cwd: cwdOf(opts),
    retry: extra.retry,
    supabase: supabase ? () => supabase! : undefined,
    onRetry:
      extra.onRetry ??
      ((e) => reporter.warn(`${e.op} ${e.path} failed (${e.reason}); retry ${e.attempt} in ${e.delayMs} ms`)),
  });
  return { store, supabase, config };
}

export function registryContext(opened: OpenedStore, opts: CommonOptions, name: string | undefined, onProgress?: (e: RegistryEvent) => void): RegistryContext {
  assertId(name ?? DEFAULT_MODEL_NAME, 'name', '--name');
  return { store: opened.store, name: name ?? DEFAULT_MODEL_NAME, parseManifest, signal: opts.signal, onProgress };
}

export type ReloadOutcome = ReloadResult | { function: string; version: string; ok: true; skipped: string };

/** Tell the Edge Functions to load `version` (supabase:// stores only; a file:// store has no Edge Functions). */
export async function reloadEdgeFunctions(
  opened: OpenedStore,
  opts: CommonOptions & { reload?: boolean; reloadFunction?: string },
  name: string,
  version: string,
): Promise<ReloadOutcome> {
  const fn = opts.reloadFunction ?? DEFAULT_RELOAD_FUNCTION;
  if (opts.reload === false) return { function: fn, version, ok: true, skipped: '--no-reload' };
  if (!opened.supabase) return { function: fn, version, ok: true, skipped: 'the store is not on Supabase, so there are no Edge Functions to tell' };
  const reporter = reporterOf(opts);
  const phase = reporter.phase(`Asking Edge Function ${fn} to load ${version}`);
  const r = await triggerReload(opened.supabase.functions, {
    functionName: fn,
    name,
    version,
    signal: opts.signal,
    onRetry: (attempt, delayMs, reason) => reporter.warn(`reload via ${fn} failed (${reason}); retry ${attempt} in ${delayMs} ms`),
  });
  if (r.ok) phase.succeed(`Edge Function ${fn} reloaded ${version}`);
  else phase.fail(`Edge Function ${fn} did not confirm the reload: ${r.error}`);
  return r;
}

export function formatReload(r: ReloadOutcome): string {
  if ('skipped' in r) return `reload:       skipped (${r.skipped})`;
  if (r.ok) return `reload:       ${r.function} confirmed ${r.version}`;
  return `reload:       FAILED: ${r.function} did not confirm ${r.version} (${r.error}). The pointer has moved; invoke ${r.function} again (or re-run with the same arguments) so the Edge Functions load it.`;
}
