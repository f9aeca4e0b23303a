/**
 * The frozen feature spec (`features.json`): vocabularies, caps, numeric transforms and the fixed field order of
 * both towers. `am-ml train` builds it once from the training data; `am-ml embed` and the Edge runtime only read it
 * (app-schema §7.1, §7.2). Pure module: zod only, no Node APIs (the Deno runtime imports it).
 */
import { z } from 'zod';
import { ConfigError } from '../../errors.js';

export const FEATURE_SPEC_SCHEMA_VERSION = 1;

/** Item attributes a vocabulary can be built over. All are token lists (single-valued ones hold at most one). */
export const CATEGORICAL_ATTRIBUTES = ['tags', 'performers', 'maker', 'series', 'label', 'source', 'item_id'] as const;
export type CategoricalAttribute = (typeof CATEGORICAL_ATTRIBUTES)[number];

/** Item attributes with a numeric transform. */
export const NUMERIC_ATTRIBUTES = ['price', 'released_at', 'duration_seconds'] as const;
export type NumericAttribute = (typeof NUMERIC_ATTRIBUTES)[number];

/**
 * Numeric transforms, each followed by standardisation with the frozen training mean/std:
 * - `log1p`: log(1 + max(0, x)) (prices, durations in minutes are heavy-tailed)
 * - `log1p-minutes`: log(1 + max(0, x) / 60), for durations given in seconds
 * - `years-since-2000`: a date (ISO string or epoch ms) as fractional years since 2000-01-01 UTC. A fixed origin,
 *   never "now": the same item must embed to the same vector whenever it is embedded (app-schema §7.5).
 */
export const NUMERIC_TRANSFORMS = ['log1p', 'log1p-minutes', 'years-since-2000'] as const;
export type NumericTransform = (typeof NUMERIC_TRANSFORMS)[number];

const NameSchema = z.string().regex(/^[a-z][a-z0-9_]*$/, { message: 'must be snake_case' });

export const VocabularySchema = z.object({
  name: NameSchema,
  attribute: z.enum(CATEGORICAL_ATTRIBUTES),
  /**
   * Known tokens, most frequent first (ties by code point order). Index layout of every bag over this vocabulary:
   * 0 = padding, 1..tokens.length = tokens, then `oovBuckets` out-of-vocabulary buckets (FNV-1a hash of the token).
   */
  tokens: z.array(z.string()),
  oovBuckets: z.number().int().min(0),
  /** Tokens seen fewer times than this in the training data were left out (they map to an OOV bucket). */
  minCount: z.number().int().min(1),
  /** Top-N cap the vocabulary was built with. */
  maxSize: z.number().int().min(1),
  /** At most this many distinct tokens of one item are kept (most frequent tokens first); the rest are counted. */
  maxPerItem: z.number().int().min(1),
  /** Distinct training values left out by minCount or maxSize (for the record). */
  droppedValues: z.number().int().min(0),
});
export type Vocabulary = z.infer<typeof VocabularySchema>;

export const ItemBagSchema = z.object({
  /** Input names are `<name>_idx` and `<name>_w`. */
  name: NameSchema,
  vocabulary: NameSchema,
  embeddingDim: z.number().int().min(1),
});
export type ItemBag = z.infer<typeof ItemBagSchema>;

export const NumericFieldSchema = z.object({
  name: NameSchema,
  attribute: z.enum(NUMERIC_ATTRIBUTES),
  transform: z.enum(NUMERIC_TRANSFORMS),
  /** Mean and standard deviation of the transformed value over training items (std > 0). */
  mean: z.number(),
  std: z.number().positive(),
});
export type NumericField = z.infer<typeof NumericFieldSchema>;

export const UserBagSchema = z.object({
  name: NameSchema,
  vocabulary: NameSchema,
  /** Which part of the history feeds the bag. */
  history: z.enum(['likes', 'nopes']),
  /**
   * `share`: weight of a token = share of the history's items carrying it; keep the `maxLen` largest.
   * `recent`: tokens of the newest items until `maxLen` distinct tokens are collected (item ids).
   */
  select: z.enum(['share', 'recent']),
  maxLen: z.number().int().min(1),
  embeddingDim: z.number().int().min(1),
});
export type UserBag = z.infer<typeof UserBagSchema>;

