import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { FIXTURES_DIR } from '../testing/tmp-dir.js';
import { type ApiItem, parseDmmDate, parseItem, parseItemListBody, parsePrice } from './schema.js';

const load = (name: string) => JSON.parse(readFileSync(path.join(FIXTURES_DIR, 'dmm', name), 'utf8'));
const CURRENT = 'richardnguyen99_py-dmmjp__ItemList_videoa_mide00799.json';
const LEGACY = 'usk81_go-dmm__ItemList_DMM.R18_mono-dvd.json';

function okItem(raw: unknown): ApiItem {
  const r = parseItem(raw);
  if (!r.ok) throw new Error(`expected a valid item, got: ${r.reason}`);
  return r.item;
}

describe('parseItemListBody', () => {
  it('reads the current videoa page (numbers as numbers)', () => {
    const r = parseItemListBody(load(CURRENT));
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.page).toMatchObject({ status: 200, resultCount: 1, totalCount: 1400, firstPosition: 1 });
    expect(r.page.items).toHaveLength(1);
  });

  it('coerces counts sent as strings and reads a missing or empty items list as no items', () => {
    const body = { result: { status: '200', result_count: '0', total_count: '0', first_position: '1' } };
    const r = parseItemListBody(body);
    expect(r).toEqual({ ok: true, page: { status: 200, resultCount: 0, totalCount: 0, firstPosition: 1, items: [] } });
    const r2 = parseItemListBody({ result: { ...body.result, items: [] } });
    expect(r2.ok && r2.page.items).toEqual([]);
  });

  it('wraps a single item object in an array', () => {
    const body = load(CURRENT);
    body.result.items = body.result.items[0];
    const r = parseItemListBody(body);
    expect(r.ok && r.page.items).toHaveLength(1);
  });

  it('returns the API error of a 400 body (status compared as a string)', () => {
    const r = parseItemListBody({
      request: { parameters: { api_id: 'x', affiliate_id: 'y-990' } },
      result: { status: 400, message: 'BAD REQUEST', errors: { floor: 'Invalid Request Error' } },
    });
    expect(r).toEqual({ ok: false, apiError: { status: 400, message: 'BAD REQUEST', errors: { floor: 'Invalid Request Error' } } });
  });

  it('describes a malformed envelope instead of reading it as an empty page', () => {
    expect(parseItemListBody({})).toEqual({ ok: false, problem: 'the response has no "result" object' });
    const r = parseItemListBody({ result: { status: 200, result_count: 1, total_count: 'lots', first_position: 1, items: [] } });
    expect(r.ok).toBe(false);
    expect(!r.ok && 'problem' in r && r.problem).toMatch(/total_count: expected an integer .*"lots"/);
  });
});

describe('parseItem: quirks accepted', () => {
  it('parses the complete current item', () => {
    const item = okItem(load(CURRENT).result.items[0]);
    expect(item.content_id).toBe('mide00799');
    expect(item.review).toEqual({ count: 91, average: '4.84' });
    expect(item.date.toISOString()).toBe('2020-07-11T01:00:53.000Z'); // 10:00:53 JST
    expect(item.prices?.price).toEqual({ value: 210, from: true, raw: '210~' });
    expect(item.sampleImageURL?.sample_l?.image).toHaveLength(10);
    expect(item.sampleMovieURL?.size_720_480).toContain('size=720_480');
    expect(item.iteminfo?.actress).toEqual([{ id: 1042129, name: '七沢みあ', ruby: 'ななさわみあ' }]);
    expect(item.iteminfo?.genre?.map((g) => g.name)).toContain('ハイビジョン');
    expect(item.campaign).toHaveLength(1);
  });

  it('parses the 2018 legacy items: no review, URLsp, ruby pseudo-entries folded, plain price', () => {
    const [mono, videoa] = load(LEGACY).result.items.map(okItem);
    expect(mono.review).toBeUndefined();
    expect(mono.sampleMovieURL).toBeUndefined();
    expect(mono.URLsp).toMatch(/^http:\/\/sp\.dmm/);
    expect(mono.iteminfo?.actress).toEqual([{ id: 1046150, name: '壇えみ', ruby: 'だんえみ' }]);
    expect(mono.iteminfo?.director).toEqual([{ id: 107546, name: '豆沢豆太郎', ruby: 'まめざわまめたろう' }]);
    expect(mono.prices?.price).toEqual({ value: 2381, from: false, raw: '2381' });
    expect(mono.jancode).toBe('4549831291424');
    expect(videoa.review).toEqual({ count: 5, average: '3.60' });
    expect(videoa.iteminfo?.actress).toEqual([]); // a missing key reads as an empty list
  });

  it('accepts single objects for arrays, numeric review averages, ～ prices, placeholders, string ids', () => {
    const raw = structuredClone(load(CURRENT).result.items[0]);
    raw.iteminfo.maker = { id: 1509, name: 'メーカー' };
    raw.iteminfo.label = [{ id: 99999, name: '----' }];
    raw.iteminfo.genre.push({ id: '6012', name: '4時間以上作品' });
    raw.review.average = 4.5;
    raw.prices.price = '300～';
    raw.prices.list_price = '';
    raw.campaign = { date_begin: '2025-10-20 10:00:00', date_end: '2025-10-22 09:59:59', title: 'x' };
    raw.sampleImageURL = { sample_s: { image: 'https://example.invalid/1.jpg' } };
    delete raw.sampleMovieURL;
    raw.date = '2012/8/3 10:00';
    const item = okItem(raw);
    expect(item.iteminfo?.maker).toEqual([{ id: 1509, name: 'メーカー' }]);
    expect(item.iteminfo?.label).toEqual([]);
    expect(item.iteminfo?.genre?.at(-1)).toEqual({ id: 6012, name: '4時間以上作品' });
    expect(item.review?.average).toBe('4.5');
    expect(item.prices?.price).toEqual({ value: 300, from: true, raw: '300～' });
    expect(item.prices?.list_price).toBeUndefined();
    expect(item.campaign).toHaveLength(1);
    expect(item.sampleImageURL?.sample_s?.image).toEqual(['https://example.invalid/1.jpg']);
    expect(item.date.toISOString()).toBe('2012-08-03T01:00:00.000Z');
  });

  it('keeps unknown keys and reports them', () => {
    const raw = { ...load(CURRENT).result.items[0], brand_new_field: { a: 1 } };
    const r = parseItem(raw);
    expect(r.ok && r.unknownKeys).toEqual(['brand_new_field']);
    expect(r.ok && (r.item as Record<string, unknown>).brand_new_field).toEqual({ a: 1 });
  });
});

