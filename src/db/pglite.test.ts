import { existsSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DbError } from '../errors.js';
import { type TmpDir, tmpDir } from '../testing/tmp-dir.js';
import { openPglite, PGLITE_MEMORY } from './pglite.js';

let dir: TmpDir;
beforeEach(() => {
  dir = tmpDir();
});
afterEach(() => dir.remove());

describe('embedded driver (PGlite)', () => {
  it('reports rows returned as rowCount for SELECT and rows affected for writes, like the pg driver', async () => {
    const db = await openPglite({ dir: PGLITE_MEMORY });
    try {
      await db.exec('CREATE TABLE t (x int)');
      expect((await db.query('INSERT INTO t SELECT generate_series(1, 3)')).rowCount).toBe(3);
      expect((await db.query('SELECT * FROM t')).rowCount).toBe(3);
      expect((await db.query('UPDATE t SET x = x + 1 WHERE x > 1')).rowCount).toBe(2);
      expect((await db.query('SELECT * FROM t WHERE false')).rowCount).toBe(0);
    } finally {
      await db.close();
    }
  });

  it('refuses a second open of the same directory, in this process or another live one, and frees it on close', async () => {
    const path = dir.join('db');
    const first = await openPglite({ dir: path });
    const again = await openPglite({ dir: path }).catch((e) => e);
    expect(again).toBeInstanceOf(DbError);
    expect(again.message).toMatch(/already open in this process/);
    await first.close();
    expect(existsSync(`${path}.lock`)).toBe(false);
    const reopened = await openPglite({ dir: path });
    await reopened.close();
  });
});
