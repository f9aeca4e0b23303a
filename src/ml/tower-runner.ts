/**
 * Where a tower's training math runs: in this thread, or in a worker thread of its own. The two towers are
 * independent except for the in-batch softmax between them, so with two workers the user tower and the item tower
 * run their forward and backward passes at the same time on two cores (TF.js's wasm backend is single-threaded in
 * Node). The main thread builds batches and runs the softmax, and builds the next batch while the workers run the
 * backward pass. Both placements run the same TowerTrainer code in the same order, so results are identical.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { AdamConfig } from './kernels/adam.js';
import { type InBatchSoftmaxInput, type InBatchSoftmaxOutput, inBatchSoftmax } from './kernels/in-batch-softmax.js';
import type { MatMul } from './kernels/matmul.js';
import { type TowerArch, type TowerBatch, type TowerParams, TowerTrainer } from './tower.js';

/** What the other side of the softmax sends back to a tower for its backward pass. */
export interface BackwardInput {
  /** G = dL/dS [b, b] (both towers). */
  coef: Float32Array;
  b: number;
  /** user tower: the item embeddings (positives, then explicit negatives); item tower: the user embeddings. */
  other: Float32Array;
  /** dL/d(u_r · n_r) per row, and the item row of each row's explicit negative (-1: none). */
  gHard: Float32Array;
  hardRow: Int32Array;
}

/** The reusable gradient buffer of `towerGradient` (grown on demand). */
export class GradientScratch {
  private buf = new Float32Array(0);
  take(n: number): Float32Array {
    if (this.buf.length < n) this.buf = new Float32Array(n);
    return this.buf.subarray(0, n);
  }
}

/**
 * dL/dZ of a tower from the softmax gradients: users gU = G·V⁺ + gHard ⊙ V[hardRow]; items gV⁺ = Gᵀ·U, and
 * gV[hardRow[r]] += gHard[r] · U[r]. `rows` is the tower's row count (b for users, b + negatives for items).
 */
export function towerGradient(
  role: 'user' | 'item',
  input: BackwardInput,
  rows: number,
  d: number,
  mm: MatMul,
  scratch = new GradientScratch(),
): Float32Array {
  const { coef, b, other, gHard, hardRow } = input;
  const gz = scratch.take(rows * d);
  gz.fill(0);
  if (role === 'user') {
    mm.mm(coef, other.subarray(0, b * d), b, b, d, gz.subarray(0, b * d));
    for (let r = 0; r < b; r++) {
      const h = hardRow[r];
      if (h < 0) continue;
      const g = gHard[r];
      for (let c = 0; c < d; c++) gz[r * d + c] += g * other[h * d + c];
    }
  } else {
    mm.mmAt(coef.subarray(0, b * b), other.subarray(0, b * d), b, b, d, gz.subarray(0, b * d));
    for (let r = 0; r < b; r++) {
      const h = hardRow[r];
      if (h < 0) continue;
      const g = gHard[r];
      for (let c = 0; c < d; c++) gz[h * d + c] += g * other[r * d + c];
    }
  }
  return gz;
}

/** A block of softmax rows, scored against the batch's positive items (see kernels/in-batch-softmax.ts). */
export interface SoftmaxRowsInput extends Omit<InBatchSoftmaxInput, 'scores'> {
  /** The positives' item embeddings: [b, d]. */
  vPos: Float32Array;
  /**
   * Where dL/dS of these rows goes, [rows, b]: the step passes its view of the batch's gradient matrix (shared
   * memory, so a worker writes it in place instead of sending a copy back); without it a new array is returned.
   */
  out?: Float32Array;
}

/**
 * Score rows [rowStart, rowStart + rows) of `u` (all b user embeddings) against V⁺ and run the fused softmax;
 * `scores` is scratch for S, `out` receives dL/dS of these rows.
 */
