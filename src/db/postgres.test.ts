/**
 * The postgres:// driver over the real wire protocol: against a throwaway native PostgreSQL cluster (COPY FROM
 * STDIN binary, transactions seen from a second connection, the missing-pgvector error), and against PGlite's
 * socket server (pgvector through the pg driver).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DbError } from '../errors.js';
import { startNativePostgres, type NativePostgres } from '../testing/native-postgres.js';
import { createTestDb, startPgliteSocket, type PgliteSocket } from '../testing/pglite.js';
import { parseCopyText } from './copy-text.js';
import { embeddingColumn } from './introspect.js';
import { appliedMigrationIds, migrate } from './migrate.js';
import type { PgliteDb } from './pglite.js';
import { openPostgres, postgresClientConfig } from './postgres.js';
import type { Db } from './types.js';

describe('sslmode (libpq meaning)', () => {
  const cfg = (url: string, caFile?: string) => postgresClientConfig({ url, caFile });
  it('require encrypts without verifying unless a CA is given', () => {
    expect(cfg('postgres://u:p@db.example.com/x?sslmode=require').ssl).toEqual({ rejectUnauthorized: false });
  });
  it('verify-full verifies; disable turns TLS off; loopback prefer is plain', () => {
    expect(cfg('postgres://u@db.example.com/x?sslmode=verify-full').ssl).toEqual({ rejectUnauthorized: true });
    expect(cfg('postgres://u@db.example.com/x?sslmode=disable').ssl).toBe(false);
    expect(cfg('postgres://u@127.0.0.1/x').ssl).toBe(false);
  });
  it('strips sslmode from the string handed to pg (pg would read require as verify-full)', () => {
    expect(cfg('postgres://u@db.example.com:6543/x?sslmode=require&application_name=y').connectionString).toBe(
      'postgres://u@db.example.com:6543/x?application_name=y',
    );
  });
  it('rejects unknown sslmodes as a config error', () => {
    expect(() => cfg('postgres://u@h/x?sslmode=sometimes')).toThrow(/sslmode=sometimes is not one of/);
  });
});

describe('postgres:// driver against a native PostgreSQL cluster', () => {
  let pg: NativePostgres;
  let db: Db;
  let other: Db;
  beforeAll(async () => {
    pg = await startNativePostgres();
    db = await openPostgres({ url: pg.url });
    other = await openPostgres({ url: pg.url });
  });
  afterAll(async () => {
    await other?.close();
    await db?.close();
    await pg?.stop();
  });

  it('stops migrate with a clear error naming the missing pgvector extension, writing nothing', async () => {
    const err = await migrate(db).catch((e) => e);
    expect(err).toBeInstanceOf(DbError);
    expect(err.code).toBe('DB_EXTENSION_MISSING');
    expect(err.exitCode).toBe(5);
    expect(err.message).toMatch(/pgvector extension \('vector'\)/);
    expect(err.hint).toMatch(/apt install postgresql-<major>-pgvector/);
    expect(await appliedMigrationIds(db)).toEqual([]);
    expect((await db.query(`SELECT to_regnamespace('am_ml') IS NULL AS none`)).rows[0]).toEqual({ none: true });
  });

  it('bulk-loads with binary COPY FROM STDIN and reads the same values back', async () => {
    await db.exec('CREATE TABLE copy_t (id int8, name text, score float8, at timestamptz, tags text[], meta jsonb, u uuid)');
    const at = new Date('2026-01-02T03:04:05.678Z');
    const rows = Array.from({ length: 5000 }, (_, i) => [
      i,
      `名前 ${i}`,
      i / 7,
      at,
      [`t${i % 3}`, 'x'],
      { i },
      `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`,
    ]);
    const n = await db.copyRows(
      'copy_t',
      [
        { name: 'id', type: 'int8' },
        { name: 'name', type: 'text' },
        { name: 'score', type: 'float8' },
        { name: 'at', type: 'timestamptz' },
        { name: 'tags', type: 'text[]' },
        { name: 'meta', type: 'jsonb' },
        { name: 'u', type: 'uuid' },
      ],
      rows,
    );
    expect(n).toBe(5000);
    const back = await db.query<Record<string, unknown>>('SELECT * FROM copy_t WHERE id IN (0, 4999) ORDER BY id');
    expect(back.rows[1]).toEqual({
      id: 4999,
      name: '名前 4999',
      score: 4999 / 7,
      at,
      tags: ['t1', 'x'],
      meta: { i: 4999 },
      u: '00000000-0000-4000-8000-000000004999',
    });
  });

  it('reads with COPY … TO STDOUT (text format) the same values a SELECT returns', async () => {
    const text = await db.copyOut(`SELECT id, name, tags FROM copy_t WHERE id IN (0, 4999) ORDER BY id`);
    expect(parseCopyText(text)).toEqual([
      ['0', '名前 0', '{t0,x}'],
      ['4999', '名前 4999', '{t1,x}'],
    ]);
  });

  it('makes a transaction visible to a second connection only at commit, and rolls back on error', async () => {
    await db.exec('CREATE TABLE tx_t (id int PRIMARY KEY)');
    let seenDuring = -1;
    await db.transaction(async (tx) => {
      await tx.copyRows('tx_t', [{ name: 'id', type: 'int4' }], [[1], [2], [3]]);
      seenDuring = (await other.query<{ n: number }>('SELECT count(*)::int AS n FROM tx_t')).rows[0].n;
    });
    expect(seenDuring).toBe(0);
    expect((await other.query<{ n: number }>('SELECT count(*)::int AS n FROM tx_t')).rows[0].n).toBe(3);
    await expect(
      db.transaction(async (tx) => {
        await tx.query('INSERT INTO tx_t VALUES (4)');
        await tx.query('INSERT INTO tx_t VALUES (1)'); // duplicate key
      }),
    ).rejects.toMatchObject({ code: 'DB', sqlState: '23505' });
    expect((await other.query<{ n: number }>('SELECT count(*)::int AS n FROM tx_t')).rows[0].n).toBe(3);
  });

  it('reports connection failures as DbError with a hint and no password', async () => {
    const url = pg.url.replace(/:\d+\//, ':1/').replace('postgres@', 'postgres:hunter2@');
    const err = await openPostgres({ url }).catch((e) => e);
    expect(err).toBeInstanceOf(DbError);
    expect(err.message).not.toContain('hunter2');
    expect(err.message).toContain('postgres:***@127.0.0.1:1');
    expect(err.hint).toMatch(/sslmode/);
  });
});

describe('postgres:// driver against PGlite (pgvector over the wire protocol)', () => {
  let lite: PgliteDb;
  let socket: PgliteSocket;
  beforeAll(async () => {
    lite = await createTestDb({ migrate: false });
    socket = await startPgliteSocket(lite.pglite);
  });
  afterAll(async () => {
    await socket?.stop();
    await lite?.close();
  });

  it('migrates and introspects through the pg driver', async () => {
    const db = await openPostgres({ url: socket.url, poolMax: 1 });
    try {
      const r = await migrate(db, { embeddingType: 'vector', dim: 768 });
      expect(r.applied.length).toBeGreaterThan(0);
      expect((await migrate(db)).applied).toEqual([]);
      expect((await embeddingColumn(db, 'public.video_embeddings')).formatted).toBe('vector(768)');
    } finally {
      await db.close();
    }
  });
});
