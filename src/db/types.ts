/**
 * The database interface every command uses, with two drivers chosen by URL scheme: `pglite://<dir>` (embedded
 * PGlite with pgvector, in process) and `postgres://…` (node-postgres; Supabase direct or pooler). Core modules
 * receive a `Db` and never know which driver is behind it.
 */
import type { CopyColumnType } from './binary-copy.js';

export interface QueryResult<R> {
  rows: R[];
  /** Rows affected (INSERT/UPDATE/DELETE/COPY) or returned. */
  rowCount: number;
}

export interface CopyColumn {
  name: string;
  type: CopyColumnType;
}

export interface Queryable {
  /** One statement with `$1…` parameters. */
  query<R = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<QueryResult<R>>;
  /** Several statements, no parameters (migrations, DDL). */
  exec(sql: string): Promise<void>;
  /**
   * Bulk load with binary COPY: `rows` are arrays in `columns` order. Returns the number of rows copied.
   * @throws DbError on a server error; CopyEncodeError (wrapped as ValidationFailedError) on a bad value.
   */
  copyRows(table: string, columns: readonly CopyColumn[], rows: Iterable<readonly unknown[]>): Promise<number>;
  /**
   * Bulk read: the text-format COPY output of a SELECT (parse with `parseCopyText` in copy-text.ts). COPY takes no
   * parameters: inline values only through `sqlLiteral`.
   */
  copyOut(select: string): Promise<string>;
}

export type DbDriver = 'pglite' | 'postgres';

export interface Db extends Queryable {
  readonly driver: DbDriver;
  /** The URL with any password removed, safe to print. */
  readonly displayUrl: string;
  /** Run `fn` in one transaction (BEGIN … COMMIT, ROLLBACK on throw). */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}