export function softmaxRows(
  u: Float32Array,
  input: SoftmaxRowsInput,
  mm: MatMul,
  scores?: Float32Array,
  out?: Float32Array,
): InBatchSoftmaxOutput {
  const d = u.length / input.b;
  const s = mm.mmBt(u.subarray(input.rowStart * d, (input.rowStart + input.rows) * d), input.vPos, input.rows, d, input.b, scores);
  return inBatchSoftmax({ ...input, scores: s }, out);
}

export interface TowerRunner {
  readonly role: 'user' | 'item';
  readonly arch: TowerArch;
  /** Training forward over `rows` rows of `batch`; returns the embeddings (valid until this runner's next forward). */
  forward(batch: TowerBatch, rows: number): Promise<Float32Array>;
  /**
   * Backward of the last forward from the softmax gradients, then one Adam step. A worker runner transfers the
   * buffers of the arrays listed in `transfer` (the caller must not use them afterwards) and copies the rest.
   */
  backward(input: BackwardInput, step: number, adam: AdamConfig, transfer?: ArrayBufferLike[]): Promise<void>;
  /** Softmax rows from this (user) tower's last forward output: the step's second half runs here in parallel. */
  softmaxRows(input: SoftmaxRowsInput): Promise<InBatchSoftmaxOutput>;
  /** Inference-only forward (evaluation); does not disturb training state needed by a pending backward. */
  embed(batch: TowerBatch, rows: number): Promise<Float32Array>;
  /** A copy of the current parameters. */
  params(): Promise<TowerParams>;
  close(): Promise<void>;
}

/** Runs in this thread. */
export class LocalTowerRunner implements TowerRunner {
  private readonly trainer: TowerTrainer;
  private readonly evalTrainer: TowerTrainer;
  private rows = 0;
  private last: Float32Array = new Float32Array(0);
  private readonly scratch = new GradientScratch();
  private scores = new Float32Array(0);

  constructor(
    readonly role: 'user' | 'item',
    readonly arch: TowerArch,
    params: TowerParams,
    private readonly mm: MatMul,
  ) {
    this.trainer = new TowerTrainer(arch, params, mm);
    // Shares the parameter arrays; has its own activation buffers.
    this.evalTrainer = new TowerTrainer(arch, params, mm);
  }

  async forward(batch: TowerBatch, rows: number): Promise<Float32Array> {
    this.rows = rows;
    this.last = this.trainer.forward(batch, rows);
    return this.last;
  }

  async softmaxRows(input: SoftmaxRowsInput): Promise<InBatchSoftmaxOutput> {
    if (this.scores.length < input.rows * input.b) this.scores = new Float32Array(input.rows * input.b);
    return softmaxRows(this.last, input, this.mm, this.scores.subarray(0, input.rows * input.b), input.out);
  }

  async backward(input: BackwardInput, step: number, adam: AdamConfig): Promise<void> {
    this.trainer.backward(towerGradient(this.role, input, this.rows, this.arch.outputDim, this.mm, this.scratch));
    this.trainer.update(adam, step);
  }

  async embed(batch: TowerBatch, rows: number): Promise<Float32Array> {
    return this.evalTrainer.forward(batch, rows).slice();
  }

  async params(): Promise<TowerParams> {
    const p = this.trainer.params;
    return { tables: p.tables.map((t) => t.slice()), kernels: p.kernels.map((t) => t.slice()), biases: p.biases.map((t) => t.slice()) };
  }

  async close(): Promise<void> {}
}

// ---------------------------------------------------------------------------------------------------------------

/** Messages to the worker (`tower-worker.ts`). */
export type WorkerRequest =
  | { id: number; op: 'init'; role: 'user' | 'item'; arch: TowerArch; params: TowerParams; backend: string }
  | { id: number; op: 'forward'; batch: TowerBatch; rows: number }
  | { id: number; op: 'backward'; input: BackwardInput; step: number; adam: AdamConfig }
  | { id: number; op: 'softmaxRows'; input: SoftmaxRowsInput }
  | { id: number; op: 'embed'; batch: TowerBatch; rows: number }
  | { id: number; op: 'params' };

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

