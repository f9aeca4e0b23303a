/**
 * Weighted embedding bags, the sparse first layer of both towers: out[m] = Σ_j w[m,j] · T[idx[m,j]].
 *
 * TF.js's way (gather, then the gather gradient) needs the UnsortedSegmentSum kernel, which the wasm backend lacks
 * and the cpu backend runs at ~10 ms per table row, and it yields a dense gradient the size of the whole table, which
 * Adam then updates entirely. Here the backward pass scatters only into the rows the batch touched and returns them
 * as a list, so the optimizer updates those rows alone (lazy Adam, `adam.ts`). Weight-0 slots (padding) are skipped.
 */

/** y[yo, yo+n) += a · x[xo, xo+n): the inner step of both the bag sum and its scatter. */
function axpy(y: Float32Array, yo: number, a: number, x: Float32Array, xo: number, n: number): void {
  // Unrolled by four: V8 does not vectorise, and this is ~1.7× faster than the plain loop at dim 32.
  let e = 0;
  for (; e + 3 < n; e += 4) {
    y[yo + e] += a * x[xo + e];
    y[yo + e + 1] += a * x[xo + e + 1];
    y[yo + e + 2] += a * x[xo + e + 2];
    y[yo + e + 3] += a * x[xo + e + 3];
  }
  for (; e < n; e++) y[yo + e] += a * x[xo + e];
}

/** Write the bag outputs of rows [0, m) into columns [col, col+dim) of X (row stride `xCols`). */
export function bagForward(
  table: Float32Array,
  dim: number,
  idx: Int32Array,
  w: Float32Array,
  m: number,
  len: number,
  x: Float32Array,
  xCols: number,
  col: number,
): void {
  for (let r = 0; r < m; r++) {
    const xo = r * xCols + col;
    for (let e = 0; e < dim; e++) x[xo + e] = 0;
    const io = r * len;
    for (let j = 0; j < len; j++) {
      const wt = w[io + j];
      if (wt === 0) continue;
      axpy(x, xo, wt, table, idx[io + j] * dim, dim);
    }
  }
}

/** Rows of a table's gradient that a batch touched: dense scratch rows plus the list of touched row ids. */
export class SparseRowGrad {
  readonly grad: Float32Array;
  private readonly isTouched: Uint8Array;
  readonly rows: Int32Array;
  count = 0;

  constructor(
    readonly vocab: number,
    readonly dim: number,
  ) {
    this.grad = new Float32Array(vocab * dim);
    this.isTouched = new Uint8Array(vocab);
    this.rows = new Int32Array(vocab);
  }

  /** Forget the touched rows and zero them (cost proportional to the rows touched, not the table). */
  reset(): void {
    for (let i = 0; i < this.count; i++) {
      const r = this.rows[i];
      this.isTouched[r] = 0;
      this.grad.fill(0, r * this.dim, (r + 1) * this.dim);
    }
    this.count = 0;
  }

  /** Scatter dL/dX[:, col:col+dim] back into the rows the bag read. */
  accumulate(gx: Float32Array, xCols: number, col: number, idx: Int32Array, w: Float32Array, m: number, len: number): void {
    const dim = this.dim;
    const g = this.grad;
    for (let r = 0; r < m; r++) {
      const go = r * xCols + col;
      const io = r * len;
      for (let j = 0; j < len; j++) {
        const wt = w[io + j];
        if (wt === 0) continue;
        const row = idx[io + j];
        if (!this.isTouched[row]) {
          this.isTouched[row] = 1;
          this.rows[this.count++] = row;
        }
        axpy(g, row * dim, wt, gx, go, dim);
      }
    }
  }

  /** Touched rows in ascending order (a fixed update order keeps runs bit-for-bit reproducible). */
  sortedRows(): Int32Array {
    return this.rows.subarray(0, this.count).sort();
  }
}
