import { describe, expect, it } from 'vitest';
import { Rng } from '../rng.js';
import { type InBatchSoftmaxInput, inBatchSoftmaxJs } from './in-batch-softmax.js';
import { wasmInBatchSoftmax } from './wasm-softmax.js';

/** A batch with repeated items and users (masked columns) and explicit negatives on some rows. */
function batch(rng: Rng, b: number, temperature: number): InBatchSoftmaxInput {
  return {
    scores: Float32Array.from({ length: b * b }, () => rng.uniform(-1, 1)),
    b,
    rowStart: 0,
    rows: b,
    temperature,
    logQ: Float32Array.from({ length: b }, () => rng.uniform(-6, 1)),
    itemKey: Int32Array.from({ length: b }, () => rng.int(Math.max(2, b >> 1))),
    userKey: Int32Array.from({ length: b }, () => rng.int(Math.max(2, b >> 2))),
    hardScores: Float32Array.from({ length: b }, () => (rng.uniform(0, 1) < 0.3 ? Number.NaN : rng.uniform(-1, 1))),
  };
}

const maxRel = (a: Float32Array, b: Float32Array, floor: number) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]) / Math.max(Math.abs(b[i]), floor));
  return m;
};

describe('WebAssembly in-batch softmax', () => {
  const kernel = wasmInBatchSoftmax()!;

  it('equals the float64 JS formula to float32 precision (padded and unpadded widths, masks, explicit negatives)', () => {
    const rng = new Rng(31);
    for (const [b, tau] of [
      [1, 0.1],
      [6, 0.1],
      [7, 0.05],
      [64, 0.05],
      [130, 1],
    ] as const) {
      const input = batch(rng, b, tau);
      const want = inBatchSoftmaxJs(input);
      const got = kernel(input);
      expect(got.loss).toBeCloseTo(want.loss, 5);
      expect(got.correct).toBe(want.correct);
      // relative to the row's largest gradient scale (1/(bτ)): tiny entries are compared absolutely
      expect(maxRel(got.gScores, want.gScores, 1 / (b * tau))).toBeLessThan(2e-5);
      expect(maxRel(got.gHard, want.gHard, 1 / (b * tau))).toBeLessThan(2e-5);
    }
  });

  it('a block of rows gives the same numbers as those rows of the whole batch, and writes into `out`', () => {
    const rng = new Rng(32);
    const b = 37;
    const input = batch(rng, b, 0.05);
    const whole = kernel(input);
    const out = new Float32Array((b - 10) * b);
    const block = kernel({ ...input, rowStart: 10, rows: b - 10, scores: input.scores.subarray(10 * b), hardScores: input.hardScores.subarray(10) }, out);
    expect(block.gScores).toBe(out);
    expect(Array.from(out)).toEqual(Array.from(whole.gScores.subarray(10 * b)));
    expect(Array.from(block.gHard)).toEqual(Array.from(whole.gHard.subarray(10)));
  });

  it('masked columns get exactly zero gradient', () => {
    const input = batch(new Rng(33), 12, 0.1);
    input.itemKey.fill(5); // every column holds row 0's item: all but the diagonal are masked
    input.hardScores.fill(Number.NaN);
    const got = kernel(input);
    for (let r = 0; r < 12; r++)
      for (let j = 0; j < 12; j++) {
        // one candidate left: p = 1, so p − 1 = 0 up to the float32 rounding of 1/(bτ)
        if (j === r) expect(Math.abs(got.gScores[r * 12 + j])).toBeLessThan(1e-6);
        else expect(got.gScores[r * 12 + j]).toBe(0);
      }
    expect(got.loss).toBeCloseTo(0, 6);
    expect(got.correct).toBe(12);
  });
});
