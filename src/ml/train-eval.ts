/**
 * Evaluation inputs of a training run: which users are evaluated on which held-out positives with which history,
 * and embedding the catalog and those users, with the training runners (per-epoch validation) or with the
 * saved-form layers models (the final metrics, computed from exactly what is written to the run folder).
 */
import type { EvalSet } from './evaluate.js';
import { packItems, TowerBuffers, UserRowWriter, writeItemRow } from './features/index.js';
import { predictTower } from './model.js';
import type { Histories, Prepared } from './prepare.js';
import { rngFor } from './rng.js';
import type { Split } from './split.js';
import type { tf } from './tf.js';
import type { TowerRunner } from './tower-runner.js';

/** Evaluation users, their held-out positives, exclusions and histories. */
export interface EvalInput {
  set: EvalSet;
  history: Histories;
  /** Training likes per item seen by the popularity baseline. */
  itemLikes: Float64Array;
}

export function evalInput(p: Prepared, heldOutRows: Split['train'], history: Histories, itemLikes: Float64Array, maxUsers: number, seed: number, label: string): EvalInput {
  const held: number[][] = Array.from({ length: p.userIds.length }, () => []);
  for (const r of heldOutRows) {
    if (r.label !== 1) continue;
    const u = p.userIndex.get(r.userId);
    const i = p.itemIndex.get(r.itemId);
    if (u !== undefined && i !== undefined) held[u].push(i);
  }
  let users = held.map((h, u) => (h.length > 0 ? u : -1)).filter((u) => u >= 0);
  if (users.length > maxUsers) {
    users = (rngFor(seed, `eval-users:${label}`).shuffle(users) as number[]).slice(0, maxUsers).sort((a, b) => a - b);
  }
  const set: EvalSet = {
    users: Int32Array.from(users),
    heldOut: users.map((u) => Int32Array.from(held[u])),
    exclude: users.map((u) => Int32Array.from(new Set([...history.likes[u], ...history.nopes[u]])).sort()),
  };
  return { set, history, itemLikes };
}

/** Rows of catalog items [s, s + c) into `buf`. */
function writeItemChunk(buf: TowerBuffers, p: Prepared, s: number, c: number): void {
  for (let r = 0; r < c; r++) writeItemRow(buf, r, p.encoded[s + r]);
}

/** Rows of the evaluation users [s, s + c) into `buf`, from their training history. */
function writeUserChunk(writer: UserRowWriter, buf: TowerBuffers, p: Prepared, input: EvalInput, s: number, c: number): void {
  for (let r = 0; r < c; r++) {
    const u = input.set.users[s + r];
    writer.write(buf, r, packedLikes(p, input.history, u), packedNopes(p, input.history, u));
  }
}

/** Embed every catalog item and the evaluation users with the runners (both towers at once). */
export async function embedForEval(p: Prepared, runners: { user: TowerRunner; item: TowerRunner }, input: EvalInput, chunk: number) {
  const d = runners.user.arch.outputDim;
  const n = p.encoded.length;
  const items = (async () => {
    const out = new Float32Array(n * d);
    const buf = new TowerBuffers(p.spec, 'item', chunk);
    for (let s = 0; s < n; s += chunk) {
      const c = Math.min(chunk, n - s);
      writeItemChunk(buf, p, s, c);
      out.set(await runners.item.embed(buf, c), s * d);
    }
    return out;
  })();
  const usersDone = (async () => {
    const nUsers = input.set.users.length;
    const out = new Float32Array(nUsers * d);
    const buf = new TowerBuffers(p.spec, 'user', chunk);
    const writer = new UserRowWriter(p.spec);
    for (let s = 0; s < nUsers; s += chunk) {
      const c = Math.min(chunk, nUsers - s);
      writeUserChunk(writer, buf, p, input, s, c);
      out.set(await runners.user.embed(buf, c), s * d);
    }
    return out;
  })();
  const [itemEmb, userEmb] = await Promise.all([items, usersDone]);
  return { itemEmb, userEmb };
}

/** Embed with the saved-form layers models: what the final metrics are computed from. */
export function embedWithModels(p: Prepared, models: { user: tf.LayersModel; item: tf.LayersModel }, input: EvalInput, dim: number, chunk: number) {
  const n = p.encoded.length;
  const itemEmb = new Float32Array(n * dim);
  const ibuf = new TowerBuffers(p.spec, 'item', chunk);
  for (let s = 0; s < n; s += chunk) {
    const c = Math.min(chunk, n - s);
    writeItemChunk(ibuf, p, s, c);
    itemEmb.set(predictTower(models.item, ibuf.toInputs(c).arrays), s * dim);
  }
  const nUsers = input.set.users.length;
  const userEmb = new Float32Array(nUsers * dim);
  const ubuf = new TowerBuffers(p.spec, 'user', chunk);
  const writer = new UserRowWriter(p.spec);
  for (let s = 0; s < nUsers; s += chunk) {
    const c = Math.min(chunk, nUsers - s);
    writeUserChunk(writer, ubuf, p, input, s, c);
    userEmb.set(predictTower(models.user, ubuf.toInputs(c).arrays), s * dim);
  }
  return { itemEmb, userEmb };
}

/** Rows per inference call during evaluation. */
export const EVAL_CHUNK = 1024;

/** A user's history window (newest first), packed for the row writer. */
function packedLikes(p: Prepared, h: Histories, u: number) {
  return packItems(Array.from(h.likes[u].subarray(0, p.spec.user.maxLikes), (i) => p.encoded[i]), p.spec.vocabularies.length);
}
function packedNopes(p: Prepared, h: Histories, u: number) {
  return packItems(Array.from(h.nopes[u].subarray(0, p.spec.user.maxNopes), (i) => p.encoded[i]), p.spec.vocabularies.length);
}

