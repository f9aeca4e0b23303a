import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ValidationFailedError } from '../errors.js';
import { SALE_TAG, seedCatalog, seedDecisions } from '../testing/app-db-seed.js';
import { createTestDb } from '../testing/pglite.js';
import type { PgliteDb } from './pglite.js';
import { checkDecisionTypes, readCatalog, readDecisions, readUserHistories } from './training-data.js';

let db: PgliteDb;
let ids: Map<string, string>;
const U1 = '00000000-0000-4000-8000-000000000001';
const U2 = '00000000-0000-4000-8000-000000000002';
const items = [
  { item_id: 'abc001', title: 'one', tags: ['drama', 'comedy'], performers: ['101', '102'], maker: 'M', series: null, label: 'L', source: 'FANZA', price: 980, released_at: '2024-05-01', duration_seconds: 7200 },
  { item_id: 'abc002', title: 'two', tags: ['drama'], performers: [], maker: 'M', source: 'FANZA_AMATEUR' },
  { item_id: 'abc003', title: 'three', tags: [], performers: ['101'], source: 'FANZA' },
  { item_id: 'anime01', title: 'old', tags: ['drama'], source: 'FANZA_ANIME' },
];

beforeAll(async () => {
  db = await createTestDb({ dim: 16 });
  ids = await seedCatalog(db, items);
  const t = (m: number) => Date.parse('2026-01-01T00:00:00Z') + m * 60_000;
  await seedDecisions(
    db,
    [
      { userId: U1, itemId: 'abc001', label: 1, timestamp: t(1) },
      { userId: U1, itemId: 'abc002', label: 1, timestamp: t(3) },
      { userId: U1, itemId: 'abc003', label: 0, timestamp: t(2) },
      { userId: U2, itemId: 'abc002', label: 0, timestamp: t(1) },
    ],
    ids,
  );
  // Production may lack the UNIQUE (user_id, video_id) constraint: an older, superseded decision must not count.
  await db.exec('ALTER TABLE public.user_video_decisions DROP CONSTRAINT user_video_decisions_user_id_video_id_key');
  await db.query(`INSERT INTO public.user_video_decisions (user_id, video_id, decision_type, created_at) VALUES ($1, $2, 'swipe_like', '2025-12-31T00:00:00Z')`, [
    U2,
    ids.get('abc002'),
  ]);
});
afterAll(() => db.close());

describe('training data from the app database', () => {
  it('reads the catalog with training tags only, performers by DMM actress id, and no historical sources', async () => {
    const catalog = await readCatalog(db);
    expect(catalog.map((c) => c.external_id)).toEqual(expect.arrayContaining(['abc001', 'abc002', 'abc003']));
    expect(catalog).toHaveLength(3);
    const one = catalog.find((c) => c.external_id === 'abc001')!;
    expect(one).toMatchObject({ item_id: ids.get('abc001'), tags: ['comedy', 'drama'], performers: ['101', '102'], maker: 'M', label: 'L', price: 980, duration_seconds: 7200 });
    expect(one.released_at).toBe(Date.parse('2024-05-01T00:00:00+09:00'));
    expect(catalog.flatMap((c) => c.tags as string[])).not.toContain(SALE_TAG);
  });

  it('reads the latest decision per user and video', async () => {
    const { rows, constraint } = await readDecisions(db);
    expect(constraint).toEqual(expect.arrayContaining(['swipe_like', 'grid_nope']));
    const u2 = rows.filter((r) => r.userId === U2);
    expect(u2).toEqual([{ userId: U2, itemId: ids.get('abc002'), decisionType: 'grid_nope', createdAt: Date.parse('2026-01-01T00:01:00Z') }]);
    expect(rows).toHaveLength(4);
  });

  it('reads capped histories newest first, for embedding users', async () => {
    const h = await readUserHistories(db, [U1, U2, '00000000-0000-4000-8000-00000000ffff'], { maxLikes: 1, maxNopes: 5 });
    expect(h.get(U1)).toEqual({ likes: [ids.get('abc002')], nopes: [ids.get('abc003')] });
    expect(h.get(U2)).toEqual({ likes: [], nopes: [ids.get('abc002')] });
    expect(h.get('00000000-0000-4000-8000-00000000ffff')).toEqual({ likes: [], nopes: [] });
  });

  it('reads only the users asked for, also when others lie in the id range of the page', async () => {
    const outer = ['00000000-0000-4000-8000-000000000000', 'ffffffff-ffff-4fff-bfff-ffffffffffff'];
    const h = await readUserHistories(db, outer, { maxLikes: 5, maxNopes: 5 });
    expect([...h.keys()]).toEqual(outer);
    expect([...h.values()]).toEqual([{ likes: [], nopes: [] }, { likes: [], nopes: [] }]);
    const one = await readUserHistories(db, [U2, ...outer], { maxLikes: 5, maxNopes: 5 });
    expect(one.get(U2)).toEqual({ likes: [], nopes: [ids.get('abc002')] });
  });

  it('refuses a decision_type constraint with other values (schema drift)', async () => {
    await db.exec(`ALTER TABLE public.user_video_decisions DROP CONSTRAINT user_video_decisions_decision_type_check;
                   ALTER TABLE public.user_video_decisions ADD CONSTRAINT user_video_decisions_decision_type_check
                     CHECK (decision_type IN ('swipe_like', 'swipe_nope', 'grid_like', 'grid_nope', 'super_like')) NOT VALID;`);
    await expect(checkDecisionTypes(db)).rejects.toBeInstanceOf(ValidationFailedError);
    await expect(readDecisions(db)).rejects.toThrow(/allows swipe_like, swipe_nope, grid_like, grid_nope, super_like/);
  });
});
