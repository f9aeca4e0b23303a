/**
 * am-ml's own WebAssembly matrix product (module: wasm-kernels.ts), used for training and evaluation on the wasm
 * backend.
 *
 * Why not TF.js's wasm MatMul: it calls XNNPACK, which is built for plain 128-bit WebAssembly SIMD, where a
 * multiply-add is two instructions; on our 2-core Xeons it peaks at ~24 GFLOP/s per core on the training step's
 * shapes. Relaxed SIMD's `f32x4.relaxed_madd` compiles to one FMA instruction on CPUs that have one, and with a
 * 4 × 8 register-blocked micro-kernel (scripts/build-wasm-kernels.mjs) this module reaches 33–38 GFLOP/s including
 * packing and copies (~41 in the kernel alone); the plain-SIMD build of the same code 28–31. Measured side by side on
 * the step's products: `npm run bench -- --only kernels.matmul`.
 *
 * Where relaxed SIMD does not validate the plain-SIMD build is used (wasm-kernels.ts); where WebAssembly SIMD is
 * missing altogether, `wasmGemm()` returns undefined and callers keep TF.js's product.
 *
 * Numerics: each element of C is accumulated in increasing k order, one (fused, where the CPU has FMA)
 * multiply-add at a time, so results are deterministic for a given machine and do not depend on the blocking.
 */
import type { MatMul } from './matmul.js';
import { ensureMemory, kernelInstance, type WasmKernelsVariant, wasmKernelsVariant } from './wasm-kernels.js';

/** Depth and row blocking (measured best on the step's shapes: 39–42 GFLOP/s for every shape at 256 / 64). */
const KC = 256;
const MC = 64;

/**
 * A MatMul on its own WebAssembly instance (its memory grows to the largest product seen and is reused), or
 * undefined where WebAssembly SIMD is unavailable. `variant` forces one build (tests compare the two).
 */
export function wasmGemm(variant: WasmKernelsVariant | undefined = wasmKernelsVariant()): MatMul | undefined {
  const instance = kernelInstance(variant);
  if (!instance) return undefined;
  const ex = instance;
  let heap = new Float32Array(ex.memory.buffer);

  /** Float offsets of A as given, A packed (transposed A only), raw B, packed B and C, growing the memory. */
  function layout(m: number, k: number, n: number, n8: number, packA: boolean) {
    const align = (x: number) => (x + 3) & ~3; // 16-byte aligned regions
    const a = 0;
    const ap = align(a + m * k);
    const b = align(ap + (packA ? ((m + 3) >> 2) * 4 * k : 0));
    const bp = align(b + k * n);
    const c = align(bp + k * n8);
    const end = c + m * n8;
    if (ensureMemory(ex.memory, end * 4)) heap = new Float32Array(ex.memory.buffer);
    return { a, ap, b, bp, c };
  }

  /**
   * C[m,n] = A·B with A row-major [m,k] (or given transposed, [k,m]) and B row-major [k,n] (or transposed, [n,k]).
   * A transposed B is packed into the same panels as a plain one; a transposed A is packed into groups of four
   * rows, so the micro-kernel reads both operands front to back whatever form they came in.
   */
  function product(a: Float32Array, aTransposed: boolean, b: Float32Array, bTransposed: boolean, m: number, k: number, n: number, out?: Float32Array) {
    const c = out ?? new Float32Array(m * n);
    if (m === 0 || n === 0) return c;
    if (k === 0) return c.fill(0, 0, m * n);
    const n8 = (n + 7) & ~7;
    const at = layout(m, k, n, n8, aTransposed);
    heap.set(a.subarray(0, m * k), at.a);
    heap.set(b.subarray(0, k * n), at.b);
    if (bTransposed) ex.pack_bt(at.b * 4, at.bp * 4, k, n);
    else ex.pack_b(at.b * 4, at.bp * 4, k, n);
    if (aTransposed) {
      ex.pack_at(at.a * 4, at.ap * 4, k, m);
      ex.gemm(at.ap * 4, 4, 16 * k, 16, at.bp * 4, at.c * 4, m, k, n8, KC, MC);
    } else ex.gemm(at.a * 4, 4 * k, 16 * k, 4, at.bp * 4, at.c * 4, m, k, n8, KC, MC);
    if (n8 !== n) ex.unpad_c(at.c * 4, m, n, n8);
    c.set(heap.subarray(at.c, at.c + m * n));
    return c;
  }

  return {
    name: `wasm-gemm-${variant}`,
    mm: (a, b, m, k, n, out) => product(a, false, b, false, m, k, n, out),
    mmAt: (at, b, m, k, n, out) => product(at, true, b, false, m, k, n, out),
    mmBt: (a, bt, m, k, n, out) => product(a, false, bt, true, m, k, n, out),
  };
}