export const FeatureSpecSchema = z
  .object({
    schemaVersion: z.literal(FEATURE_SPEC_SCHEMA_VERSION),
    /** Token normalisation applied before every vocabulary lookup. */
    normalization: z.literal('nfkc-trim'),
    vocabularies: z.array(VocabularySchema).min(1),
    item: z.object({
      bags: z.array(ItemBagSchema).min(1),
      /** Each numeric field gives two columns: the standardised value and a missing flag (1 when missing/NaN). */
      numeric: z.array(NumericFieldSchema),
    }),
    user: z.object({
      /** The newest this-many likes / nopes form the history (the serving query uses the last 200 likes). */
      maxLikes: z.number().int().min(1).max(1023),
      maxNopes: z.number().int().min(0).max(1023),
      bags: z.array(UserBagSchema).min(1),
      /** Fixed user numeric columns, in this order. */
      numeric: z.tuple([
        z.literal('log_likes'),
        z.literal('log_nopes'),
        z.literal('like_ratio'),
        z.literal('empty_history'),
      ]),
    }),
  })
  .superRefine((s, ctx) => {
    const vocabs = new Set<string>();
    for (const v of s.vocabularies) {
      if (vocabs.has(v.name)) ctx.addIssue({ code: 'custom', message: `duplicate vocabulary ${v.name}`, path: ['vocabularies'] });
      vocabs.add(v.name);
      if (new Set(v.tokens).size !== v.tokens.length) {
        ctx.addIssue({ code: 'custom', message: `vocabulary ${v.name} has duplicate tokens`, path: ['vocabularies'] });
      }
    }
    const names = new Set<string>();
    for (const [tower, bags] of [
      ['item', s.item.bags],
      ['user', s.user.bags],
    ] as const) {
      for (const b of bags) {
        if (!vocabs.has(b.vocabulary)) {
          ctx.addIssue({ code: 'custom', message: `${tower} bag ${b.name} uses unknown vocabulary ${b.vocabulary}`, path: [tower] });
        }
        if (names.has(`${tower}:${b.name}`)) ctx.addIssue({ code: 'custom', message: `duplicate ${tower} bag ${b.name}`, path: [tower] });
        names.add(`${tower}:${b.name}`);
      }
    }
  });
export type FeatureSpec = z.infer<typeof FeatureSpecSchema>;

export const USER_NUMERIC_COLUMNS = ['log_likes', 'log_nopes', 'like_ratio', 'empty_history'] as const;

/** Rows of a bag's embedding table: padding + tokens + OOV buckets. */
export function vocabularySize(v: Vocabulary): number {
  return 1 + v.tokens.length + v.oovBuckets;
}

export function vocabularyOf(spec: FeatureSpec, name: string): Vocabulary {
  const v = spec.vocabularies.find((x) => x.name === name);
  if (!v) throw new Error(`feature spec has no vocabulary ${name}`);
  return v;
}

/** Width of the item tower's numeric input (value + missing flag per field). */
export function itemNumericWidth(spec: FeatureSpec): number {
  return spec.item.numeric.length * 2;
}

export function userNumericWidth(spec: FeatureSpec): number {
  return spec.user.numeric.length;
}

export type TowerName = 'user' | 'item';

/** One input of a tower, in model input order. */
export interface TowerInputSpec {
  name: string;
  dtype: 'int32' | 'float32';
  /** Columns (the batch dimension is free). */
  width: number;
}

/** The inputs of a tower in their fixed order: for each bag `<name>_idx`, `<name>_w`; then `numeric`. */
export function towerInputSpecs(spec: FeatureSpec, tower: TowerName): TowerInputSpec[] {
  const out: TowerInputSpec[] = [];
  if (tower === 'item') {
    for (const b of spec.item.bags) {
      const len = vocabularyOf(spec, b.vocabulary).maxPerItem;
      out.push({ name: `${b.name}_idx`, dtype: 'int32', width: len }, { name: `${b.name}_w`, dtype: 'float32', width: len });
    }
    out.push({ name: 'numeric', dtype: 'float32', width: itemNumericWidth(spec) });
  } else {
    for (const b of spec.user.bags) {
      out.push({ name: `${b.name}_idx`, dtype: 'int32', width: b.maxLen }, { name: `${b.name}_w`, dtype: 'float32', width: b.maxLen });
    }
    out.push({ name: 'numeric', dtype: 'float32', width: userNumericWidth(spec) });
  }
  return out;
}

/** Bags of a tower as (name, vocabulary size, embedding dim, max length), in input order. */
export function towerBags(
  spec: FeatureSpec,
  tower: TowerName,
): { name: string; vocabularySize: number; embeddingDim: number; maxLen: number }[] {
  if (tower === 'item') {
    return spec.item.bags.map((b) => {
      const v = vocabularyOf(spec, b.vocabulary);
      return { name: b.name, vocabularySize: vocabularySize(v), embeddingDim: b.embeddingDim, maxLen: v.maxPerItem };
    });
  }
  return spec.user.bags.map((b) => ({
    name: b.name,
    vocabularySize: vocabularySize(vocabularyOf(spec, b.vocabulary)),
    embeddingDim: b.embeddingDim,
    maxLen: b.maxLen,
  }));
}

/**
 * The exact text written to `features.json`. Compact JSON (vocabularies can hold tens of thousands of tokens) with
 * keys in schema order, so the same spec always hashes the same.
 */
export function serializeFeatureSpec(spec: FeatureSpec): string {
  return `${JSON.stringify(FeatureSpecSchema.parse(spec))}\n`;
}

/** Parse `features.json` text; throws ConfigError (exit 3) listing every problem. */
export function parseFeatureSpec(text: string): FeatureSpec {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`features.json is not valid JSON: ${(err as Error).message}`, [], { code: 'FEATURE_SPEC_INVALID' });
  }
  const parsed = FeatureSpecSchema.safeParse(json);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => ({ key: i.path.join('.') || '(root)', message: i.message }));
    throw new ConfigError('features.json is not a valid am-ml feature spec:', issues, {
      code: 'FEATURE_SPEC_INVALID',
      hint: 'features.json is written by `am-ml train`; use the file of the same run as the model (its sha256 is in manifest.json).',
    });
  }
  return parsed.data;
}
