/**
 * The probe of a run (`probe.json`, app-schema §7.4–7.5): a few raw items and user histories, the input arrays the
 * feature code built from them at training time, and the embeddings the trained towers produced. Whoever loads the
 * model rebuilds the inputs with the frozen spec (they must be identical: the feature code has not drifted) and
 * runs the towers (the outputs must match within `tolerance`: every weight was loaded) before embedding anything.
 * Pure module.
 */
import { z } from 'zod';
import type { CatalogItem } from './data/dataset.js';
import { buildItemInputs, buildUserInputs, type FeatureSpec, type InputArray, type ItemAttributes, type UserHistory } from './features/index.js';

export const PROBE_SCHEMA_VERSION = 1;
/** Max |Δ| allowed between recorded and recomputed probe embeddings (other backends round differently). */
export const PROBE_TOLERANCE = 1e-4;
const PROBE_ITEMS = 6;
const PROBE_USERS = 3;
const PROBE_HISTORY = 12;

const ArraySchema = z.object({
  name: z.string(),
  dtype: z.enum(['int32', 'float32']),
  shape: z.tuple([z.number().int().nonnegative(), z.number().int().nonnegative()]),
  data: z.array(z.number()),
});

export const ProbeSchema = z.object({
  schemaVersion: z.literal(PROBE_SCHEMA_VERSION),
  tolerance: z.number().positive(),
  item: z.object({ items: z.array(z.record(z.string(), z.unknown())), inputs: z.array(ArraySchema), embeddings: z.array(z.array(z.number())) }),
  user: z.object({
    histories: z.array(z.object({ likes: z.array(z.record(z.string(), z.unknown())), nopes: z.array(z.record(z.string(), z.unknown())) })),
    inputs: z.array(ArraySchema),
    embeddings: z.array(z.array(z.number())),
  }),
});
export type Probe = z.infer<typeof ProbeSchema>;

/** Only the feature attributes of an item (no titles or other payload in the probe). */
function featureAttributes(item: CatalogItem): ItemAttributes {
  const { item_id, tags, performers, maker, series, label, source, price, released_at, duration_seconds } = item;
  return Object.fromEntries(
    Object.entries({ item_id, tags, performers, maker, series, label, source, price, released_at, duration_seconds }).filter(([, v]) => v !== undefined),
  ) as unknown as ItemAttributes;
}

/**
 * Probe inputs: a few catalog items spread over the catalog, plus one item no catalog has (unknown tokens, missing
 * and invalid values: the explicit paths), and histories of a few users plus an empty one.
 */
export function probeInputs(catalog: readonly CatalogItem[], histories: readonly UserHistory[]): { items: ItemAttributes[]; histories: UserHistory[] } {
  const items: ItemAttributes[] = [];
  const step = Math.max(1, Math.floor(catalog.length / PROBE_ITEMS));
  for (let i = 0; i < catalog.length && items.length < PROBE_ITEMS - 1; i += step) items.push(featureAttributes(catalog[i]));
  items.push({
    item_id: 'am-ml-probe-unseen-item',
    tags: ['am-ml-probe-unknown-tag', ...((catalog[0]?.tags as string[] | undefined) ?? []).slice(0, 1), null, ''],
    performers: [],
    maker: null,
    series: '   ',
    label: 'am-ml-probe-unknown-label',
    source: catalog[0]?.source ?? null,
    price: 'not a price',
    released_at: '2024-02-30T99:00',
    duration_seconds: 5400,
  });
  const hs: UserHistory[] = histories.slice(0, PROBE_USERS - 1).map((h) => ({
    likes: h.likes.slice(0, PROBE_HISTORY).map((i) => featureAttributes(i as CatalogItem)),
    nopes: (h.nopes ?? []).slice(0, PROBE_HISTORY).map((i) => featureAttributes(i as CatalogItem)),
  }));
  hs.push({ likes: [], nopes: [] });
  return { items, histories: hs };
}

const toJsonArray = (a: InputArray) => ({ name: a.name, dtype: a.dtype, shape: a.shape, data: Array.from(a.data) });

function rows(flat: Float32Array, dim: number): number[][] {
  const out: number[][] = [];
  for (let r = 0; r * dim < flat.length; r++) out.push(Array.from(flat.subarray(r * dim, (r + 1) * dim)));
  return out;
}

