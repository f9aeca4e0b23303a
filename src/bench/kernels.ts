/**
 * The training step's matrix products (issue 4), side by side: TF.js's wasm MatMul (XNNPACK, what am-ml used before)
 * against am-ml's WebAssembly kernel in its fused (relaxed SIMD) and plain-SIMD builds, on the shapes of the default
 * model's step (batch 1024: item tower rows 2048, input width 210, hidden 256, output 128). GFLOP/s of each, fastest
 * of 3 rounds, each timing the product as the step calls it (copies in and out included).
 */
import { tfMatMul, type MatMul } from '../ml/kernels/matmul.js';
import { wasmGemm } from '../ml/kernels/wasm-gemm.js';
import { initTf, tf } from '../ml/tf.js';
import { Rng } from '../ml/rng.js';
import type { Benchmark } from './types.js';

/** [name, m, k, n, operand form] of the step's products. */
const SHAPES: Array<[string, number, number, number, 'mm' | 'mmAt' | 'mmBt']> = [
  ['item layer 1 forward', 2048, 210, 256, 'mm'],
  ['item layer 1 weight grad', 210, 2048, 256, 'mmAt'],
  ['item layer 1 input grad', 2048, 256, 210, 'mmBt'],
  ['scores (half batch)', 512, 128, 1024, 'mmBt'],
  ['item grad Gᵀ·U', 1024, 1024, 128, 'mmAt'],
];

function gflops(mm: MatMul, form: 'mm' | 'mmAt' | 'mmBt', m: number, k: number, n: number, rng: Rng): number {
  const a = Float32Array.from({ length: m * k }, () => rng.normal());
  const b = Float32Array.from({ length: k * n }, () => rng.normal());
  const out = new Float32Array(m * n);
  const run = () => mm[form](a, b, m, k, n, out);
  for (let i = 0; i < 3; i++) run();
  let best = Infinity;
  for (let round = 0; round < 3; round++) {
    const t0 = performance.now();
    for (let i = 0; i < 5; i++) run();
    best = Math.min(best, (performance.now() - t0) / 5);
  }
  return (2 * m * k * n) / best / 1e6;
}

export const benchmarks: Benchmark[] = [
  {
    name: 'kernels.matmul-wasm',
    issue: 4,
    description:
      "GFLOP/s of the training step's matrix products: TF.js wasm MatMul (XNNPACK) vs am-ml's WebAssembly kernel, fused (relaxed SIMD) and plain-SIMD builds; geometric mean over the step's five product shapes",
    repeats: 3,
    units: { xnnpackGflops: 'GFLOP/s', amMlFmaGflops: 'GFLOP/s', amMlSimdGflops: 'GFLOP/s', fmaVsXnnpack: '×' },
    async run(ctx) {
      await initTf('wasm');
      const impls = { xnnpack: tfMatMul(tf), fma: wasmGemm('fma'), simd: wasmGemm('simd') };
      if (!impls.fma || !impls.simd) throw new Error('this runtime does not validate the WebAssembly kernels');
      const logSums = { xnnpack: 0, fma: 0, simd: 0 };
      for (const [name, m, k, n, form] of SHAPES) {
        const line: string[] = [];
        for (const key of ['xnnpack', 'fma', 'simd'] as const) {
          const g = gflops(impls[key]!, form, m, k, n, new Rng(9));
          logSums[key] += Math.log(g);
          line.push(`${key} ${g.toFixed(1)}`);
        }
        ctx.log(`  ${name} (${m}×${k}×${n}, ${form}): ${line.join(', ')} GFLOP/s`);
      }
      const mean = (key: keyof typeof logSums) => Math.exp(logSums[key] / SHAPES.length);
      return { xnnpackGflops: mean('xnnpack'), amMlFmaGflops: mean('fma'), amMlSimdGflops: mean('simd'), fmaVsXnnpack: mean('fma') / mean('xnnpack') };
    },
  },
];
