/**
 * Embedding one user on the fly, the way `am-ml embed` does in batch: the served model's frozen feature spec turns
 * the user's history (newest first; the newest `maxLikes` likes and `maxNopes` nopes count) into the user tower's
 * inputs with the same feature functions (`LoadedTwoTower.embedUsers`), and the tower returns a unit vector of
 * the model's dimension.
 *
 * When no model can be used (nothing published, the store unreachable, a file failing its sha256, the probe
 * failing, TF.js not starting), the answer comes from the fallback chain, and says which and why:
 *   1. `liked-items-mean`: the normalised mean of the stored embeddings of the newest likes (supplied on the items,
 *      or fetched with `lookupItemEmbeddings`), what the app's serving query computes;
 *   2. `stored-user`: the user's stored embedding, when the caller supplied it;
 *   3. `none`: `embedding: null`.
 * `embed` never throws.
 */
import type { FeatureStats } from '../ml/features/index.js';
import { FALLBACK_MAX_LIKES, normalizedMean, unitVector } from './fallback.js';
import type { ModelHolder, ReloadOutcome, ReloadRequest } from './model-holder.js';
import type { EdgeItem } from './request.js';

export type EmbeddingSource = 'model' | 'liked-items-mean' | 'stored-user' | 'none';

export interface EmbedUserInput {
  /** Newest first. */
  likes?: readonly EdgeItem[];
  nopes?: readonly EdgeItem[];
  /** The user's stored embedding (`user_embeddings.embedding`): the last resort. */
  storedEmbedding?: readonly number[] | null;
}

/** Stored embeddings of items by id (`video_embeddings`), for the fallback. Missing ids are simply absent. */
export type ItemEmbeddingLookup = (itemIds: readonly string[]) => Promise<Map<string, readonly number[]>>;

export interface UserEmbedding {
  embedding: number[] | null;
  dim: number | null;
  source: EmbeddingSource;
  /** The model that produced it (source `model`). `version` is the `model_version` `am-ml embed` writes for it. */
  model: { name: string; version: string; runId: string; backend: string } | null;
  /** Why the model was not used (every source but `model`). */
  fallbackReason?: string;
  /** Set when a model serves but the latest pointer check or load failed (an older version is serving). */
  warning?: string;
  history: { likes: number; nopes: number; likesUsed: number; nopesUsed: number };
  /** Liked-items mean: how many likes had a stored embedding. */
  fallbackItems?: { used: number; missing: number };
  /** What the feature code met (unknown tokens, missing values), source `model` only. */
  featureStats?: FeatureStats;
}

export interface UserEmbedderOptions {
  holder: ModelHolder;
  lookupItemEmbeddings?: ItemEmbeddingLookup;
}

export interface UserEmbedder {
  readonly holder: ModelHolder;
  embed(input: EmbedUserInput): Promise<UserEmbedding>;
  reload(req?: ReloadRequest): Promise<ReloadOutcome>;
  /** History caps of the served model (to read the right number of decisions), else the serving defaults. */
  historyCaps(): { maxLikes: number; maxNopes: number };
}

export function createUserEmbedder(opts: UserEmbedderOptions): UserEmbedder {
  const { holder } = opts;
  return {
    holder,
    reload: (req) => holder.reload(req),
    historyCaps() {
      const spec = holder.state().served?.model.spec;
      return spec ? { maxLikes: spec.user.maxLikes, maxNopes: spec.user.maxNopes } : { maxLikes: FALLBACK_MAX_LIKES, maxNopes: 100 };
    },
    async embed(input) {
      const likes = input.likes ?? [];
      const nopes = input.nopes ?? [];
      const history = { likes: likes.length, nopes: nopes.length, likesUsed: 0, nopesUsed: 0 };
      let reason: string;
      try {
        const { served, failure } = await holder.current();
        if (served) {
          const spec = served.model.spec;
          const { embeddings, stats } = served.model.embedUsers([{ likes, nopes }]);
          const embedding = Array.from(embeddings);
          if (embedding.length === served.model.dim && embedding.every(Number.isFinite)) {
            return {
              embedding,
              dim: served.model.dim,
              source: 'model',
              model: { name: served.name, version: served.version, runId: served.runId, backend: served.backend },
              ...(failure ? { warning: failure } : {}),
              history: { ...history, likesUsed: Math.min(likes.length, spec.user.maxLikes), nopesUsed: Math.min(nopes.length, spec.user.maxNopes) },
              featureStats: stats,
            };
          }
          reason = `model ${served.version} returned a ${embedding.length}-value vector with non-finite values or the wrong dimension (expected ${served.model.dim})`;
        } else {
          reason = failure ?? 'no model loaded';
        }
      } catch (err) {
        reason = `model inference failed: ${(err as Error).message}`;
      }
      return fallback(reason, likes, input.storedEmbedding, history, opts.lookupItemEmbeddings);
    },
  };
}

async function fallback(
  reason: string,
  likes: readonly EdgeItem[],
  stored: readonly number[] | null | undefined,
  history: UserEmbedding['history'],
  lookup: ItemEmbeddingLookup | undefined,
): Promise<UserEmbedding> {
  const newest = likes.slice(0, FALLBACK_MAX_LIKES);
  const vectors: (readonly number[] | null | undefined)[] = newest.map((i) => i.embedding);
  const notes: string[] = [];
  const toFetch = newest.filter((i) => !i.embedding).map((i) => i.item_id);
  if (toFetch.length && lookup) {
    try {
      const found = await lookup(toFetch);
      newest.forEach((item, k) => {
        if (!item.embedding) vectors[k] = found.get(item.item_id);
      });
    } catch (err) {
      notes.push(`item embeddings could not be read: ${(err as Error).message}`);
    }
  }
  const base = { model: null, history: { ...history, likesUsed: newest.length } };
  const fallbackReason = [reason, ...notes].join('; ');
  const mean = normalizedMean(vectors);
  if (mean.embedding) {
    return { ...base, embedding: mean.embedding, dim: mean.embedding.length, source: 'liked-items-mean', fallbackReason, fallbackItems: { used: mean.used, missing: mean.missing } };
  }
  const user = stored ? unitVector(stored) : null;
  if (user) return { ...base, history: { ...history }, embedding: user, dim: user.length, source: 'stored-user', fallbackReason };
  return { ...base, history: { ...history }, embedding: null, dim: null, source: 'none', fallbackReason, ...(newest.length ? { fallbackItems: { used: 0, missing: mean.missing } } : {}) };
}
