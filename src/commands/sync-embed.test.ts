/**
 * sync-dmm embeds each chunk's new and updated videos with the current model inside the chunk's transaction — but
 * only when the live tables already serve that version; otherwise it says why (auto) or refuses (require).
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { roundToFloat16 } from '../db/binary-copy.js';
import { openDb } from '../db/open.js';
import { readCatalogPage } from '../db/training-data.js';
import { generateInteractions } from '../ml/synthetic.js';
import { loadTwoTowerFromDir } from '../ml/load-model-fs.js';
import { initTf } from '../ml/tf.js';
import { seedDecisions } from '../testing/app-db-seed.js';
import { generateDmmCatalog } from '../testing/dmm-catalog.js';
import { publishTo, TINY_DIM, trainTiny } from '../testing/embed-fixture.js';
import { type FakeDmmServer, startFakeDmmServer } from '../testing/fake-dmm-server.js';
import { recordingReporter } from '../testing/recording-reporter.js';
import { type TmpDir, tmpDir } from '../testing/tmp-dir.js';
import { embed } from './embed.js';
import { init } from './init.js';
import { syncDmm } from './sync-dmm.js';

let dir: TmpDir;
let dbUrl: string;
const API = { DMM_API_ID: 'sync-embed-test-api-id', DMM_AFFILIATE_ID: 'sync-embed-990' };

async function sync(server: FakeDmmServer, extra: Parameters<typeof syncDmm>[0] = {}) {
  return syncDmm({
    cwd: dir.path,
    env: API,
    db: dbUrl,
    store: `file://${dir.join('store')}`,
    apiBaseUrl: server.url,
    floors: ['videoa'],
    from: '2024-01-01',
    to: '2024-03-31',
    rps: 100,
    chunk: 50,
    reporter: recordingReporter(),
    ...extra,
  });
}

async function withCatalog<T>(seed: number, items: number, fn: (s: FakeDmmServer) => Promise<T>): Promise<T> {
  const server = await startFakeDmmServer({
    catalog: generateDmmCatalog({ seed, items, from: '2024-01-01', to: '2024-03-31', quirks: false }),
    apiId: API.DMM_API_ID,
    affiliateId: API.DMM_AFFILIATE_ID,
  });
  try {
    return await fn(server);
  } finally {
    await server.close();
  }
}

beforeAll(async () => {
  dir = tmpDir();
  await initTf('auto');
  dbUrl = `pglite://${dir.join('db')}`;
  await init({ cwd: dir.path, env: {}, db: dbUrl, store: `file://${dir.join('store')}`, dim: TINY_DIM });
}, 120_000);
afterAll(() => dir?.remove());

describe('sync-dmm with embedding', () => {
  it('embeds nothing (and says why) until the live tables serve the current model, then embeds new items in their chunks', async () => {
    const first = await withCatalog(11, 300, (s) => sync(s));
    expect(first.items.inserted).toBe(300);
    expect(first.embedding).toMatchObject({ mode: 'auto', enabled: false, itemsEmbedded: 0 });
    expect(first.embedding.reason).toMatch(/no model is published/);
    await expect(withCatalog(11, 300, (s) => sync(s, { embed: 'require' }))).rejects.toMatchObject({ exitCode: 6, code: 'SYNC_EMBED_UNAVAILABLE' });

    // Users with tastes over the synced catalog, a model trained from them, published and embedded.
    const db = await openDb({ url: dbUrl, cwd: dir.path });
    const catalog = await readCatalogPage(db, null, 10_000);
    const planted = generateInteractions(catalog, { seed: 5, users: 80, clusters: 4, likesPerUser: [5, 12], userIdFormat: 'uuid' });
    await seedDecisions(db, planted.interactions, new Map(catalog.map((c) => [c.item_id, c.item_id])));
    await db.close();
    const run = await trainTiny(dir.path, dbUrl, 'run1');
    await publishTo(dir.path, run, 'v1');
    const full = await embed({ cwd: dir.path, env: {}, db: dbUrl, store: `file://${dir.join('store')}`, reporter: recordingReporter() });
    expect(full.run?.status).toBe('switched');

    const second = await withCatalog(12, 120, (s) => sync(s));
    expect(second.items.inserted).toBe(120);
    expect(second.embedding).toMatchObject({ enabled: true, version: 'v1', itemsEmbedded: 120 });

    const model = await loadTwoTowerFromDir(path.join(dir.path, 'run1'));
    const check = await openDb({ url: dbUrl, cwd: dir.path });
    try {
      const all = await readCatalogPage(check, null, 10_000);
      const { rows } = await check.query<{ id: string; e: string; v: string }>(
        `SELECT video_id::text AS id, embedding::text AS e, model_version AS v FROM video_embeddings`,
      );
      expect(rows).toHaveLength(420);
      expect(new Set(rows.map((r) => r.v))).toEqual(new Set(['v1']));
      const stored = new Map(rows.map((r) => [r.id, r.e.slice(1, -1).split(',').map((x) => Math.fround(Number(x)))]));
      // The 120 new items were embedded 50 at a time (chunks); compare with the model in chunks of the same size.
      const fresh = all.filter((i) => !catalog.some((c) => c.item_id === i.item_id));
      expect(fresh).toHaveLength(120);
      for (let s = 0; s < fresh.length; s += 50) {
        const part = fresh.slice(s, s + 50);
        const want = model.embedItems(part).embeddings;
        part.forEach((it, r) => {
          const got = stored.get(it.item_id)!;
          const exp = Array.from(want.subarray(r * TINY_DIM, (r + 1) * TINY_DIM), roundToFloat16);
          for (let k = 0; k < TINY_DIM; k++) expect(Math.abs(got[k] - exp[k])).toBeLessThanOrEqual(2 ** -11);
        });
      }
    } finally {
      await check.close();
      model.dispose();
    }

    // A newer current version that is not live yet: sync must not write it (nor v1) row by row.
    await publishTo(dir.path, run, 'v2');
    const third = await withCatalog(13, 30, (s) => sync(s));
    expect(third.embedding.enabled).toBe(false);
    expect(third.embedding.reason).toMatch(/the live tables serve v1 but the current model is v2/);
  });
});
