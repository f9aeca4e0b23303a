import { AmMlError, DbError, redact } from '../errors.js';
import type { DbDriver } from './types.js';

/** SQLSTATE classes that mean "could not reach or log in", which deserve a connection hint. */
const CONNECTION_SQLSTATE_PREFIXES = ['08', '28', '3D'];

/** Wrap a driver error (pg or PGlite) as DbError with SQLSTATE, redacted target and the failing statement's head. */
export function toDbError(err: unknown, driver: DbDriver, displayUrl: string, sql?: string): AmMlError {
  if (err instanceof AmMlError) return err;
  const e = err as { code?: string; message?: string; detail?: string; hint?: string };
  const sqlState = typeof e.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code) ? e.code : undefined;
  const head = sql ? sql.trim().split('\n')[0].slice(0, 120) : undefined;
  const parts = [`Database error (${driver}, ${displayUrl})${sqlState ? ` [SQLSTATE ${sqlState}]` : ''}: ${e.message ?? String(err)}`];
  if (e.detail) parts.push(`Detail: ${e.detail}`);
  if (head) parts.push(`Statement: ${head}`);
  const connectionProblem =
    (sqlState && CONNECTION_SQLSTATE_PREFIXES.some((p) => sqlState.startsWith(p))) ||
    /ECONNREFUSED|ENOTFOUND|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|self.signed|certificate/i.test(e.message ?? '');
  return new DbError(redact(parts.join('\n')), {
    service: driver,
    target: displayUrl,
    sqlState,
    hint: connectionProblem
      ? 'Check --db / AMML_DATABASE_URL: host, port, user, password and sslmode (Supabase pooler: port 5432 session mode, user postgres.<project_ref>, sslmode=require; pass the CA with AMML_DATABASE_CA_FILE to verify it).'
      : e.hint,
    cause: err,
  });
}
