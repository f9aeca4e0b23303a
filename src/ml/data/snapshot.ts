/**
 * The data snapshot hash recorded in the manifest: sha256 over a canonical form of the training data (items and
 * interactions sorted), so the same data gives the same hash whatever the source or row order.
 */
import { createHash } from 'node:crypto';
import type { TrainingData } from './types.js';

export function dataSnapshotSha256(data: Pick<TrainingData, 'items' | 'interactions'>): string {
  const h = createHash('sha256');
  const items = [...data.items].sort((a, b) => (a.item_id < b.item_id ? -1 : a.item_id > b.item_id ? 1 : 0));
  for (const item of items) {
    // Key order fixed by the feature attributes, so sources that add unrelated fields hash the same.
    const { item_id, tags, performers, maker, series, label, source, price, released_at, duration_seconds } = item;
    h.update(JSON.stringify([item_id, tags, performers, maker, series, label, source, price, released_at, duration_seconds]));
    h.update('\n');
  }
  h.update('--\n');
  const rows = data.interactions.map((i) => `${i.userId}\u0000${i.itemId}\u0000${i.label}\u0000${i.timestamp ?? ''}`);
  rows.sort();
  for (const r of rows) h.update(`${r}\n`);
  return h.digest('hex');
}
