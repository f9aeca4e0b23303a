/**
 * From training data and a split to the indexed structures training and evaluation work on: catalog and user
 * indices, every catalog item encoded once with the frozen spec, per-user histories (newest first), training
 * examples, and item popularity for the log-Q correction. Pure module.
 */
import type { Interaction, TrainingData } from './data/types.js';
import { buildFeatureSpec, type EncodedItem, encodeItem, emptyStats, type FeatureConfig, type FeatureSpec, type FeatureStats } from './features/index.js';
import type { Split } from './split.js';

/** Per-user item lists, newest first (catalog indices). */
export interface Histories {
  likes: Int32Array[];
  nopes: Int32Array[];
}

export interface Prepared {
  spec: FeatureSpec;
  /** Catalog items in input order; evaluation ranks all of them. */
  itemIds: string[];
  itemIndex: Map<string, number>;
  encoded: EncodedItem[];
  /** Stats from encoding the catalog with the frozen spec. */
  encodeStats: FeatureStats;
  userIds: string[];
  userIndex: Map<string, number>;
  /** Training history per user. */
  train: Histories;
  /** Training positives: user, item and the item's position in the user's likes (for leave-one-out). */
  examples: { user: Int32Array; item: Int32Array; likePos: Int32Array };
  /** Training positives per item (popularity baseline and log-Q). */
  itemLikes: Float64Array;
}

/** Newest-first per-user lists from rows given oldest first (split order). */
export function historiesOf(rows: readonly Interaction[], userIndex: ReadonlyMap<string, number>, itemIndex: ReadonlyMap<string, number>, nUsers: number): Histories {
  const likes: number[][] = Array.from({ length: nUsers }, () => []);
  const nopes: number[][] = Array.from({ length: nUsers }, () => []);
  for (const r of rows) {
    const u = userIndex.get(r.userId);
    const i = itemIndex.get(r.itemId);
    if (u === undefined || i === undefined) continue;
    (r.label === 1 ? likes : nopes)[u].push(i);
  }
  return { likes: likes.map((l) => Int32Array.from(l.reverse())), nopes: nopes.map((l) => Int32Array.from(l.reverse())) };
}

/** Concatenate two newest-first histories where `newer` happened after `older`. */
export function appendHistories(older: Histories, newer: Histories): Histories {
  const join = (a: Int32Array, b: Int32Array) => {
    const out = new Int32Array(a.length + b.length);
    out.set(b, 0);
    out.set(a, b.length);
    return out;
  };
  return { likes: older.likes.map((l, u) => join(l, newer.likes[u])), nopes: older.nopes.map((l, u) => join(l, newer.nopes[u])) };
}

export function prepare(data: TrainingData, split: Split, features: FeatureConfig): Prepared {
  const itemIds = data.items.map((i) => i.item_id);
  const itemIndex = new Map(itemIds.map((id, i) => [id, i]));
  const userIds = [...new Set(data.interactions.map((i) => i.userId))].sort();
  const userIndex = new Map(userIds.map((id, i) => [id, i]));

  // Vocabularies and numeric statistics come from the items of the training split only.
  const likesPerItemId = new Map<string, number>();
  const trainItems = new Set<number>();
  for (const r of split.train) {
    const i = itemIndex.get(r.itemId);
    if (i === undefined) continue;
    trainItems.add(i);
    if (r.label === 1) likesPerItemId.set(r.itemId, (likesPerItemId.get(r.itemId) ?? 0) + 1);
  }
  const spec = buildFeatureSpec(
    { items: [...trainItems].sort((a, b) => a - b).map((i) => data.items[i]), likesPerItem: likesPerItemId },
    features,
  );
  const encodeStats = emptyStats();
  const encoded = data.items.map((item) => encodeItem(spec, item, encodeStats));

  const train = historiesOf(split.train, userIndex, itemIndex, userIds.length);
  const itemLikes = new Float64Array(itemIds.length);
  const exUser: number[] = [];
  const exItem: number[] = [];
  const exPos: number[] = [];
  train.likes.forEach((likes, u) => {
    likes.forEach((item, pos) => {
      exUser.push(u);
      exItem.push(item);
      exPos.push(pos);
      itemLikes[item]++;
    });
  });
  return {
    spec,
    itemIds,
    itemIndex,
    encoded,
    encodeStats,
    userIds,
    userIndex,
    train,
    examples: { user: Int32Array.from(exUser), item: Int32Array.from(exItem), likePos: Int32Array.from(exPos) },
    itemLikes,
  };
}
