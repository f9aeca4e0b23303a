/**
 * Fused in-batch sampled softmax with temperature, log-Q correction, accidental-hit masking and one explicit
 * negative per row, forward and backward in one pass over the score matrix.
 *
 * Row i scores its own positive (column i) against the other positives of the batch (columns j ≠ i) and, when the
 * user has one, an explicit negative ("hard negative", from their nopes):
 *   z_ij = S_ij / τ − log(B · q_j)        (in-batch columns; q_j = the item's share of training positives, so
 *                                           B·q_j is its expected count in a batch: Yi et al. 2019, log-Q correction)
 *   z_ih = H_i / τ                         (the explicit negative: not sampled by popularity, so no correction)
 * Columns j ≠ i holding the same item as row i, or another positive of the same user, are masked (they are not
 * negatives). Loss = mean over rows of −log softmax(z_i)_i.
 *
 * Unfused in TF.js this is about a dozen kernels over B×B tensors (divide, subtract, mask select, max, exp, sum,
 * log, gather, and their gradients; measured ~5× slower on wasm than this loop); here it is one read of S and one
 * write of dL/dS. Any contiguous block of rows can be computed on its own (the two halves of a batch run on two
 * threads), and the result does not depend on how the rows were split.
 */
import { type SoftmaxKernel, wasmInBatchSoftmax } from './wasm-softmax.js';

export interface InBatchSoftmaxInput {
  /** Raw dot products S[i, j] = u_i · v_j of rows [rowStart, rowStart + rows), row-major [rows, b]. */
  scores: Float32Array;
  b: number;
  rowStart: number;
  rows: number;
  temperature: number;
  /** log(b · q_j) per column (all b). */
  logQ: Float32Array;
  /** Identity of the item in column j / the user of row i (all b; masking). */
  itemKey: Int32Array;
  userKey: Int32Array;
  /** u_i · n_i for these rows; NaN for rows without an explicit negative. */
  hardScores: Float32Array;
}

export interface InBatchSoftmaxOutput {
  /** This block's share of the batch loss (the block losses of a batch add up to the batch loss). */
  loss: number;
  /** dL/dS for these rows, [rows, b]. */
  gScores: Float32Array;
  /** dL/dH_i for these rows (0 for rows without an explicit negative). */
  gHard: Float32Array;
  /** Rows whose positive outscored every other candidate. */
  correct: number;
}

let wasmKernel: SoftmaxKernel | null | undefined;

/**
 * `out` (rows × b), when given, receives dL/dS (e.g. a block of the batch's full gradient matrix). Runs the
 * WebAssembly SIMD kernel (wasm-softmax.ts, float32) wherever WebAssembly SIMD exists, whatever the TF.js backend,
 * so every thread of a run computes the same numbers; `inBatchSoftmaxJs` (float64) otherwise and as the reference.
 */
export function inBatchSoftmax(input: InBatchSoftmaxInput, out?: Float32Array): InBatchSoftmaxOutput {
  if (wasmKernel === undefined) wasmKernel = wasmInBatchSoftmax() ?? null;
  return wasmKernel ? wasmKernel(input, out) : inBatchSoftmaxJs(input, out);
}

/** The formula in plain JS, float64: the reference of the WebAssembly kernel, and its fallback. */
export function inBatchSoftmaxJs(input: InBatchSoftmaxInput, out?: Float32Array): InBatchSoftmaxOutput {
  const { scores, b, rowStart, rows, temperature, logQ, itemKey, userKey, hardScores } = input;
  const invTau = 1 / temperature;
  const g = out ?? new Float32Array(rows * b);
  const gh = new Float32Array(rows);
  const z = new Float64Array(b);
  const wi = 1 / b;
  let loss = 0;
  let correct = 0;
  for (let r = 0; r < rows; r++) {
    const i = rowStart + r;
    const ro = r * b;
    const ik = itemKey[i];
    const uk = userKey[i];
    let max = -Infinity;
    for (let j = 0; j < b; j++) {
      if (j !== i && (itemKey[j] === ik || userKey[j] === uk)) {
        z[j] = -Infinity;
        continue;
      }
      const v = scores[ro + j] * invTau - logQ[j];
      z[j] = v;
      if (v > max) max = v;
    }
    const hasHard = !Number.isNaN(hardScores[r]);
    const zh = hasHard ? hardScores[r] * invTau : -Infinity;
    if (zh > max) max = zh;
    if (z[i] >= max) correct++;
    const zi = z[i];
    // One exp per candidate: keep exp(z − max), normalise afterwards.
    let sum = 0;
    for (let j = 0; j < b; j++) {
      const e = Math.exp(z[j] - max);
      z[j] = e;
      sum += e;
    }
    const eh = hasHard ? Math.exp(zh - max) : 0;
    sum += eh;
    loss += wi * (max + Math.log(sum) - zi);
    const scale = (wi * invTau) / sum;
    for (let j = 0; j < b; j++) g[ro + j] = scale * z[j];
    g[ro + i] -= wi * invTau;
    gh[r] = scale * eh;
  }
  return { loss, gScores: g, gHard: gh, correct };
}