/** Build the probe document from inputs and the towers' outputs on them. */
export function makeProbe(
  spec: FeatureSpec,
  inputs: { items: ItemAttributes[]; histories: UserHistory[] },
  embed: { item: (a: InputArray[]) => Float32Array; user: (a: InputArray[]) => Float32Array },
  dim: number,
): Probe {
  const item = buildItemInputs(spec, inputs.items).inputs;
  const user = buildUserInputs(spec, inputs.histories).inputs;
  return {
    schemaVersion: PROBE_SCHEMA_VERSION,
    tolerance: PROBE_TOLERANCE,
    item: { items: inputs.items as unknown as Record<string, unknown>[], inputs: item.arrays.map(toJsonArray), embeddings: rows(embed.item(item.arrays), dim) },
    user: {
      histories: inputs.histories.map((h) => ({
        likes: h.likes as unknown as Record<string, unknown>[],
        nopes: (h.nopes ?? []) as unknown as Record<string, unknown>[],
      })),
      inputs: user.arrays.map(toJsonArray),
      embeddings: rows(embed.user(user.arrays), dim),
    },
  };
}

export interface ProbeMismatch {
  tower: 'user' | 'item';
  /** `inputs`: the feature code built different arrays; `embeddings`: the towers computed different vectors. */
  stage: 'inputs' | 'embeddings';
  /** Input name, or `row r, column c`. */
  where: string;
  expected: number;
  found: number;
  maxAbsDiff: number;
}

/** Rebuild the probe inputs with `spec`, run `embed`, and report the first mismatch per tower (none = pass). */
export function checkProbe(
  probe: Probe,
  spec: FeatureSpec,
  embed: { item: (a: InputArray[]) => Float32Array; user: (a: InputArray[]) => Float32Array },
): ProbeMismatch[] {
  const problems: ProbeMismatch[] = [];
  const towers = [
    ['item', buildItemInputs(spec, probe.item.items as unknown as ItemAttributes[]).inputs.arrays, probe.item] as const,
    [
      'user',
      buildUserInputs(
        spec,
        probe.user.histories.map((h) => ({ likes: h.likes as unknown as ItemAttributes[], nopes: h.nopes as unknown as ItemAttributes[] })),
      ).inputs.arrays,
      probe.user,
    ] as const,
  ];
  for (const [tower, arrays, recorded] of towers) {
    let inputProblem: ProbeMismatch | undefined;
    recorded.inputs.forEach((rec, i) => {
      const built = arrays[i];
      if (inputProblem) return;
      if (!built || built.name !== rec.name || built.shape[0] !== rec.shape[0] || built.shape[1] !== rec.shape[1]) {
        inputProblem = { tower, stage: 'inputs', where: `${rec.name} (shape ${rec.shape.join('×')})`, expected: rec.shape[1], found: built?.shape[1] ?? -1, maxAbsDiff: Infinity };
        return;
      }
      for (let j = 0; j < rec.data.length; j++) {
        if (Math.fround(rec.data[j]) !== built.data[j]) {
          inputProblem = { tower, stage: 'inputs', where: `${rec.name}[${j}]`, expected: rec.data[j], found: built.data[j], maxAbsDiff: Math.abs(rec.data[j] - built.data[j]) };
          return;
        }
      }
    });
    if (inputProblem) {
      problems.push(inputProblem);
      continue;
    }
    const out = embed[tower](arrays);
    const dim = recorded.embeddings[0]?.length ?? 0;
    let first: ProbeMismatch | undefined;
    let maxAbs = 0;
    recorded.embeddings.forEach((row, r) => {
      row.forEach((v, c) => {
        const got = out[r * dim + c];
        const diff = Number.isFinite(got) ? Math.abs(got - v) : Infinity;
        maxAbs = Math.max(maxAbs, diff);
        if (diff > probe.tolerance && !first) first = { tower, stage: 'embeddings', where: `row ${r}, column ${c}`, expected: v, found: got, maxAbsDiff: diff };
      });
    });
    if (out.length !== recorded.embeddings.length * dim && !first) {
      first = { tower, stage: 'embeddings', where: 'output size', expected: recorded.embeddings.length * dim, found: out.length, maxAbsDiff: Infinity };
    }
    if (first) problems.push({ ...first, maxAbsDiff: Math.max(maxAbs, first.maxAbsDiff) });
  }
  return problems;
}
