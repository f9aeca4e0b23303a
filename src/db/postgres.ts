/**
 * The `postgres://` driver (node-postgres). Works against Supabase directly or through the pooler
 * (`<region>.pooler.supabase.com`, port 5432 session mode for long transactions). Bulk writes use
 * `COPY … FROM STDIN WITH (FORMAT binary)`.
 *
 * `sslmode` is interpreted with libpq's meaning, because pg's connection-string parser treats `require` as
 * `verify-full`, which fails against the pooler's certificate unless its CA is given:
 *   disable → no TLS; require/prefer → TLS without certificate checks (with a CA file: verified);
 *   verify-ca / verify-full → TLS, certificate verified (CA file optional, system roots otherwise).
 */
import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import pg from 'pg';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import { ConfigError } from '../errors.js';
import { encodeCopyBinary } from './binary-copy.js';
import { wrapEncodeError } from './copy-errors.js';
import { toDbError } from './db-error.js';
import type { CopyColumn, Db, Queryable, QueryResult } from './types.js';

/** Pool size; the PGlite socket server in tests allows one connection, so tests pass 1. */
export const DEFAULT_POOL_MAX = 4;
const CONNECT_TIMEOUT_MS = 15_000;
const SSL_MODES = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'] as const;
type SslMode = (typeof SSL_MODES)[number];

const INT8_OID = 20;
const NUMERIC_OID = 1700;
/** Same shapes as the PGlite driver: int8 and numeric as JS numbers. */
const TYPES = {
  getTypeParser: (oid: number, format?: 'text' | 'binary') => {
    if (oid === INT8_OID || oid === NUMERIC_OID) return (v: string) => (v === null ? null : Number(v));
    return pg.types.getTypeParser(oid, format);
  },
};

/** Remove the password from a connection URL for display. */
export function displayPostgresUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'postgres://(unparseable url)';
  }
}

export interface PostgresConnectionOptions {
  url: string;
  /** PEM CA certificate file (Supabase's project CA). */
  caFile?: string;
  poolMax?: number;
}

/** Turn our URL + CA file into pg client config, applying libpq sslmode semantics. */
export function postgresClientConfig(opts: PostgresConnectionOptions): pg.PoolConfig {
  let u: URL;
  try {
    u = new URL(opts.url);
  } catch {
    throw new ConfigError('The database URL is not a valid URL.', [
      { key: 'AMML_DATABASE_URL', message: 'expected postgres://user:password@host:port/database?sslmode=require' },
    ]);
  }
  const mode = (u.searchParams.get('sslmode') ?? 'prefer') as SslMode;
  if (!SSL_MODES.includes(mode)) {
    throw new ConfigError('The database URL has an unknown sslmode.', [
      { key: 'AMML_DATABASE_URL', message: `sslmode=${mode} is not one of ${SSL_MODES.join(', ')}` },
    ]);
  }
  // pg would re-interpret these; we pass TLS settings explicitly instead.
  for (const k of ['sslmode', 'sslrootcert', 'sslcert', 'sslkey', 'uselibpqcompat']) u.searchParams.delete(k);
  const ca = opts.caFile ? readFileSync(opts.caFile, 'utf8') : undefined;
  let ssl: false | ConnectionOptions;
  if (mode === 'disable' || mode === 'allow') ssl = false;
  else if (mode === 'require' || mode === 'prefer') ssl = ca ? { ca, rejectUnauthorized: true } : { rejectUnauthorized: false };
  else ssl = { ...(ca ? { ca } : {}), rejectUnauthorized: true, ...(mode === 'verify-ca' ? { checkServerIdentity: () => undefined } : {}) };
  // `prefer` against a server without TLS: libpq falls back to plain; loopback URLs default to no TLS.
  const loopback = ['localhost', '127.0.0.1', '[::1]', '::1'].includes(u.hostname);
  if (mode === 'prefer' && loopback) ssl = false;
  return {
    connectionString: u.toString(),
    ssl,
    max: opts.poolMax ?? DEFAULT_POOL_MAX,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    application_name: 'am-ml',
    types: TYPES,
  } as pg.PoolConfig;
}

