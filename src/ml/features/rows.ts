/**
 * Writing tower input rows into flat typed arrays: one item row from an encoded item, one user row from a history of
 * encoded items. Training fills its batches with these same writers, so a row built during training and a row built
 * by `am-ml embed` or the Edge runtime for the same item or history are identical (tested). Pure module.
 */
import { type EncodedItem, type FeatureStats, fieldStats } from './encode.js';
import { type FeatureSpec, type TowerInputSpec, type TowerName, towerInputSpecs, vocabularySize } from './spec.js';

/** One model input, ready for `tf.tensor(data, shape, dtype)`. */
export interface InputArray {
  name: string;
  dtype: 'int32' | 'float32';
  shape: [number, number];
  data: Int32Array | Float32Array;
}

/** Everything a tower needs for `rows` rows, in model input order. */
export interface TowerInputs {
  tower: TowerName;
  rows: number;
  arrays: InputArray[];
}

/** Preallocated input arrays for up to `capacity` rows (training reuses one per batch). */
export class TowerBuffers {
  readonly specs: TowerInputSpec[];
  /** Per bag (input order): indices `[capacity, maxLen]` and weights `[capacity, maxLen]`. */
  readonly bagIdx: Int32Array[] = [];
  readonly bagW: Float32Array[] = [];
  readonly bagLen: number[] = [];
  readonly numeric: Float32Array;
  readonly numericWidth: number;

  constructor(
    readonly spec: FeatureSpec,
    readonly tower: TowerName,
    readonly capacity: number,
  ) {
    this.specs = towerInputSpecs(spec, tower);
    for (let i = 0; i + 1 < this.specs.length; i += 2) {
      const len = this.specs[i].width;
      this.bagLen.push(len);
      this.bagIdx.push(new Int32Array(capacity * len));
      this.bagW.push(new Float32Array(capacity * len));
    }
    this.numericWidth = this.specs[this.specs.length - 1].width;
    this.numeric = new Float32Array(capacity * this.numericWidth);
  }

  /** Views of the first `rows` rows, named and shaped like the model's inputs. */
  toInputs(rows: number): TowerInputs {
    const arrays: InputArray[] = [];
    this.bagIdx.forEach((idx, b) => {
      const len = this.bagLen[b];
      arrays.push(
        { name: this.specs[2 * b].name, dtype: 'int32', shape: [rows, len], data: idx.subarray(0, rows * len) },
        { name: this.specs[2 * b + 1].name, dtype: 'float32', shape: [rows, len], data: this.bagW[b].subarray(0, rows * len) },
      );
    });
    arrays.push({
      name: 'numeric',
      dtype: 'float32',
      shape: [rows, this.numericWidth],
      data: this.numeric.subarray(0, rows * this.numericWidth),
    });
    return { tower: this.tower, rows, arrays };
  }
}

/** Positions of the item bags' vocabularies in `spec.vocabularies`. */
function itemBagVocabIndex(spec: FeatureSpec): number[] {
  return spec.item.bags.map((b) => spec.vocabularies.findIndex((v) => v.name === b.vocabulary));
}

const itemVocabCache = new WeakMap<FeatureSpec, number[]>();

/** Item row: each bag holds the item's tokens with equal weights 1/n (mean pooling); then the numerics. */
export function writeItemRow(buf: TowerBuffers, row: number, item: EncodedItem): void {
  let vi = itemVocabCache.get(buf.spec);
  if (!vi) {
    vi = itemBagVocabIndex(buf.spec);
    itemVocabCache.set(buf.spec, vi);
  }
  for (let b = 0; b < vi.length; b++) {
    const len = buf.bagLen[b];
    const toks = item.tokens[vi[b]];
    const idx = buf.bagIdx[b];
    const w = buf.bagW[b];
    const base = row * len;
    const n = Math.min(toks.length, len);
    const weight = n > 0 ? 1 / n : 0;
    for (let j = 0; j < len; j++) {
      if (j < n) {
        idx[base + j] = toks[j];
        w[base + j] = weight;
      } else {
        idx[base + j] = 0;
        w[base + j] = 0;
      }
    }
  }
  buf.numeric.set(item.numeric, row * buf.numericWidth);
}

/**
 * Sort keys pack (count, index) into one int32: ((MAX_COUNT − count) << INDEX_BITS) | index, so an ascending numeric
 * sort orders by count descending, then index ascending. Counts are at most the history window (≤ MAX_COUNT) and
 * vocabularies hold fewer than 2^INDEX_BITS entries (both checked).
 */
const INDEX_BITS = 21;
const INDEX_MASK = (1 << INDEX_BITS) - 1;
/** Largest history window (maxLikes, maxNopes) the row writer supports. */
export const MAX_HISTORY_WINDOW = 1023;

