/**
 * `am-ml publish <model-dir>`: check the folder (manifest valid, every file hashing as listed), judge the quality
 * gates, upload it as an immutable version, verify it in the store, move `current` to it, and tell the Edge
 * Functions to reload. The work is `registry.publishVersion`; this file checks flags, reads the folder and gates.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { UsageError, ValidationFailedError } from '../errors.js';
import { makeRunId, METRICS_FILE, type ModelManifest, type Publication } from '../ml/artifacts.js';
import { listModelFiles, readManifest, verifyModelFolder } from '../ml/artifacts-fs.js';
import { describeFailedGates, evaluateGates, type GateOutcome, parseGates } from '../ml/gate.js';
import { type PointerEntry, type PublishResult, publishVersion, readCurrent } from '../registry/registry.js';
import { assertId } from '../registry/paths.js';
import { formatBytes } from './format-bytes.js';
import { type CommonOptions, cwdOf, reporterOf } from './common.js';
import { registryProgress } from './registry-progress.js';
import { formatReload, openModelStore, type ReloadOutcome, registryContext, reloadEdgeFunctions } from './store.js';

export interface PublishOptions extends CommonOptions {
  /** A training run folder (`am-ml train`) or an `am-ml export` output. */
  modelDir: string;
  /** @default two_tower */
  name?: string;
  /** @default a sortable UTC id (makeRunId) */
  version?: string;
  /** Move `current` to the new version. @default true */
  activate?: boolean;
  /** `recall@100>=0.2`; every one must pass. */
  gate?: string[];
  /** Metrics that must be at least as high as the current version's. */
  gateVsCurrent?: string[];
  /** Publish although a gate failed; needs `reason`, recorded in the manifest. */
  force?: boolean;
  reason?: string;
  notes?: string;
  /** @default reload_models */
  reloadFunction?: string;
  /** @default true */
  reload?: boolean;
  dryRun?: boolean;
  now?: () => Date;
}

export interface GateReport {
  expressions: string[];
  passed: boolean;
  forcedReason?: string;
  outcomes: (GateOutcome & { against?: string })[];
}

/** What the registry's publish reports, plus the source folder, its metrics, the gate and the reload. */
export interface PublishCommandResult extends PublishResult {
  source: { dir: string; kind: ModelManifest['kind']; runId: string; unlistedFiles: string[] };
  metrics: Record<string, number>;
  gate?: GateReport;
  reload?: ReloadOutcome;
}

/** Flat numeric metrics: the manifest's copy, else the numbers at the top of metrics.json. */
async function metricsOf(dir: string, manifest: ModelManifest): Promise<Record<string, number>> {
  if (manifest.metrics) return manifest.metrics;
  const file = path.join(dir, METRICS_FILE);
  if (!existsSync(file)) return {};
  const raw = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
  return Object.fromEntries(Object.entries(raw).filter((e): e is [string, number] => typeof e[1] === 'number'));
}

function judgeGates(opts: PublishOptions, metrics: Record<string, number>, current: PointerEntry | undefined): GateReport | undefined {
  const gates = evaluateGates(parseGates(opts.gate ?? []), metrics);
  const vsCurrent = (opts.gateVsCurrent ?? []).flatMap((m) => m.split(',')).map((m) => m.trim()).filter(Boolean);
  const outcomes: GateReport['outcomes'] = [...gates];
  for (const metric of vsCurrent) {
    const threshold = current?.metrics?.[metric];
    const actual = Number.isFinite(metrics[metric]) ? metrics[metric] : null;
    if (!current) {
      outcomes.push({ expression: `${metric}>=current`, metric, op: '>=', threshold: Number.NaN, actual, passed: actual !== null, against: 'no current version' });
    } else {
      const passed = actual !== null && threshold !== undefined && actual >= threshold;
      outcomes.push({ expression: `${metric}>=current(${threshold ?? 'missing'})`, metric, op: '>=', threshold: threshold ?? Number.NaN, actual, passed, against: current.version });
    }
  }
  if (!outcomes.length) return undefined;
  return { expressions: outcomes.map((o) => o.expression), passed: outcomes.every((o) => o.passed), outcomes };
}

