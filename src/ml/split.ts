/**
 * Per-user hold-out split into train / validation / test. Time-ordered when every interaction has a timestamp (each
 * user's newest positives are held out, test newest of all), otherwise a seeded random order per user. Negatives
 * follow the positions they occupy in that order, so nothing from a held-out period leaks into training. Users
 * with fewer than `MIN_POSITIVES_TO_HOLD_OUT` positives stay entirely in training. Pure module.
 */
import type { Interaction } from './data/types.js';
import { rngFor } from './rng.js';

export const MIN_POSITIVES_TO_HOLD_OUT = 3;

export interface SplitConfig {
  /** Share of each user's positives held out for validation (early stopping). */
  valFraction: number;
  /** Share held out for the final test metrics (0: report on validation). */
  testFraction: number;
  seed: number;
}

export interface Split {
  train: Interaction[];
  val: Interaction[];
  test: Interaction[];
  timeOrdered: boolean;
}

export function splitInteractions(interactions: readonly Interaction[], cfg: SplitConfig): Split {
  const timeOrdered = interactions.length > 0 && interactions.every((i) => i.timestamp !== undefined);
  const byUser = new Map<string, { row: Interaction; order: number }[]>();
  interactions.forEach((row, order) => {
    let list = byUser.get(row.userId);
    if (!list) {
      list = [];
      byUser.set(row.userId, list);
    }
    list.push({ row, order });
  });
  const out: Split = { train: [], val: [], test: [], timeOrdered };
  // Users in a canonical order so the random streams do not depend on input order.
  const users = [...byUser.keys()].sort();
  for (const user of users) {
    const list = byUser.get(user)!;
    if (timeOrdered) list.sort((a, b) => a.row.timestamp! - b.row.timestamp! || a.order - b.order);
    else {
      list.sort((a, b) => a.order - b.order);
      rngFor(cfg.seed, `split:${user}`).shuffle(list);
    }
    const positives = list.filter((x) => x.row.label === 1).length;
    let nTest = 0;
    let nVal = 0;
    if (positives >= MIN_POSITIVES_TO_HOLD_OUT) {
      nTest = cfg.testFraction > 0 ? Math.max(1, Math.round(positives * cfg.testFraction)) : 0;
      nVal = cfg.valFraction > 0 ? Math.max(1, Math.round(positives * cfg.valFraction)) : 0;
      // Keep at least one training positive (and the test split before validation).
      while (nTest + nVal > positives - 1 && nVal > 0) nVal--;
      while (nTest + nVal > positives - 1 && nTest > 0) nTest--;
    }
    // Walk from the newest end: test positives, then validation positives; the rest is training. A negative goes
    // with the period it falls in. Each part is then appended oldest first (history order is derived from it).
    const parts: Interaction[][] = [[], [], []];
    let seenPos = 0;
    for (let i = list.length - 1; i >= 0; i--) {
      const { row } = list[i];
      parts[seenPos < nTest ? 2 : seenPos < nTest + nVal ? 1 : 0].push(row);
      if (row.label === 1) seenPos++;
    }
    out.train.push(...parts[0].reverse());
    out.val.push(...parts[1].reverse());
    out.test.push(...parts[2].reverse());
  }
  return out;
}
