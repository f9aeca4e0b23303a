import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Rng } from '../rng.js';
import { jsMatMul, matMulFor, tfMatMul, transpose } from './matmul.js';
import { wasmGemm } from './wasm-gemm.js';
import { type WasmKernelsVariant, wasmKernelsVariant } from './wasm-kernels.js';
import { tf } from '../tf.js';

/** C = A·B in float64, the reference both builds must match. */
function naive(a: Float32Array, b: Float32Array, m: number, k: number, n: number): Float64Array {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let p = 0; p < k; p++) for (let j = 0; j < n; j++) c[i * n + j] += a[i * k + p] * b[p * n + j];
  return c;
}

/** Largest difference relative to the size of the terms summed (sum of |a|·|b| over k). */
function relativeError(got: Float32Array, a: Float32Array, b: Float32Array, m: number, k: number, n: number): number {
  const want = naive(a, b, m, k, n);
  const absA = a.map(Math.abs);
  const absB = b.map(Math.abs);
  const scale = naive(absA, absB, m, k, n);
  let worst = 0;
  for (let i = 0; i < m * n; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]) / Math.max(scale[i], 1e-30));
  return worst;
}

const random = (rng: Rng, n: number) => Float32Array.from({ length: n }, () => rng.normal());

describe('wasm GEMM', () => {
  it('uses the fused build where Node can turn relaxed SIMD on (process.getBuiltinModule: Node ≥ 20.16)', () => {
    const expected = typeof (process as { getBuiltinModule?: unknown }).getBuiltinModule === 'function' ? 'fma' : 'simd';
    expect(wasmKernelsVariant()).toBe(expected);
    expect(matMulFor(tf, 'wasm').name).toBe(`wasm-gemm-${expected}`);
    expect(matMulFor(tf, 'cpu').name).toBe('js');
  });

  for (const variant of ['fma', 'simd'] as WasmKernelsVariant[]) {
    it(`${variant}: equals a float64 product to float32 rounding on edge shapes (rows past 4, columns past 8, depth past a block)`, () => {
      const mm = wasmGemm(variant)!;
      const rng = new Rng(variant === 'fma' ? 11 : 12);
      for (const [m, k, n] of [
        [1, 1, 1],
        [3, 5, 7],
        [4, 8, 8],
        [5, 9, 9],
        [9, 256, 17],
        [67, 257, 16],
        [130, 513, 210],
        [2, 1, 33],
      ]) {
        const a = random(rng, m * k);
        const b = random(rng, k * n);
        const got = mm.mm(a, b, m, k, n);
        expect(got.length).toBe(m * n);
        // k sequential float32 roundings: error ≤ k·2⁻²⁴ relative to Σ|a||b|, far below it in practice
        expect(relativeError(got, a, b, m, k, n)).toBeLessThan(Math.max(k, 4) * 2 ** -24);
      }
    });
  }

  for (const variant of ['fma', 'simd'] as WasmKernelsVariant[]) {
    it(`${variant}: mmAt and mmBt take a transposed operand as it is (packed by the kernel) and equal the product of the explicit transpose, bit for bit`, () => {
      const mm = wasmGemm(variant)!;
      const rng = new Rng(21);
      for (const [m, k, n] of [
        [1, 1, 1],
        [5, 3, 9],
        [9, 300, 13],
        [70, 40, 210],
      ]) {
        const a = random(rng, m * k);
        const b = random(rng, k * n);
        const want = mm.mm(a, b, m, k, n);
        expect(Array.from(mm.mmAt(transpose(a, m, k), b, m, k, n))).toEqual(Array.from(want));
        expect(Array.from(mm.mmBt(a, transpose(b, k, n), m, k, n))).toEqual(Array.from(want));
      }
    });
  }

  it('the JS and TF.js products give mmAt and mmBt through explicit transposes', () => {
    const rng = new Rng(22);
    const [m, k, n] = [6, 5, 7];
    const a = random(rng, m * k);
    const b = random(rng, k * n);
    for (const mm of [jsMatMul(), tfMatMul(tf)]) {
      const want = mm.mm(a, b, m, k, n);
      expect(Array.from(mm.mmAt(transpose(a, m, k), b, m, k, n))).toEqual(Array.from(want));
      expect(Array.from(mm.mmBt(a, transpose(b, k, n), m, k, n))).toEqual(Array.from(want));
    }
  });

  it('writes into `out`, reuses its memory after a larger product, and handles empty shapes', () => {
    const mm = wasmGemm()!;
    const rng = new Rng(3);
    const small = { a: random(rng, 6 * 10), b: random(rng, 10 * 12) };
    const first = mm.mm(small.a, small.b, 6, 10, 12);
    mm.mm(random(rng, 300 * 400), random(rng, 400 * 500), 300, 400, 500); // grows the instance's memory
    const out = new Float32Array(6 * 12 + 5).fill(7);
    expect(mm.mm(small.a, small.b, 6, 10, 12, out)).toBe(out);
    expect(Array.from(out.subarray(0, 72))).toEqual(Array.from(first));
    expect(Array.from(out.subarray(72))).toEqual([7, 7, 7, 7, 7]); // nothing past m·n touched
    expect(Array.from(mm.mm(new Float32Array(0), new Float32Array(0), 2, 0, 3))).toEqual([0, 0, 0, 0, 0, 0]);
    expect(mm.mm(new Float32Array(0), random(rng, 12), 0, 4, 3).length).toBe(0);
  });

  it('the two builds differ only by the rounding of the multiply-add', () => {
    const rng = new Rng(4);
    const [m, k, n] = [33, 300, 40];
    const a = random(rng, m * k);
    const b = random(rng, k * n);
    const fused = wasmGemm('fma')!.mm(a, b, m, k, n);
    const plain = wasmGemm('simd')!.mm(a, b, m, k, n);
    expect(relativeError(fused, a, b, m, k, n)).toBeLessThan(k * 2 ** -24);
    expect(relativeError(plain, a, b, m, k, n)).toBeLessThan(k * 2 ** -24);
  });

  it('src/ml/kernels/wasm-kernels.generated.ts is what scripts/build-wasm-kernels.mjs assembles', () => {
    const script = path.resolve(import.meta.dirname, '../../../scripts/build-wasm-kernels.mjs');
    expect(() => execFileSync(process.execPath, [script, '--check'], { stdio: 'pipe' })).not.toThrow();
  });
});
