/**
 * Dense matrix products for the training step, on row-major Float32Arrays.
 *
 * Measured on our 2-core machines (tfjs 4.22, see BENCHMARKS/report): the wasm backend's BatchMatMul runs at
 * ~17–23 GFLOP/s when neither operand is transposed, but only ~1–1.5 GFLOP/s with `transposeA` or `transposeB`,
 * which is what TF.js's own MatMul gradient uses. So every product here is issued untransposed and callers pass
 * explicitly transposed operands (transposing in JS costs well under 1 ms at our sizes). On the pure-JS cpu
 * backend, tfjs's matMul reaches ~0.3–0.8 GFLOP/s; `jsMatMul` (4-row register blocking) reaches ~0.8–1.6.
 */
import type { Tf } from '../tf.js';

export interface MatMul {
  /** Which implementation (for reports): `tf-wasm`, `tf-cpu`, `js`. */
  readonly name: string;
  /** C[m,n] = A[m,k] · B[k,n]. Returns a new array, or fills `out` when given. */
  mm(a: Float32Array, b: Float32Array, m: number, k: number, n: number, out?: Float32Array): Float32Array;
}

/** Through the active TF.js backend, untransposed, each call inside its own tidy (no tensor survives it). */
export function tfMatMul(tf: Tf): MatMul {
  // On wasm the result can be copied straight out of the module's heap into `out` (dataSync would allocate a
  // fresh array per product, which showed up as garbage-collection time in profiles).
  const heapView = (tf.backend() as { typedArrayFromHeap?: (t: { shape: number[]; dtype: string; dataId: object }) => Float32Array })
    .typedArrayFromHeap;
  const backend = tf.backend();
  return {
    name: `tf-${tf.getBackend()}`,
    mm(a, b, m, k, n, out) {
      const result = tf.tidy(() => tf.matMul(tf.tensor2d(a, [m, k]), tf.tensor2d(b, [k, n])));
      try {
        if (out && heapView) {
          out.set(heapView.call(backend, result));
          return out;
        }
        const data = result.dataSync() as Float32Array;
        if (!out) return data;
        out.set(data);
        return out;
      } finally {
        result.dispose();
      }
    },
  };
}

/** Pure-JS product: four rows of A at a time so each streamed row of B is used four times per load. */
export function jsMatMul(): MatMul {
  return { name: 'js', mm: jsMm };
}

export function jsMm(a: Float32Array, b: Float32Array, m: number, k: number, n: number, out?: Float32Array): Float32Array {
  const c = out ?? new Float32Array(m * n);
  c.fill(0, 0, m * n);
  let i = 0;
  for (; i + 3 < m; i += 4) {
    const c0 = i * n;
    const c1 = c0 + n;
    const c2 = c1 + n;
    const c3 = c2 + n;
    const a0 = i * k;
    const a1 = a0 + k;
    const a2 = a1 + k;
    const a3 = a2 + k;
    for (let p = 0; p < k; p++) {
      const x0 = a[a0 + p];
      const x1 = a[a1 + p];
      const x2 = a[a2 + p];
      const x3 = a[a3 + p];
      if (x0 === 0 && x1 === 0 && x2 === 0 && x3 === 0) continue; // ReLU outputs and bag rows are often zero
      const bp = p * n;
      for (let j = 0; j < n; j++) {
        const bv = b[bp + j];
        c[c0 + j] += x0 * bv;
        c[c1 + j] += x1 * bv;
        c[c2 + j] += x2 * bv;
        c[c3 + j] += x3 * bv;
      }
    }
  }
  for (; i < m; i++) {
    const ci = i * n;
    for (let p = 0; p < k; p++) {
      const x = a[i * k + p];
      if (x === 0) continue;
      const bp = p * n;
      for (let j = 0; j < n; j++) c[ci + j] += x * b[bp + j];
    }
  }
  return c;
}

/** out[c, r] = a[r, c]: an explicit transpose (see the module comment for why). */
export function transpose(a: Float32Array, rows: number, cols: number, out?: Float32Array): Float32Array {
  const t = out ?? new Float32Array(rows * cols);
  // Blocked so both the reads and the writes stay within a few cache lines.
  const BLOCK = 32;
  for (let r0 = 0; r0 < rows; r0 += BLOCK) {
    const r1 = Math.min(rows, r0 + BLOCK);
    for (let c0 = 0; c0 < cols; c0 += BLOCK) {
      const c1 = Math.min(cols, c0 + BLOCK);
      for (let r = r0; r < r1; r++) {
        const ro = r * cols;
        for (let c = c0; c < c1; c++) t[c * rows + r] = a[ro + c];
      }
    }
  }
  return t;
}

/** Pick the product for a backend: TF.js on wasm/native, the JS kernel on the pure-JS cpu backend. */
export function matMulFor(tf: Tf, backend: string): MatMul {
  return backend === 'cpu' ? jsMatMul() : tfMatMul(tf);
}
