import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDmmDate } from '../dmm/schema.js';
import { generateDmmCatalog, type RawItem } from './dmm-catalog.js';
import { FAKE_DMM_AFFILIATE_ID, FAKE_DMM_API_ID, type FakeDmmServer, startFakeDmmServer } from './fake-dmm-server.js';

let server: FakeDmmServer;
const catalog = generateDmmCatalog({ seed: 9, items: { videoa: 400, videoc: 50 }, from: '2024-01-01', to: '2024-01-04' });
beforeAll(async () => {
  server = await startFakeDmmServer({ catalog, totalCountCap: 300 });
});
afterAll(() => server.close());

async function get(params: Record<string, string>) {
  const q = new URLSearchParams({ api_id: FAKE_DMM_API_ID, affiliate_id: FAKE_DMM_AFFILIATE_ID, site: 'FANZA', service: 'digital', floor: 'videoa', ...params });
  const res = await fetch(`${server.url}/ItemList?${q}`);
  return { status: res.status, body: (await res.json()) as { request: { parameters: Record<string, string> }; result: Record<string, unknown> } };
}

describe('replay server (dmm-api.md §8.5)', () => {
  it('filters by inclusive date window, sorts by date newest first, pages 1-based, echoes parameters as strings', async () => {
    const { body } = await get({ gte_date: '2024-01-02T00:00:00', lte_date: '2024-01-03T23:59:59', sort: 'date', hits: '50', offset: '51' });
    const r = body.result;
    expect(r).toMatchObject({ status: 200, result_count: 50, first_position: 51, total_count: 200 });
    const dates = (r.items as RawItem[]).map((i) => parseDmmDate(String(i.date))!.getTime());
    expect([...dates].sort((a, b) => b - a)).toEqual(dates);
    for (const d of dates) {
      expect(d).toBeGreaterThanOrEqual(Date.parse('2024-01-01T15:00:00Z'));
      expect(d).toBeLessThanOrEqual(Date.parse('2024-01-03T14:59:59Z'));
    }
    expect(body.request.parameters).toMatchObject({ hits: '50', offset: '51', sort: 'date' });
  });

  it('clamps total_count at the cap and omits items on an empty result', async () => {
    expect((await get({ hits: '1' })).body.result.total_count).toBe(300);
    const empty = await get({ gte_date: '2030-01-01T00:00:00' });
    expect(empty.body.result).toEqual({ status: 200, result_count: 0, total_count: 0, first_position: 1 });
  });

  it('answers 400 with the documented body for bad parameters', async () => {
    for (const [params, key] of [
      [{ hits: '101' }, 'hits'],
      [{ offset: '50001' }, 'offset'],
      [{ floor: 'nosuch' }, 'floor'],
      [{ site: 'DMM.R18' }, 'site'],
      [{ gte_date: '2024-01-01' }, 'gte_date'],
      [{ sort: '-date' }, 'sort'],
      [{ api_id: 'nope' }, 'api_id'],
    ] as const) {
      const { status, body } = await get(params);
      expect(status).toBe(400);
      expect(body.result).toEqual({ status: 400, message: 'BAD REQUEST', errors: { [key]: 'Invalid Request Error' } });
    }
  });

  it('re-fetches by cid and serves the videoc floor', async () => {
    const cid = String(catalog.floors[1].itemAt(7).content_id);
    const { body } = await get({ floor: 'videoc', cid, hits: '1' });
    expect((body.result.items as RawItem[])[0].content_id).toBe(cid);
    expect(catalog.floors[1].indexOf(cid)).toBe(7);
    expect(catalog.floors[0].indexOf(cid)).toBe(-1);
  });

  it('injects faults on demand and records every request', async () => {
    server.inject({ kind: '429-retry-after', retryAfterSec: 3 }, { kind: '503' }, { kind: 'malformed-json' });
    const a = await fetch(`${server.url}/ItemList?x=1`);
    expect([a.status, a.headers.get('retry-after')]).toEqual([429, '3']);
    expect((await fetch(`${server.url}/ItemList`)).status).toBe(503);
    const m = await fetch(`${server.url}/ItemList?api_id=${FAKE_DMM_API_ID}`);
    expect(m.status).toBe(200);
    await expect(m.json()).rejects.toThrow();
    server.inject({ kind: 'reset' });
    await expect(fetch(`${server.url}/ItemList`)).rejects.toThrow();
    expect(server.requests.slice(-4).map((r) => r.fault)).toEqual(['429-retry-after', '503', 'malformed-json', 'reset']);
  });
});

describe('generated catalogs', () => {
  it('are deterministic, ordered by date, and realistic', () => {
    const again = generateDmmCatalog({ seed: 9, items: { videoa: 400, videoc: 50 }, from: '2024-01-01', to: '2024-01-04' });
    expect(again.floors[0].itemAt(123)).toEqual(catalog.floors[0].itemAt(123));
    const f = catalog.floors[0];
    for (let i = 1; i < f.size; i++) expect(f.dateAt(i)).toBeGreaterThanOrEqual(f.dateAt(i - 1));
    const items = Array.from({ length: f.size }, (_, i) => f.itemAt(i));
    expect(new Set(items.map((i) => i.content_id)).size).toBe(f.size);
    const withActress = items.filter((i) => (i.iteminfo as RawItem).actress).length;
    expect(withActress / f.size).toBeGreaterThan(0.6);
    const makers = new Set(items.map((i) => JSON.stringify((i.iteminfo as RawItem).maker)));
    expect(makers.size).toBeGreaterThan(5);
    for (const i of items) expect(String(i.URL)).toMatch(/^https:\/\/dmm-replay\.invalid\//);
  });
});

describe('replay server on a worker thread', () => {
  it('serves a generated catalog from its own thread (from the built dist/, as the benchmark runs it)', async () => {
    const { pathToFileURL } = await import('node:url');
    const { REPO_ROOT } = await import('./tmp-dir.js');
    const mod = (await import(pathToFileURL(`${REPO_ROOT}/dist/testing/fake-dmm-server-worker.js`).href)) as typeof import('./fake-dmm-server-worker.js');
    const w = await mod.startFakeDmmServerInWorker({ catalog: { seed: 4, items: 120, from: '2024-01-01', to: '2024-01-02' } });
    try {
      const q = new URLSearchParams({ api_id: w.env.DMM_API_ID, affiliate_id: w.env.DMM_AFFILIATE_ID, site: 'FANZA', service: 'digital', floor: 'videoa', hits: '100' });
      const body = (await (await fetch(`${w.env.DMM_API_BASE_URL}/ItemList?${q}`)).json()) as { result: { total_count: number; items: unknown[] } };
      expect(body.result.total_count).toBe(120);
      expect(body.result.items).toHaveLength(100);
      expect(await w.requestCount()).toBe(1);
    } finally {
      await w.close();
    }
  });
});
