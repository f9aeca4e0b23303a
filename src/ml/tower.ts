/**
 * One tower's math for training: weighted embedding bags → concat with numerics → Dense+ReLU layers → Dense →
 * L2 normalisation, with a hand-written backward pass and Adam. The same architecture is built as a TF.js layers
 * model by `model.ts` (for saving and inference); a test checks both give the same outputs and that the gradients
 * here equal TF.js autodiff.
 *
 * Why by hand: TF.js autodiff on the wasm backend issues transposed matmuls (~15× slower there), lacks the
 * Embedding gradient kernel, and updates whole embedding tables; see `kernels/`.
 */
import { type AdamConfig, adamDense, adamRows } from './kernels/adam.js';
import { bagForward, SparseRowGrad } from './kernels/embedding-bag.js';
import type { MatMul } from './kernels/matmul.js';
import type { Rng } from './rng.js';

export interface TowerArch {
  bags: { name: string; vocabularySize: number; embeddingDim: number; maxLen: number }[];
  numericWidth: number;
  /** Hidden layer widths (ReLU), e.g. [256]. */
  hidden: number[];
  outputDim: number;
}

/** Trainable parameters: one table per bag, then kernel and bias per dense layer. */
export interface TowerParams {
  tables: Float32Array[];
  kernels: Float32Array[];
  biases: Float32Array[];
}

/** The rows a tower reads: the layout of `TowerBuffers` (features/rows.ts). */
export interface TowerBatch {
  bagIdx: Int32Array[];
  bagW: Float32Array[];
  bagLen: number[];
  numeric: Float32Array;
  numericWidth: number;
}

/** Embedding init range (Keras' Embedding default: uniform ±0.05). */
export const EMBEDDING_INIT_RANGE = 0.05;
/** L2 normalisation floor on the squared norm (as tf.math.l2_normalize). */
export const L2_EPSILON = 1e-12;

export function inputWidth(arch: TowerArch): number {
  return arch.bags.reduce((s, b) => s + b.embeddingDim, 0) + arch.numericWidth;
}

/** Layer widths: [input, ...hidden, output]. */
export function layerWidths(arch: TowerArch): number[] {
  return [inputWidth(arch), ...arch.hidden, arch.outputDim];
}

/** Seeded initial parameters: bag tables uniform ±0.05 (padding row 0 zero), Glorot-uniform kernels, zero biases. */
export function initTowerParams(arch: TowerArch, rng: Rng): TowerParams {
  const tables = arch.bags.map((b) => {
    const t = new Float32Array(b.vocabularySize * b.embeddingDim);
    for (let i = b.embeddingDim; i < t.length; i++) t[i] = rng.uniform(-EMBEDDING_INIT_RANGE, EMBEDDING_INIT_RANGE);
    return t;
  });
  const widths = layerWidths(arch);
  const kernels: Float32Array[] = [];
  const biases: Float32Array[] = [];
  for (let k = 0; k + 1 < widths.length; k++) {
    const fanIn = widths[k];
    const fanOut = widths[k + 1];
    const limit = Math.sqrt(6 / (fanIn + fanOut));
    const w = new Float32Array(fanIn * fanOut);
    for (let i = 0; i < w.length; i++) w[i] = rng.uniform(-limit, limit);
    kernels.push(w);
    biases.push(new Float32Array(fanOut));
  }
  return { tables, kernels, biases };
}

export function cloneParams(p: TowerParams): TowerParams {
  return { tables: p.tables.map((t) => t.slice()), kernels: p.kernels.map((t) => t.slice()), biases: p.biases.map((t) => t.slice()) };
}

/** FLOPs of one forward pass over `m` rows (matmuls + bag sums), for throughput reports. */
export function towerForwardFlops(arch: TowerArch, m: number): number {
  const w = layerWidths(arch);
  let f = 0;
  for (let k = 0; k + 1 < w.length; k++) f += 2 * m * w[k] * w[k + 1];
  for (const b of arch.bags) f += 2 * m * b.maxLen * b.embeddingDim;
  return f;
}

/**
 * Forward/backward/update for one tower. Buffers grow to the largest batch seen and are reused, so a training run
 * allocates almost nothing per step.
 */
