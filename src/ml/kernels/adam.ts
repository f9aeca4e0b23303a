/**
 * Adam in one pass per parameter array (TF.js's optimizer issues about ten separate kernels per variable and
 * allocates a tensor for each), and lazy Adam for embedding tables: only the rows a batch touched are updated, their
 * moments included, with the global step for bias correction (the semantics of TF's LazyAdam). Dense Adam over a
 * 20,000 × 32 table would touch 640,000 values per step for a batch that read a few thousand.
 */

export interface AdamConfig {
  learningRate: number;
  beta1: number;
  beta2: number;
  epsilon: number;
}

export const DEFAULT_ADAM: Omit<AdamConfig, 'learningRate'> = { beta1: 0.9, beta2: 0.999, epsilon: 1e-7 };

/** Step size with bias correction folded in (Kingma & Ba, §2, "epsilon hat" form as in TF/Keras). */
export function adamStepSize(cfg: AdamConfig, step: number): number {
  return (cfg.learningRate * Math.sqrt(1 - cfg.beta2 ** step)) / (1 - cfg.beta1 ** step);
}

/** The Adam update of elements [start, end) with step size `lr` (the loop both the dense and the lazy form run). */
function adamRange(p: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array, start: number, end: number, lr: number, cfg: AdamConfig): void {
  const { beta1, beta2, epsilon } = cfg;
  const b1 = 1 - beta1;
  const b2 = 1 - beta2;
  for (let i = start; i < end; i++) {
    const gi = g[i];
    const mi = beta1 * m[i] + b1 * gi;
    const vi = beta2 * v[i] + b2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] -= (lr * mi) / (Math.sqrt(vi) + epsilon);
  }
}

/** Update every element of `p` from gradient `g`. */
export function adamDense(p: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array, cfg: AdamConfig, step: number): void {
  adamRange(p, g, m, v, 0, p.length, adamStepSize(cfg, step), cfg);
}

/** Update only `rows` (each `dim` wide) of a table from the matching rows of `g`. */
export function adamRows(
  table: Float32Array,
  g: Float32Array,
  m: Float32Array,
  v: Float32Array,
  rows: Int32Array,
  dim: number,
  cfg: AdamConfig,
  step: number,
): void {
  const lr = adamStepSize(cfg, step);
  for (let r = 0; r < rows.length; r++) adamRange(table, g, m, v, rows[r] * dim, rows[r] * dim + dim, lr, cfg);
}
