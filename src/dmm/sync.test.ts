import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { CatalogWriter } from '../db/catalog-types.js';
import { createCatalogWriter } from '../db/catalog-writer.js';
import type { PgliteDb } from '../db/pglite.js';
import { InterruptedError, registerSecret, ValidationFailedError } from '../errors.js';
import { catalogCounts, catalogDump, expectedRow, storedVideos } from '../testing/catalog-assert.js';
import { fixtureCatalog, generateDmmCatalog, type RawItem, type ReplayCatalog } from '../testing/dmm-catalog.js';
import { instantClock } from '../testing/fake-clock.js';
import { type FakeDmmServer, type FakeDmmServerOptions, startFakeDmmServer } from '../testing/fake-dmm-server.js';
import { createTestDb } from '../testing/pglite.js';
import { FIXTURES_DIR } from '../testing/tmp-dir.js';
import { createDmmClient, type DmmClientOptions, DmmRequestError } from './client.js';
import { SyncIncompleteError, type SyncCatalogOptions, syncCatalog, type SyncEvent, WindowTooLargeError } from './sync.js';

const SECRET_ID = 'sync-test-secret-api-id';
const SECRET_AFF = 'sync-test-secret-990';
registerSecret(SECRET_ID);
registerSecret(SECRET_AFF);
const BOTH = ['digital/videoa', 'digital/videoc'];

interface Harness {
  db: PgliteDb;
  server: FakeDmmServer;
  run(over?: Partial<SyncCatalogOptions>, client?: Partial<DmmClientOptions>): ReturnType<typeof syncCatalog>;
  events: SyncEvent[];
}

const open: { close(): Promise<void> }[] = [];
let sharedDb: PgliteDb;
beforeAll(async () => {
  sharedDb = await createTestDb();
});
afterAll(() => sharedDb.close());
afterEach(async () => {
  for (const o of open.splice(0)) await o.close();
});

/** One PGlite per file (creating one costs seconds); every test starts from empty catalog and sync tables. */
async function emptyDb(): Promise<PgliteDb> {
  await sharedDb.exec(`
    TRUNCATE public.video_tags, public.video_performers, public.videos, public.tags, public.performers CASCADE;
    TRUNCATE am_ml.sync_runs, am_ml.sync_checkpoints, am_ml.sync_failures;`);
  return sharedDb;
}

async function harness(catalog: ReplayCatalog, serverOpts: Partial<FakeDmmServerOptions> = {}, defaults: Partial<SyncCatalogOptions> = {}): Promise<Harness> {
  const db = await emptyDb();
  const server = await startFakeDmmServer({ catalog, apiId: SECRET_ID, affiliateId: SECRET_AFF, recordServedItems: true, ...serverOpts });
  open.push(server);
  const events: SyncEvent[] = [];
  return {
    db,
    server,
    events,
    run(over = {}, clientOver = {}) {
      const client = createDmmClient({
        baseUrl: server.url,
        apiId: SECRET_ID,
        affiliateId: SECRET_AFF,
        clock: instantClock(),
        rps: 1000,
        timeoutMs: 5000,
        maxRetries: 2,
        ...clientOver,
      });
      return syncCatalog({
        client,
        writer: createCatalogWriter(db),
        floors: BOTH,
        from: '2024-01-01',
        to: '2024-01-31',
        chunkSize: 120,
        onProgress: (e) => events.push(e),
        ...defaults,
        ...over,
      });
    },
  };
}

/** Every served item of the synced floors is stored exactly as served; nothing else is stored. */
async function expectStoredEqualsServed(h: Harness, servedItems?: Map<string, unknown>) {
  const served = servedItems ?? h.server.served;
  const stored = await storedVideos(h.db);
  const expected = [...served.values()]
    .map((raw) => raw as RawItem)
    .filter((raw) => raw.service_code === 'digital' && ['videoa', 'videoc'].includes(String(raw.floor_code)));
  expect(stored.size).toBe(expected.length);
  for (const raw of expected) expect(stored.get(String(raw.content_id)), String(raw.content_id)).toEqual(expectedRow(raw));
}

