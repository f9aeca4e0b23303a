/**
 * Compare-and-swap of a pointer document on a store that only offers create-if-absent and overwrite (Supabase
 * Storage has no conditional overwrite). A writer:
 *   1. takes the lock `<pointer>.lock` with a create-if-absent put (atomic on both backends);
 *   2. re-reads the pointer and refuses (POINTER_MOVED) unless it still holds the text read before;
 *   3. replaces the pointer (an atomic single-object overwrite);
 *   4. removes the lock if it still holds its own token.
 * A lock left by a killed writer is broken once it is older than `staleAfterMs`. Two writers breaking the same
 * stale lock at the same moment could both proceed; that is the "best effort in Storage alone" STYLE.md §7 allows,
 * and it needs a crash inside the critical section (three small requests) plus two concurrent publishes.
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { ConflictError } from '../errors.js';

/** The critical section is three small requests; a lock this old belongs to a dead writer. */
export const POINTER_LOCK_STALE_MS = 120_000;

export interface PointerPrimitives {
  /** Create-if-absent (throws ConflictError OBJECT_EXISTS) or overwrite. */
  put(path: string, body: Uint8Array, overwrite: boolean, signal?: AbortSignal): Promise<void>;
  /** Uncached read; null when missing. */
  read(path: string, signal?: AbortSignal): Promise<Uint8Array | null>;
  remove(path: string, signal?: AbortSignal): Promise<void>;
}

export interface CompareAndSwapOptions {
  expected: string | null;
  signal?: AbortSignal;
  now?: () => number;
  staleAfterMs?: number;
}

interface LockDoc {
  token: string;
  acquiredAt: string;
  host: string;
  pid: number;
}

const decoder = new TextDecoder();
const encoder = new TextEncoder();

function parseLock(bytes: Uint8Array | null): LockDoc | null {
  if (!bytes) return null;
  try {
    const doc = JSON.parse(decoder.decode(bytes)) as LockDoc;
    return typeof doc.token === 'string' && typeof doc.acquiredAt === 'string' ? doc : null;
  } catch {
    return null;
  }
}

function isExists(err: unknown): boolean {
  return err instanceof ConflictError && err.code === 'OBJECT_EXISTS';
}

async function acquire(prims: PointerPrimitives, lockPath: string, opts: Required<Pick<CompareAndSwapOptions, 'now' | 'staleAfterMs'>> & { signal?: AbortSignal }): Promise<LockDoc> {
  const mine: LockDoc = { token: randomUUID(), acquiredAt: new Date(opts.now()).toISOString(), host: hostname(), pid: process.pid };
  const body = encoder.encode(`${JSON.stringify(mine)}\n`);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      await prims.put(lockPath, body, false, opts.signal);
      return mine;
    } catch (err) {
      if (!isExists(err)) throw err;
    }
    const raw = await prims.read(lockPath, opts.signal);
    const held = parseLock(raw);
    const age = held ? opts.now() - Date.parse(held.acquiredAt) : Number.POSITIVE_INFINITY;
    if (raw !== null && age < opts.staleAfterMs) {
      throw new ConflictError(
        `The pointer is being changed by another am-ml process (${held ? `host ${held.host}, pid ${held.pid}, since ${held.acquiredAt}` : 'unknown holder'}).`,
        {
          code: 'POINTER_LOCKED',
          hint: `Wait for it to finish and retry. A lock left by a killed process expires after ${Math.round(opts.staleAfterMs / 1000)} s (${lockPath}).`,
          details: { lock: lockPath, holder: held ?? null },
        },
      );
    }
    // Missing (released meanwhile) or stale: clear it, then try once more.
    if (raw !== null) await prims.remove(lockPath, opts.signal);
  }
  throw new ConflictError('Could not take the pointer lock: another process keeps taking it.', { code: 'POINTER_LOCKED' });
}

async function release(prims: PointerPrimitives, lockPath: string, mine: LockDoc): Promise<void> {
  const held = parseLock(await prims.read(lockPath));
  // Only remove our own lock: if ours was broken as stale, the current one belongs to someone else.
  if (held?.token === mine.token) await prims.remove(lockPath);
}

/**
 * Replace the pointer at `path` with `text` if it still holds `opts.expected` (null = absent).
 * @throws ConflictError POINTER_MOVED (details.expected / details.found hold the texts) or POINTER_LOCKED.
 */
export async function compareAndSwapPointer(prims: PointerPrimitives, path: string, text: string, opts: CompareAndSwapOptions): Promise<void> {
  const lockPath = `${path}.lock`;
  const now = opts.now ?? Date.now;
  const mine = await acquire(prims, lockPath, { now, staleAfterMs: opts.staleAfterMs ?? POINTER_LOCK_STALE_MS, signal: opts.signal });
  try {
    const raw = await prims.read(path, opts.signal);
    const found = raw === null ? null : decoder.decode(raw);
    if (found !== opts.expected) {
      throw new ConflictError('The pointer changed since it was read.', {
        code: 'POINTER_MOVED',
        details: { pointer: path, expected: opts.expected, found },
      });
    }
    await prims.put(path, encoder.encode(text), true, opts.signal);
  } finally {
    await release(prims, lockPath, mine);
  }
}
