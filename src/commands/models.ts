/**
 * `am-ml models [list]`, `am-ml models verify [V] [--repair]`, `am-ml models prune --keep N`: look after the
 * stored versions. `verify` is a check command: its exit code is the answer (4 when something is damaged).
 */
import { UsageError } from '../errors.js';
import {
  describeProblems,
  listVersions,
  previousVersion,
  readCurrent,
  summaryOf,
  verifyVersion,
  prune,
  type PruneResult,
  type RepairResult,
  repair,
  type VerifyReport,
  type VersionListing,
} from '../registry/registry.js';
import { assertId } from '../registry/paths.js';
import { formatBytes } from './format-bytes.js';
import { type CommonOptions, reporterOf } from './common.js';
import { registryProgress } from './registry-progress.js';
import { formatReload, openModelStore, type ReloadOutcome, registryContext, reloadEdgeFunctions } from './store.js';

export interface ModelsOptions extends CommonOptions {
  /** @default two_tower */
  name?: string;
}

export interface ModelsListResult extends VersionListing {
  /** The newest complete version (by publication time), and whether current is it (`--check`). */
  newestComplete: string | null;
  currentIsNewest: boolean;
}

export async function modelsList(opts: ModelsOptions = {}): Promise<ModelsListResult> {
  const opened = await openModelStore(opts);
  const phase = reporterOf(opts).phase(`Listing ${opened.store.url}`);
  try {
    const listing = await listVersions(registryContext(opened, opts, opts.name), { tolerateCorruptPointer: true });
    phase.succeed(`${listing.versions.length} version(s) in ${opened.store.url}`);
    const newestComplete = listing.versions.find((v) => v.status === 'complete')?.version ?? null;
    return { ...listing, newestComplete, currentIsNewest: listing.current !== null && listing.current === newestComplete };
  } catch (err) {
    phase.fail();
    throw err;
  }
}

export interface ModelsVerifyOptions extends ModelsOptions {
  version?: string;
  repair?: boolean;
  dryRun?: boolean;
  reloadFunction?: string;
  reload?: boolean;
}

export interface ModelsVerifyResult extends VersionListing {
  ok: boolean;
  repair?: RepairResult;
  reload?: ReloadOutcome;
}

export async function modelsVerify(opts: ModelsVerifyOptions = {}): Promise<ModelsVerifyResult> {
  if (opts.version !== undefined) assertId(opts.version, 'version', 'the version argument');
  if (opts.version !== undefined && opts.repair) throw new UsageError('--repair works on current; run `am-ml models verify --repair` without a version.');
  if (opts.dryRun && !opts.repair) throw new UsageError('--dry-run only applies with --repair.');
  const reporter = reporterOf(opts);
  const opened = await openModelStore(opts);
  const progress = registryProgress(reporter);
  try {
    const ctx = registryContext(opened, opts, opts.name, (e) => progress.onProgress(e));
    const reports = new Map<string, VerifyReport>();
    let listing: VersionListing;
    if (opts.version !== undefined) {
      // One version: hash only that one (against the pointer's record of it, when it is current).
      const read = await readCurrent(ctx, { tolerateCorrupt: true });
      const p = read.pointer;
      const report = await verifyVersion(ctx, opts.version, {
        deep: true,
        expectedManifestSha256: p?.current.version === opts.version ? p.current.manifest.sha256 : undefined,
      });
      const current = p?.current.version ?? null;
      const previous = p ? (previousVersion(p)?.version ?? null) : null;
      listing = { name: ctx.name, store: opened.store.url, current, previous, ...(read.corrupt ? { pointerProblem: read.corrupt } : {}), versions: [summaryOf(report, current, previous)] };
    } else {
      listing = await listVersions(ctx, { deep: true, tolerateCorruptPointer: true, onReport: (r) => reports.set(r.version, r) });
    }
    const result: ModelsVerifyResult = { ...listing, ok: false };
    if (opts.repair) {
      result.repair = await repair(ctx, { dryRun: opts.dryRun, verified: reports });
      if (result.repair.moved?.changed) {
        result.current = result.repair.moved.to;
        for (const v of result.versions) v.current = v.version === result.current;
        delete result.pointerProblem;
        result.reload = await reloadEdgeFunctions(opened, opts, listing.name, result.repair.moved.to);
      }
    }
    progress.close();
    const current = result.versions.find((v) => v.current);
    if (opts.version !== undefined) result.ok = result.versions[0].status === 'complete';
    else if (opts.repair) result.ok = !result.current || current?.status === 'complete';
    else result.ok = !result.pointerProblem && (!result.current || current?.status === 'complete') && !result.versions.some((v) => v.status === 'corrupt');
    return result;
  } finally {
    progress.close();
  }
}

