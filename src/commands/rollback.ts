/**
 * `am-ml rollback [--to V]`: point `current` back at the previous current (or at any complete version), after
 * re-hashing every file of the target. Only the pointer moves; nothing is deleted. Then the Edge Functions reload.
 */
import { type PointerMove, rollback as registryRollback } from '../registry/registry.js';
import { assertId } from '../registry/paths.js';
import { type CommonOptions, reporterOf } from './common.js';
import { registryProgress } from './registry-progress.js';
import { formatReload, openModelStore, type ReloadOutcome, registryContext, reloadEdgeFunctions } from './store.js';

export interface RollbackCommandOptions extends CommonOptions {
  /** @default the previous current version */
  to?: string;
  /** @default two_tower */
  name?: string;
  dryRun?: boolean;
  /** @default reload_models */
  reloadFunction?: string;
  /** @default true */
  reload?: boolean;
}

export interface RollbackCommandResult extends PointerMove {
  store: string;
  reload?: ReloadOutcome;
}

export async function rollback(opts: RollbackCommandOptions = {}): Promise<RollbackCommandResult> {
  if (opts.to !== undefined) assertId(opts.to, 'version', '--to');
  const reporter = reporterOf(opts);
  const opened = await openModelStore(opts);
  const progress = registryProgress(reporter);
  try {
    const ctx = registryContext(opened, opts, opts.name, (e) => progress.onProgress(e));
    const move = await registryRollback(ctx, { to: opts.to, dryRun: opts.dryRun });
    progress.close();
    const result: RollbackCommandResult = { ...move, store: opened.store.url };
    if (move.changed) result.reload = await reloadEdgeFunctions(opened, opts, move.name, move.to);
    return result;
  } finally {
    progress.close();
  }
}

export function formatRollback(r: RollbackCommandResult): string {
  const lines = [
    r.dryRun
      ? `would move:   ${r.name} current ${r.from} → ${r.to} (dry run: nothing written)`
      : r.changed
        ? `rolled back:  ${r.name} current ${r.from} → ${r.to}`
        : `unchanged:    ${r.to} is already current`,
    `verified:     ${r.verified.files} files of ${r.to}, every sha256 matches (${r.store})`,
  ];
  if (r.reload) lines.push(formatReload(r.reload));
  if (r.changed) lines.push(`next:         re-embed users and items with ${r.to} (am-ml embed --all); nothing was deleted`);
  return lines.join('\n');
}
