/**
 * What every registry operation receives: the store, the model name, the manifest parser (from the command layer),
 * a clock, an abort signal and a progress callback. Also the pointer read that operations share.
 */
import { ConflictError } from '../errors.js';
import { pointerPath } from './paths.js';
import { type Pointer, parsePointer } from './pointer.js';
import type { ModelStore, ParseManifest } from './types.js';

/** Parallel transfers per publish, verify or download: enough to hide latency, few enough for a 2-core runner. */
export const TRANSFER_CONCURRENCY = 4;

export type RegistryEvent =
  | { kind: 'upload-start'; path: string; bytes: number }
  | { kind: 'upload-done'; path: string; bytes: number; reused: boolean }
  | { kind: 'verify-start'; version: string; files: number; bytes: number }
  | { kind: 'verify-file'; version: string; path: string; bytes: number; ok: boolean }
  | { kind: 'pointer'; from: string | null; to: string; reason: 'publish' | 'rollback' | 'repair' }
  | { kind: 'remove'; version: string; files: number };

export interface RegistryContext {
  store: ModelStore;
  /** Model name (the folder under the store root). @default two_tower in the commands */
  name: string;
  parseManifest: ParseManifest;
  now?: () => Date;
  signal?: AbortSignal;
  onProgress?: (e: RegistryEvent) => void;
  /** @default TRANSFER_CONCURRENCY */
  concurrency?: number;
}

export interface CurrentPointer {
  /** The raw text (the compare-and-swap token); null when nothing was ever published as current. */
  text: string | null;
  pointer: Pointer | null;
  /** Set when the text exists but does not parse (only with `tolerateCorrupt`). */
  corrupt?: string;
}

export const nowOf = (ctx: RegistryContext): Date => (ctx.now ? ctx.now() : new Date());
export const concurrencyOf = (ctx: RegistryContext): number => ctx.concurrency ?? TRANSFER_CONCURRENCY;

/** Read the pointer. A damaged pointer throws POINTER_CORRUPT unless `tolerateCorrupt` (repair needs to see it). */
export async function readCurrent(ctx: RegistryContext, opts: { tolerateCorrupt?: boolean } = {}): Promise<CurrentPointer> {
  const where = `${ctx.store.url}/${pointerPath(ctx.name)}`;
  const text = await ctx.store.readPointer(pointerPath(ctx.name), { signal: ctx.signal });
  if (text === null) return { text: null, pointer: null };
  try {
    return { text, pointer: parsePointer(text, where) };
  } catch (err) {
    if (!opts.tolerateCorrupt) throw err;
    return { text, pointer: null, corrupt: (err as Error).message };
  }
}

/** Version id held by a pointer text, for conflict messages ('none' when absent, '?' when unreadable). */
export function versionOfText(text: string | null): string {
  if (text === null) return 'none';
  try {
    return (JSON.parse(text) as { current?: { version?: string } }).current?.version ?? '?';
  } catch {
    return '?';
  }
}

/** Turn a store-level POINTER_MOVED into one naming both versions and what to do. */
export function pointerMovedError(err: unknown, ctx: RegistryContext, attempted: string, extra = ''): unknown {
  if (err instanceof ConflictError && err.code === 'POINTER_LOCKED') {
    return new ConflictError(`${err.message} ${attempted} was not made current.${extra}`, { code: err.code, hint: err.hint, details: err.details, cause: err });
  }
  if (!(err instanceof ConflictError) || err.code !== 'POINTER_MOVED') return err;
  const d = (err.details ?? {}) as { expected?: string | null; found?: string | null };
  const expected = versionOfText(d.expected ?? null);
  const found = versionOfText(d.found ?? null);
  return new ConflictError(
    `The current ${ctx.name} version changed from ${expected} to ${found} while this command ran, so ${attempted} was not made current.${extra}`,
    {
      code: 'POINTER_MOVED',
      cause: err,
      hint: 'Another publish or rollback ran at the same time. Run `am-ml models` to review, then retry.',
      details: { expectedVersion: expected, foundVersion: found, attemptedVersion: attempted },
    },
  );
}
