/**
 * The embedded driver on its own thread: PGlite (WebAssembly, synchronous while a statement runs) is opened in a
 * worker thread and reached through the same `Db` interface. While the database works on one core, the caller's
 * event loop stays free on the other, so I/O-heavy work (the DMM sync fetching and parsing pages) truly overlaps
 * with writes instead of taking turns with them.
 *
 * Statement parameters and result rows cross as structured clones (Dates, arrays, numbers); COPY data is encoded
 * on the caller's side and its bytes are transferred without a copy. Transactions keep their callback on the caller's side: BEGIN opens a PGlite
 * transaction in the worker that stays open until the caller's callback settles, and every statement of the
 * callback is tagged with its transaction. Errors come back as the same AmMlError classes (DbError with SQLSTATE,
 * ValidationFailedError for a value that cannot be encoded).
 */
import { fileURLToPath } from 'node:url';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { type AmMlError, DbError, InternalError, ValidationFailedError } from '../errors.js';
import { encodeCopyBinary } from './binary-copy.js';
import { wrapEncodeError } from './copy-errors.js';
import { toDbError } from './db-error.js';
import { openPglite, PGLITE_MEMORY, PGLITE_PARSERS, pgliteCopyOutSql, type PgliteDb, pgliteRowCount } from './pglite.js';
import type { Db, Queryable, QueryResult } from './types.js';

type Request =
  | { id: number; op: 'query'; tx?: number; sql: string; params: readonly unknown[] }
  | { id: number; op: 'exec'; tx?: number; sql: string }
  | { id: number; op: 'copy'; tx?: number; sql: string; bytes: Uint8Array }
  | { id: number; op: 'copy-out'; tx?: number; sql: string }
  | { id: number; op: 'begin'; tx: number }
  | { id: number; op: 'end'; tx: number; commit: boolean }
  | { id: number; op: 'close' };

interface WireError {
  name: string;
  message: string;
  code?: string;
  hint?: string;
  details?: Record<string, unknown>;
  sqlState?: string;
  service?: string;
  target?: string;
}

type Reply = { id: number; ok: true; value?: unknown } | { id: number; ok: false; error: WireError };
type Ready = { ready: true; displayUrl: string } | { ready: false; error: WireError };

function toWire(err: unknown): WireError {
  const e = err as Partial<AmMlError> & { sqlState?: string; service?: string; target?: string };
  return {
    name: e?.name ?? 'Error',
    message: e?.message ?? String(err),
    code: e?.code,
    hint: e?.hint,
    details: e?.details,
    sqlState: e?.sqlState,
    service: e?.service,
    target: e?.target,
  };
}

function fromWire(w: WireError): AmMlError {
  if (w.name === 'ValidationFailedError') return new ValidationFailedError(w.message, { code: w.code, hint: w.hint, details: w.details });
  if (w.name === 'InternalError') return new InternalError(w.message, { details: w.details });
  return new DbError(w.message, { code: w.code, hint: w.hint, sqlState: w.sqlState, service: w.service ?? 'pglite', target: w.target });
}

/**
 * The compiled worker script. Under the test runner this module is TypeScript, which a worker thread cannot load;
 * the build (which `npm test` runs first) has the JavaScript next to it in dist/.
 */
function workerScript(): URL {
  const here = fileURLToPath(import.meta.url);
  if (here.endsWith('.js')) return new URL(import.meta.url);
  return new URL(`file://${here.replace(/[\\/]src[\\/](.*)\.ts$/, '/dist/$1.js')}`);
}

export interface OpenPgliteWorkerOptions {
  /** Directory, or ':memory:'. */
  dir: string;
}

