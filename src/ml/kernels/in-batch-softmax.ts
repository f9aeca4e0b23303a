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
 * negatives). Loss = weighted mean over rows of −log softmax(z_i)_i.
 *
 * Unfused in TF.js this is about a dozen kernels over B×B tensors (divide, subtract, mask select, max, exp, sum,
 * log, gather, and their gradients); here it is one read of S and one write of dL/dS.
 */
import { transpose } from './matmul.js';

export interface InBatchSoftmaxInput {
  /** Raw dot products S[i, j] = u_i · v_j, row-major [b, b]. */
  scores: Float32Array;
  b: number;
  temperature: number;
  /** log(b · q_j) per column. */
  logQ: Float32Array;
  /** Identity of the item in column j / the user of row i (masking). */
  itemKey: Int32Array;
  userKey: Int32Array;
  /** u_i · n_i for rows with an explicit negative; NaN for rows without one. */
  hardScores: Float32Array;
  /** Per-row weights (default 1). */
  weights?: Float32Array;
}

export interface InBatchSoftmaxOutput {
  loss: number;
  /** dL/dS [b, b] and its transpose [b, b] (both are multiplied by embeddings next). */
  gScores: Float32Array;
  gScoresT: Float32Array;
  /** dL/dH_i (0 for rows without an explicit negative). */
  gHard: Float32Array;
  /** Share of rows whose positive outscored every other candidate. */
  accuracy: number;
}

export function inBatchSoftmax(input: InBatchSoftmaxInput, scratch?: InBatchSoftmaxOutput): InBatchSoftmaxOutput {
  const { scores, b, temperature, logQ, itemKey, userKey, hardScores, weights } = input;
  const invTau = 1 / temperature;
  const g = scratch?.gScores.length === b * b ? scratch.gScores : new Float32Array(b * b);
  const gh = scratch?.gHard.length === b ? scratch.gHard : new Float32Array(b);
  const z = new Float64Array(b);
  let wSum = 0;
  for (let i = 0; i < b; i++) wSum += weights ? weights[i] : 1;
  let loss = 0;
  let correct = 0;
  for (let i = 0; i < b; i++) {
    const ro = i * b;
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
    const hasHard = !Number.isNaN(hardScores[i]);
    const zh = hasHard ? hardScores[i] * invTau : -Infinity;
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
    const wi = (weights ? weights[i] : 1) / wSum;
    loss += wi * (max + Math.log(sum) - zi);
    const scale = (wi * invTau) / sum;
    for (let j = 0; j < b; j++) g[ro + j] = scale * z[j];
    g[ro + i] -= wi * invTau;
    gh[i] = scale * eh;
  }
  const gT = transpose(g, b, b, scratch?.gScoresT.length === b * b ? scratch.gScoresT : undefined);
  return { loss, gScores: g, gScoresT: gT, gHard: gh, accuracy: correct / b };
}
