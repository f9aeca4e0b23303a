/**
 * The model store: the small storage surface the registry needs, implemented by `backends/local.ts`
 * (`file://<dir>`) and `backends/supabase.ts` (`supabase://<bucket>/<prefix>`). Every path is relative to the
 * store root (the local folder, or `<prefix>` inside the bucket), POSIX-style, without a leading slash.
 *
 * The registry builds everything else (immutable version folders, the `current.json` pointer, verification) on
 * these guarantees, which `contract.ts` checks for every backend:
 * - `putFile` without `overwrite` is an atomic create-if-absent: a reader sees the whole object or none, and a
 *   second writer of the same path gets a `ConflictError` (code `OBJECT_EXISTS`).
 * - `putFile` with `overwrite` atomically replaces the object (readers see the old bytes or the new ones).
 * - `writePointer` is a compare-and-swap on the pointer text (see `pointer-lock.ts`).
 */
import type { ModelManifest } from '../ml/artifacts.js';

/** One object (or, in a non-recursive listing, one folder) under a prefix. */
export interface StoredObject {
  /** Path relative to the store root. */
  path: string;
  /** Bytes; 0 for folders. */
  size: number;
  /** ISO time of the last write, when the store knows it. */
  updatedAt?: string;
  /** True for folder entries of a non-recursive listing. */
  folder?: boolean;
}

export interface StoreCallOptions {
  signal?: AbortSignal;
}

export interface PutFileOptions extends StoreCallOptions {
  /** Replace an existing object. @default false (create-if-absent) */
  overwrite?: boolean;
  /** MIME type recorded by stores that keep one. @default application/octet-stream, or application/json for .json */
  contentType?: string;
}

export interface ListOptions extends StoreCallOptions {
  /** Descend into sub-folders (files only), or list the direct children (files and folders). @default true */
  recursive?: boolean;
}

export interface WritePointerOptions extends StoreCallOptions {
  /** The pointer text read before the change (null: there was no pointer). The write is refused if it changed. */
  expected: string | null;
}

/** A retry the store made on its own (shown as a warning line by commands). */
export interface StoreRetryEvent {
  kind: 'retry';
  op: 'put' | 'get' | 'list' | 'remove';
  path: string;
  attempt: number;
  delayMs: number;
  reason: string;
}

export interface ModelStore {
  /** Display form of the store URL (never holds secrets): `file:///abs/dir`, `supabase://models/prod`. */
  readonly url: string;
  /**
   * Where the store root lives inside its bucket (`prod` for `supabase://models/prod`, `''` for a local folder).
   * Pointer entries record bucket-relative paths with it, so the Edge runtime can fetch files with the pointer alone.
   */
  readonly rootPath: string;
  /** Largest object the store accepts (Supabase: the project's 50 MiB upload limit). */
  readonly maxFileBytes: number;

  /**
   * Write an object.
   * @throws ConflictError (code OBJECT_EXISTS) when the path exists and `overwrite` is not set.
   * @throws ValidationFailedError (code FILE_TOO_LARGE) when the body exceeds `maxFileBytes`.
   * @throws StorageError (exit 5) when the store fails after retries.
   * @throws InterruptedError when the signal fires.
   */
  putFile(path: string, body: Uint8Array, opts?: PutFileOptions): Promise<void>;

  /**
   * Read a whole object; `null` when it does not exist.
   * @throws StorageError when the store fails after retries.
   */
  getFile(path: string, opts?: StoreCallOptions): Promise<Uint8Array | null>;

  /**
   * Objects under a folder prefix (`''` = the root), sorted by path. Half-written temporaries never appear.
   * @throws StorageError when the store fails after retries.
   */
  list(prefix: string, opts?: ListOptions): Promise<StoredObject[]>;

  /**
   * Delete objects; missing ones are ignored.
   * @throws StorageError when the store fails after retries.
   */
  remove(paths: readonly string[], opts?: StoreCallOptions): Promise<void>;

  /**
   * Read a pointer document, bypassing caches; `null` when there is none.
   * @throws StorageError when the store fails after retries.
   */
  readPointer(path: string, opts?: StoreCallOptions): Promise<string | null>;

  /**
   * Replace a pointer document if it still holds `opts.expected`.
   * @throws ConflictError (code POINTER_MOVED) when the pointer changed since it was read.
   * @throws ConflictError (code POINTER_LOCKED) when another writer holds the pointer lock.
   * @throws StorageError when the store fails after retries.
   */
  writePointer(path: string, text: string, opts: WritePointerOptions): Promise<void>;
}

/**
 * Parses and zod-validates a manifest document. The registry may import ml *types* only (STYLE.md §2), so the
 * command layer passes `parseManifest` from `ml/artifacts-fs.ts`: one schema for train, export, publish and embed.
 * @throws ConfigError (exit 3) naming every problem.
 */
export type ParseManifest = (text: string, where: string) => ModelManifest;
