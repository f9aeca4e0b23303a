/**
 * The fused in-batch softmax (in-batch-softmax.ts) in WebAssembly SIMD, float32 like Keras: the same formula, four
 * columns at a time. Why: in JS the exp of every score was a call into V8's C++ `Math.exp` (~10 ns each, over a
 * million per step, about 25 ms of the step's CPU on two threads); a vector polynomial exp (Cephes expf, ~1 ulp)
 * does four in a few nanoseconds. The row sums are accumulated in float64, and the loss (which needs a log, which
 * WebAssembly does not have) is summed here in JS from the per-row statistics the kernel writes.
 */
import type { InBatchSoftmaxInput, InBatchSoftmaxOutput } from './in-batch-softmax.js';
import { ensureMemory, kernelInstance, type KernelExports } from './wasm-kernels.js';

export type SoftmaxKernel = (input: InBatchSoftmaxInput, out?: Float32Array) => InBatchSoftmaxOutput;

/** The kernel on its own instance, or undefined where WebAssembly SIMD is unavailable. */
export function wasmInBatchSoftmax(): SoftmaxKernel | undefined {
  const instance = kernelInstance();
  if (!instance) return undefined;
  const ex: KernelExports = instance;
  let f32 = new Float32Array(ex.memory.buffer);
  let i32 = new Int32Array(ex.memory.buffer);
  let f64 = new Float64Array(ex.memory.buffer);

  return (input, out) => {
    const { scores, b, rowStart, rows, temperature, logQ, itemKey, userKey, hardScores } = input;
    const invTau = 1 / temperature;
    const wi = 1 / b;
    // Columns are padded to a multiple of 4: a padding column has logQ = +∞ (so z = −∞, exp = 0) and no key.
    const bs = (b + 3) & ~3;
    const at = { s: 0, logQ: rows * bs, itemKey: rows * bs + bs, userKey: rows * bs + 2 * bs, hard: rows * bs + 3 * bs };
    const statsFloat = (at.hard + rows + 1) & ~1; // 8-byte aligned
    const end = statsFloat + rows * 8;
    if (ensureMemory(ex.memory, end * 4)) {
      f32 = new Float32Array(ex.memory.buffer);
      i32 = new Int32Array(ex.memory.buffer);
      f64 = new Float64Array(ex.memory.buffer);
    }
    if (bs === b) f32.set(scores.subarray(0, rows * b), at.s);
    else
      for (let r = 0; r < rows; r++) {
        f32.set(scores.subarray(r * b, (r + 1) * b), at.s + r * bs);
        f32.fill(0, at.s + r * bs + b, at.s + (r + 1) * bs);
      }
    f32.set(logQ.subarray(0, b), at.logQ);
    f32.fill(Infinity, at.logQ + b, at.logQ + bs);
    i32.set(itemKey.subarray(0, b), at.itemKey);
    i32.fill(-1, at.itemKey + b, at.itemKey + bs);
    i32.set(userKey.subarray(0, b), at.userKey);
    i32.fill(-1, at.userKey + b, at.userKey + bs);
    f32.set(hardScores.subarray(0, rows), at.hard);
    ex.softmax_rows(at.s * 4, rows, bs, rowStart, invTau, at.logQ * 4, at.itemKey * 4, at.userKey * 4, at.hard * 4, statsFloat * 4, wi * invTau);

    const g = out ?? new Float32Array(rows * b);
    if (bs === b) g.set(f32.subarray(at.s, at.s + rows * b));
    else for (let r = 0; r < rows; r++) g.set(f32.subarray(at.s + r * bs, at.s + r * bs + b), r * b);
    const gh = new Float32Array(rows);
    let loss = 0;
    let correct = 0;
    const stats = statsFloat / 2;
    for (let r = 0; r < rows; r++) {
      const max = f64[stats + 4 * r];
      const zi = f64[stats + 4 * r + 1];
      const sum = f64[stats + 4 * r + 2];
      const eh = f64[stats + 4 * r + 3];
      loss += wi * (max + Math.log(sum) - zi);
      if (zi >= max) correct++;
      gh[r] = ((wi * invTau) / sum) * eh;
      g[r * b + rowStart + r] -= wi * invTau;
    }
    return { loss, gScores: g, gHard: gh, correct };
  };
}
