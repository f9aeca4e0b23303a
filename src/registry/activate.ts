/**
 * Moving the pointer to a version that already exists: `rollback` (to the previous current, or any complete
 * version) and `repair` (away from a corrupt current, to the newest complete version). Both only rewrite
 * current.json, after a deep verify of the target; neither deletes anything.
 */
import { ConflictError, ValidationFailedError } from '../errors.js';
import { type CurrentPointer, nowOf, pointerMovedError, readCurrent, type RegistryContext } from './context.js';
import { pointerPath } from './paths.js';
import { nextPointer, type Pointer, type PointerEntry, pointerEntry, previousVersion, serializePointer } from './pointer.js';
import { describeProblems, type VerifyReport, verifyVersion } from './verify.js';
import { listVersions } from './list.js';

export interface RollbackOptions {
  /** Target version. @default the previous current */
  to?: string;
  dryRun?: boolean;
}

export interface PointerMove {
  name: string;
  from: string | null;
  to: string;
  changed: boolean;
  dryRun: boolean;
  entry: PointerEntry;
  verified: { files: number; bytes: number };
}

async function move(ctx: RegistryContext, read: CurrentPointer, target: VerifyReport, reason: PointerEntry['reason'], dryRun: boolean): Promise<PointerMove> {
  const entry = pointerEntry({
    name: ctx.name,
    version: target.version,
    rootPath: ctx.store.rootPath,
    manifest: target.manifest!,
    manifestBytes: target.manifestBytes!,
    manifestSha256: target.manifestSha256!,
    reason,
    activatedAt: nowOf(ctx),
  });
  const from = read.pointer?.current.version ?? null;
  const out: PointerMove = { name: ctx.name, from, to: target.version, changed: false, dryRun, entry, verified: { files: target.files, bytes: target.bytes } };
  if (dryRun) return out;
  const next: Pointer = nextPointer(ctx.name, read.pointer, entry, nowOf(ctx));
  try {
    await ctx.store.writePointer(pointerPath(ctx.name), serializePointer(next), { expected: read.text, signal: ctx.signal });
  } catch (err) {
    throw pointerMovedError(err, ctx, target.version);
  }
  ctx.onProgress?.({ kind: 'pointer', from, to: target.version, reason });
  out.changed = true;
  return out;
}

/** Verify a rollback target deeply; absent → ConflictError (6), incomplete/corrupt → ValidationFailedError (4). */
async function requireComplete(ctx: RegistryContext, version: string, known?: PointerEntry): Promise<VerifyReport> {
  const report = await verifyVersion(ctx, version, { deep: true, expectedManifestSha256: known?.manifest.sha256 });
  if (report.status === 'absent') {
    throw new ConflictError(`${ctx.name} version ${version} is not in ${ctx.store.url}.`, {
      code: 'ROLLBACK_TARGET_MISSING',
      hint: 'Run `am-ml models` to see the versions that exist.',
      details: { version },
    });
  }
  if (report.status !== 'complete') {
    throw new ValidationFailedError(`${ctx.name} version ${version} is ${report.status}, so it cannot be made current: ${describeProblems(report.problems)}.`, {
      code: 'VERSION_INCOMPLETE',
      hint: 'Run `am-ml models` to pick a complete version.',
      details: { version, problems: report.problems },
    });
  }
  return report;
}

export async function rollback(ctx: RegistryContext, opts: RollbackOptions = {}): Promise<PointerMove> {
  const read = await readCurrent(ctx);
  if (!read.pointer) {
    throw new ConflictError(`Nothing is current for ${ctx.name} in ${ctx.store.url}, so there is nothing to roll back.`, {
      code: 'NO_CURRENT',
      hint: 'Publish a version first (`am-ml publish <model-dir>`).',
    });
  }
  const p = read.pointer;
  const targetVersion = opts.to ?? previousVersion(p)?.version;
  if (!targetVersion) {
    throw new ConflictError(`${ctx.name} has no previous current version to roll back to (current: ${p.current.version}).`, {
      code: 'NO_PREVIOUS',
      hint: 'Name a version with --to (see `am-ml models`).',
    });
  }
  const known = [p.current, ...p.history].find((e) => e.version === targetVersion);
  const target = await requireComplete(ctx, targetVersion, known);
  if (targetVersion === p.current.version) {
    return { name: ctx.name, from: targetVersion, to: targetVersion, changed: false, dryRun: Boolean(opts.dryRun), entry: p.current, verified: { files: target.files, bytes: target.bytes } };
  }
  return move(ctx, read, target, 'rollback', Boolean(opts.dryRun));
}

export interface RepairResult {
  name: string;
  /** What was wrong with current (null when it was fine). */
  currentProblem: string | null;
  /** The move made (or that would be made with dryRun); absent when nothing needed repair. */
  moved?: PointerMove;
}

export interface RepairOptions {
  dryRun?: boolean;
  /** Deep reports the caller already made (models verify hashes everything first); re-verified otherwise. */
  verified?: ReadonlyMap<string, VerifyReport>;
}

/**
 * If current is corrupt (or the pointer itself is damaged), point it at the newest complete version.
 * @throws ValidationFailedError NO_COMPLETE_VERSION when no version is complete (nothing is changed).
 */
export async function repair(ctx: RegistryContext, opts: RepairOptions = {}): Promise<RepairResult> {
  const deepVerify = async (version: string, expectedManifestSha256?: string) =>
    opts.verified?.get(version) ?? verifyVersion(ctx, version, { deep: true, expectedManifestSha256 });
  const read = await readCurrent(ctx, { tolerateCorrupt: true });
  if (read.text === null) return { name: ctx.name, currentProblem: null };
  let problem: string | null = read.corrupt ?? null;
  let currentVersion: string | null = null;
  if (read.pointer) {
    currentVersion = read.pointer.current.version;
    const report = await deepVerify(currentVersion, read.pointer.current.manifest.sha256);
    if (report.status === 'complete') return { name: ctx.name, currentProblem: null };
    problem = `current version ${currentVersion} is ${report.status}: ${describeProblems(report.problems)}`;
  }
  const listing = await listVersions(ctx, { tolerateCorruptPointer: true });
  const candidates = listing.versions.filter((v) => v.status === 'complete' && v.version !== currentVersion);
  for (const c of candidates) {
    const report = await deepVerify(c.version);
    if (report.status !== 'complete') continue;
    // A damaged pointer cannot contribute its history; start a fresh one rather than guess.
    const base: CurrentPointer = read.pointer ? read : { text: read.text, pointer: null };
    return { name: ctx.name, currentProblem: problem, moved: await move(ctx, base, report, 'repair', Boolean(opts.dryRun)) };
  }
  throw new ValidationFailedError(`${problem}; and no other ${ctx.name} version is complete, so current was left as it is.`, {
    code: 'NO_COMPLETE_VERSION',
    hint: 'Publish a good model folder again (`am-ml publish <model-dir>`).',
  });
}