export class TowerTrainer {
  readonly widths: number[];
  readonly inputCols: number;
  private readonly bagOffsets: number[];
  private readonly numericOffset: number;
  private capacity = 0;
  /** Activations per layer input: acts[0] = X, acts[k] = ReLU output of layer k. */
  private acts: Float32Array[] = [];
  private y = new Float32Array(0);
  private norms = new Float32Array(0);
  private z = new Float32Array(0);
  private rows = 0;
  private batch: TowerBatch | undefined;
  // Scratch for the backward pass (reused every step): two gradient buffers used in turn.
  private gradA = new Float32Array(0);
  private gradB = new Float32Array(0);
  // gradients
  private readonly gKernels: Float32Array[];
  private readonly gBiases: Float32Array[];
  private readonly gTables: SparseRowGrad[];
  // Adam moments
  private readonly mKernels: Float32Array[];
  private readonly vKernels: Float32Array[];
  private readonly mBiases: Float32Array[];
  private readonly vBiases: Float32Array[];
  private readonly mTables: Float32Array[];
  private readonly vTables: Float32Array[];

  constructor(
    readonly arch: TowerArch,
    readonly params: TowerParams,
    private readonly mm: MatMul,
  ) {
    this.widths = layerWidths(arch);
    this.inputCols = this.widths[0];
    this.bagOffsets = [];
    let off = 0;
    for (const b of arch.bags) {
      this.bagOffsets.push(off);
      off += b.embeddingDim;
    }
    this.numericOffset = off;
    this.gKernels = params.kernels.map((k) => new Float32Array(k.length));
    this.gBiases = params.biases.map((b) => new Float32Array(b.length));
    this.gTables = arch.bags.map((b) => new SparseRowGrad(b.vocabularySize, b.embeddingDim));
    this.mKernels = params.kernels.map((k) => new Float32Array(k.length));
    this.vKernels = params.kernels.map((k) => new Float32Array(k.length));
    this.mBiases = params.biases.map((b) => new Float32Array(b.length));
    this.vBiases = params.biases.map((b) => new Float32Array(b.length));
    this.mTables = params.tables.map((t) => new Float32Array(t.length));
    this.vTables = params.tables.map((t) => new Float32Array(t.length));
  }

  private ensure(m: number): void {
    if (m <= this.capacity) return;
    this.capacity = m;
    this.acts = this.widths.slice(0, -1).map((w) => new Float32Array(m * w));
    this.y = new Float32Array(m * this.arch.outputDim);
    this.norms = new Float32Array(m);
    this.z = new Float32Array(m * this.arch.outputDim);
    const widest = Math.max(...this.widths);
    this.gradA = new Float32Array(m * widest);
    this.gradB = new Float32Array(m * widest);
  }

  /** Embeddings of rows [0, m) of `batch`: a view into an internal buffer, valid until the next forward. */
  forward(batch: TowerBatch, m: number): Float32Array {
    this.ensure(m);
    this.rows = m;
    this.batch = batch;
    const x = this.acts[0];
    const cols = this.inputCols;
    this.arch.bags.forEach((b, i) => {
      bagForward(this.params.tables[i], b.embeddingDim, batch.bagIdx[i], batch.bagW[i], m, batch.bagLen[i], x, cols, this.bagOffsets[i]);
    });
    const nw = this.arch.numericWidth;
    for (let r = 0; r < m; r++) {
      for (let c = 0; c < nw; c++) x[r * cols + this.numericOffset + c] = batch.numeric[r * nw + c];
    }
    const nLayers = this.widths.length - 1;
    for (let k = 0; k < nLayers; k++) {
      const inW = this.widths[k];
      const outW = this.widths[k + 1];
      const last = k === nLayers - 1;
      const out = last ? this.y : this.acts[k + 1];
      this.mm.mm(this.acts[k].subarray(0, m * inW), this.params.kernels[k], m, inW, outW, out.subarray(0, m * outW));
      const bias = this.params.biases[k];
      for (let r = 0; r < m; r++) {
        const o = r * outW;
        for (let c = 0; c < outW; c++) out[o + c] += bias[c];
      }
      if (!last) {
        // ReLU without a branch (`v > 0 ? v : 0` mispredicted on half the elements, ~20% of the forward pass):
        // a negative float or −0 has the sign bit set, so bits & ~(bits >> 31) makes it +0 and keeps the rest.
        const bits = new Int32Array(out.buffer, out.byteOffset, m * outW);
        for (let i = 0; i < bits.length; i++) bits[i] &= ~(bits[i] >> 31);
      }
    }
    const d = this.arch.outputDim;
    for (let r = 0; r < m; r++) {
      let s = 0;
      for (let c = 0; c < d; c++) s += this.y[r * d + c] * this.y[r * d + c];
      const n = Math.sqrt(Math.max(s, L2_EPSILON));
      this.norms[r] = n;
      for (let c = 0; c < d; c++) this.z[r * d + c] = this.y[r * d + c] / n;
    }
    return this.z.subarray(0, m * d);
  }

