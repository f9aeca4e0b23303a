/**
 * The embedded driver: PGlite (PostgreSQL in WebAssembly, in process) with pgvector. `pglite://<dir>` persists to
 * a directory; `pglite://:memory:` keeps everything in memory (tests, dry runs).
 *
 * PGlite is single-connection and two processes opening the same directory corrupt it, so the directory is guarded
 * by a pid lock file beside it (`<dir>.lock`); a lock left by a killed process is taken over.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { PGlite, types as pgliteTypes } from '@electric-sql/pglite';
import { vector } from '@electric-sql/pglite-pgvector';
import { DbError } from '../errors.js';
import { encodeCopyBinary } from './binary-copy.js';
import { toDbError } from './db-error.js';
import { wrapEncodeError } from './copy-errors.js';
import type { CopyColumn, Db, Queryable, QueryResult } from './types.js';

export const PGLITE_MEMORY = ':memory:';

/** Parse numerics and int8 as JS numbers so both drivers return the same shapes (pg is configured alike). */
export const PGLITE_PARSERS = {
  [pgliteTypes.INT8]: (v: string) => Number(v),
  [pgliteTypes.NUMERIC]: (v: string) => Number(v),
};

interface PgliteLike {
  query<T>(sql: string, params?: unknown[], opts?: Record<string, unknown>): Promise<{ rows: T[]; affectedRows?: number; blob?: Blob }>;
  exec(sql: string): Promise<unknown>;
}

/** `COPY (<select>) TO '/dev/blob'`: PGlite hands the output back as a Blob. */
export function pgliteCopyOutSql(select: string): string {
  return `COPY (${select}) TO '/dev/blob' WITH (FORMAT text)`;
}

/**
 * PGlite reports `affectedRows` 0 for a SELECT; report the number of rows returned then, as the pg driver does.
 */
export function pgliteRowCount(r: { rows: unknown[]; affectedRows?: number }): number {
  return r.affectedRows ? r.affectedRows : r.rows.length;
}

/** Directories this process has open: a second open of the same one would corrupt it just like another process. */
const openInThisProcess = new Set<string>();

function wrap(inner: PgliteLike, displayUrl: string): Queryable {
  return {
    async query<R>(sql: string, params: readonly unknown[] = []): Promise<QueryResult<R>> {
      try {
        const r = await inner.query<R>(sql, params as unknown[], { parsers: PGLITE_PARSERS });
        return { rows: r.rows, rowCount: pgliteRowCount(r) };
      } catch (err) {
        throw toDbError(err, 'pglite', displayUrl, sql);
      }
    },
    async exec(sql: string): Promise<void> {
      try {
        await inner.exec(sql);
      } catch (err) {
        throw toDbError(err, 'pglite', displayUrl, sql);
      }
    },
    async copyOut(select: string): Promise<string> {
      const sql = pgliteCopyOutSql(select);
      try {
        const r = await inner.query(sql, []);
        return r.blob ? await r.blob.text() : '';
      } catch (err) {
        throw toDbError(err, 'pglite', displayUrl, sql);
      }
    },
    async copyRows(table: string, columns: readonly CopyColumn[], rows: Iterable<readonly unknown[]>): Promise<number> {
      const bytes = wrapEncodeError(table, columns, () => encodeCopyBinary(columns.map((c) => c.type), rows));
      const sql = `COPY ${table} (${columns.map((c) => c.name).join(', ')}) FROM '/dev/blob' WITH (FORMAT binary)`;
      try {
        const r = await inner.query(sql, [], { blob: new Blob([bytes]) });
        return r.affectedRows ?? 0;
      } catch (err) {
        throw toDbError(err, 'pglite', displayUrl, sql);
      }
    },
  };
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Take the directory lock or explain who holds it. Returns the release function. */
function acquireLock(dir: string): () => void {
  const lockFile = `${dir}.lock`;
  if (openInThisProcess.has(dir)) {
    throw new DbError(`The embedded database ${dir} is already open in this process.`, {
      code: 'DB_LOCKED',
      service: 'pglite',
      target: dir,
      hint: 'Close the first handle before opening it again (PGlite allows one connection per directory).',
    });
  }
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(lockFile, JSON.stringify({ pid: process.pid, startedAt: new Date().toISOString() }), { flag: 'wx' });
      openInThisProcess.add(dir);
      return () => {
        openInThisProcess.delete(dir);
        rmSync(lockFile, { force: true });
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      let holder: number | undefined;
      try {
        holder = Number(JSON.parse(readFileSync(lockFile, 'utf8')).pid);
      } catch {
        holder = undefined; // unreadable lock: treat as stale
      }
      // Our own pid in a lock we do not hold in this process: left by an earlier process that had the same pid.
      if (holder && holder !== process.pid && processAlive(holder)) {
        throw new DbError(`The embedded database ${dir} is in use by another am-ml process (pid ${holder}).`, {
          code: 'DB_LOCKED',
          service: 'pglite',
          target: dir,
          hint: `Wait for that process to finish (or stop it), then retry. If no am-ml process is running, delete ${lockFile}.`,
        });
      }
      rmSync(lockFile, { force: true }); // stale: its process is gone (killed run)
    }
  }
  throw new DbError(`Could not lock the embedded database ${dir}.`, { service: 'pglite', target: dir });
}

export interface OpenPgliteOptions {
  /** Directory, or ':memory:'. */
  dir: string;
}

/** The PGlite driver also exposes the instance (tests serve it over the wire protocol). */
export interface PgliteDb extends Db {
  readonly pglite: PGlite;
}

/** Open (creating if needed) an embedded database with the vector extension available. */
export async function openPglite(opts: OpenPgliteOptions): Promise<PgliteDb> {
  const memory = opts.dir === PGLITE_MEMORY;
  const dir = memory ? PGLITE_MEMORY : path.resolve(opts.dir);
  const displayUrl = `pglite://${dir}`;
  let release = () => {};
  if (!memory) {
    mkdirSync(path.dirname(dir), { recursive: true });
    release = acquireLock(dir);
  }
  let pg: PGlite;
  try {
    pg = await PGlite.create(memory ? undefined : dir, { extensions: { vector } });
  } catch (err) {
    release();
    throw new DbError(`Could not open the embedded database at ${dir}: ${(err as Error).message}`, {
      code: 'DB_OPEN',
      service: 'pglite',
      target: dir,
      hint: 'If the directory was written by another PGlite version or is damaged, move it aside and run `am-ml init`.',
      cause: err,
    });
  }
  const base = wrap(pg as unknown as PgliteLike, displayUrl);
  let closed = false;
  return {
    driver: 'pglite',
    displayUrl,
    pglite: pg,
    ...base,
    async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
      try {
        return await pg.transaction((tx) => fn(wrap(tx as unknown as PgliteLike, displayUrl)));
      } catch (err) {
        throw toDbError(err, 'pglite', displayUrl);
      }
    },
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      try {
        await pg.close();
      } finally {
        release();
      }
    },
  };
}
