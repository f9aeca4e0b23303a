import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DbError, ValidationFailedError } from '../errors.js';
import { tmpDir } from '../testing/tmp-dir.js';
import { openPglite, PGLITE_MEMORY } from './pglite.js';
import { openPgliteWorker } from './pglite-worker.js';
import type { Db } from './types.js';

describe('embedded database on a worker thread', () => {
  let db: Db;
  beforeAll(async () => {
    db = await openPgliteWorker({ dir: PGLITE_MEMORY });
    await db.exec('CREATE TABLE t (id int PRIMARY KEY, at timestamptz, tags text[], n numeric, big int8)');
  });
  afterAll(() => db.close());

  it('runs statements and returns rows with the same value types as in process', async () => {
    const at = new Date('2024-01-02T03:04:05Z');
    await db.query('INSERT INTO t VALUES ($1, $2, $3, $4, $5)', [1, at, ['a', 'b'], '1.5', 9007199254740991]);
    const r = await db.query('SELECT * FROM t');
    expect(r.rows).toEqual([{ id: 1, at, tags: ['a', 'b'], n: 1.5, big: 9007199254740991 }]);
    expect(r.rows[0].at).toBeInstanceOf(Date);
    const inserted = await db.query('INSERT INTO t (id) VALUES (2), (3)');
    expect(inserted.rowCount).toBe(2);
    expect(db.driver).toBe('pglite');
  });

  it('bulk-loads with binary COPY', async () => {
    const n = await db.copyRows(
      't',
      [
        { name: 'id', type: 'int4' },
        { name: 'tags', type: 'text[]' },
      ],
      Array.from({ length: 1000 }, (_, i) => [i + 10, [`x${i}`]]),
    );
    expect(n).toBe(1000);
  });

  it('commits a transaction, rolls one back when the callback throws, and keeps the error', async () => {
    await db.transaction(async (tx) => {
      await tx.query('INSERT INTO t (id) VALUES (5000)');
    });
    const err = await db
      .transaction(async (tx) => {
        await tx.query('INSERT INTO t (id) VALUES (5001)');
        throw new ValidationFailedError('stop here');
      })
      .catch((e) => e);
    expect(err).toBeInstanceOf(ValidationFailedError);
    expect((await db.query('SELECT id FROM t WHERE id >= 5000 ORDER BY id')).rows).toEqual([{ id: 5000 }]);
  });

  it('reports server errors as DbError with the SQLSTATE, and bad COPY values as ValidationFailedError', async () => {
    const dup = await db.query('INSERT INTO t (id) VALUES (1)').catch((e) => e);
    expect(dup).toBeInstanceOf(DbError);
    expect(dup.sqlState).toBe('23505');
    const bad = await db.copyRows('t', [{ name: 'id', type: 'int4' }], [['x']]).catch((e) => e);
    expect(bad).toBeInstanceOf(ValidationFailedError);
    expect(bad.message).toMatch(/Refusing to write t: row 0, column id/);
    // A failed statement inside a transaction fails the transaction, and the connection stays usable.
    const inTx = await db.transaction((tx) => tx.query('SELECT * FROM no_such_table')).catch((e) => e);
    expect(inTx).toBeInstanceOf(DbError);
    expect((await db.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
  });

  it('persists to a directory, takes its lock, and releases it on close', async () => {
    const tmp = tmpDir();
    try {
      const dir = tmp.join('db');
      const a = await openPgliteWorker({ dir });
      await a.exec('CREATE TABLE x (v int); INSERT INTO x VALUES (42)');
      expect(existsSync(`${dir}.lock`)).toBe(true);
      await a.close();
      expect(existsSync(`${dir}.lock`)).toBe(false);
      const b = await openPglite({ dir });
      expect((await b.query('SELECT v FROM x')).rows).toEqual([{ v: 42 }]);
      await b.close();
    } finally {
      tmp.remove();
    }
  });
});