describe('parseItem: broken items rejected with the reason', () => {
  const base = () => structuredClone(load(CURRENT).result.items[0]);
  it.each([
    ['missing content_id', (r: Record<string, unknown>) => delete r.content_id, /content_id is missing/],
    ['empty title', (r: Record<string, unknown>) => (r.title = ''), /title must be a non-empty string/],
    ['numeric title', (r: Record<string, unknown>) => (r.title = 42), /title must be a non-empty string, found number/],
    ['missing date', (r: Record<string, unknown>) => delete r.date, /date is missing/],
    ['unreadable date', (r: Record<string, unknown>) => (r.date = 'next tuesday'), /date "next tuesday" is not a DMM date/],
    ['impossible date', (r: Record<string, unknown>) => (r.date = '2024-02-31 10:00:00'), /not a DMM date/],
    ['missing URL', (r: Record<string, unknown>) => delete r.URL, /URL is missing/],
    ['missing floor_code', (r: Record<string, unknown>) => delete r.floor_code, /floor_code is missing/],
    ['genre not a list of objects', (r: Record<string, unknown>) => ((r.iteminfo as Record<string, unknown>).genre = 'ハイビジョン'), /iteminfo\.genre/],
    ['image list of numbers', (r: Record<string, unknown>) => (r.sampleImageURL = { sample_s: { image: [1, 2] } }), /sampleImageURL\.sample_s\.image\.0/],
  ])('%s', (_name, mutate, reason) => {
    const raw = base();
    mutate(raw);
    const r = parseItem(raw);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.reason).toMatch(reason);
    expect(r.contentId).toBe(raw.content_id === undefined ? null : 'mide00799');
  });

  it('rejects non-objects', () => {
    expect(parseItem('mide00799')).toEqual({ ok: false, reason: 'item is "mide00799", not an object', contentId: null });
  });
});

describe('dates and prices', () => {
  it('reads the three documented date formats as JST', () => {
    expect(parseDmmDate('2025-10-09 00:00:05')?.toISOString()).toBe('2025-10-08T15:00:05.000Z');
    expect(parseDmmDate('2025/10/09 00:00:05')?.toISOString()).toBe('2025-10-08T15:00:05.000Z');
    expect(parseDmmDate('2012/8/3 10:00')?.toISOString()).toBe('2012-08-03T01:00:00.000Z');
    expect(parseDmmDate('2024-01-01')?.toISOString()).toBe('2023-12-31T15:00:00.000Z');
    expect(parseDmmDate('2024-13-01 00:00:00')).toBeNull();
    expect(parseDmmDate('')).toBeNull();
  });

  it('strips price suffixes', () => {
    expect(parsePrice('210~')).toEqual({ value: 210, from: true, raw: '210~' });
    expect(parsePrice('1,980円')).toEqual({ value: 1980, from: false, raw: '1,980円' });
    expect(parsePrice('---')).toEqual({ value: null, from: false, raw: '---' });
  });
});
