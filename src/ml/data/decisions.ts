/**
 * `am-ml train --from-db`: the app's own decisions (`user_video_decisions`) as training data. The SQL lives in
 * `src/db/training-data.ts` (ml never imports db); this module maps its plain rows. Pure module.
 */
import { ValidationFailedError } from '../../errors.js';
import type { CatalogItem } from './dataset.js';
import { latestPerPair } from './latest.js';
import type { Interaction, TrainingData } from './types.js';

/** `decision_type` values and their meaning (app-schema §1.6); checked against the CHECK constraint first. */
export const POSITIVE_DECISIONS = ['swipe_like', 'grid_like'] as const;
export const NEGATIVE_DECISIONS = ['swipe_nope', 'grid_nope'] as const;
export const DECISION_TYPES: readonly string[] = [...POSITIVE_DECISIONS, ...NEGATIVE_DECISIONS];

/** One row of `user_video_decisions` as the db layer returns it. */
export interface DecisionRow {
  userId: string;
  itemId: string;
  decisionType: string;
  /** Epoch ms of created_at (null when the column is null). */
  createdAt: number | null;
}

export function trainingDataFromDecisions(rows: readonly DecisionRow[], catalog: readonly CatalogItem[], source: string): TrainingData {
  const known = new Set(catalog.map((i) => i.item_id));
  const unknownTypes = new Map<string, number>();
  const mapped: (Interaction & { order: number })[] = [];
  let outsideCatalog = 0;
  let withoutTime = 0;
  rows.forEach((r, order) => {
    const label = (POSITIVE_DECISIONS as readonly string[]).includes(r.decisionType)
      ? 1
      : (NEGATIVE_DECISIONS as readonly string[]).includes(r.decisionType)
        ? 0
        : null;
    if (label === null) {
      unknownTypes.set(r.decisionType, (unknownTypes.get(r.decisionType) ?? 0) + 1);
      return;
    }
    if (!known.has(r.itemId)) {
      outsideCatalog++;
      return;
    }
    if (r.createdAt === null) withoutTime++;
    mapped.push({ userId: r.userId, itemId: r.itemId, label, ...(r.createdAt !== null ? { timestamp: r.createdAt } : {}), order });
  });
  if (unknownTypes.size > 0) {
    throw new ValidationFailedError(
      `Schema drift: user_video_decisions.decision_type holds value(s) am-ml does not know: ${[...unknownTypes]
        .map(([t, n]) => `${JSON.stringify(t)} (${n} rows)`)
        .join(', ')}; expected ${DECISION_TYPES.join(', ')}.`,
      {
        code: 'SCHEMA_DRIFT',
        hint: 'Migrate old values (like → swipe_like, nope → swipe_nope) or tell am-ml how to read the new ones.',
        details: { expected: DECISION_TYPES, found: [...unknownTypes.keys()] },
      },
    );
  }
  const { interactions, superseded } = latestPerPair(mapped);
  const notes: string[] = [];
  if (outsideCatalog > 0) notes.push(`${outsideCatalog} decision(s) refer to videos outside the training catalog (historical sources) and were not used.`);
  return {
    source,
    items: [...catalog],
    interactions,
    summary: {
      items: catalog.length,
      decisionRows: rows.length,
      decisionsOutsideCatalog: outsideCatalog,
      decisionsWithoutTimestamp: withoutTime,
      duplicatesSuperseded: superseded,
      interactions: interactions.length,
      users: new Set(interactions.map((i) => i.userId)).size,
    },
    badRows: [],
    notes,
  };
}
