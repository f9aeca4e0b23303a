/**
 * Golden files: inputs and expected outputs produced on the training side (Keras), stored as JSON:
 *
 *   {"inputs": {"<input name>": nested array}, "input_order": [...], "outputs": [nested array per output],
 *    "output_names": [...]}
 *
 * Batch first; id inputs are whole numbers. Extra keys (`tolerance`, `generator`, `keras_version`) are allowed and
 * kept. Nested arrays are checked to be rectangular before use.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { unreadableInput } from './errors.js';
import type { RefTensor } from './reference.js';

type Nested = number | Nested[];
const NestedSchema: z.ZodType<Nested> = z.lazy(() => z.union([z.number(), z.array(NestedSchema)]));

export const GoldenFileSchema = z
  .object({
    inputs: z.record(z.string(), NestedSchema),
    input_order: z.array(z.string()).min(1),
    outputs: z.array(NestedSchema).min(1),
    output_names: z.array(z.string()).min(1),
  })
  .passthrough()
  .superRefine((g, ctx) => {
    for (const name of g.input_order) if (!(name in g.inputs)) ctx.addIssue({ code: 'custom', message: `input_order names '${name}', which is not in inputs`, path: ['input_order'] });
    if (g.outputs.length !== g.output_names.length) ctx.addIssue({ code: 'custom', message: `${g.outputs.length} outputs but ${g.output_names.length} output_names`, path: ['outputs'] });
  });
export type GoldenFile = z.infer<typeof GoldenFileSchema>;

/** A nested array as a flat tensor; throws on ragged arrays. */
export function nestedToTensor(v: Nested, where: string): RefTensor {
  const shape: number[] = [];
  let cur: Nested = v;
  while (Array.isArray(cur)) {
    shape.push(cur.length);
    cur = cur[0] as Nested;
  }
  const n = shape.reduce((a, d) => a * d, 1);
  const data = new Float64Array(n);
  let i = 0;
  const walk = (x: Nested, depth: number) => {
    if (depth === shape.length) {
      if (typeof x !== 'number') throw unreadableInput(`${where} is not a rectangular array of numbers.`);
      data[i++] = x;
      return;
    }
    if (!Array.isArray(x) || x.length !== shape[depth]) throw unreadableInput(`${where} is not a rectangular array (ragged at depth ${depth}).`);
    for (const y of x) walk(y, depth + 1);
  };
  walk(v, 0);
  return { shape, data };
}

export function tensorToNested(t: { shape: number[]; data: ArrayLike<number> }): Nested {
  let i = 0;
  const build = (depth: number): Nested => {
    if (depth === t.shape.length) return t.data[i++];
    return Array.from({ length: t.shape[depth] }, () => build(depth + 1));
  };
  return build(0);
}

export interface LoadedGolden {
  file: string;
  golden: GoldenFile;
  inputs: Map<string, RefTensor>;
  outputs: RefTensor[];
}

export function readGoldenFile(file: string): LoadedGolden {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw unreadableInput(`Golden file ${file} cannot be read: ${(err as Error).message}.`);
  }
  const parsed = GoldenFileSchema.safeParse(json);
  if (!parsed.success) {
    throw unreadableInput(
      `Golden file ${file} is not in the golden format: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}.`,
      'Expected {"inputs": {...}, "input_order": [...], "outputs": [...], "output_names": [...]}.',
    );
  }
  const g = parsed.data;
  const inputs = new Map<string, RefTensor>();
  for (const name of g.input_order) inputs.set(name, nestedToTensor(g.inputs[name], `${file}: inputs.${name}`));
  const outputs = g.outputs.map((o, i) => nestedToTensor(o, `${file}: outputs[${i}]`));
  return { file, golden: g, inputs, outputs };
}
