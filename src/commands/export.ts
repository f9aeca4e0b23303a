/**
 * `am-ml export <model.keras | model.h5 | topology.json --weights w.h5> --out <dir>`: convert a Keras model into a
 * TF.js layers-model folder (model.json, shards, manifest.json), optionally proving it equal to the source
 * (`--validate`, `--golden`), quantized (`--quantize`), or one tower of a two-tower model (`--tower`).
 *
 * Exit codes: 2 for bad flags and unreadable or unsupported input files (wrong magic, damaged HDF5/zip, unsafe zip
 * members, a weights-only file without topology); 4 for models that cannot be converted as they are (unsupported
 * layers, weights that disagree with the config, sizes over the limits) and for validation failures. Nothing is
 * written unless everything succeeded.
 */
import path from 'node:path';
import { UsageError, ValidationFailedError } from '../errors.js';
import { convertKeras, type ExportEvent, finalModelJson, resolvedSourceFiles, type TensorInfo } from '../ml/keras/convert.js';
import { checkOutDir, writeExportFolder } from '../ml/keras/export-folder.js';
import { readGoldenFile } from '../ml/keras/golden.js';
import { type OutputAccuracy, quantizationAccuracy } from '../ml/keras/quantize-accuracy.js';
import type { QuantizeDtype } from '../ml/keras/tfjs-format.js';
import type { TowerInfo } from '../ml/keras/towers.js';
import { readTfjsFolder } from '../ml/keras/tfjs-folder.js';
import type { BackendChoice } from '../ml/tf.js';
import type { ConversionValidation } from '../ml/validate.js';
import { AMML_VERSION, amMlGitCommit } from '../version.js';
import { type CommonOptions, cwdOf, reporterOf } from './common.js';
import { formatValidation, initValidationBackend, parseLambdaFlags, progressToReporter } from './keras-shared.js';

export interface ExportOptions extends CommonOptions {
  input?: string;
  weights?: string;
  out?: string;
  validate?: boolean;
  golden?: string[];
  quantize?: QuantizeDtype;
  /** @default 4194304 */
  shardSizeBytes?: number;
  tower?: string;
  listTowers?: boolean;
  /** `layer=l2_normalize:axis=-1` */
  mapLambda?: string[];
  force?: boolean;
  dryRun?: boolean;
  /** @default 1e-4 */
  tolerance?: number;
  /** TF.js backend for validation. @default cpu */
  backend?: BackendChoice;
}

export interface ExportResult {
  outDir: string | null;
  dryRun: boolean;
  model: string;
  tower: string | null;
  towers: TowerInfo[];
  source: { files: Array<{ path: string; bytes: number; sha256: string }>; format: string; kerasVersion: string | null };
  inputs: TensorInfo[];
  outputs: TensorInfo[];
  customLayers: string[];
  lambdas: Array<{ layer: string; as: string; how: string; axis: number; maxInverseNorm: number }>;
  warnings: string[];
  weights: { count: number; sourceCount: number; bytes: number; ignored: string[] };
  files: Array<{ path: string; size: number; sha256?: string }>;
  totalBytes: number;
  quantization?: {
    dtype: QuantizeDtype;
    bytesBefore: number;
    bytesAfter: number;
    weightMaxAbsError: number;
    weightRmsError: number;
    clamped: number;
    /** Outputs with quantized vs float32 weights (reference pass on generated inputs). */
    accuracy: OutputAccuracy[];
  };
  validation?: ConversionValidation;
  durationsMs: { convert: number; write: number; validate?: number; total: number };
}