function allItems(catalog: ReplayCatalog): Map<string, RawItem> {
  const out = new Map<string, RawItem>();
  for (const f of catalog.floors) for (let i = 0; i < f.size; i++) {
    const item = f.itemAt(i);
    out.set(String(item.content_id), item);
  }
  return out;
}

const load = (name: string) => JSON.parse(readFileSync(path.join(FIXTURES_DIR, 'dmm', name), 'utf8'));

describe('syncCatalog', () => {
  it('syncs the real fixture items (current and 2018 legacy) through the replay server', async () => {
    const items = [
      ...load('richardnguyen99_py-dmmjp__ItemList_videoa_mide00799.json').result.items,
      ...load('usk81_go-dmm__ItemList_DMM.R18_mono-dvd.json').result.items,
    ];
    const h = await harness(fixtureCatalog(items));
    const r = await h.run({ floors: ['digital/videoa'], from: '2017-01-01', to: '2020-12-31' });
    expect(r.items).toMatchObject({ seen: 2, inserted: 2, invalid: 0 });
    await expectStoredEqualsServed(h);
    expect([...(await storedVideos(h.db)).keys()].sort()).toEqual(['1hawa00124', 'mide00799']);
    expect(r.reconciliation).toMatchObject({ apiTotal: 2, stored: 2, difference: 0, unexplained: 0 });
  });

  it('stores a quirky generated catalog row for row, and a second identical sync changes nothing', async () => {
    const catalog = generateDmmCatalog({ seed: 11, items: { videoa: 700, videoc: 150 }, from: '2024-01-01', to: '2024-01-31', preordersFrom: '2024-01-25' });
    const h = await harness(catalog, { stringCounts: true });
    const r = await h.run();
    expect(r.items).toEqual({ seen: 850, inserted: 850, updated: 0, unchanged: 0, invalid: 0, duplicates: 0 });
    expect(r.reconciliation).toMatchObject({ apiTotal: 850, stored: 850, difference: 0, unexplained: 0 });
    expect(r.unknownKeys).toEqual(['brand_new_field']);
    await expectStoredEqualsServed(h, allItems(catalog));
    // has_performer is maintained with the performers, in the same transaction.
    const hp = await h.db.query<{ bad: number }>(
      `SELECT count(*)::int AS bad FROM videos v WHERE has_performer <> EXISTS (SELECT 1 FROM video_performers vp WHERE vp.video_id = v.id)`,
    );
    expect(hp.rows[0].bad).toBe(0);
    // New tags got their group: mapped genres their own, the rest 未分類.
    const groups = await h.db.query<{ name: string; g: string }>(
      `SELECT t.name, g.name AS g FROM tags t JOIN tag_groups g ON g.id = t.tag_group_id WHERE t.name IN ('巨乳', 'ハイビジョン', '制服')`,
    );
    expect(Object.fromEntries(groups.rows.map((x) => [x.name, x.g]))).toMatchObject({ ハイビジョン: 'その他' });

    const before = await catalogDump(h.db);
    const again = await h.run();
    expect(again.resumed).toBe(false); // the first run finished: a new run reads everything again
    expect(again.items).toMatchObject({ seen: 850, inserted: 0, updated: 0, unchanged: 850 });
    expect(await catalogDump(h.db)).toBe(before);
  });

  it('updates changed items and replaces their tags and performers', async () => {
    const catalog = generateDmmCatalog({ seed: 12, items: 300, from: '2024-01-01', to: '2024-01-10', quirks: false });
    const h = await harness(catalog);
    await h.run({ floors: ['digital/videoa'], to: '2024-01-10' });
    const victims = [...allItems(catalog).keys()].slice(0, 3);
    h.server.setItemOverride((item) => {
      if (!victims.includes(String(item.content_id))) return item;
      const info = item.iteminfo as RawItem;
      return { ...item, title: `${String(item.title)} (改訂版)`, iteminfo: { ...info, genre: [{ id: 4025, name: '単体作品' }], actress: [{ id: 1999999, name: '新人 さん' }] } };
    });
    const r = await h.run({ floors: ['digital/videoa'], to: '2024-01-10' });
    expect(r.items).toMatchObject({ inserted: 0, updated: 3, unchanged: 297 });
    await expectStoredEqualsServed(h);
    const v = (await storedVideos(h.db)).get(victims[0])!;
    expect(v.tags).toEqual(['単体作品']);
    expect(v.performers).toEqual(['1999999:新人 さん']);
    expect(v.has_performer).toBe(true);
  });

  it('splits windows whose total reaches the threshold and loses nothing (scaled: cap 1,000)', async () => {
    // Same code path as 60,000 items against the real 40,000/50,000 limits, at a test-friendly scale.
    const catalog = generateDmmCatalog({ seed: 13, items: 2600, from: '2024-03-01', to: '2024-03-02', quirks: false });
    const h = await harness(catalog, { totalCountCap: 1000 });
    const r = await h.run({ floors: ['digital/videoa'], from: '2024-03-01', to: '2024-03-02', splitThreshold: 800, offsetCap: 1000, chunkSize: 500 });
    expect(r.windows.split).toBeGreaterThanOrEqual(3); // 2 days → 1 day → hours
    expect(r.items).toMatchObject({ seen: 2600, inserted: 2600, duplicates: 0 });
    expect(r.reconciliation).toMatchObject({ apiTotal: 2600, stored: 2600, unexplained: 0 });
    for (const req of h.server.requests) {
      expect(Number(req.params.offset) + Number(req.params.hits) - 1).toBeLessThanOrEqual(1000);
      expect(req.status).toBe(200);
    }
    expect((await catalogCounts(h.db)).videos).toBe(2600);
  });

  it('splits a 60,000-item window at the real 40,000 threshold, never asking past offset 50,000', async () => {
    const catalog = generateDmmCatalog({ seed: 14, items: 60_000, from: '2024-05-01', to: '2024-05-02', quirks: false });
    const h = await harness(catalog);
    // Plan with the real limits and stop after the first page of the first accepted window.
    const r = await h.run({ floors: ['digital/videoa'], from: '2024-05-01', to: '2024-05-02', maxItems: 100 });
    expect(r.stoppedBy).toBe('max-items');
    const splits = h.events.filter((e): e is Extract<SyncEvent, { kind: 'window' }> => e.kind === 'window' && e.action === 'split');
    expect(splits.map((s) => [s.window, s.total])).toEqual([['digital/videoa 2024-05-01T00:00:00..2024-05-02T23:59:59', 50_000]]);
    const paged = h.events.find((e) => e.kind === 'window' && e.action === 'page') as { total: number; window: string };
    expect(paged).toMatchObject({ window: 'digital/videoa 2024-05-01T00:00:00..2024-05-01T23:59:59', total: 30_000 });
  });

  it('refuses to page a minimum-size window still at the cap', async () => {
    const catalog = generateDmmCatalog({ seed: 15, items: 500, from: '2024-06-01', to: '2024-06-01', quirks: false });
    const h = await harness(catalog, { totalCountCap: 100 });
    // 500 items in one day, 14 hours of releases: one-hour windows still hold >= 100 with minWindow = 1 day.
    const err = await h.run({ floors: ['digital/videoa'], from: '2024-06-01', to: '2024-06-01', splitThreshold: 80, offsetCap: 100, minWindowMs: 86_400_000 }).catch((e) => e);
    expect(err).toBeInstanceOf(WindowTooLargeError);
    expect(err.message).toMatch(/100 or more items for digital\/videoa 2024-06-01T00:00:00\.\.2024-06-01T23:59:59/);
    expect(h.server.requests.every((q) => Number(q.params.offset) === 1)).toBe(true);
  });

  it('survives every kind of fault, records invalid items, and explains the difference', async () => {
    const catalog = generateDmmCatalog({ seed: 16, items: { videoa: 600, videoc: 100 }, from: '2024-01-01', to: '2024-01-31' });
    const everything = allItems(catalog);
    const broken = [...everything.keys()].filter((_, i) => i % 97 === 5);
    const kinds = ['429', '429-retry-after', '500', '503', 'hang', 'reset', 'malformed-json', 'bad-envelope'] as const;
    const h = await harness(catalog, {
      chaos: { rate: 0.2, kinds: [...kinds], seed: 3 },
      itemOverride: (item) => (broken.includes(String(item.content_id)) ? { ...item, date: 'not a date' } : item),
    });
    h.server.inject(...kinds.map((kind) => ({ kind, retryAfterSec: 2 })));
    const r = await h.run({}, { maxRetries: 8, timeoutMs: 1000 });
    expect(new Set(h.server.requests.map((q) => q.fault).filter(Boolean))).toEqual(new Set(kinds));
    expect(r.retries).toBeGreaterThanOrEqual(kinds.length);
    expect(r.failures.pages.count).toBe(0);
    expect(r.items.invalid).toBe(broken.length);
    expect(r.failures.items.list.map((f) => f.contentId).sort()).toEqual([...broken].sort());
    expect(r.failures.items.list[0].reason).toMatch(/date "not a date" is not a DMM date/);
    expect(r.reconciliation).toMatchObject({
      apiTotal: 700,
      stored: 700 - broken.length,
      difference: broken.length,
      explained: { invalidItems: broken.length, failedPageItems: 0 },
      unexplained: 0,
    });
    const expected = new Map([...everything].filter(([cid]) => !broken.includes(cid)));
    await expectStoredEqualsServed(h, expected);
    const f = await h.db.query<{ content_id: string; reason: string; raw: RawItem; attempts: number }>(
      `SELECT content_id, reason, raw, attempts FROM am_ml.sync_failures WHERE kind = 'item' AND resolved_at IS NULL ORDER BY content_id`,
    );
    expect(f.rows.map((x) => x.content_id)).toEqual([...broken].sort());
    expect(f.rows[0].raw.content_id).toBe(f.rows[0].content_id);
    // Secrets never reach results, events or stored failures.
    for (const text of [JSON.stringify(r), JSON.stringify(h.events), JSON.stringify(f.rows)]) {
      expect(text).not.toContain(SECRET_ID);
      expect(text).not.toContain(SECRET_AFF);
    }
  });

  it('retries invalid items first on the next run, by content id', async () => {
    const catalog = generateDmmCatalog({ seed: 17, items: 250, from: '2024-01-01', to: '2024-01-05', quirks: false });
    const h = await harness(catalog);
    const bad = [...allItems(catalog).keys()].slice(10, 12);
    h.server.setItemOverride((item) => (bad.includes(String(item.content_id)) ? { ...item, title: '' } : item));
    const first = await h.run({ floors: ['digital/videoa'], to: '2024-01-05' });
    expect(first.items.invalid).toBe(2);
    expect(first.failures.items.list[0].reason).toMatch(/title must be a non-empty string/);
    h.server.setItemOverride(undefined); // the API fixed them
    h.server.requests.length = 0;
    const second = await h.run({ floors: ['digital/videoa'], to: '2024-01-05' });
    expect(h.server.requests.slice(0, 2).map((q) => q.params.cid).sort()).toEqual([...bad].sort());
    expect(second.retriedFailures).toMatchObject({ items: 2, resolved: 2, stillFailing: 0 });
    expect(second.reconciliation?.unexplained).toBe(0);
    await expectStoredEqualsServed(h, allItems(catalog));
    const open = await h.db.query(`SELECT 1 FROM am_ml.sync_failures WHERE resolved_at IS NULL`);
    expect(open.rows).toHaveLength(0);
    const closed = await h.db.query<{ resolution: string; attempts: number }>(`SELECT resolution, attempts FROM am_ml.sync_failures`);
    expect(closed.rows.map((x) => x.resolution)).toEqual(['written', 'written']);
  });

  it('records a page that fails after the retry budget, exits incomplete, and retries it first next run', async () => {
    const catalog = generateDmmCatalog({ seed: 18, items: 450, from: '2024-01-01', to: '2024-01-05', quirks: false });
    const h = await harness(catalog);
    h.server.inject({ kind: '503', times: 3, match: (q) => q.params.offset === '201' && !q.params.cid });
    const err = await h.run({ floors: ['digital/videoa'], to: '2024-01-05' }).catch((e) => e);
    expect(err).toBeInstanceOf(SyncIncompleteError);
    expect(err.exitCode).toBe(5);
    expect(err.message).toMatch(/1 page\(s\) still failed after retries/);
    const partial = err.details.result;
    expect(partial.items.inserted).toBe(350);
    expect(partial.reconciliation).toMatchObject({ apiTotal: 450, stored: 350, explained: { failedPageItems: 100 }, unexplained: 0 });
    const failures = await h.db.query<{ kind: string; page_offset: number; reason: string }>(
      `SELECT kind, page_offset, reason FROM am_ml.sync_failures WHERE resolved_at IS NULL`,
    );
    expect(failures.rows).toEqual([{ kind: 'page', page_offset: 201, reason: expect.stringMatching(/HTTP 503.*gave up after 3 attempts/) }]);
    expect(failures.rows[0].reason).not.toContain(SECRET_ID);

    h.server.requests.length = 0;
    const second = await h.run({ floors: ['digital/videoa'], to: '2024-01-05' });
    expect(second.resumed).toBe(true); // the incomplete run stayed open
    expect(h.server.requests.map((q) => q.params.offset)).toEqual(['201']); // only the failed page
    expect(second.retriedFailures).toMatchObject({ pages: 1, resolved: 1 });
    expect(second.reconciliation).toMatchObject({ apiTotal: 450, stored: 450, unexplained: 0 });
    await expectStoredEqualsServed(h, allItems(catalog));
  });

  it('records a failed probe, syncs the other windows, and plans that window again next run', async () => {
    const catalog = generateDmmCatalog({ seed: 27, items: 600, from: '2024-01-01', to: '2024-01-06', quirks: false });
    const h = await harness(catalog);
    // The first half of the range fails on every attempt; the split makes it its own window.
    h.server.inject({ kind: '503', times: 3, match: (q) => q.params.gte_date === '2024-01-01T00:00:00' && q.params.lte_date === '2024-01-03T23:59:59' });
    const err = await h.run({ floors: ['digital/videoa'], to: '2024-01-06', splitThreshold: 500 }).catch((e) => e);
    expect(err).toBeInstanceOf(SyncIncompleteError);
    const part = err.details.result;
    expect(part.failures.pages.list).toEqual([
      { window: 'digital/videoa 2024-01-01T00:00:00..2024-01-03T23:59:59', offset: 1, reason: expect.stringMatching(/HTTP 503/) },
    ]);
    expect(part.items.inserted).toBe(300);
    const second = await h.run({ floors: ['digital/videoa'], to: '2024-01-06', splitThreshold: 500 });
    expect(second).toMatchObject({ resumed: true, windows: { skippedDone: 1 } });
    expect(second.reconciliation).toMatchObject({ apiTotal: 600, stored: 600, unexplained: 0 });
    await expectStoredEqualsServed(h, allItems(catalog));
    expect((await h.db.query(`SELECT 1 FROM am_ml.sync_failures WHERE resolved_at IS NULL`)).rows).toEqual([]);
  });

  it('stops after consecutive page failures instead of reading the error as the end of the data', async () => {
    const catalog = generateDmmCatalog({ seed: 19, items: 800, from: '2024-01-01', to: '2024-01-05', quirks: false });
    const h = await harness(catalog);
    h.server.inject({ kind: '500', times: 1000, match: (q) => Number(q.params.offset) > 1 });
    const err = await h.run({ floors: ['digital/videoa'], to: '2024-01-05' }).catch((e) => e);
    expect(err).toBeInstanceOf(DmmRequestError);
    expect(err.message).toMatch(/3 pages in a row failed after retries; stopping/);
    // The probe page was written with its checkpoint; nothing was taken for the end of the data.
    const cp = await h.db.query<{ status: string; next_offset: number }>(`SELECT status, next_offset FROM am_ml.sync_checkpoints`);
    expect(cp.rows).toEqual([{ status: 'paging', next_offset: 401 }]);
    const runs = await h.db.query<{ status: string }>(`SELECT status FROM am_ml.sync_runs`);
    expect(runs.rows).toEqual([{ status: 'running' }]);
    const failed = await h.db.query<{ page_offset: number }>(`SELECT page_offset FROM am_ml.sync_failures ORDER BY page_offset`);
    expect(failed.rows.map((x) => x.page_offset)).toEqual([101, 201, 301]);
  });

  it('never retries a 400 and writes nothing', async () => {
    const catalog = generateDmmCatalog({ seed: 20, items: 50, from: '2024-01-01', to: '2024-01-02', quirks: false });
    const h = await harness(catalog, { apiId: 'some-other-id' });
    const err = await h.run({ floors: ['digital/videoa'], to: '2024-01-02' }).catch((e) => e);
    expect(err).toBeInstanceOf(DmmRequestError);
    expect(err.kind).toBe('bad-request');
    expect(h.server.requests).toHaveLength(1);
    expect((await catalogCounts(h.db)).videos).toBe(0);
  });

  it('resumes from the checkpoint after a failed chunk write, with nothing lost or duplicated', async () => {
    const catalog = generateDmmCatalog({ seed: 21, items: 900, from: '2024-01-01', to: '2024-01-20' });
    const h = await harness(catalog);
    const db = h.db;
    let chunks = 0;
    const flaky = (): CatalogWriter => {
      const w = createCatalogWriter(db);
      return {
        ...w,
        async writeChunk(c, o) {
          if (++chunks === 4) throw new ValidationFailedError('simulated crash in chunk 4');
          return w.writeChunk(c, o);
        },
      };
    };
    const err = await h.run({ floors: ['digital/videoa'], to: '2024-01-20', writer: flaky(), chunkSize: 100 }).catch((e) => e);
    expect(err.message).toBe('simulated crash in chunk 4');
    expect((await catalogCounts(db)).videos).toBe(300);
    const cp = await db.query<{ next_offset: number; status: string }>(`SELECT next_offset, status FROM am_ml.sync_checkpoints`);
    expect(cp.rows).toEqual([{ next_offset: 301, status: 'paging' }]);

    h.server.requests.length = 0;
    const r = await h.run({ floors: ['digital/videoa'], to: '2024-01-20', chunkSize: 100 });
    expect(r.resumed).toBe(true);
    expect(Math.min(...h.server.requests.map((q) => Number(q.params.offset)))).toBe(301); // no probe, no page before 301
    expect(r.items.inserted).toBe(600);
    expect(r.reconciliation).toMatchObject({ apiTotal: 900, stored: 900, unexplained: 0 });
    await expectStoredEqualsServed(h, allItems(catalog));
  });

  it('--max-items stops early, keeps the run open, and the next invocation finishes it', async () => {
    const catalog = generateDmmCatalog({ seed: 22, items: 500, from: '2024-01-01', to: '2024-01-10', quirks: false });
    const h = await harness(catalog);
    const a = await h.run({ floors: ['digital/videoa'], to: '2024-01-10', maxItems: 150 });
    expect(a).toMatchObject({ stoppedBy: 'max-items', reconciliation: null });
    expect(a.items.seen).toBe(150);
    expect((await catalogCounts(h.db)).videos).toBe(150);
    const b = await h.run({ floors: ['digital/videoa'], to: '2024-01-10' });
    expect(b.resumed).toBe(true);
    expect(b.items.inserted).toBe(350);
    expect(b.reconciliation).toMatchObject({ apiTotal: 500, stored: 500, unexplained: 0 });
    await expectStoredEqualsServed(h, allItems(catalog));
  });

  it('--dry-run computes the counts and leaves the database untouched', async () => {
    const catalog = generateDmmCatalog({ seed: 23, items: 260, from: '2024-01-01', to: '2024-01-05', quirks: false });
    const h = await harness(catalog);
    const before = await catalogDump(h.db);
    const r = await h.run({ floors: ['digital/videoa'], to: '2024-01-05', dryRun: true });
    expect(r.items).toMatchObject({ seen: 260, inserted: 260 });
    expect(r.reconciliation).toBeNull();
    expect(await catalogDump(h.db)).toBe(before);
    const traces = await h.db.query(`SELECT 1 FROM am_ml.sync_checkpoints UNION ALL SELECT 1 FROM am_ml.sync_runs`);
    expect(traces.rows).toHaveLength(0);
  });

  it('stops on abort with the written part consistent, and resumes', async () => {
    const catalog = generateDmmCatalog({ seed: 24, items: 600, from: '2024-01-01', to: '2024-01-10', quirks: false });
    const h = await harness(catalog);
    const ac = new AbortController();
    h.server.onRequest = (q) => {
      if (q.params.offset === '301') ac.abort();
    };
    const err = await h.run({ floors: ['digital/videoa'], to: '2024-01-10', signal: ac.signal, chunkSize: 100 }).catch((e) => e);
    expect(err).toBeInstanceOf(InterruptedError);
    expect(err.message).toMatch(/run the same command again to resume/);
    h.server.onRequest = undefined;
    const stored = (await catalogCounts(h.db)).videos;
    const cp = await h.db.query<{ next_offset: number }>(`SELECT next_offset FROM am_ml.sync_checkpoints`);
    expect(cp.rows[0].next_offset).toBe(stored + 1);
    const r = await h.run({ floors: ['digital/videoa'], to: '2024-01-10' });
    expect(r.items.inserted).toBe(600 - stored);
    await expectStoredEqualsServed(h, allItems(catalog));
  });

  it('pages by the offsets it asked for, so a wrong first_position echo cannot loop or skip', async () => {
    const catalog = generateDmmCatalog({ seed: 26, items: 350, from: '2024-01-01', to: '2024-01-05', quirks: false });
    const h = await harness(catalog);
    const lying: typeof fetch = async (input, init) => {
      const res = await fetch(input, init);
      const body = (await res.json()) as { result?: { first_position?: number } };
      if (body.result) body.result.first_position = 1;
      return new Response(JSON.stringify(body), { status: res.status, headers: res.headers });
    };
    const r = await h.run({ floors: ['digital/videoa'], to: '2024-01-05' }, { fetch: lying });
    expect(r.items).toMatchObject({ seen: 350, inserted: 350 });
    expect(h.server.requests.map((q) => Number(q.params.offset)).sort((a, b) => a - b)).toEqual([1, 101, 201, 301]);
  });

  it('keeps requests in flight while a chunk is being written (fetching and writing overlap)', async () => {
    const catalog = generateDmmCatalog({ seed: 25, items: 800, from: '2024-01-01', to: '2024-01-10', quirks: false });
    const h = await harness(catalog);
    const writing: { start: number; end: number }[] = [];
    const fetching: { start: number; end: number }[] = [];
    const timedFetch: typeof fetch = async (input, init) => {
      const start = performance.now();
      const res = await fetch(input, init);
      const body = await res.text();
      fetching.push({ start, end: performance.now() });
      return new Response(body, { status: res.status, headers: res.headers });
    };
    const w = createCatalogWriter(h.db);
    const writer: CatalogWriter = {
      ...w,
      async writeChunk(c, o) {
        const start = performance.now();
        try {
          return await w.writeChunk(c, o);
        } finally {
          writing.push({ start, end: performance.now() });
        }
      },
    };
    await h.run({ floors: ['digital/videoa'], to: '2024-01-10', writer, chunkSize: 100 }, { fetch: timedFetch });
    const overlapping = fetching.filter((f) => writing.some((x) => f.start < x.end && f.end > x.start));
    expect(writing.length).toBeGreaterThanOrEqual(8);
    expect(overlapping.length).toBeGreaterThan(0);
  });
});