  /** Backward from dL/dZ of the last forward's rows; fills the gradients (overwriting the previous step's). */
  backward(gz: Float32Array): void {
    const m = this.rows;
    const batch = this.batch!;
    const d = this.arch.outputDim;
    // L2 normalisation: dL/dy = (g − z (z·g)) / ‖y‖ (when the floor applied, z = y/√ε and dL/dy = g/√ε).
    let ga: Float32Array = this.gradA.subarray(0, m * d);
    let spare: Float32Array = this.gradB;
    for (let r = 0; r < m; r++) {
      const o = r * d;
      let dot = 0;
      for (let c = 0; c < d; c++) dot += this.z[o + c] * gz[o + c];
      const n = this.norms[r];
      const clamped = n * n <= L2_EPSILON;
      for (let c = 0; c < d; c++) ga[o + c] = clamped ? gz[o + c] / n : (gz[o + c] - this.z[o + c] * dot) / n;
    }
    const nLayers = this.widths.length - 1;
    for (let k = nLayers - 1; k >= 0; k--) {
      const inW = this.widths[k];
      const outW = this.widths[k + 1];
      const input = this.acts[k].subarray(0, m * inW);
      this.mm.mmAt(input, ga, inW, m, outW, this.gKernels[k]);
      const gb = this.gBiases[k];
      gb.fill(0);
      for (let r = 0; r < m; r++) for (let c = 0; c < outW; c++) gb[c] += ga[r * outW + c];
      const gIn = this.mm.mmBt(ga, this.params.kernels[k], m, outW, inW, spare.subarray(0, m * inW));
      if (k > 0) {
        // ReLU: pass the gradient where the activation was positive. The activations are ReLU outputs (+0 or
        // positive), so as int32 bits they are 0 or positive and (−bits) >> 31 is a mask: none for +0, all bits
        // otherwise. Same result as `if (input[i] <= 0) gIn[i] = 0`, without the branch that mispredicted on half
        // the elements (4× slower at 2048×256).
        const gBits = new Int32Array(gIn.buffer, gIn.byteOffset, gIn.length);
        const aBits = new Int32Array(input.buffer, input.byteOffset, gIn.length);
        for (let i = 0; i < gBits.length; i++) gBits[i] &= -aBits[i] >> 31;
        spare = ga.buffer === this.gradA.buffer ? this.gradA : this.gradB;
        ga = gIn;
      } else {
        this.arch.bags.forEach((b, i) => {
          const sg = this.gTables[i];
          sg.reset();
          sg.accumulate(gIn, this.inputCols, this.bagOffsets[i], batch.bagIdx[i], batch.bagW[i], m, batch.bagLen[i]);
        });
      }
    }
  }

  /** Apply the gradients of the last backward: dense Adam on kernels/biases, lazy Adam on touched table rows. */
  update(cfg: AdamConfig, step: number): void {
    this.params.kernels.forEach((k, i) => adamDense(k, this.gKernels[i], this.mKernels[i], this.vKernels[i], cfg, step));
    this.params.biases.forEach((b, i) => adamDense(b, this.gBiases[i], this.mBiases[i], this.vBiases[i], cfg, step));
    this.arch.bags.forEach((b, i) => {
      const sg = this.gTables[i];
      adamRows(this.params.tables[i], sg.grad, this.mTables[i], this.vTables[i], sg.sortedRows(), b.embeddingDim, cfg, step);
    });
  }

  /** Gradients of the last backward (tests compare them with TF.js autodiff). */
  gradients(): { kernels: Float32Array[]; biases: Float32Array[]; tables: { rows: Int32Array; grad: Float32Array; dim: number }[] } {
    return {
      kernels: this.gKernels,
      biases: this.gBiases,
      tables: this.gTables.map((g) => ({ rows: g.sortedRows().slice(), grad: g.grad, dim: g.dim })),
    };
  }
}

/** Embed rows in chunks without keeping training state (validation, evaluation). */
export function embedRows(trainer: TowerTrainer, batch: TowerBatch, m: number): Float32Array {
  return trainer.forward(batch, m).slice();
}