export async function exportModel(opts: ExportOptions): Promise<ExportResult> {
  const t0 = performance.now();
  const cwd = cwdOf(opts);
  const reporter = reporterOf(opts);
  if (!opts.input) throw new UsageError('Give the Keras model to export: am-ml export <model.keras | model.h5 | topology.json --weights w.h5> --out <dir>.');
  if (!opts.out && !opts.listTowers && !opts.dryRun) throw new UsageError('--out <dir> is required (or use --dry-run / --list-towers).');
  if (opts.listTowers && (opts.tower || opts.validate)) throw new UsageError('--list-towers only lists; it cannot be combined with --tower or --validate.');
  if (opts.golden?.length && !opts.validate) throw new UsageError('--golden needs --validate (the golden comparison is part of validation).');
  if (opts.tolerance !== undefined && !opts.validate) throw new UsageError('--tolerance needs --validate.');
  const input = path.resolve(cwd, opts.input);
  const outDir = opts.out ? path.resolve(cwd, opts.out) : null;
  const guard = { cwd, inputs: [input, ...(opts.weights ? [path.resolve(cwd, opts.weights)] : [])] };
  if (outDir && !opts.dryRun && !opts.listTowers) checkOutDir(outDir, opts.force, guard);
  const lambdaMappings = parseLambdaFlags(opts.mapLambda);
  const goldens = (opts.golden ?? []).map((g) => readGoldenFile(path.resolve(cwd, g)));
  if (opts.validate) await initValidationBackend(opts.backend, reporter);

  const progress = progressToReporter(reporter);
  const onProgress = (e: ExportEvent) => progress(e);
  let conversion;
  try {
    conversion = await convertKeras({
      input,
      weights: opts.weights ? path.resolve(cwd, opts.weights) : undefined,
      tower: opts.tower,
      lambdaMappings,
      quantize: opts.quantize,
      shardSizeBytes: opts.shardSizeBytes,
      convertedBy: `am-ml v${AMML_VERSION}`,
      onProgress,
      signal: opts.signal,
    });
  } finally {
    progress.end();
  }
  const t1 = performance.now();
  if (!opts.tower && !opts.listTowers && conversion.towers.length >= 2) {
    reporter.info(`This is a two-tower model; towers: ${conversion.towers.map((t) => `${t.name} (inputs ${t.inputs.join(', ')})`).join('; ')}. Export one with --tower <name>.`);
  }
  for (const l of conversion.lambdas) reporter.info(`Lambda ${l.layer} runs as ${l.as} (${l.how}).`);
  for (const w of conversion.warnings) reporter.warn(w);

  let validation: ConversionValidation | undefined;
  let validateMs: number | undefined;
  const validateFolder = async (dir: string | null) => {
    const { validateConversion, folderOfConversion, describeFailure } = await import('../ml/validate.js');
    const tv = performance.now();
    const folder = dir ? readTfjsFolder(dir) : folderOfConversion(conversion);
    const phase = reporter.phase('Validating against the source (reference forward pass, layer by layer)');
    try {
      validation = await validateConversion(conversion, folder, { goldens, tolerance: opts.tolerance });
    } catch (err) {
      phase.fail();
      throw err;
    }
    validateMs = performance.now() - tv;
    if (!validation.ok) {
      phase.fail('Validation failed');
      const failed = validation.float32 && !validation.float32.ok ? validation.float32 : validation.report;
      throw new ValidationFailedError(`The converted model does not match its source: ${describeFailure(failed)}.`, {
        code: 'VALIDATION_MISMATCH',
        hint: dir ? 'Nothing was written.' : undefined,
        details: { validation },
      });
    }
    phase.succeed(`Validated: ${formatValidation(validation.report).split('\n')[0]}`);
  };

  let files: ExportResult['files'];
  const tw = performance.now();
  let writtenTo: string | null = null;
  if (!opts.dryRun && !opts.listTowers && outDir) {
    const written = await writeExportFolder(conversion, {
      outDir,
      force: opts.force,
      guard,
      amMl: { version: AMML_VERSION, gitCommit: amMlGitCommit() },
      manifestExtras: {
        config: { shardSizeBytes: opts.shardSizeBytes ?? 4194304, ...(opts.quantize ? { quantize: opts.quantize } : {}), validated: Boolean(opts.validate) },
      },
      beforeCommit: opts.validate ? (tmp) => validateFolder(tmp) : undefined,
      onProgress,
      signal: opts.signal,
    });
    files = written.files;
    writtenTo = written.outDir;
  } else {
    // What would be written (model.json exactly as written, with the source sha256 filled in).
    const modelJsonBytes = Buffer.byteLength(JSON.stringify(await finalModelJson(conversion))) + 1;
    files = [{ path: 'model.json', size: modelJsonBytes }, ...conversion.shards.map((s) => ({ path: s.name, size: s.size }))];
    if (opts.validate && !opts.listTowers) await validateFolder(null);
  }
  const writeMs = performance.now() - tw - (validateMs ?? 0);
  const q = conversion.encoded.quantization;
  // From the byte views: `w.data` would build a float32 view of every weight (a copy when unaligned) for a length.
  const float32Bytes = conversion.weights.reduce((a, w) => a + w.bytes.byteLength, 0);
  return {
    outDir: writtenTo,
    dryRun: Boolean(opts.dryRun),
    model: conversion.modelName,
    tower: conversion.tower ?? null,
    towers: conversion.towers,
    source: { files: await resolvedSourceFiles(conversion), format: conversion.source.format, kerasVersion: conversion.source.kerasVersion },
    inputs: conversion.inputs,
    outputs: conversion.outputs,
    customLayers: conversion.customLayers,
    lambdas: conversion.lambdas,
    warnings: conversion.warnings,
    weights: { count: conversion.weights.length, sourceCount: conversion.allWeights.length, bytes: conversion.encoded.byteLength, ignored: conversion.ignored },
    files,
    totalBytes: files.reduce((a, f) => a + f.size, 0),
    ...(q
      ? {
          quantization: {
            dtype: q.dtype,
            bytesBefore: float32Bytes,
            bytesAfter: conversion.encoded.byteLength,
            weightMaxAbsError: q.maxAbsError,
            weightRmsError: q.rmsError,
            clamped: q.clamped,
            accuracy: quantizationAccuracy(conversion) ?? [],
          },
        }
      : {}),
    ...(validation ? { validation } : {}),
    durationsMs: { convert: t1 - t0, write: Math.max(0, writeMs), ...(validateMs !== undefined ? { validate: validateMs } : {}), total: performance.now() - t0 },
  };
}

export { formatExport } from './keras-shared.js';
