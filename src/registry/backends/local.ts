/**
 * `file://<dir>`: the embedded model store (default `.am-ml/models`). Writes go to a temporary file in the target
 * folder, are flushed, and then appear under their name in one step: `link()` for create-if-absent (fails with
 * EEXIST instead of replacing), `rename()` for overwrite. A killed process therefore leaves at most a
 * `.amml-tmp-*` file, which listings skip, never a half-written object.
 */
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { copyFile, link, mkdir, open, readdir, readFile, rename, rmdir, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { ConflictError, StorageError, throwIfAborted, ValidationFailedError } from '../../errors.js';
import { assertStorePath } from '../paths.js';
import { compareAndSwapPointer, type PointerPrimitives } from '../pointer-lock.js';
import type { ListOptions, ModelStore, PutFileOptions, StoreCallOptions, StoredObject, WritePointerOptions } from '../types.js';

export const TMP_PREFIX = '.amml-tmp-';

export interface LocalStoreOptions {
  /** Absolute folder of the store. */
  dir: string;
  now?: () => number;
  /** Refuse objects larger than this (tests use it to exercise the size check). @default no limit */
  maxFileBytes?: number;
}

function fsError(err: unknown, op: string, file: string): StorageError {
  const e = err as NodeJS.ErrnoException;
  return new StorageError(`Model store ${op} failed for ${file}: ${e.code ?? ''} ${e.message}`.trim(), {
    service: 'local-store',
    target: file,
    cause: err,
    hint: e.code === 'EACCES' || e.code === 'EROFS' ? 'Check that the store folder is writable (--store / AMML_MODEL_STORE).' : undefined,
  });
}

export function localStore(opts: LocalStoreOptions): ModelStore {
  const root = path.resolve(opts.dir);
  const maxFileBytes = opts.maxFileBytes ?? Number.MAX_SAFE_INTEGER;
  const full = (p: string) => {
    assertStorePath(p);
    return p === '' ? root : path.join(root, ...p.split('/'));
  };

  async function writeTemp(dest: string, body: Uint8Array): Promise<string> {
    await mkdir(path.dirname(dest), { recursive: true });
    const tmp = path.join(path.dirname(dest), `${TMP_PREFIX}${randomBytes(6).toString('hex')}`);
    const fh = await open(tmp, 'wx');
    try {
      await fh.writeFile(body);
      await fh.sync();
    } finally {
      await fh.close();
    }
    return tmp;
  }

  async function put(p: string, body: Uint8Array, overwrite: boolean, signal?: AbortSignal): Promise<void> {
    throwIfAborted(signal);
    const dest = full(p);
    let tmp: string | undefined;
    try {
      tmp = await writeTemp(dest, body);
      if (overwrite) {
        await rename(tmp, dest);
        tmp = undefined;
        return;
      }
      try {
        await link(tmp, dest);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EEXIST') throw new ConflictError(`${p} already exists in the model store.`, { code: 'OBJECT_EXISTS', details: { path: p } });
        // File systems without hard links: exclusive copy (not atomic for readers, still never overwrites).
        if (code === 'EPERM' || code === 'ENOTSUP' || code === 'EXDEV') {
          try {
            await copyFile(tmp, dest, constants.COPYFILE_EXCL);
          } catch (copyErr) {
            if ((copyErr as NodeJS.ErrnoException).code === 'EEXIST') {
              throw new ConflictError(`${p} already exists in the model store.`, { code: 'OBJECT_EXISTS', details: { path: p } });
            }
            throw copyErr;
          }
        } else throw err;
      }
    } catch (err) {
      if (err instanceof ConflictError) throw err;
      throw fsError(err, 'write', dest);
    } finally {
      if (tmp) await unlink(tmp).catch(() => {});
    }
  }

  async function read(p: string, signal?: AbortSignal): Promise<Uint8Array | null> {
    throwIfAborted(signal);
    try {
      return new Uint8Array(await readFile(full(p)));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return null;
      throw fsError(err, 'read', full(p));
    }
  }

  async function walk(rel: string, recursive: boolean, out: StoredObject[]): Promise<void> {
    let entries;
    try {
      entries = await readdir(full(rel), { withFileTypes: true });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return;
      throw fsError(err, 'list', full(rel));
    }
    for (const e of entries) {
      if (e.name.startsWith(TMP_PREFIX)) continue;
      const p = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) {
        if (recursive) await walk(p, true, out);
        else out.push({ path: p, size: 0, folder: true });
      } else if (e.isFile()) {
        const st = await stat(full(p)).catch(() => undefined);
        if (st) out.push({ path: p, size: st.size, updatedAt: st.mtime.toISOString() });
      }
    }
  }

  /** Remove now-empty folders up to the root, so a pruned version disappears from listings. */
  async function pruneEmptyParents(file: string): Promise<void> {
    let dir = path.dirname(file);
    while (dir.startsWith(root) && dir !== root) {
      try {
        await rmdir(dir);
      } catch {
        return;
      }
      dir = path.dirname(dir);
    }
  }

  const prims: PointerPrimitives = {
    put: (p, body, overwrite, signal) => put(p, body, overwrite, signal),
    read: (p, signal) => read(p, signal),
    remove: async (p) => {
      await unlink(full(p)).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw fsError(err, 'remove', full(p));
      });
    },
  };

  return {
    url: pathToFileURL(root).href,
    rootPath: '',
    maxFileBytes,
    async putFile(p: string, body: Uint8Array, o: PutFileOptions = {}) {
      if (body.byteLength > maxFileBytes) {
        throw new ValidationFailedError(`${p} is ${body.byteLength} bytes, over the store's limit of ${maxFileBytes} bytes.`, {
          code: 'FILE_TOO_LARGE',
        });
      }
      await put(p, body, o.overwrite ?? false, o.signal);
    },
    getFile: (p: string, o: StoreCallOptions = {}) => read(p, o.signal),
    async list(prefix: string, o: ListOptions = {}) {
      throwIfAborted(o.signal);
      const out: StoredObject[] = [];
      await walk(prefix.replace(/\/+$/, ''), o.recursive ?? true, out);
      return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    },
    async remove(paths: readonly string[], o: StoreCallOptions = {}) {
      for (const p of paths) {
        throwIfAborted(o.signal);
        await prims.remove(p);
        await pruneEmptyParents(full(p));
      }
    },
    readPointer: async (p: string, o: StoreCallOptions = {}) => {
      const bytes = await read(p, o.signal);
      return bytes === null ? null : new TextDecoder().decode(bytes);
    },
    writePointer: (p: string, text: string, o: WritePointerOptions) =>
      compareAndSwapPointer(prims, p, text, { expected: o.expected, signal: o.signal, now: opts.now }),
  };
}