/**
 * A list of encoded items (a history, newest first) laid out for the row writer: per vocabulary, the items' tokens
 * concatenated in list order, with each item's end offset. One contiguous array per vocabulary instead of an object
 * and a small array per item: the writer's inner loop was bound by that pointer chasing.
 */
export interface PackedItems {
  n: number;
  tokens: Int32Array[];
  ends: Int32Array[];
}

/** Tokens of vocabulary `v` over all items. */
function tokenCount(items: readonly EncodedItem[], v: number): number {
  let total = 0;
  for (let i = 0; i < items.length; i++) total += items[i].tokens[v].length;
  return total;
}

/** Concatenate the items' tokens of vocabulary `v` into `t`, with each item's end offset in `e`. */
function fillPacked(items: readonly EncodedItem[], v: number, t: Int32Array, e: Int32Array): void {
  let o = 0;
  for (let i = 0; i < items.length; i++) {
    const src = items[i].tokens[v];
    for (let j = 0; j < src.length; j++) t[o++] = src[j];
    e[i] = o;
  }
}

/** Pack items (in order) for `UserRowWriter.write`, into arrays of their own (training keeps one per user). */
export function packItems(items: readonly EncodedItem[], vocabularies: number): PackedItems {
  const tokens: Int32Array[] = [];
  const ends: Int32Array[] = [];
  for (let v = 0; v < vocabularies; v++) {
    tokens.push(new Int32Array(tokenCount(items, v)));
    ends.push(new Int32Array(items.length));
    fillPacked(items, v, tokens[v], ends[v]);
  }
  return { n: items.length, tokens, ends };
}

/**
 * `packItems` into buffers reused from call to call (they only grow): building the user rows of a large batch
 * otherwise allocates two small typed arrays per vocabulary per history, and that allocation and its garbage
 * collection took most of `am-ml embed`'s user-row time (measured at 100,000 users). The result is valid until
 * the next `pack`; its arrays may be longer than the items need (readers go by `n` and `ends`).
 */
export class ItemPacker {
  private readonly tokens: Int32Array[] = [];
  private readonly ends: Int32Array[] = [];

  constructor(private readonly vocabularies: number) {
    for (let v = 0; v < vocabularies; v++) {
      this.tokens.push(new Int32Array(64));
      this.ends.push(new Int32Array(16));
    }
  }

  pack(items: readonly EncodedItem[]): PackedItems {
    const n = items.length;
    for (let v = 0; v < this.vocabularies; v++) {
      const total = tokenCount(items, v);
      if (total > this.tokens[v].length) this.tokens[v] = new Int32Array(Math.max(total, 2 * this.tokens[v].length));
      if (n > this.ends[v].length) this.ends[v] = new Int32Array(Math.max(n, 2 * this.ends[v].length));
      fillPacked(items, v, this.tokens[v], this.ends[v]);
    }
    return { n, tokens: this.tokens, ends: this.ends };
  }
}

/** Sort keys[0, n) ascending: insertion sort for the usual short bags (no allocation), the built-in sort above. */
function sortPrefix(keys: Int32Array, n: number): void {
  if (n > 48) {
    keys.subarray(0, n).sort();
    return;
  }
  for (let i = 1; i < n; i++) {
    const k = keys[i];
    let j = i - 1;
    while (j >= 0 && keys[j] > k) {
      keys[j + 1] = keys[j];
      j--;
    }
    keys[j + 1] = k;
  }
}

interface UserBagPlan {
  vocabPos: number;
  history: 'likes' | 'nopes';
  select: 'share' | 'recent';
  maxLen: number;
  name: string;
}

/**
 * Builds user rows from histories. Holds one count array per vocabulary (sized to the vocabulary), reused across
 * rows, so a row costs O(history tokens), not O(vocabulary).
 */
export class UserRowWriter {
  private readonly plans: UserBagPlan[];
  private readonly counts: Int32Array[];
  private readonly touched: Int32Array[];
  private readonly keys: Int32Array;
  private readonly selected: Int32Array;
  private readonly logMaxLikes: number;
  private readonly logMaxNopes: number;

  constructor(readonly spec: FeatureSpec) {
    this.plans = spec.user.bags.map((b) => ({
      vocabPos: spec.vocabularies.findIndex((v) => v.name === b.vocabulary),
      history: b.history,
      select: b.select,
      maxLen: b.maxLen,
      name: b.name,
    }));
    this.counts = spec.vocabularies.map((v) => new Int32Array(vocabularySize(v)));
    this.touched = spec.vocabularies.map((v) => new Int32Array(vocabularySize(v)));
    const largest = Math.max(...spec.vocabularies.map((v) => vocabularySize(v)));
    if (largest > INDEX_MASK) throw new Error(`a vocabulary of ${largest} entries exceeds the supported ${INDEX_MASK}`);
    if (spec.user.maxLikes > MAX_HISTORY_WINDOW || spec.user.maxNopes > MAX_HISTORY_WINDOW) {
      throw new Error(`history windows above ${MAX_HISTORY_WINDOW} are not supported`);
    }
    this.keys = new Int32Array(largest);
    this.selected = new Int32Array(largest);
    this.logMaxLikes = Math.log1p(spec.user.maxLikes);
    this.logMaxNopes = Math.log1p(Math.max(1, spec.user.maxNopes));
  }

