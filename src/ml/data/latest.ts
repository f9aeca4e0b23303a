/** "Latest decision per user and item wins", shared by every source. Pure module. */
import type { Interaction } from './types.js';

/**
 * Keep one row per (user, item): the one with the newest timestamp; without timestamps (or on a tie) the one that
 * came later in the source (`order`). Output keeps first-appearance order of the pairs, so it is deterministic.
 */
export function latestPerPair(rows: readonly (Interaction & { order: number })[]): { interactions: Interaction[]; superseded: number } {
  const best = new Map<string, Interaction & { order: number }>();
  const firstSeen: string[] = [];
  for (const r of rows) {
    const key = `${r.userId}\u0000${r.itemId}`;
    const prev = best.get(key);
    if (!prev) {
      best.set(key, r);
      firstSeen.push(key);
      continue;
    }
    const newer =
      r.timestamp !== undefined && prev.timestamp !== undefined
        ? r.timestamp > prev.timestamp || (r.timestamp === prev.timestamp && r.order > prev.order)
        : r.order > prev.order;
    if (newer) best.set(key, r);
  }
  const interactions = firstSeen.map((k) => {
    const { order: _order, ...rest } = best.get(k)!;
    return rest;
  });
  return { interactions, superseded: rows.length - interactions.length };
}
