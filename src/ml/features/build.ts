/**
 * Building the feature spec, once, from the training split (never at inference): vocabularies with top-N caps and
 * minimum counts over the training items, and mean/std of each numeric transform. Pure module.
 */
import { type ItemAttributes, numericValue, tokensOf } from './encode.js';
import {
  CATEGORICAL_ATTRIBUTES,
  type CategoricalAttribute,
  FEATURE_SPEC_SCHEMA_VERSION,
  type FeatureSpec,
  FeatureSpecSchema,
  type NumericField,
  USER_NUMERIC_COLUMNS,
  type UserBag,
  type Vocabulary,
} from './spec.js';

export interface VocabularyConfig {
  attribute: CategoricalAttribute;
  /** Keep at most this many tokens (most frequent first). */
  maxSize: number;
  /** A token must occur on at least this many training items (item ids: this many training likes). */
  minCount: number;
  oovBuckets: number;
  maxPerItem: number;
}

export interface FeatureConfig {
  vocabularies: VocabularyConfig[];
  /** Give the item tower an item-id bag and the user tower liked/noped item-id bags. */
  itemIdEmbedding: boolean;
  /** Embedding width of every bag. */
  bagDim: number;
  maxLikes: number;
  maxNopes: number;
}

/** Defaults sized for the app's catalog (tens of thousands of items, ~300 training tags, thousands of performers). */
export const DEFAULT_FEATURE_CONFIG: FeatureConfig = {
  vocabularies: [
    { attribute: 'tags', maxSize: 2000, minCount: 2, oovBuckets: 1, maxPerItem: 32 },
    { attribute: 'performers', maxSize: 20000, minCount: 2, oovBuckets: 1, maxPerItem: 8 },
    { attribute: 'maker', maxSize: 2000, minCount: 2, oovBuckets: 1, maxPerItem: 1 },
    { attribute: 'series', maxSize: 5000, minCount: 2, oovBuckets: 1, maxPerItem: 1 },
    { attribute: 'label', maxSize: 2000, minCount: 2, oovBuckets: 1, maxPerItem: 1 },
    { attribute: 'source', maxSize: 16, minCount: 1, oovBuckets: 1, maxPerItem: 1 },
    { attribute: 'item_id', maxSize: 200000, minCount: 2, oovBuckets: 1, maxPerItem: 1 },
  ],
  itemIdEmbedding: true,
  bagDim: 32,
  maxLikes: 200,
  maxNopes: 100,
};

/** User bags: (vocabulary attribute, history, select, maxLen). Likes carry most signal and get longer bags. */
const USER_BAG_PLAN: { attribute: CategoricalAttribute; history: 'likes' | 'nopes'; select: UserBag['select']; maxLen: number }[] = [
  { attribute: 'tags', history: 'likes', select: 'share', maxLen: 64 },
  { attribute: 'performers', history: 'likes', select: 'share', maxLen: 32 },
  { attribute: 'maker', history: 'likes', select: 'share', maxLen: 16 },
  { attribute: 'series', history: 'likes', select: 'share', maxLen: 16 },
  { attribute: 'label', history: 'likes', select: 'share', maxLen: 16 },
  { attribute: 'source', history: 'likes', select: 'share', maxLen: 4 },
  { attribute: 'item_id', history: 'likes', select: 'recent', maxLen: 64 },
  { attribute: 'tags', history: 'nopes', select: 'share', maxLen: 32 },
  { attribute: 'performers', history: 'nopes', select: 'share', maxLen: 16 },
  { attribute: 'maker', history: 'nopes', select: 'share', maxLen: 8 },
  { attribute: 'item_id', history: 'nopes', select: 'recent', maxLen: 32 },
];

const NUMERIC_PLAN: Pick<NumericField, 'name' | 'attribute' | 'transform'>[] = [
  { name: 'price', attribute: 'price', transform: 'log1p' },
  { name: 'released', attribute: 'released_at', transform: 'years-since-2000' },
  { name: 'duration', attribute: 'duration_seconds', transform: 'log1p-minutes' },
];

