/**
 * Full-catalog retrieval metrics. For every evaluation user, every catalog item is scored (not only the user's own
 * held-out rows, which is what the app's old recall@20 did), the user's history items are excluded, and the top K
 * are compared with the held-out positives:
 *   recall@K   = |top K ∩ held-out| / |held-out|, averaged over users
 *   ndcg@10    = DCG of the top 10 with binary gains / ideal DCG for min(10, |held-out|) hits
 *   coverage@K = distinct items in anyone's top K / catalog size
 * The popularity baseline ranks by training likes with the same exclusions, on the same users. Pure module.
 */
import type { MatMul } from './kernels/matmul.js';

export const RECALL_KS = [10, 50, 100] as const;
export const NDCG_K = 10;
export const COVERAGE_K = 100;

/** Flat metrics: `recall@10`, `recall@50`, `recall@100`, `ndcg@10`, `coverage@100`, `users`. */
export type RankingMetrics = Record<string, number>;

export interface EvalSet {
  /** User indices evaluated. */
  users: Int32Array;
  /** Held-out positives per evaluated user (catalog indices). */
  heldOut: Int32Array[];
  /** Items excluded from each user's ranking (their history), sorted ascending. */
  exclude: Int32Array[];
}

/** Keep the `k` best (score desc, index asc) of `scores[0, n)`; returns indices best first. */
export function topK(scores: Float32Array, n: number, k: number): Int32Array {
  const kk = Math.min(k, n);
  const hs = new Float32Array(kk); // min-heap by (score asc, index desc): the root is the weakest kept
  const hi = new Int32Array(kk);
  let size = 0;
  const weaker = (s1: number, i1: number, s2: number, i2: number) => s1 < s2 || (s1 === s2 && i1 > i2);
  const swap = (a: number, b: number) => {
    const ts = hs[a];
    const ti = hi[a];
    hs[a] = hs[b];
    hi[a] = hi[b];
    hs[b] = ts;
    hi[b] = ti;
  };
  const siftDown = (pos: number) => {
    for (;;) {
      const l = 2 * pos + 1;
      const r = l + 1;
      let m = pos;
      if (l < size && weaker(hs[l], hi[l], hs[m], hi[m])) m = l;
      if (r < size && weaker(hs[r], hi[r], hs[m], hi[m])) m = r;
      if (m === pos) return;
      swap(pos, m);
      pos = m;
    }
  };
  for (let i = 0; i < n; i++) {
    const s = scores[i];
    if (s === -Infinity) continue;
    if (size < kk) {
      let pos = size++;
      hs[pos] = s;
      hi[pos] = i;
      while (pos > 0) {
        const parent = (pos - 1) >> 1;
        if (!weaker(hs[pos], hi[pos], hs[parent], hi[parent])) break;
        swap(pos, parent);
        pos = parent;
      }
    } else if (weaker(hs[0], hi[0], s, i)) {
      hs[0] = s;
      hi[0] = i;
      siftDown(0);
    }
  }
  const order = Array.from({ length: size }, (_, j) => j).sort((a, b) => hs[b] - hs[a] || hi[a] - hi[b]);
  return Int32Array.from(order, (j) => hi[j]);
}

/** Accumulates per-user rankings into the metrics. */
class MetricsAccumulator {
  private readonly recall = new Float64Array(RECALL_KS.length);
  private ndcg = 0;
  private users = 0;
  private readonly covered: Uint8Array;

  constructor(readonly nItems: number) {
    this.covered = new Uint8Array(nItems);
  }

  add(ranked: Int32Array, heldOut: Int32Array): void {
    if (heldOut.length === 0) return;
    const relevant = new Set(heldOut);
    this.users++;
    let hits = 0;
    let k = 0;
    let dcg = 0;
    for (let r = 0; r < ranked.length; r++) {
      const hit = relevant.has(ranked[r]);
      if (hit) {
        hits++;
        if (r < NDCG_K) dcg += 1 / Math.log2(r + 2);
      }
      if (r < COVERAGE_K) this.covered[ranked[r]] = 1;
      while (k < RECALL_KS.length && r + 1 === RECALL_KS[k]) {
        this.recall[k] += hits / heldOut.length;
        k++;
      }
    }
    for (; k < RECALL_KS.length; k++) this.recall[k] += hits / heldOut.length;
    let idcg = 0;
    for (let r = 0; r < Math.min(NDCG_K, heldOut.length); r++) idcg += 1 / Math.log2(r + 2);
    this.ndcg += dcg / idcg;
  }

  result(): RankingMetrics {
    const u = Math.max(1, this.users);
    const out: RankingMetrics = {};
    RECALL_KS.forEach((k, i) => {
      out[`recall@${k}`] = this.recall[i] / u;
    });
    out[`ndcg@${NDCG_K}`] = this.ndcg / u;
    let covered = 0;
    for (const c of this.covered) covered += c;
    out[`coverage@${COVERAGE_K}`] = covered / Math.max(1, this.nItems);
    out.users = this.users;
    return out;
  }
}

const MAX_K = Math.max(...RECALL_KS, COVERAGE_K);
/** Users scored per matrix product (bounds memory at chunk × catalog floats). */
export const EVAL_USER_CHUNK = 256;

/**
 * Rank the catalog for every evaluation user by dot product. `userEmb` holds one row per entry of `set.users`
 * (same order); `itemEmb` one row per catalog item.
 */
export function evaluateEmbeddings(
  set: EvalSet,
  userEmb: Float32Array,
  itemEmb: Float32Array,
  nItems: number,
  dim: number,
  mm: MatMul,
): RankingMetrics {
  const acc = new MetricsAccumulator(nItems);
  const nUsers = set.users.length;
  for (let start = 0; start < nUsers; start += EVAL_USER_CHUNK) {
    const c = Math.min(EVAL_USER_CHUNK, nUsers - start);
    const scores = mm.mmBt(userEmb.subarray(start * dim, (start + c) * dim), itemEmb.subarray(0, nItems * dim), c, dim, nItems);
    for (let r = 0; r < c; r++) {
      const row = scores.subarray(r * nItems, (r + 1) * nItems);
      for (const e of set.exclude[start + r]) row[e] = -Infinity;
      acc.add(topK(row, nItems, MAX_K), set.heldOut[start + r]);
    }
  }
  return acc.result();
}

/** The same metrics for ranking by popularity (training likes, ties by catalog order). */
export function evaluatePopularity(set: EvalSet, itemLikes: Float64Array): RankingMetrics {
  const n = itemLikes.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => itemLikes[b] - itemLikes[a] || a - b);
  const acc = new MetricsAccumulator(n);
  set.users.forEach((_, u) => {
    const excluded = new Set(set.exclude[u]);
    const ranked: number[] = [];
    for (let j = 0; j < n && ranked.length < MAX_K; j++) if (!excluded.has(order[j])) ranked.push(order[j]);
    acc.add(Int32Array.from(ranked), set.heldOut[u]);
  });
  return acc.result();
}
