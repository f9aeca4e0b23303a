/**
 * Helpers shared by `export` and `validate`: flag parsing for --map-lambda, the TF.js backend for validation,
 * conversion progress on the Reporter, and the human-readable validation summary.
 */
import path from 'node:path';
import { UsageError } from '../errors.js';
import type { ExportEvent } from '../ml/keras/convert.js';
import { type LambdaMapping, parseLambdaMapping } from '../ml/keras/lambda.js';
import type { BackendChoice } from '../ml/tf.js';
import type { ValidationReport } from '../ml/validate.js';
import type { Reporter } from '../output/reporter.js';
import type { ExportResult } from './export.js';

export function parseLambdaFlags(values: readonly string[] = []): Map<string, LambdaMapping> {
  const out = new Map<string, LambdaMapping>();
  for (const v of values) {
    const eq = v.indexOf('=');
    if (eq <= 0) throw new UsageError(`--map-lambda ${v}: expected <layer>=l2_normalize:axis=<int>.`);
    try {
      out.set(v.slice(0, eq), parseLambdaMapping(v.slice(eq + 1)));
    } catch (err) {
      throw new UsageError(`--map-lambda ${v}: ${(err as Error).message}.`, { hint: 'Example: --map-lambda l2=l2_normalize:axis=-1' });
    }
  }
  return out;
}

export async function initValidationBackend(choice: BackendChoice | undefined, reporter: Reporter): Promise<void> {
  const { initTf, BackendUnavailableError } = await import('../ml/tf.js');
  try {
    // CPU by default: the reference kernels; wasm/native may be chosen to validate what will run in production.
    const info = await initTf(choice ?? 'cpu');
    reporter.debug(`TF.js ${info.version} on ${info.backend}`);
  } catch (err) {
    if (err instanceof BackendUnavailableError) throw new UsageError(err.message, { hint: 'Use --backend cpu (always available).' });
    throw err;
  }
}

/** Map conversion events onto reporter phases; `end()` closes the open one. */
export function progressToReporter(reporter: Reporter): ((e: ExportEvent) => void) & { end(): void } {
  let current: ReturnType<Reporter['phase']> | undefined;
  const labels: Record<string, string> = {
    read: 'Reading the Keras file',
    check: 'Checking layers and rewriting the config',
    'map-weights': 'Mapping weights',
    encode: 'Encoding weights',
    write: 'Writing the model folder',
    validate: 'Validating',
  };
  const fn = ((e: ExportEvent) => {
    if (e.kind === 'phase') {
      current?.succeed();
      current = e.phase === 'validate' ? undefined : reporter.phase(`${labels[e.phase]}${e.detail ? `: ${e.detail}` : ''}`);
    } else reporter.debug(`wrote ${e.path} (${e.bytes} bytes)`);
  }) as ((e: ExportEvent) => void) & { end(): void };
  fn.end = () => {
    current?.succeed();
    current = undefined;
  };
  return fn;
}

function fmtDiff(d: { name: string; maxAbsDiff: number; maxRelDiff: number; minCosine?: number; pass: boolean; firstFailingIndex?: number[]; found?: number; expected?: number }): string {
  return `${d.pass ? 'ok  ' : 'FAIL'} ${d.name}: max abs ${d.maxAbsDiff.toExponential(2)}, max rel ${d.maxRelDiff.toExponential(2)}${d.minCosine !== undefined ? `, min cosine ${d.minCosine.toFixed(6)}` : ''}${!d.pass && d.firstFailingIndex ? ` (first at [${d.firstFailingIndex.join(', ')}]: ${d.found} vs ${d.expected})` : ''}`;
}

