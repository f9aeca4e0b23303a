/**
 * THE feature implementation of am-ml, shared by `am-ml train`, `am-ml embed` and the Edge runtime (Deno). Pure
 * TypeScript: no Node APIs, no TensorFlow. It turns raw item attributes and user histories into the exact input
 * arrays of the two towers, using only the frozen spec (`features.json`) of a run.
 *
 * Public API (what embed and the runtime call):
 * - `parseFeatureSpec(text)`: parse and validate `features.json` (ConfigError on a bad file). Check its sha256
 *   against the manifest first (`load-model.ts` does both).
 * - `buildItemInputs(spec, items)`: item tower inputs for items (`ItemAttributes`, the `items.jsonl` shape). Items
 *   unseen in training embed from their features; an unknown id maps to the item-id OOV bucket.
 * - `buildUserInputs(spec, histories)`: user tower inputs from histories (`{likes, nopes}`, items newest first,
 *   e.g. the user's last 200 liked and last 100 noped videos). Users unseen in training embed from their history;
 *   an empty history is a valid row (flagged by the `empty_history` column).
 * - `encodeItem` + `buildItemInputsEncoded` / `buildUserInputsEncoded`: the same for callers that encode each
 *   catalog item once and reuse it for its own row and across many users' histories (batch embedding).
 * - `towerInputSpecs(spec, tower)`: input names, dtypes and widths in model order.
 *
 * Every result carries `stats` (missing, invalid, unknown, dropped, truncated per field) for the caller to report.
 */
import { type EncodedItem, emptyStats, encodeItem, type FeatureStats, type ItemAttributes } from './encode.js';
import { ItemPacker, TowerBuffers, type TowerInputs, UserRowWriter, writeItemRow } from './rows.js';
import type { FeatureSpec } from './spec.js';

export * from './encode.js';
export * from './rows.js';
export * from './spec.js';
export { buildFeatureSpec, DEFAULT_FEATURE_CONFIG, type FeatureConfig, type VocabularyConfig } from './build.js';

/** A user's history, newest first. Only the newest `spec.user.maxLikes` likes and `maxNopes` nopes are used. */
export interface UserHistory {
  likes: readonly ItemAttributes[];
  nopes?: readonly ItemAttributes[];
}

export interface EncodedHistory {
  likes: readonly EncodedItem[];
  nopes: readonly EncodedItem[];
}

export interface BuiltInputs {
  inputs: TowerInputs;
  stats: FeatureStats;
}

/** Item tower inputs for `items`, one row each, in order. */
export function buildItemInputs(spec: FeatureSpec, items: readonly ItemAttributes[]): BuiltInputs {
  const stats = emptyStats();
  const buf = new TowerBuffers(spec, 'item', items.length);
  items.forEach((item, row) => writeItemRow(buf, row, encodeItem(spec, item, stats)));
  return { inputs: buf.toInputs(items.length), stats };
}

/** Item tower inputs for items already encoded with `encodeItem` (batch embedding encodes each item once). */
export function buildItemInputsEncoded(spec: FeatureSpec, items: readonly EncodedItem[]): TowerInputs {
  const buf = new TowerBuffers(spec, 'item', items.length);
  items.forEach((item, row) => writeItemRow(buf, row, item));
  return buf.toInputs(items.length);
}

/** User tower inputs from raw histories, one row each, in order. */
export function buildUserInputs(spec: FeatureSpec, histories: readonly UserHistory[]): BuiltInputs {
  const stats = emptyStats();
  const cap = (list: readonly ItemAttributes[] | undefined, n: number) => (list ?? []).slice(0, n);
  const encoded = histories.map((h) => ({
    likes: cap(h.likes, spec.user.maxLikes).map((i) => encodeItem(spec, i, stats)),
    nopes: cap(h.nopes, spec.user.maxNopes).map((i) => encodeItem(spec, i, stats)),
  }));
  // Encoding stats above count history items; the rows below count users.
  stats.rows = 0;
  const built = buildUserInputsEncoded(spec, encoded, stats);
  return built;
}

/** User tower inputs from histories of already-encoded items. */
export function buildUserInputsEncoded(
  spec: FeatureSpec,
  histories: readonly EncodedHistory[],
  stats: FeatureStats = emptyStats(),
): BuiltInputs {
  const buf = new TowerBuffers(spec, 'user', histories.length);
  const writer = new UserRowWriter(spec);
  const likes = new ItemPacker(spec.vocabularies.length);
  const nopes = new ItemPacker(spec.vocabularies.length);
  histories.forEach((h, row) => writer.write(buf, row, likes.pack(h.likes), nopes.pack(h.nopes), -1, stats));
  stats.rows += histories.length;
  return { inputs: buf.toInputs(histories.length), stats };
}