export interface ModelsPruneOptions extends ModelsOptions {
  keep: number;
  dryRun?: boolean;
}

export async function modelsPrune(opts: ModelsPruneOptions): Promise<PruneResult & { store: string }> {
  const opened = await openModelStore(opts);
  const progress = registryProgress(reporterOf(opts));
  try {
    const r = await prune(registryContext(opened, opts, opts.name, (e) => progress.onProgress(e)), { keep: opts.keep, dryRun: opts.dryRun });
    return { ...r, store: opened.store.url };
  } finally {
    progress.close();
  }
}

// ---------------------------------------------------------------------------------------------------------------

function table(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd()).join('\n');
}

export function formatModelsList(l: ModelsListResult): string {
  const head = `${l.name} in ${l.store}: current ${l.current ?? 'none'}${l.pointerProblem ? ` (POINTER DAMAGED: run \`am-ml models verify --repair\`)` : ''}`;
  if (!l.versions.length) return `${head}\nno versions yet (publish one with \`am-ml publish <model-dir>\`)`;
  const rows = [['', 'version', 'status', 'size', 'created', 'published', 'metrics']];
  for (const v of l.versions) {
    rows.push([
      v.current ? '*' : v.previous ? 'p' : '',
      v.version,
      v.status,
      v.files ? formatBytes(v.bytes) : '-',
      v.createdAt?.slice(0, 19) ?? '-',
      v.publishedAt?.slice(0, 19) ?? '-',
      Object.entries(v.metrics ?? {}).map(([k, x]) => `${k}=${Number(x.toFixed(4))}`).join(' ') || '-',
    ]);
  }
  return `${head}\n${table(rows)}\n(* current, p previous; status from listing sizes; \`am-ml models verify\` re-hashes every file)`;
}

export function formatModelsVerify(r: ModelsVerifyResult): string {
  const lines = r.versions.map(
    (v) => `${v.status === 'complete' ? 'ok  ' : 'FAIL'}  ${v.version}${v.current ? ' (current)' : ''}: ${v.status}${v.problems.length ? `: ${describeProblems(v.problems)}` : v.status === 'complete' ? `, ${v.files} files, every sha256 matches` : ''}`,
  );
  if (r.pointerProblem) lines.push(`FAIL  current.json: ${r.pointerProblem}`);
  if (r.repair) {
    if (!r.repair.currentProblem) lines.push('repair: current is complete; nothing to repair');
    else if (r.repair.moved) {
      lines.push(`repair: ${r.repair.currentProblem}`);
      lines.push(`repair: ${r.repair.moved.dryRun ? 'would move' : 'moved'} current ${r.repair.moved.from ?? '(damaged pointer)'} → ${r.repair.moved.to} (newest complete version)`);
    }
  }
  if (r.reload) lines.push(formatReload(r.reload));
  lines.push(r.ok ? 'All checked versions are sound.' : 'Damage found (see FAIL above).');
  return lines.join('\n');
}

export function formatModelsPrune(r: PruneResult & { store: string }): string {
  const lines = [`${r.dryRun ? 'would remove' : 'removed'}: ${r.removed.length ? r.removed.map((v) => `${v.version} (${v.status}, ${formatBytes(v.bytes)})`).join(', ') : 'nothing'}`];
  lines.push(`kept:    ${r.kept.join(', ') || 'nothing'}`);
  for (const s of r.skipped) lines.push(`skipped: ${s.version}: ${s.reason}`);
  return lines.join('\n');
}