export function formatValidation(r: ValidationReport, float32?: ValidationReport): string {
  const lines = [
    `${r.ok && (float32?.ok ?? true) ? 'equal' : 'NOT equal'} within tolerance ${r.tolerance} on ${r.backend}: ${r.weights.count} weights ${r.weights.exact ? 'identical' : `quantized (max error ${r.weights.maxAbsError.toExponential(2)})`}, strict load ok, ${r.tensorLeak.ok ? 'no tensor leak' : `LEAK ${r.tensorLeak.before} → ${r.tensorLeak.after} tensors`}`,
  ];
  if (float32) lines.push(`float32 weights: ${float32.reference?.outputs.map(fmtDiff).join('; ')}`);
  if (r.reference) {
    lines.push(`reference pass (batch ${r.reference.batch}, ${r.reference.layersCompared} layer outputs compared)${r.reference.quantized ? `, accuracy change from ${r.reference.quantized}:` : ':'}`);
    for (const o of r.reference.outputs) lines.push(`  ${fmtDiff(o)}`);
    if (r.reference.firstFailingLayer) lines.push(`  first failing layer: ${r.reference.firstFailingLayer.layer} (max abs ${r.reference.firstFailingLayer.maxAbsDiff.toExponential(2)})`);
  }
  for (const g of r.golden) {
    lines.push(`golden ${path.basename(g.file)}:`);
    for (const o of g.outputs) lines.push(`  ${fmtDiff(o)}`);
  }
  if (!r.shapes.ok) lines.push(`shape problems: ${r.shapes.problems.join('; ')}`);
  return lines.join('\n');
}

export function formatExport(r: ExportResult): string {
  const lines: string[] = [];
  const towers = r.towers.length ? `towers: ${r.towers.map((t) => t.name).join(', ')}` : '';
  if (!r.outDir && !r.dryRun) {
    lines.push(`${r.model}: ${r.towers.length ? towers : 'not a two-tower model (no towers found)'}`);
    for (const t of r.towers) lines.push(`  ${t.name} (${t.kind}): inputs ${t.inputs.join(', ')}`);
    return lines.join('\n');
  }
  lines.push(`${r.dryRun ? 'Would write' : 'Wrote'} ${r.model}${r.tower ? ` (tower of the source model)` : ''} to ${r.outDir ?? '(dry run)'}: ${r.weights.count} weights, ${r.files.length} files, ${r.totalBytes} bytes`);
  lines.push(`  source: ${r.source.format}, Keras ${r.source.kerasVersion ?? 'unknown'}`);
  lines.push(`  inputs: ${r.inputs.map((i) => `${i.name} [${i.shape.map((d) => d ?? 'batch').join(', ')}] ${i.dtype}`).join('; ')}`);
  lines.push(`  outputs: ${r.outputs.map((o) => `${o.name} [${o.shape.map((d) => d ?? 'batch').join(', ')}]`).join('; ')}`);
  if (r.customLayers.length) lines.push(`  custom layers: ${r.customLayers.join(', ')} (import 'am-ml/runtime' before tf.loadLayersModel)`);
  if (towers && !r.tower) lines.push(`  ${towers} (export one with --tower <name>)`);
  if (r.quantization) {
    const q = r.quantization;
    lines.push(`  quantized ${q.dtype}: ${q.bytesBefore} → ${q.bytesAfter} bytes; weight error max ${q.weightMaxAbsError.toExponential(2)}, rms ${q.weightRmsError.toExponential(2)}`);
    for (const a of q.accuracy) lines.push(`    ${a.name}: max abs change ${a.maxAbsDiff.toExponential(2)} (${(a.maxRelDiff * 100).toFixed(3)} % of rms)${a.minCosine !== undefined ? `, min cosine ${a.minCosine.toFixed(6)}` : ''}`);
  }
  if (r.validation) lines.push(formatValidation(r.validation.report, r.validation.float32).replace(/^/gm, '  '));
  lines.push(`  time: convert ${r.durationsMs.convert.toFixed(0)} ms, write ${r.durationsMs.write.toFixed(0)} ms${r.durationsMs.validate !== undefined ? `, validate ${r.durationsMs.validate.toFixed(0)} ms` : ''}`);
  return lines.join('\n');
}