export type WorkerResponse = { id: number; ok: true; value?: unknown } | { id: number; ok: false; message: string; stack?: string };

/** The worker script: next to this module when built; from dist/ when running the TypeScript sources (tests). */
export function towerWorkerPath(): string | undefined {
  const here = fileURLToPath(import.meta.url);
  const candidates = here.endsWith('.ts')
    ? [here.replace(/[\\/]src[\\/]ml[\\/]tower-runner\.ts$/, '/dist/ml/tower-worker.js')]
    : [here.replace(/tower-runner\.js$/, 'tower-worker.js')];
  return candidates.find((c) => existsSync(c));
}

/** Copy only the first `rows` rows (the batch buffers are allocated for the largest batch). */
function sliceBatch(batch: TowerBatch, rows: number): TowerBatch {
  return {
    bagIdx: batch.bagIdx.map((a, i) => a.slice(0, rows * batch.bagLen[i])),
    bagW: batch.bagW.map((a, i) => a.slice(0, rows * batch.bagLen[i])),
    bagLen: batch.bagLen,
    numeric: batch.numeric.slice(0, rows * batch.numericWidth),
    numericWidth: batch.numericWidth,
  };
}

function transferList(batch: TowerBatch): ArrayBuffer[] {
  return [...batch.bagIdx, ...batch.bagW, batch.numeric].map((a) => a.buffer as ArrayBuffer);
}

/** Runs in a worker thread with its own TF.js instance on the same backend. */
export class WorkerTowerRunner implements TowerRunner {
  private readonly worker: Worker;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private failed: Error | undefined;

  private constructor(
    readonly role: 'user' | 'item',
    readonly arch: TowerArch,
    script: string,
  ) {
    this.worker = new Worker(script);
    this.worker.on('message', (m: WorkerResponse) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.ok) p.resolve(m.value);
      else {
        const err = new Error(`tower worker (${role}): ${m.message}`);
        if (m.stack) err.stack = m.stack;
        p.reject(err);
      }
    });
    const fail = (err: Error) => {
      this.failed = err;
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    };
    this.worker.on('error', (err) => fail(err));
    this.worker.on('exit', (code) => {
      if (code !== 0) fail(new Error(`tower worker (${role}) exited with code ${code}`));
    });
  }

  static async start(role: 'user' | 'item', arch: TowerArch, params: TowerParams, backend: string, script: string): Promise<WorkerTowerRunner> {
    const r = new WorkerTowerRunner(role, arch, script);
    await r.call({ op: 'init', role, arch, params, backend });
    return r;
  }

  private call(req: DistributiveOmit<WorkerRequest, 'id'>, transfer: ArrayBuffer[] = []): Promise<unknown> {
    if (this.failed) return Promise.reject(this.failed);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ ...req, id }, transfer);
    });
  }

  async forward(batch: TowerBatch, rows: number): Promise<Float32Array> {
    const b = sliceBatch(batch, rows);
    return (await this.call({ op: 'forward', batch: b, rows }, transferList(b))) as Float32Array;
  }

  async backward(input: BackwardInput, step: number, adam: AdamConfig, transfer: ArrayBufferLike[] = []): Promise<void> {
    await this.call({ op: 'backward', input, step, adam }, transfer as ArrayBuffer[]);
  }

  async softmaxRows(input: SoftmaxRowsInput): Promise<InBatchSoftmaxOutput> {
    return (await this.call({ op: 'softmaxRows', input })) as InBatchSoftmaxOutput;
  }

  async embed(batch: TowerBatch, rows: number): Promise<Float32Array> {
    const b = sliceBatch(batch, rows);
    return (await this.call({ op: 'embed', batch: b, rows }, transferList(b))) as Float32Array;
  }

  async params(): Promise<TowerParams> {
    return (await this.call({ op: 'params' })) as TowerParams;
  }

  async close(): Promise<void> {
    await this.worker.terminate();
  }
}
