/**
 * The fallback user vector when the model cannot be used: the normalised mean of the stored embeddings of the
 * user's newest likes (what the app's serving query computes, app-schema §3), else the user's stored embedding,
 * else none. Pure arithmetic in float64, rounded to float32 like every stored vector.
 */

/** The serving query's window: the mean of the last 200 liked videos. */
export const FALLBACK_MAX_LIKES = 200;

export interface MeanResult {
  embedding: number[] | null;
  /** Liked items whose embedding went into the mean. */
  used: number;
  /** Liked items without a stored embedding, or with another dimension than the first one found. */
  missing: number;
}

/** Normalised mean of the vectors (null when there are none, or they sum to zero). Skips other dimensions. */
export function normalizedMean(vectors: readonly (readonly number[] | null | undefined)[]): MeanResult {
  let sum: Float64Array | null = null;
  let used = 0;
  let missing = 0;
  for (const v of vectors) {
    if (!v || v.length === 0 || (sum && v.length !== sum.length) || !v.every(Number.isFinite)) {
      missing++;
      continue;
    }
    sum ??= new Float64Array(v.length);
    for (let i = 0; i < v.length; i++) sum[i] += v[i];
    used++;
  }
  if (!sum) return { embedding: null, used, missing };
  return { embedding: unitVector(sum), used, missing };
}

/** `v / |v|` as float32 values, or null for a zero or non-finite vector. */
export function unitVector(v: ArrayLike<number>): number[] | null {
  let sq = 0;
  for (let i = 0; i < v.length; i++) sq += v[i] * v[i];
  const norm = Math.sqrt(sq);
  if (!(norm > 0) || !Number.isFinite(norm)) return null;
  return Array.from(Float32Array.from(v, (x) => x / norm));
}