export async function publish(opts: PublishOptions): Promise<PublishCommandResult> {
  if (opts.force && !opts.reason?.trim()) throw new UsageError('--force needs --reason "<why>"; the reason is recorded in the published manifest.');
  if (opts.reason && !opts.force) throw new UsageError('--reason is only used with --force.');
  const reporter = reporterOf(opts);
  const name = opts.name ?? 'two_tower';
  assertId(name, 'name', '--name');
  const version = opts.version ?? makeRunId(opts.now?.() ?? new Date());
  assertId(version, 'version', '--version');
  const dir = path.resolve(cwdOf(opts), opts.modelDir);

  const check = reporter.phase(`Checking ${dir}`);
  const manifest = readManifest(dir);
  const problems = await verifyModelFolder(dir, manifest);
  if (problems.length) {
    check.fail();
    throw new ValidationFailedError(
      `${dir} does not match its manifest: ${problems.map((p) => `${p.path} ${p.problem}${p.expected !== undefined ? ` (expected ${p.expected}, found ${p.found})` : ''}`).join('; ')}. Nothing was uploaded.`,
      { code: 'MODEL_FOLDER_DAMAGED', hint: 'Re-run the training or export that wrote the folder.', details: { problems } },
    );
  }
  const listed = new Set(manifest.files.map((f) => f.path));
  const unlistedFiles = listModelFiles(dir).filter((f) => !listed.has(f) && !f.startsWith('.'));
  if (unlistedFiles.length) reporter.warn(`${unlistedFiles.length} file(s) not listed in the manifest will not be published: ${unlistedFiles.slice(0, 5).join(', ')}`);
  check.succeed(`${manifest.kind} model ${manifest.runId}: ${manifest.files.length} files, all sha256 as listed`);

  const opened = await openModelStore(opts);
  const progress = registryProgress(reporter);
  const ctx = { ...registryContext(opened, opts, name, (e: Parameters<typeof progress.onProgress>[0]) => progress.onProgress(e)), now: opts.now };
  try {
    const current = await readCurrent(ctx);
    const metrics = await metricsOf(dir, manifest);
    const gate = judgeGates(opts, metrics, current.pointer?.current);
    if (gate && !gate.passed) {
      const failed = describeFailedGates(gate.outcomes, Object.keys(metrics));
      if (!opts.force) {
        throw new ValidationFailedError(`Quality gate refused ${name} ${version}: ${failed}. Nothing was uploaded.`, {
          code: 'GATE_REFUSED',
          hint: 'Train a better model, or publish anyway with --force --reason "<why>" (recorded in the manifest).',
          details: { outcomes: gate.outcomes },
        });
      }
      gate.forcedReason = opts.reason!.trim();
      reporter.warn(`Quality gate failed (${failed}); publishing anyway because of --force: ${gate.forcedReason}`);
    }
    const publication: Pick<Publication, 'notes' | 'sourceRunId' | 'sourcePath' | 'gate'> = {
      notes: opts.notes,
      sourceRunId: manifest.runId,
      sourcePath: dir,
      ...(gate ? { gate: { expressions: gate.expressions, passed: gate.passed, ...(gate.forcedReason ? { forcedReason: gate.forcedReason } : {}) } } : {}),
    };
    const bytes = manifest.files.reduce((s, f) => s + f.size, 0);
    if (!opts.dryRun) progress.startUpload(manifest.files.length, bytes);
    const r = await publishVersion(ctx, {
      version,
      manifest,
      readFile: async (p) => new Uint8Array(await readFile(path.join(dir, p))),
      publication,
      activate: opts.activate !== false,
      expectedPointer: current.text,
      dryRun: opts.dryRun,
    });
    progress.close();
    const result: PublishCommandResult = {
      ...r,
      source: { dir, kind: manifest.kind, runId: manifest.runId, unlistedFiles },
      metrics,
      ...(gate ? { gate } : {}),
    };
    if (r.activated) result.reload = await reloadEdgeFunctions(opened, opts, name, version);
    return result;
  } finally {
    progress.close();
  }
}

export function formatPublish(r: PublishCommandResult): string {
  const lines = [
    `${r.dryRun ? 'would publish' : 'published'}:    ${r.name} ${r.version} (${r.source.kind}, run ${r.source.runId})`,
    `store:        ${r.store} → ${r.path}`,
    `files:        ${r.files} (${formatBytes(r.bytes)})${r.dryRun ? '' : `, ${r.uploaded} uploaded, ${r.reused} already there; every sha256 verified in the store`}`,
  ];
  if (Object.keys(r.metrics).length) lines.push(`metrics:      ${Object.entries(r.metrics).map(([k, v]) => `${k}=${v}`).join(', ')}`);
  if (r.gate) lines.push(`gate:         ${r.gate.passed ? 'passed' : `FAILED, forced: ${r.gate.forcedReason}`} (${r.gate.expressions.join(', ')})`);
  if (r.dryRun) lines.push(`current:      ${r.previous ?? 'none'} (dry run: nothing written)`);
  else if (r.activated) lines.push(`current:      ${r.previous ?? 'none'} → ${r.version}`);
  else lines.push(`current:      ${r.previous ?? 'none'} (unchanged: --no-activate; serve it with \`am-ml rollback --to ${r.version}\`)`);
  if (r.reload) lines.push(formatReload(r.reload));
  if (r.activated) lines.push(`next:         re-embed users and items with ${r.version} (am-ml embed --all)`);
  return lines.join('\n');
}
