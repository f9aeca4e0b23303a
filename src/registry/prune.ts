/**
 * `am-ml models prune --keep N`: delete all but the N newest complete versions, and never the current version or
 * its predecessor (the target of a plain rollback), which are kept even when they are not among the N newest. Versions without a manifest are removed only once they have been idle for a
 * grace period, because a fresh one may be a publish that is still uploading. Each version loses its manifest
 * first, so a prune killed halfway leaves an incomplete version, never one that looks complete.
 */
import { ConflictError, throwIfAborted, UsageError } from '../errors.js';
import { nowOf, readCurrent, type RegistryContext } from './context.js';
import { listVersions, type VersionSummary } from './list.js';
import { manifestPath, pointerPath, versionDir } from './paths.js';

/** An unfinished version this old is abandoned, not in progress. */
export const INCOMPLETE_GRACE_MS = 60 * 60 * 1000;

export interface PruneOptions {
  keep: number;
  dryRun?: boolean;
  /** @default INCOMPLETE_GRACE_MS */
  incompleteGraceMs?: number;
}

export interface PrunedVersion {
  version: string;
  status: VersionSummary['status'];
  files: number;
  bytes: number;
}

export interface PruneResult {
  name: string;
  keep: number;
  dryRun: boolean;
  removed: PrunedVersion[];
  kept: string[];
  /** Versions left alone for a reason other than --keep. */
  skipped: { version: string; reason: string }[];
}

export async function prune(ctx: RegistryContext, opts: PruneOptions): Promise<PruneResult> {
  if (!Number.isInteger(opts.keep) || opts.keep < 1) throw new UsageError('--keep must be a whole number of at least 1.');
  const grace = opts.incompleteGraceMs ?? INCOMPLETE_GRACE_MS;
  const before = await readCurrent(ctx);
  const listing = await listVersions(ctx);
  const result: PruneResult = { name: ctx.name, keep: opts.keep, dryRun: Boolean(opts.dryRun), removed: [], kept: [], skipped: [] };
  let completeKept = 0;
  const doomed: VersionSummary[] = [];
  // Newest first: the N newest complete versions are kept, protected or not; protected ones are kept regardless.
  for (const v of listing.versions) {
    const isNewest = v.status === 'complete' && completeKept < opts.keep;
    if (isNewest) completeKept++;
    if (v.current || v.previous) {
      result.kept.push(v.version);
      if (!isNewest) result.skipped.push({ version: v.version, reason: v.current ? 'current' : 'previous current (rollback target)' });
    } else if (isNewest) {
      result.kept.push(v.version);
    } else if (v.status === 'incomplete') {
      const idleMs = nowOf(ctx).getTime() - (Date.parse(v.lastWriteAt ?? '') || 0);
      if (idleMs < grace) result.skipped.push({ version: v.version, reason: `incomplete, last written ${Math.round(idleMs / 1000)} s ago (may still be uploading)` });
      else doomed.push(v);
    } else doomed.push(v);
  }
  result.removed = doomed.map((v) => ({ version: v.version, status: v.status, files: v.files, bytes: v.bytes }));
  if (opts.dryRun || doomed.length === 0) return result;

  // The protected set was computed from this pointer; refuse if it moved meanwhile.
  const now = await readCurrent(ctx);
  if (now.text !== before.text) {
    throw new ConflictError(`The current ${ctx.name} version changed while prune was listing; nothing was removed.`, {
      code: 'POINTER_MOVED',
      hint: 'Run prune again.',
      details: { pointer: pointerPath(ctx.name) },
    });
  }
  for (const v of doomed) {
    throwIfAborted(ctx.signal, 'Interrupted while pruning; re-run prune to finish (a half-removed version shows as incomplete).');
    const dir = versionDir(ctx.name, v.version);
    const objects = (await ctx.store.list(dir, { signal: ctx.signal })).map((o) => o.path);
    const manifest = manifestPath(ctx.name, v.version);
    await ctx.store.remove([manifest], { signal: ctx.signal });
    await ctx.store.remove(objects.filter((p) => p !== manifest), { signal: ctx.signal });
    ctx.onProgress?.({ kind: 'remove', version: v.version, files: objects.length });
  }
  return result;
}
