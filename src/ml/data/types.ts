/**
 * The training data every source (`--dataset`, `--reviews`, `--from-db`) is turned into, before splitting and
 * feature building. Pure types.
 */
import type { ItemAttributes } from '../features/index.js';

export type Label = 1 | 0;

/** One decision of a user about an item: 1 = positive (like), 0 = explicit negative (nope). */
export interface Interaction {
  userId: string;
  itemId: string;
  label: Label;
  /** Epoch milliseconds, when the source has times; the split is time-ordered only when every row has one. */
  timestamp?: number;
}

/** A problem row of an input file, reported with its line number. */
export interface BadRow {
  file: string;
  line: number;
  reason: string;
}

export interface TrainingData {
  /** `dataset:<dir>`, `reviews:<file>`, `db:<url>` (for the manifest). */
  source: string;
  /** The full catalog: every item that can be recommended (evaluation ranks all of them). */
  items: ItemAttributes[];
  /** One row per (user, item): the latest decision wins. */
  interactions: Interaction[];
  /** Counts for the manifest and the report (rows read, bad, duplicates superseded, unmatched, ...). */
  summary: Record<string, number>;
  /** Bad rows (the first few, for the report); their total is in `summary`. */
  badRows: BadRow[];
  /** Human-readable notes for the report (unmatched reviews, neutral stars dropped, ...). */
  notes: string[];
}