  /**
   * Write one user row. `likes` and `nopes` are newest first; the newest `maxLikes` likes and `maxNopes` nopes
   * count. `excludeLike` (an index into `likes`) leaves one like out before the caps apply: training uses it so the
   * user row of a (user, item) example never contains the item it is trained to predict.
   */
  write(buf: TowerBuffers, row: number, likes: PackedItems, nopes: PackedItems, excludeLike = -1, stats?: FeatureStats): void {
    const maxLikes = this.spec.user.maxLikes;
    const maxNopes = this.spec.user.maxNopes;
    const nLikes = Math.min(maxLikes, likes.n - (excludeLike >= 0 && excludeLike < likes.n ? 1 : 0));
    const nNopes = Math.min(maxNopes, nopes.n);
    for (let b = 0; b < this.plans.length; b++) {
      const p = this.plans[b];
      const list = p.history === 'likes' ? likes : nopes;
      const limit = p.history === 'likes' ? nLikes : nNopes;
      const skip = p.history === 'likes' ? excludeLike : -1;
      this.writeBag(buf, row, b, p, list, limit, skip, stats);
    }
    const nw = buf.numericWidth;
    const o = row * nw;
    buf.numeric[o] = Math.log1p(nLikes) / this.logMaxLikes;
    buf.numeric[o + 1] = Math.log1p(nNopes) / this.logMaxNopes;
    buf.numeric[o + 2] = nLikes + nNopes > 0 ? nLikes / (nLikes + nNopes) : 0.5;
    buf.numeric[o + 3] = nLikes + nNopes === 0 ? 1 : 0;
  }

  private writeBag(
    buf: TowerBuffers,
    row: number,
    b: number,
    p: UserBagPlan,
    list: PackedItems,
    limit: number,
    skip: number,
    stats: FeatureStats | undefined,
  ): void {
    const counts = this.counts[p.vocabPos];
    const touched = this.touched[p.vocabPos];
    let nTouched = 0;
    let nItems = 0;
    let truncated = 0;
    const toks = list.tokens[p.vocabPos];
    const ends = list.ends[p.vocabPos];
    const recent = p.select === 'recent';
    for (let i = 0, taken = 0; i < list.n && taken < limit; i++) {
      if (i === skip) continue;
      taken++;
      const start = i === 0 ? 0 : ends[i - 1];
      const end = ends[i];
      if (recent) {
        if (nTouched >= p.maxLen) break;
        nItems++;
        for (let j = start; j < end; j++) {
          const t = toks[j];
          if (counts[t] === 0) {
            if (nTouched >= p.maxLen) {
              truncated++;
              continue;
            }
            touched[nTouched++] = t;
          }
          counts[t]++;
        }
      } else {
        nItems++;
        for (let j = start; j < end; j++) {
          const t = toks[j];
          if (counts[t] === 0) touched[nTouched++] = t;
          counts[t]++;
        }
      }
    }
    // Canonical order: heaviest first, ties by index, so equal histories give byte-identical rows. Sorted as one
    // packed int32 key per token (count descending, index ascending): much faster than a comparator sort, which
    // dominated batch building.
    const keys = this.keys;
    for (let j = 0; j < nTouched; j++) keys[j] = ((MAX_HISTORY_WINDOW - counts[touched[j]]) << INDEX_BITS) | touched[j];
    sortPrefix(keys, nTouched);
    const kept = Math.min(nTouched, p.maxLen);
    if (nTouched > p.maxLen) truncated += nTouched - p.maxLen;
    const sel = this.selected;
    for (let j = 0; j < kept; j++) sel[j] = keys[j] & INDEX_MASK;
    const len = buf.bagLen[b];
    const idx = buf.bagIdx[b];
    const w = buf.bagW[b];
    const base = row * len;
    for (let j = 0; j < len; j++) {
      if (j < kept) {
        idx[base + j] = sel[j];
        w[base + j] = counts[sel[j]] / nItems;
      } else {
        idx[base + j] = 0;
        w[base + j] = 0;
      }
    }
    for (let j = 0; j < nTouched; j++) counts[touched[j]] = 0;
    if (stats) {
      const fs = fieldStats(stats, p.name);
      if (kept === 0) fs.missing++;
      fs.truncated += truncated;
    }
  }
}
