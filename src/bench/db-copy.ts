/**
 * Why bulk vector writes use binary COPY: rows/s of 768-d `vector` rows into PGlite by text INSERT (unnest of
 * text literals, what a naive writer does) versus binary COPY, and halfvec(128) by binary COPY.
 */
import { openPglite, PGLITE_MEMORY } from '../db/pglite.js';
import type { Benchmark } from './types.js';

const ROWS = 5_000;

function vectors(n: number, dim: number): Float32Array[] {
  let s = 12345;
  const next = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
  return Array.from({ length: n }, () => Float32Array.from({ length: dim }, next));
}

export const benchmarks: Benchmark[] = [
  {
    name: 'db.vector-write',
    issue: 2,
    description: `Writing ${ROWS.toLocaleString('en-US')} vector(768) rows into PGlite: text INSERT … unnest vs binary COPY; and halfvec(128) by binary COPY.`,
    repeats: 3,
    units: { textInsertRowsPerSec: 'rows/s', binaryCopyRowsPerSec: 'rows/s', speedup: '×', halfvec128CopyRowsPerSec: 'rows/s' },
    async run() {
      const db = await openPglite({ dir: PGLITE_MEMORY });
      try {
        await db.exec('CREATE EXTENSION IF NOT EXISTS vector; CREATE TABLE t (id int, e vector(768)); CREATE TABLE h (id int, e halfvec(128));');
        const v768 = vectors(ROWS, 768);
        let t = performance.now();
        await db.query('INSERT INTO t SELECT * FROM unnest($1::int[], $2::text[]::vector(768)[])', [
          v768.map((_, i) => i),
          v768.map((v) => `[${Array.from(v).join(',')}]`),
        ]);
        const textRate = ROWS / ((performance.now() - t) / 1000);
        await db.exec('TRUNCATE t');
        t = performance.now();
        await db.copyRows('t', [{ name: 'id', type: 'int4' }, { name: 'e', type: { kind: 'vector', dim: 768 } }], v768.map((v, i) => [i, v]));
        const copyRate = ROWS / ((performance.now() - t) / 1000);
        const v128 = vectors(ROWS * 4, 128);
        t = performance.now();
        await db.copyRows('h', [{ name: 'id', type: 'int4' }, { name: 'e', type: { kind: 'halfvec', dim: 128 } }], v128.map((v, i) => [i, v]));
        const halfRate = v128.length / ((performance.now() - t) / 1000);
        return { textInsertRowsPerSec: textRate, binaryCopyRowsPerSec: copyRate, speedup: copyRate / textRate, halfvec128CopyRowsPerSec: halfRate };
      } finally {
        await db.close();
      }
    },
  },
];
