/**
 * Binary COPY round trips on real PGlite + pgvector: what goes in comes back exactly (float32 for vector, the
 * float16-rounded value for halfvec), and our float32→float16 rounding agrees with pgvector's own.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ValidationFailedError } from '../errors.js';
import { createTestDb } from '../testing/pglite.js';
import { encodeCopyBinary, float16BitsToFloat32, float32ToFloat16Bits, roundToFloat16 } from './binary-copy.js';
import type { PgliteDb } from './pglite.js';

/** Deterministic pseudo-random floats (no test flakiness). */
function* lcg(seed: number): Generator<number> {
  let s = seed >>> 0;
  for (;;) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    yield s / 2 ** 32;
  }
}

function randomVectors(n: number, dim: number, seed: number): Float32Array[] {
  const rnd = lcg(seed);
  return Array.from({ length: n }, () => Float32Array.from({ length: dim }, () => (rnd.next().value as number) * 4 - 2));
}

const parseVectorText = (t: string) => t.slice(1, -1).split(',').map(Number);

describe('float16 conversion', () => {
  it('handles exact values, limits, subnormals, rounding ties and specials', () => {
    expect(float32ToFloat16Bits(1)).toBe(0x3c00);
    expect(float32ToFloat16Bits(-2)).toBe(0xc000);
    expect(float32ToFloat16Bits(65504)).toBe(0x7bff);
    expect(float32ToFloat16Bits(65520)).toBe(0x7c00); // rounds to +Inf
    expect(float32ToFloat16Bits(2 ** -24)).toBe(0x0001); // smallest subnormal
    expect(float32ToFloat16Bits(2 ** -26)).toBe(0x0000); // below half of it → 0
    expect(float32ToFloat16Bits(1 + 2 ** -11)).toBe(0x3c00); // tie → even
    expect(float32ToFloat16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie → even (up)
    expect(float16BitsToFloat32(0x7c00)).toBe(Infinity);
    expect(Number.isNaN(float16BitsToFloat32(float32ToFloat16Bits(Number.NaN)))).toBe(true);
    expect(Object.is(roundToFloat16(-0), -0)).toBe(true);
  });
});

describe('binary COPY into pgvector columns (PGlite)', () => {
  let db: PgliteDb;
  beforeAll(async () => {
    db = await createTestDb({ migrate: false });
    await db.exec(`CREATE EXTENSION IF NOT EXISTS vector;
      CREATE TABLE v768 (id int PRIMARY KEY, e vector(768));
      CREATE TABLE h128 (id int PRIMARY KEY, e halfvec(128));
      CREATE TABLE mixed (id uuid, t text, n int8, f float8, ts timestamptz, j jsonb, arr text[], b bool);`);
  });
  afterAll(() => db.close());

  it('round-trips vector(768) exactly', async () => {
    const vecs = randomVectors(50, 768, 1);
    const n = await db.copyRows('v768', [{ name: 'id', type: 'int4' }, { name: 'e', type: { kind: 'vector', dim: 768 } }], vecs.map((v, i) => [i, v]));
    expect(n).toBe(50);
    const { rows } = await db.query<{ id: number; e: string }>('SELECT id, e::text AS e FROM v768 ORDER BY id');
    for (const r of rows) expect(Float32Array.from(parseVectorText(r.e))).toEqual(vecs[r.id]);
  });

  it('round-trips halfvec(128) to the float16-rounded values, agreeing with pgvector text input', async () => {
    const vecs = randomVectors(50, 128, 2);
    await db.copyRows('h128', [{ name: 'id', type: 'int4' }, { name: 'e', type: { kind: 'halfvec', dim: 128 } }], vecs.map((v, i) => [i, v]));
    const { rows } = await db.query<{ id: number; e: string }>('SELECT id, e::text AS e FROM h128 ORDER BY id');
    // halfvec prints the shortest float32 text of each value, so compare as float32.
    const asF32 = (t: string) => parseVectorText(t).map(Math.fround);
    for (const r of rows) expect(asF32(r.e)).toEqual(Array.from(vecs[r.id], roundToFloat16));
    // pgvector's own float→half conversion of the same values (text input) agrees with ours.
    const viaText = await db.query<{ t: string }>(`SELECT ($1::vector(128))::halfvec(128)::text AS t`, [
      `[${Array.from(vecs[0]).join(',')}]`,
    ]);
    expect(asF32(viaText.rows[0].t)).toEqual(Array.from(vecs[0], roundToFloat16));
  });

  it('round-trips scalar types', async () => {
    const ts = new Date('2026-11-22T09:15:30.123Z');
    const id = '6f1c2a7e-8b3d-4c5e-9f00-112233445566';
    await db.copyRows(
      'mixed',
      [
        { name: 'id', type: 'uuid' },
        { name: 't', type: 'text' },
        { name: 'n', type: 'int8' },
        { name: 'f', type: 'float8' },
        { name: 'ts', type: 'timestamptz' },
        { name: 'j', type: 'jsonb' },
        { name: 'arr', type: 'text[]' },
        { name: 'b', type: 'bool' },
      ],
      [
        [id, 'ビデオ 動画', 9_007_199_254_740_000, 0.1, ts, { a: [1, 'x'] }, ['a', 'ジャンル', null], true],
        [null, null, null, null, null, null, [], false],
      ],
    );
    const { rows } = await db.query<Record<string, unknown>>('SELECT * FROM mixed ORDER BY t NULLS LAST');
    expect(rows[0]).toEqual({ id, t: 'ビデオ 動画', n: 9_007_199_254_740_000, f: 0.1, ts, j: { a: [1, 'x'] }, arr: ['a', 'ジャンル', null], b: true });
    expect(rows[1]).toEqual({ id: null, t: null, n: null, f: null, ts: null, j: null, arr: [], b: false });
  });

  it('refuses a wrong dimension or a non-finite value before anything is sent', async () => {
    const cols = [{ name: 'id', type: 'int4' as const }, { name: 'e', type: { kind: 'halfvec' as const, dim: 128 } }];
    await expect(db.copyRows('h128', cols, [[1000, new Float32Array(127)]])).rejects.toThrow(ValidationFailedError);
    await expect(db.copyRows('h128', cols, [[1000, new Float32Array(127)]])).rejects.toThrow(/column e: expected 128 dimensions, found 127/);
    const bad = new Float32Array(128);
    bad[5] = Number.NaN;
    await expect(db.copyRows('h128', cols, [[1001, bad]])).rejects.toThrow(/non-finite value at dimension 5/);
    expect((await db.query('SELECT 1 FROM h128 WHERE id >= 1000')).rows).toEqual([]);
  });

  it('is atomic inside a transaction: a failing statement after COPY leaves nothing', async () => {
    const cols = [{ name: 'id', type: 'int4' as const }, { name: 'e', type: { kind: 'vector' as const, dim: 768 } }];
    await expect(
      db.transaction(async (tx) => {
        await tx.copyRows('v768', cols, randomVectors(3, 768, 3).map((v, i) => [2000 + i, v]));
        await tx.query('SELECT 1/0');
      }),
    ).rejects.toThrow(/division by zero/);
    expect((await db.query('SELECT 1 FROM v768 WHERE id >= 2000')).rows).toEqual([]);
  });

  it('encodes the documented header and trailer', () => {
    const bytes = encodeCopyBinary(['int4'], [[7]]);
    expect(Buffer.from(bytes.subarray(0, 11)).toString('latin1')).toBe('PGCOPY\n\xff\r\n\0');
    expect(Array.from(bytes.subarray(-2))).toEqual([0xff, 0xff]);
  });
});
