/**
 * One optimisation step of the two-tower model over a built batch: both towers' forward passes (concurrently, on
 * two cores with worker runners), the fused in-batch softmax (its two row halves concurrently), then both towers'
 * backward passes and Adam. Used by the training loop, the tests and the benchmark.
 */
import type { BatchBuilder } from './batches.js';
import type { AdamConfig } from './kernels/adam.js';
import type { MatMul } from './kernels/matmul.js';
import { type TowerArch, towerForwardFlops } from './tower.js';
import { softmaxRows, type TowerRunner } from './tower-runner.js';

/**
 * One optimisation step over a built batch; returns the loss. The towers' forward passes run concurrently (on two
 * cores with worker runners); the softmax runs here; `during` runs while the towers' backward passes are in flight
 * (the loop builds the next batch there). Shared by the loop, tests and the benchmark.
 */
export class TwoTowerStep {
  private step = 0;
  private scores = new Float32Array(0);
  private g: Float32Array<ArrayBufferLike> = new Float32Array(0);
  constructor(
    readonly user: TowerRunner,
    readonly item: TowerRunner,
    private readonly mm: MatMul,
    private readonly cfg: { temperature: number; logQCorrection: boolean; adam: AdamConfig },
  ) {}

  async run(batch: BatchBuilder, during?: () => void): Promise<number> {
    const b = batch.rows;
    const d = this.user.arch.outputDim;
    const [u, v] = await Promise.all([this.user.forward(batch.user, b), this.item.forward(batch.item, b + batch.hardCount)]);
    const hardRow = batch.hardRow.slice(0, b);
    const hardScores = new Float32Array(b);
    for (let r = 0; r < b; r++) {
      const h = hardRow[r];
      if (h < 0) {
        hardScores[r] = Number.NaN;
        continue;
      }
      let s = 0;
      for (let c = 0; c < d; c++) s += u[r * d + c] * v[h * d + c];
      hardScores[r] = s;
    }
    // The softmax rows are split in two halves, always: the user tower's runner scores the second half (on its
    // own thread when it has one) while this thread scores the first. Same split with one thread, same numbers.
    const half = b >> 1;
    const side = {
      vPos: v.slice(0, b * d),
      b,
      temperature: this.cfg.temperature,
      logQ: this.cfg.logQCorrection ? batch.logQ.slice(0, b) : new Float32Array(b),
      itemKey: batch.itemKey.slice(0, b),
      userKey: batch.userKey.slice(0, b),
    };
    // dL/dS of the whole batch, in shared memory reused from step to step: the user tower's runner writes the
    // second half in place, and both towers' backward passes read it where it is (a worker gets a view, not a copy
    // of the 4 MB matrix). Reuse is safe: this step awaits both backward passes before it returns.
    if (this.g.length < b * b) this.g = new Float32Array(new SharedArrayBuffer(b * b * 4));
    const g = this.g.subarray(0, b * b);
    const second = this.user.softmaxRows({ ...side, rowStart: half, rows: b - half, hardScores: hardScores.slice(half), out: g.subarray(half * b) });
    if (this.scores.length < half * b) this.scores = new Float32Array(half * b);
    const first = softmaxRows(u, { ...side, rowStart: 0, rows: half, hardScores: hardScores.subarray(0, half) }, this.mm, this.scores.subarray(0, half * b), g.subarray(0, half * b));
    const rest = await second;
    const gHard = new Float32Array(b);
    gHard.set(first.gHard, 0);
    gHard.set(rest.gHard, half);
    this.step++;
    const backward = Promise.all([
      this.user.backward({ coef: g, b, other: v, gHard, hardRow }, this.step, this.cfg.adam, [v.buffer]),
      this.item.backward({ coef: g, b, other: u, gHard, hardRow }, this.step, this.cfg.adam, [u.buffer]),
    ]);
    during?.();
    await backward;
    return first.loss + rest.loss;
  }

  /** FLOPs of a step of this shape (matmuls and bag sums; forward + backward ≈ 3 × forward). */
  static flops(user: TowerArch, item: TowerArch, b: number, hard: number): number {
    return 3 * (towerForwardFlops(user, b) + towerForwardFlops(item, b + hard)) + 3 * 2 * b * b * user.outputDim;
  }
}

