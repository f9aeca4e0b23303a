/**
 * `am-ml validate <tfjs-dir> (--against <keras file> | --golden <file.json>…) [--tolerance 1e-4]`: prove a TF.js
 * model folder equal to its Keras source (an independent reference pass over the source weights, layer by layer)
 * and/or to golden outputs from the training side. The exit code is the answer: 0 equal, 4 not equal (with the
 * report in the result); 2 for unreadable inputs or bad flags.
 */
import path from 'node:path';
import { EXIT, UsageError } from '../errors.js';
import { convertKeras } from '../ml/keras/convert.js';
import { readGoldenFile } from '../ml/keras/golden.js';
import type { LambdaMapping } from '../ml/keras/lambda.js';
import { readTfjsFolder } from '../ml/keras/tfjs-folder.js';
import type { BackendChoice } from '../ml/tf.js';
import type { ValidationReport } from '../ml/validate.js';
import { AMML_VERSION } from '../version.js';
import { type CommonOptions, cwdOf, reporterOf } from './common.js';
import { formatValidation, initValidationBackend, parseLambdaFlags, progressToReporter } from './keras-shared.js';

export interface ValidateOptions extends CommonOptions {
  dir?: string;
  /** The Keras source (`.keras`, `.h5`, or topology `.json` with `weights`). */
  against?: string;
  weights?: string;
  golden?: string[];
  /** @default 1e-4 */
  tolerance?: number;
  /** Rows of generated inputs. @default 16 */
  batch?: number;
  mapLambda?: string[];
  /** @default cpu */
  backend?: BackendChoice;
}

export interface ValidateResult {
  ok: boolean;
  dir: string;
  against: string | null;
  tower: string | null;
  /** model.json's topology is exactly what this am-ml writes for the source (informational). */
  topologyMatches: boolean | null;
  report: ValidationReport;
}

export async function validate(opts: ValidateOptions): Promise<{ result: ValidateResult; exitCode: number }> {
  const cwd = cwdOf(opts);
  const reporter = reporterOf(opts);
  if (!opts.dir) throw new UsageError('Give the TF.js model folder: am-ml validate <dir> --against <model.keras> | --golden <file.json>.');
  if (!opts.against && !opts.golden?.length) throw new UsageError('Give --against <keras file> or --golden <file.json> (or both).');
  if (opts.weights && !opts.against) throw new UsageError('--weights goes with --against <topology.json>.');
  const dir = path.resolve(cwd, opts.dir);
  const folder = readTfjsFolder(dir);
  const goldens = (opts.golden ?? []).map((g) => readGoldenFile(path.resolve(cwd, g)));
  await initValidationBackend(opts.backend, reporter);
  const { validateModel } = await import('../ml/validate.js');

  const meta = (folder.modelJson.userDefinedMetadata?.amMl ?? {}) as { tower?: string | null; lambdas?: Array<{ layer: string; how?: string; axis?: number; maxInverseNorm?: number }> };
  const tower = meta.tower ?? null;
  const quantized = folder.modelJson.weightsManifest.flatMap((g) => g.weights).find((w) => w.quantization)?.quantization?.dtype as 'float16' | 'uint8' | undefined;
  let report: ValidationReport;
  let topologyMatches: boolean | null = null;
  if (opts.against) {
    // Lambdas the export mapped explicitly are mapped the same way again, unless --map-lambda says otherwise.
    const explicit: Map<string, LambdaMapping> = new Map();
    for (const l of meta.lambdas ?? []) {
      if (l.how === 'mapped with --map-lambda' && typeof l.axis === 'number' && typeof l.maxInverseNorm === 'number') explicit.set(l.layer, { axis: l.axis, maxInverseNorm: l.maxInverseNorm });
    }
    for (const [k, v] of parseLambdaFlags(opts.mapLambda)) explicit.set(k, v);
    const progress = progressToReporter(reporter);
    let conversion;
    try {
      conversion = await convertKeras({
        input: path.resolve(cwd, opts.against),
        weights: opts.weights ? path.resolve(cwd, opts.weights) : undefined,
        tower: tower ?? undefined,
        lambdaMappings: explicit,
        convertedBy: `am-ml v${AMML_VERSION}`,
        onProgress: progress,
        signal: opts.signal,
      });
    } finally {
      progress.end();
    }
    topologyMatches = JSON.stringify(conversion.modelJson.modelTopology.model_config) === JSON.stringify(folder.modelJson.modelTopology.model_config);
    if (!topologyMatches) reporter.warn(`${dir}/model.json has a different topology from what this am-ml writes for ${opts.against}; validating the numbers anyway.`);
    const phase = reporter.phase('Comparing TF.js with the reference pass, layer by layer');
    report = await validateModel({ folder, tree: conversion.tree, sourceWeights: conversion.weights, goldens, tolerance: opts.tolerance, batch: opts.batch, quantized });
    phase[report.ok ? 'succeed' : 'fail']();
  } else {
    const phase = reporter.phase('Comparing TF.js with the golden outputs');
    report = await validateModel({ folder, goldens, tolerance: opts.tolerance, quantized });
    phase[report.ok ? 'succeed' : 'fail']();
  }
  return { result: { ok: report.ok, dir, against: opts.against ?? null, tower, topologyMatches, report }, exitCode: report.ok ? EXIT.OK : EXIT.VALIDATION };
}

export function formatValidate(r: ValidateResult): string {
  return `${r.dir}${r.tower ? ` (tower ${r.tower})` : ''}: ${formatValidation(r.report)}`;
}