/** Open an embedded database in a worker thread. Same lock, same behaviour as `openPglite`. */
export async function openPgliteWorker(opts: OpenPgliteWorkerOptions): Promise<Db> {
  const worker = new Worker(workerScript(), { workerData: { amMlPgliteWorker: true, dir: opts.dir } });
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: unknown) => void }>();
  let nextId = 0;
  let nextTx = 0;
  let crashed: AmMlError | undefined;

  const ready = await new Promise<Ready>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  if (!ready.ready) {
    await worker.terminate();
    throw fromWire(ready.error);
  }
  worker.on('message', (m: Reply) => {
    const p = pending.get(m.id);
    if (!p) return;
    pending.delete(m.id);
    if (m.ok) p.resolve(m.value);
    else p.reject(fromWire(m.error));
  });
  const fail = (err: AmMlError) => {
    crashed = err;
    for (const p of pending.values()) p.reject(err);
    pending.clear();
  };
  worker.on('error', (err) => fail(new DbError(`The embedded database thread failed: ${err.message}`, { service: 'pglite', cause: err })));
  worker.on('exit', (code) => {
    if (pending.size) fail(new DbError(`The embedded database thread exited (code ${code}).`, { service: 'pglite' }));
  });

  // Distributive omit keeps each request's own fields.
  type NewRequest = Request extends infer R ? (R extends Request ? Omit<R, 'id'> : never) : never;
  const call = <T>(req: NewRequest, transfer: ArrayBuffer[] = []): Promise<T> => {
    if (crashed) return Promise.reject(crashed);
    const id = ++nextId;
    return new Promise<T>((resolve, reject) => {
      pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      worker.postMessage({ ...req, id }, transfer);
    });
  };

  const queryable = (tx?: number): Queryable => ({
    query: <R>(sql: string, params: readonly unknown[] = []) => call<QueryResult<R>>({ op: 'query', tx, sql, params }),
    exec: (sql: string) => call<void>({ op: 'exec', tx, sql }),
    copyOut: (select: string) => call<string>({ op: 'copy-out', tx, sql: pgliteCopyOutSql(select) }),
    copyRows: async (table, columns, rows) => {
      // Encoded here and handed over without a copy: the database thread only runs the COPY.
      const encoded = wrapEncodeError(table, columns, () => encodeCopyBinary(columns.map((c) => c.type), rows));
      const bytes = encoded.byteOffset === 0 && encoded.byteLength === encoded.buffer.byteLength ? encoded : encoded.slice();
      const sql = `COPY ${table} (${columns.map((c) => c.name).join(', ')}) FROM '/dev/blob' WITH (FORMAT binary)`;
      return call<number>({ op: 'copy', tx, sql, bytes }, [bytes.buffer as ArrayBuffer]);
    },
  });

  let closed = false;
  return {
    driver: 'pglite',
    displayUrl: ready.displayUrl,
    ...queryable(),
    async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
      const tx = ++nextTx;
      await call({ op: 'begin', tx });
      let result: T;
      try {
        result = await fn(queryable(tx));
      } catch (err) {
        await call({ op: 'end', tx, commit: false }).catch(() => {});
        throw err;
      }
      await call({ op: 'end', tx, commit: true });
      return result;
    },
    async close() {
      if (closed) return;
      closed = true;
      try {
        if (!crashed) await call({ op: 'close' });
      } finally {
        await worker.terminate();
      }
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Worker side
// ---------------------------------------------------------------------------------------------------------------

/** A rollback the caller asked for (not an error to report). */
class Rollback extends Error {}


interface Raw {
  query<T>(sql: string, params?: unknown[], opts?: Record<string, unknown>): Promise<{ rows: T[]; affectedRows?: number; blob?: Blob }>;
  exec(sql: string): Promise<unknown>;
}

async function serve(dir: string): Promise<void> {
  const port = parentPort!;
  let db: PgliteDb;
  try {
    // openPglite takes the directory lock and creates the instance; statements then go to it directly.
    db = await openPglite({ dir: dir === PGLITE_MEMORY ? PGLITE_MEMORY : dir });
  } catch (err) {
    port.postMessage({ ready: false, error: toWire(err) } satisfies Ready);
    return;
  }
  const pg = db.pglite as unknown as Raw & { transaction<T>(fn: (tx: Raw) => Promise<T>): Promise<T> };
  const url = db.displayUrl;
  const txs = new Map<number, { raw: Raw; finish: (commit: boolean) => void; done: Promise<void> }>();
  const target = (tx?: number): Raw => {
    if (tx === undefined) return pg;
    const t = txs.get(tx);
    if (!t) throw new InternalError(`transaction ${tx} is not open`);
    return t.raw;
  };

  async function handle(m: Request): Promise<unknown> {
    switch (m.op) {
      case 'query': {
        const raw = target(m.tx);
        try {
          const r = await raw.query(m.sql, m.params as unknown[], { parsers: PGLITE_PARSERS });
          return { rows: r.rows, rowCount: pgliteRowCount(r) };
        } catch (err) {
          throw toDbError(err, 'pglite', url, m.sql);
        }
      }
      case 'exec':
        try {
          await target(m.tx).exec(m.sql);
          return undefined;
        } catch (err) {
          throw toDbError(err, 'pglite', url, m.sql);
        }
      case 'copy':
        try {
          const r = await target(m.tx).query(m.sql, [], { blob: new Blob([m.bytes]) });
          return r.affectedRows ?? 0;
        } catch (err) {
          throw toDbError(err, 'pglite', url, m.sql);
        }
      case 'copy-out':
        try {
          const r = await target(m.tx).query(m.sql, []);
          return r.blob ? await r.blob.text() : '';
        } catch (err) {
          throw toDbError(err, 'pglite', url, m.sql);
        }
      case 'begin': {
        // The PGlite transaction stays open until the caller's 'end'; replying from inside it means BEGIN ran.
        return new Promise<void>((begun, failed) => {
          let finish!: (commit: boolean) => void;
          const decided = new Promise<boolean>((r) => (finish = r));
          const done: Promise<void> = pg
            .transaction(async (raw) => {
              txs.set(m.tx, { raw, finish, done });
              begun();
              if (!(await decided)) throw new Rollback();
            })
            .then(
              () => undefined,
              (err) => {
                if (!(err instanceof Rollback)) throw toDbError(err, 'pglite', url);
              },
            )
            .finally(() => txs.delete(m.tx));
          done.catch(failed); // a failed BEGIN (after begun(), this is a no-op)
        });
      }
      case 'end': {
        const t = txs.get(m.tx);
        if (!t) throw new InternalError(`transaction ${m.tx} is not open`);
        t.finish(m.commit);
        await t.done;
        return undefined;
      }
      case 'close':
        await db.close();
        return undefined;
    }
  }

  port.on('message', (m: Request) => {
    handle(m).then(
      (value) => port.postMessage({ id: m.id, ok: true, value } satisfies Reply),
      (err) => port.postMessage({ id: m.id, ok: false, error: toWire(err) } satisfies Reply),
    );
  });
  port.postMessage({ ready: true, displayUrl: db.displayUrl } satisfies Ready);
}

if (!isMainThread && (workerData as { amMlPgliteWorker?: boolean } | undefined)?.amMlPgliteWorker) {
  await serve((workerData as { dir: string }).dir);
}
