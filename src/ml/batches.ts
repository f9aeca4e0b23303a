/**
 * Training batches: for each example (user, liked item) a user row built from the user's training history with the
 * example's item left out, the item's row, and one of the user's explicit negatives (nopes) as a hard negative.
 * Rows are written with the same writers `am-ml embed` uses (features/rows.ts). Pure module.
 */
import { packItems, type PackedItems, TowerBuffers, UserRowWriter, writeItemRow } from './features/index.js';
import type { Prepared } from './prepare.js';
import type { Rng } from './rng.js';

export class BatchBuilder {
  readonly user: TowerBuffers;
  /** Rows [0, rows) are the examples' items; rows [rows, rows + hardCount) their explicit negatives. */
  readonly item: TowerBuffers;
  readonly itemKey: Int32Array;
  readonly userKey: Int32Array;
  /** log(B · q_j) of each row's positive item. */
  readonly logQ: Float32Array;
  /** Row of the explicit negative in `item`, or -1. */
  readonly hardRow: Int32Array;
  rows = 0;
  hardCount = 0;
  private readonly writer: UserRowWriter;
  private readonly likesPacked: PackedItems[];
  private readonly nopesPacked: PackedItems[];
  private readonly logShare: Float64Array;

  constructor(
    private readonly prepared: Prepared,
    readonly capacity: number,
    private readonly hardNegatives: boolean,
  ) {
    const spec = prepared.spec;
    this.user = new TowerBuffers(spec, 'user', capacity);
    this.item = new TowerBuffers(spec, 'item', capacity * 2);
    this.itemKey = new Int32Array(capacity);
    this.userKey = new Int32Array(capacity);
    this.logQ = new Float32Array(capacity);
    this.hardRow = new Int32Array(capacity);
    this.writer = new UserRowWriter(spec);
    const enc = prepared.encoded;
    // Each user's training history, packed once (only the newest maxLikes + 1 likes can enter a row).
    const v = spec.vocabularies.length;
    this.likesPacked = prepared.train.likes.map((l) => packItems(Array.from(l.subarray(0, spec.user.maxLikes + 1), (i) => enc[i]), v));
    this.nopesPacked = prepared.train.nopes.map((l) => packItems(Array.from(l.subarray(0, spec.user.maxNopes), (i) => enc[i]), v));
    const total = prepared.itemLikes.reduce((a, b) => a + b, 0);
    this.logShare = prepared.itemLikes.map((n) => (n > 0 ? Math.log(n / total) : 0));
  }

  /** Fill the buffers with examples `order[start..end)`. */
  build(order: Int32Array, start: number, end: number, rng: Rng): void {
    const { examples, train } = this.prepared;
    const b = end - start;
    this.rows = b;
    const logB = Math.log(b);
    let hard = 0;
    for (let r = 0; r < b; r++) {
      const e = order[start + r];
      const u = examples.user[e];
      const item = examples.item[e];
      // A like older than the packed window cannot be in the row; nothing to leave out then.
      const pos = examples.likePos[e];
      this.writer.write(this.user, r, this.likesPacked[u], this.nopesPacked[u], pos < this.likesPacked[u].n ? pos : -1);
      writeItemRow(this.item, r, this.prepared.encoded[item]);
      this.itemKey[r] = item;
      this.userKey[r] = u;
      this.logQ[r] = logB + this.logShare[item];
      const nopes = train.nopes[u];
      if (this.hardNegatives && nopes.length > 0) {
        const row = b + hard++;
        writeItemRow(this.item, row, this.prepared.encoded[nopes[rng.int(nopes.length)]]);
        this.hardRow[r] = row;
      } else this.hardRow[r] = -1;
    }
    this.hardCount = hard;
  }
}
