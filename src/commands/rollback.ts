/**
 * `am-ml rollback [--to V]`: point `current` back at the previous current (or at any complete version), after
 * re-hashing every file of the target. Only the pointer moves; nothing is deleted. Then the Edge Functions reload.
 */
import { AmMlError, toAmMlError } from '../errors.js';
import { type PointerMove, rollback as registryRollback } from '../registry/registry.js';
import { assertId } from '../registry/paths.js';
import { type CommonOptions, reporterOf } from './common.js';
import { type EmbedResult, formatEmbed } from './embed.js';
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
  /**
   * Re-embed items and users with the target version right after the pointer moves (app-schema §7.13: a rollback
   * is complete only when serving uses the rolled-back model's vectors). Resumable with `am-ml embed --resume`.
   */
  embed?: boolean;
}

export interface RollbackCommandResult extends PointerMove {
  store: string;
  reload?: ReloadOutcome;
  /** The re-embedding run (with --embed). */
  embed?: EmbedResult;
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
    if (opts.embed && !opts.dryRun) result.embed = await reEmbed(opts, move);
    return result;
  } finally {
    progress.close();
  }
}

/** Embed with the new current version; on failure say that the pointer already moved and how to finish. */
async function reEmbed(opts: RollbackCommandOptions, move: PointerMove): Promise<EmbedResult> {
  const { embed } = await import('./embed.js');
  try {
    // resume: a run of this version interrupted earlier (or by a previous rollback --embed) is continued.
    // Only the common options carry over (`to` means the target version here, an output folder to embed).
    const { to: _to, dryRun: _dryRun, embed: _embed, reload: _reload, reloadFunction: _fn, ...common } = opts;
    return await embed({ ...common, model: 'current', name: move.name, resume: true });
  } catch (raw) {
    const err = toAmMlError(raw);
    throw new AmMlError(err.code, err.exitCode, `${err.message}\nThe pointer already points at ${move.to}; only the re-embedding is unfinished.`, {
      hint: err.hint ?? `Fix the cause, then run \`am-ml embed --resume\` to finish re-embedding with ${move.to}.`,
      details: err.details,
      cause: raw,
    });
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
  if (r.embed) lines.push(`re-embedded:  ${formatEmbed(r.embed).split('\n').slice(1).join('\n              ')}`);
  else if (r.changed) lines.push(`next:         re-embed users and items with ${r.to} (am-ml embed, or rollback --embed next time); nothing was deleted`);
  return lines.join('\n');
}
