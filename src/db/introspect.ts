/**
 * Read the actual shape of the database before writing (app-schema §2, §7.14): production was changed by hand, so
 * am-ml never assumes the migrations describe it. Every mismatch is a ValidationFailedError naming expected and found.
 */
import { ValidationFailedError } from '../errors.js';
import type { Queryable } from './types.js';

export interface EmbeddingColumn {
  table: string;
  column: string;
  type: 'vector' | 'halfvec';
  dim: number;
  /** As Postgres prints it: `halfvec(128)`. */
  formatted: string;
}

const VECTOR_TYPE_RE = /^(vector|halfvec)\((\d+)\)$/;

/** Split `schema.table` (default schema public). */
function splitName(qualified: string): { schema: string; table: string } {
  const [a, b] = qualified.split('.');
  return b === undefined ? { schema: 'public', table: a } : { schema: a, table: b };
}

/** The declared type of an embedding column, e.g. `halfvec(128)`; schema drift if missing or not a vector type. */
export async function embeddingColumn(
  db: Queryable,
  qualifiedTable: string,
  column = 'embedding',
): Promise<EmbeddingColumn> {
  const { schema, table } = splitName(qualifiedTable);
  const { rows } = await db.query<{ formatted: string }>(
    `SELECT format_type(a.atttypid, a.atttypmod) AS formatted
       FROM pg_attribute a
       JOIN pg_class c ON c.oid = a.attrelid
       JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relname = $2 AND a.attname = $3 AND a.attnum > 0 AND NOT a.attisdropped`,
    [schema, table, column],
  );
  if (rows.length === 0) {
    throw new ValidationFailedError(
      `Schema drift: expected column ${schema}.${table}.${column} of type vector(N) or halfvec(N), found no such column.`,
      {
        code: 'SCHEMA_DRIFT',
        hint: 'Run `am-ml db migrate` (embedded database) or apply the app migrations to this database.',
        details: { expected: `${schema}.${table}.${column} vector(N)|halfvec(N)`, found: null },
      },
    );
  }
  // Type names may be schema-qualified when the extension lives in another schema (Supabase: extensions.vector).
  const formatted = rows[0].formatted.replace(/^[a-z_]+\./, '');
  const m = VECTOR_TYPE_RE.exec(formatted);
  if (!m) {
    throw new ValidationFailedError(
      `Schema drift: expected ${schema}.${table}.${column} to be vector(N) or halfvec(N), found ${rows[0].formatted}.`,
      {
        code: 'SCHEMA_DRIFT',
        hint: 'An embedding column without a fixed dimension cannot be checked against the model; alter it to vector(N) or halfvec(N).',
        details: { expected: 'vector(N)|halfvec(N)', found: rows[0].formatted },
      },
    );
  }
  return { table: `${schema}.${table}`, column, type: m[1] as 'vector' | 'halfvec', dim: Number(m[2]), formatted };
}

/** Fail unless the column's dimension equals the model's output dimension (never pad or truncate). */
export function assertEmbeddingDim(col: EmbeddingColumn, modelDim: number): void {
  if (col.dim !== modelDim) {
    throw new ValidationFailedError(
      `Dimension mismatch: the model outputs ${modelDim}-d vectors but ${col.table}.${col.column} is ${col.formatted}. Nothing was written.`,
      {
        code: 'DIMENSION_MISMATCH',
        hint: `Either use a model with output dimension ${col.dim}, or migrate the column to ${col.type}(${modelDim}) (drop the index, alter the column, recreate the index with ${col.type}_cosine_ops).`,
        details: { expected: modelDim, found: col.dim, column: `${col.table}.${col.column}` },
      },
    );
  }
}

export async function tableExists(db: Queryable, qualifiedTable: string): Promise<boolean> {
  const { rows } = await db.query<{ ok: boolean }>('SELECT to_regclass($1) IS NOT NULL AS ok', [qualifiedTable]);
  return rows[0].ok;
}

/** Columns of a table with their formatted types, in order. */
export async function tableColumns(db: Queryable, qualifiedTable: string): Promise<Map<string, string>> {
  const { schema, table } = splitName(qualifiedTable);
  const { rows } = await db.query<{ name: string; type: string }>(
    `SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type
       FROM pg_attribute a
       JOIN pg_class c ON c.oid = a.attrelid
       JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped
      ORDER BY a.attnum`,
    [schema, table],
  );
  return new Map(rows.map((r) => [r.name, r.type]));
}

/**
 * Fail with one message listing every missing table or column (schema drift), so a user sees the whole gap at once.
 * `expected` maps `schema.table` to the columns a command reads or writes.
 */
export async function assertColumns(db: Queryable, expected: Record<string, readonly string[]>): Promise<void> {
  const problems: string[] = [];
  for (const [table, cols] of Object.entries(expected)) {
    const found = await tableColumns(db, table);
    if (found.size === 0) {
      problems.push(`table ${table} is missing`);
      continue;
    }
    const missing = cols.filter((c) => !found.has(c));
    if (missing.length) problems.push(`${table} lacks column(s) ${missing.join(', ')} (found: ${[...found.keys()].join(', ')})`);
  }
  if (problems.length) {
    throw new ValidationFailedError(`Schema drift: ${problems.join('; ')}.`, {
      code: 'SCHEMA_DRIFT',
      hint: 'Run `am-ml db migrate`, or bring the database in line with the app migrations.',
      details: { problems },
    });
  }
}

/**
 * The values allowed by a `CHECK (col IN (…))` / `col = ANY (ARRAY[…])` constraint on a column, or null when no such
 * constraint exists. Used to check e.g. `user_video_decisions.decision_type` before reading or writing it.
 */
export async function checkConstraintValues(
  db: Queryable,
  qualifiedTable: string,
  column: string,
): Promise<string[] | null> {
  const { schema, table } = splitName(qualifiedTable);
  const { rows } = await db.query<{ def: string }>(
    `SELECT pg_get_constraintdef(con.oid) AS def
       FROM pg_constraint con
       JOIN pg_class c ON c.oid = con.conrelid
       JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE con.contype = 'c' AND n.nspname = $1 AND c.relname = $2`,
    [schema, table],
  );
  for (const { def } of rows) {
    if (!new RegExp(`\\b${column}\\b`).test(def)) continue;
    const values = [...def.matchAll(/'((?:[^']|'')*)'/g)].map((m) => m[1].replace(/''/g, "'"));
    if (values.length) return values;
  }
  return null;
}
