/**
 * `am-ml/edge`: embed a user on the fly in a Supabase Edge Function (Deno), with the model `am-ml train` made and
 * `am-ml publish` released, and the same feature code as `am-ml embed`. No Node APIs.
 *
 *   import { createEdgeEmbedder, edgeSettingsFromEnv } from 'am-ml/edge';
 *   const embedder = createEdgeEmbedder(edgeSettingsFromEnv((k) => Deno.env.get(k)));   // once per worker
 *   const r = await embedder.embed({ likes, nopes });   // items newest first, in the items.jsonl shape
 *   // r.embedding: unit vector (model dim) or null; r.source: 'model' | 'liked-items-mean' | 'stored-user' | 'none'
 *   await embedder.reload({ version, name });           // what reload_models does
 *
 * Importing this module registers every custom layer (as `am-ml/runtime` does), so plain `tf.loadLayersModel`
 * works too. Loading, caching, reload and fallback policies: `model-holder.ts`, `user-embedder.ts`.
 */
import '../ml/runtime/index.js';
import { type BackendChoice, initTf } from '../ml/tf.js';
import { type HolderEvent, ModelHolder } from './model-holder.js';
import { edgeStoreConfig, httpStoreReader } from './store.js';
import { createUserEmbedder, type ItemEmbeddingLookup, type UserEmbedder } from './user-embedder.js';

export { edgeSettingsFromEnv, type EdgeSettings } from './env.js';
export { FALLBACK_MAX_LIKES, normalizedMean, unitVector } from './fallback.js';
export {
  DEFAULT_POINTER_MAX_AGE_MS,
  DEFAULT_RETRY_AFTER_FAILURE_MS,
  type HolderEvent,
  type HolderState,
  ModelHolder,
  type ModelHolderOptions,
  type ReloadOutcome,
  type ReloadRequest,
  type ServedModel,
} from './model-holder.js';
export { type EdgeItem, type EmbedUserRequest, MAX_HISTORY_ITEMS, parseEmbedUserRequest, parseReloadRequest, type Parsed } from './request.js';
export { type EdgeStoreConfig, edgeStoreConfig, httpStoreReader, type StoreReader } from './store.js';
export { createUserEmbedder, type EmbeddingSource, type EmbedUserInput, type ItemEmbeddingLookup, type UserEmbedder, type UserEmbedding } from './user-embedder.js';

export interface EdgeEmbedderConfig {
  /** `supabase://<bucket>/<prefix>` (with `supabaseUrl` and `key`) or the http(s) URL of a bucket root. */
  store: string;
  /** The store's folder inside an http(s) bucket root. */
  prefix?: string;
  supabaseUrl?: string;
  /** Service-role key (private bucket). Sent only to the store. */
  key?: string;
  /** @default two_tower */
  name?: string;
  /** @default 60 000 */
  pointerMaxAgeMs?: number;
  /** @default 30 000 */
  retryAfterFailureMs?: number;
  /** TF.js backend. @default cpu */
  backend?: Extract<BackendChoice, 'cpu' | 'wasm'>;
  fetch?: typeof fetch;
  lookupItemEmbeddings?: ItemEmbeddingLookup;
  onEvent?: (e: HolderEvent) => void;
}

/** One embedder per worker: create it at module level in the function, outside the request handler. */
export function createEdgeEmbedder(cfg: EdgeEmbedderConfig): UserEmbedder {
  const store = httpStoreReader(edgeStoreConfig(cfg.store, { supabaseUrl: cfg.supabaseUrl, key: cfg.key, prefix: cfg.prefix }), { fetch: cfg.fetch });
  const holder = new ModelHolder({
    store,
    name: cfg.name,
    pointerMaxAgeMs: cfg.pointerMaxAgeMs,
    retryAfterFailureMs: cfg.retryAfterFailureMs,
    onEvent: cfg.onEvent,
    prepare: async () => {
      await initTf(cfg.backend ?? 'cpu');
    },
  });
  return createUserEmbedder({ holder, lookupItemEmbeddings: cfg.lookupItemEmbeddings });
}
