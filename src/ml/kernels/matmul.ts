/**
 * Dense matrix products for the training step and the evaluation, on row-major Float32Arrays.
 *
 * Three implementations behind one interface: am-ml's WebAssembly kernel (wasm-gemm.ts) on the wasm backend,
 * TF.js's product on the native backend, a JS kernel on the pure-JS cpu backend. The backward pass needs products
 * with a transposed operand (Xᵀ·G, G·Wᵀ); the wasm kernel reads those operands in place, the others transpose them
 * explicitly first, because TF.js's own transposed MatMul on wasm ran ~15× slower than the untransposed one
 * (~1–1.5 vs ~17–23 GFLOP/s, tfjs 4.22). On the cpu backend tfjs's matMul reaches ~0.3–0.8 GFLOP/s, `jsMatMul`
 * (4-row register blocking) ~0.8–1.6.
 */
import type { Tf } from '../tf.js';
import { wasmGemm } from './wasm-gemm.js';

export interface MatMul {
  /** Which implementation (for reports): `tf-wasm`, `tf-cpu`, `js`. */
  readonly name: string;
  /** C[m,n] = A[m,k] · B[k,n]. Returns a new array, or fills `out` when given. */
  mm(a: Float32Array, b: Float32Array, m: number, k: number, n: number, out?: Float32Array): Float32Array;
  /** C[m,n] = Aᵀ · B where `at` holds A transposed, [k,m] (a weight gradient Xᵀ·G without transposing X first). */
  mmAt(at: Float32Array, b: Float32Array, m: number, k: number, n: number, out?: Float32Array): Float32Array;
  /** C[m,n] = A · Bᵀ where `bt` holds B transposed, [n,k] (G·Wᵀ, U·Vᵀ without transposing W or V first). */
  mmBt(a: Float32Array, bt: Float32Array, m: number, k: number, n: number, out?: Float32Array): Float32Array;
}

/** mmAt and mmBt for a product that only multiplies untransposed operands: transpose explicitly, into reused scratch. */
function withExplicitTransposes(name: string, mm: MatMul['mm']): MatMul {
  let scratch = new Float32Array(0);
  const take = (n: number) => (scratch.length >= n ? scratch : (scratch = new Float32Array(n))).subarray(0, n);
  return {
    name,
    mm,
    mmAt: (at, b, m, k, n, out) => mm(transpose(at.subarray(0, k * m), k, m, take(k * m)), b, m, k, n, out),
    mmBt: (a, bt, m, k, n, out) => mm(a, transpose(bt.subarray(0, n * k), n, k, take(n * k)), m, k, n, out),
  };
}

/** Through the active TF.js backend, untransposed, each call inside its own tidy (no tensor survives it). */
export function tfMatMul(tf: Tf): MatMul {
  // On wasm the result can be copied straight out of the module's heap into `out` (dataSync would allocate a
  // fresh array per product, which showed up as garbage-collection time in profiles).
  const heapView = (tf.backend() as { typedArrayFromHeap?: (t: { shape: number[]; dtype: string; dataId: object }) => Float32Array })
    .typedArrayFromHeap;
  const backend = tf.backend();
  return withExplicitTransposes(`tf-${tf.getBackend()}`, (a, b, m, k, n, out) => {
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
  });
}

/** Pure-JS product: four rows of A at a time so each streamed row of B is used four times per load. */
export function jsMatMul(): MatMul {
  return withExplicitTransposes('js', jsMm);
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

/**
 * Pick the product for a backend: am-ml's WebAssembly kernel on the wasm backend (faster than TF.js's there, see
 * wasm-gemm.ts; TF.js's where WebAssembly SIMD is missing), TF.js's on the native backend, the JS kernel on the
 * pure-JS cpu backend.
 */
export function matMulFor(tf: Tf, backend: string): MatMul {
  if (backend === 'cpu') return jsMatMul();
  if (backend === 'wasm') return wasmGemm() ?? tfMatMul(tf);
  return tfMatMul(tf);
}