export interface BuildFeatureSpecInput {
  /** Distinct items of the training split (token document frequencies and numeric statistics come from these). */
  items: readonly ItemAttributes[];
  /** Training likes per item id (the item-id vocabulary keeps items liked at least `minCount` times). */
  likesPerItem: ReadonlyMap<string, number>;
}

function byCountThenToken(counts: Map<string, number>): [string, number][] {
  return [...counts.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

function buildVocabulary(cfg: VocabularyConfig, input: BuildFeatureSpecInput): Vocabulary {
  const counts = new Map<string, number>();
  if (cfg.attribute === 'item_id') {
    for (const [id, n] of input.likesPerItem) {
      const t = tokensOf(id)[0];
      if (t !== undefined) counts.set(t, (counts.get(t) ?? 0) + n);
    }
  } else {
    for (const item of input.items) {
      for (const t of tokensOf((item as unknown as Record<string, unknown>)[cfg.attribute])) counts.set(t, (counts.get(t) ?? 0) + 1);
    }
  }
  const sorted = byCountThenToken(counts);
  const kept = sorted.filter(([, n]) => n >= cfg.minCount).slice(0, cfg.maxSize);
  return {
    name: cfg.attribute,
    attribute: cfg.attribute,
    tokens: kept.map(([t]) => t),
    oovBuckets: cfg.oovBuckets,
    minCount: cfg.minCount,
    maxSize: cfg.maxSize,
    maxPerItem: cfg.maxPerItem,
    droppedValues: sorted.length - kept.length,
  };
}

function numericStats(plan: Pick<NumericField, 'name' | 'attribute' | 'transform'>, items: readonly ItemAttributes[]): NumericField {
  let n = 0;
  let sum = 0;
  let sumSq = 0;
  for (const item of items) {
    const v = numericValue(item, plan);
    if (v === null) continue;
    n++;
    sum += v;
    sumSq += v * v;
  }
  const mean = n > 0 ? sum / n : 0;
  const variance = n > 1 ? Math.max(0, sumSq / n - mean * mean) : 0;
  const std = Math.sqrt(variance);
  // A constant or absent column standardises to 0 with std 1 rather than dividing by zero.
  return { ...plan, mean, std: std > 1e-9 ? std : 1 };
}

/** Build and validate the spec. Deterministic: the same training data and config give a byte-identical spec. */
export function buildFeatureSpec(input: BuildFeatureSpecInput, config: FeatureConfig = DEFAULT_FEATURE_CONFIG): FeatureSpec {
  const vocabConfigs = config.vocabularies.filter((v) => v.attribute !== 'item_id' || config.itemIdEmbedding);
  for (const a of CATEGORICAL_ATTRIBUTES) {
    if (vocabConfigs.filter((v) => v.attribute === a).length > 1) throw new Error(`feature config lists vocabulary ${a} twice`);
  }
  const vocabularies = vocabConfigs.map((c) => buildVocabulary(c, input));
  const has = (a: CategoricalAttribute) => vocabularies.some((v) => v.attribute === a);
  const dimFor = (a: CategoricalAttribute) => (a === 'source' ? Math.min(8, config.bagDim) : config.bagDim);
  const spec: FeatureSpec = {
    schemaVersion: FEATURE_SPEC_SCHEMA_VERSION,
    normalization: 'nfkc-trim',
    vocabularies,
    item: {
      bags: vocabularies.map((v) => ({ name: v.name, vocabulary: v.name, embeddingDim: dimFor(v.attribute) })),
      numeric: NUMERIC_PLAN.map((p) => numericStats(p, input.items)),
    },
    user: {
      maxLikes: config.maxLikes,
      maxNopes: config.maxNopes,
      bags: USER_BAG_PLAN.filter((p) => has(p.attribute) && (p.history === 'likes' || config.maxNopes > 0)).map((p) => ({
        name: `${p.history === 'likes' ? 'liked' : 'noped'}_${p.attribute === 'item_id' ? 'items' : p.attribute}`,
        vocabulary: p.attribute,
        history: p.history,
        select: p.select,
        maxLen: p.maxLen,
        embeddingDim: dimFor(p.attribute),
      })),
      numeric: [...USER_NUMERIC_COLUMNS],
    },
  };
  return FeatureSpecSchema.parse(spec);
}