/** Run `fn` on the given client, or on a client borrowed from the pool (COPY needs one connection throughout). */
async function withClient<T>(client: pg.PoolClient | pg.Pool, fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
  if (!(client instanceof pg.Pool)) return fn(client);
  const c = await client.connect();
  try {
    return await fn(c);
  } finally {
    c.release();
  }
}

function wrapClient(client: pg.PoolClient | pg.Pool, displayUrl: string): Queryable {
  return {
    async query<R>(sql: string, params: readonly unknown[] = []): Promise<QueryResult<R>> {
      try {
        const r = await client.query(sql, params as unknown[]);
        return { rows: r.rows as R[], rowCount: r.rowCount ?? r.rows.length };
      } catch (err) {
        throw toDbError(err, 'postgres', displayUrl, sql);
      }
    },
    async exec(sql: string): Promise<void> {
      try {
        await client.query(sql);
      } catch (err) {
        throw toDbError(err, 'postgres', displayUrl, sql);
      }
    },
    async copyOut(select: string): Promise<string> {
      const sql = `COPY (${select}) TO STDOUT WITH (FORMAT text)`;
      const run = async (c: pg.PoolClient) => {
        const stream = c.query(copyTo(sql));
        const chunks: Buffer[] = [];
        await new Promise<void>((resolve, reject) => {
          stream.on('data', (d: Buffer) => chunks.push(d));
          stream.on('error', reject);
          stream.on('end', () => resolve());
        });
        return Buffer.concat(chunks).toString('utf8');
      };
      try {
        return await withClient(client, run);
      } catch (err) {
        throw toDbError(err, 'postgres', displayUrl, sql);
      }
    },
    async copyRows(table: string, columns: readonly CopyColumn[], rows: Iterable<readonly unknown[]>): Promise<number> {
      const bytes = wrapEncodeError(table, columns, () => encodeCopyBinary(columns.map((c) => c.type), rows));
      const sql = `COPY ${table} (${columns.map((c) => c.name).join(', ')}) FROM STDIN WITH (FORMAT binary)`;
      const run = async (c: pg.PoolClient) => {
        const stream = c.query(copyFrom(sql));
        await new Promise<void>((resolve, reject) => {
          stream.on('error', reject);
          stream.on('finish', () => resolve());
          stream.end(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
        });
        return stream.rowCount ?? 0;
      };
      try {
        return await withClient(client, run);
      } catch (err) {
        throw toDbError(err, 'postgres', displayUrl, sql);
      }
    },
  };
}

/** Connect (lazily, through a pool) and check the server answers. */
export async function openPostgres(opts: PostgresConnectionOptions): Promise<Db> {
  const displayUrl = displayPostgresUrl(opts.url);
  const pool = new pg.Pool(postgresClientConfig(opts));
  // An idle client's network error must not crash the process; the next query reports it.
  pool.on('error', () => {});
  try {
    const c = await pool.connect();
    c.release();
  } catch (err) {
    await pool.end().catch(() => {});
    throw toDbError(err, 'postgres', displayUrl);
  }
  const base = wrapClient(pool, displayUrl);
  let closed = false;
  return {
    driver: 'postgres',
    displayUrl,
    ...base,
    async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
      let client: pg.PoolClient;
      try {
        client = await pool.connect();
      } catch (err) {
        throw toDbError(err, 'postgres', displayUrl);
      }
      let broken = false;
      try {
        await client.query('BEGIN');
        const out = await fn(wrapClient(client, displayUrl));
        await client.query('COMMIT');
        return out;
      } catch (err) {
        try {
          await client.query('ROLLBACK');
        } catch {
          broken = true; // connection is gone; do not return it to the pool
        }
        throw toDbError(err, 'postgres', displayUrl);
      } finally {
        client.release(broken);
      }
    },
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      await pool.end();
    },
  };
}
