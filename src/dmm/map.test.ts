import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { FIXTURES_DIR } from '../testing/tmp-dir.js';
import { contentIdFromUrl, mapItem, parseDurationSeconds } from './map.js';
import { type ApiItem, parseItem } from './schema.js';

const load = (name: string) => JSON.parse(readFileSync(path.join(FIXTURES_DIR, 'dmm', name), 'utf8'));
const current = () => structuredClone(load('richardnguyen99_py-dmmjp__ItemList_videoa_mide00799.json').result.items[0]);
const legacy = () => structuredClone(load('usk81_go-dmm__ItemList_DMM.R18_mono-dvd.json').result.items);

function parsed(raw: unknown): ApiItem {
  const r = parseItem(raw);
  if (!r.ok) throw new Error(r.reason);
  return r.item;
}

describe('mapItem (app-schema §4)', () => {
  it('maps the current videoa item column by column', () => {
    const r = mapItem(parsed(current()));
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const base = 'https://pics.dmm.co.jp/digital/video/mide00799/mide00799';
    expect(r.video).toEqual({
      externalId: 'mide00799',
      title: '友達の妹が常にノーブラぽろり！！可愛すぎるビンビン乳首をこねくりたい 七沢みあ',
      durationSeconds: 179 * 60,
      thumbnailUrl: `${base}pl.jpg`,
      thumbnailVerticalUrl: `${base}ps.jpg`,
      previewVideoUrl: 'https://www.dmm.co.jp/litevideo/-/part/=/cid=mide00799/size=720_480/affi_id=***REDACTED_AFF_ID***/',
      sampleVideoUrl: 'https://www.dmm.co.jp/litevideo/-/part/=/cid=mide00799/size=720_480/affi_id=***REDACTED_AFF_ID***/',
      distributionCode: null,
      makerCode: 'mide00799',
      director: '五右衛門',
      series: '友達の妹が常にノーブラぽろり！！可愛すぎるビンビン乳首をこねくりたい',
      maker: 'ムーディーズ',
      label: 'MOODYZ DIVA',
      price: 210,
      productReleasedAt: new Date('2020-07-11T01:00:53Z'),
      imageUrls: Array.from({ length: 10 }, (_, i) => `${base}jp-${i + 1}.jpg`),
      source: 'FANZA',
      productUrl: 'https://video.dmm.co.jp/av/content/?id=mide00799',
      affiliateUrl:
        'https://al.fanza.co.jp/?lurl=https%3A%2F%2Fvideo.dmm.co.jp%2Fav%2Fcontent%2F%3Fid%3Dmide00799&af_id=***REDACTED_AFF_ID***&ch=api',
      tags: ['ハイビジョン', '独占配信', '顔射', '貧乳・微乳', '美乳', 'その他フェチ', '美少女', 'デジモ', '単体作品'],
      performers: [{ fanzaActressId: '1042129', name: '七沢みあ' }],
    });
  });

  it('maps the legacy videoa item (sample_s only, no performers) and refuses the mono/dvd one', () => {
    const [mono, videoa] = legacy();
    const m = mapItem(parsed(mono));
    expect(m).toEqual({ ok: false, reason: expect.stringMatching(/floor mono\/dvd has no catalog source/) });
    const v = mapItem(parsed(videoa));
    expect(v.ok).toBe(true);
    if (!v.ok) return;
    expect(v.video.imageUrls).toHaveLength(20);
    expect(v.video.imageUrls[0]).toMatch(/1hawa00124-1\.jpg$/);
    expect(v.video.performers).toEqual([]);
    expect(v.video.sampleVideoUrl).toMatch(/size=720_480/);
    expect(v.video.price).toBe(500);
    expect(v.video.director).toBe('長瀬ハワイ');
    expect(v.video.durationSeconds).toBe(244 * 60);
  });

  it('uses jancode and maker_product when present', () => {
    const raw = current();
    raw.jancode = '4549831291424';
    raw.maker_product = 'MIDE-799';
    const r = mapItem(parsed(raw));
    expect(r.ok && [r.video.distributionCode, r.video.makerCode]).toEqual(['4549831291424', 'MIDE-799']);
  });

  it('falls back through the image and movie sizes, and joins several names', () => {
    const raw = current();
    raw.imageURL = { list: 'L', small: 'S' };
    raw.sampleMovieURL = { size_476_306: 'M476', pc_flag: 1, sp_flag: 0 };
    raw.iteminfo.director.push({ id: 5, name: '二人目' });
    raw.iteminfo.label = [{ id: 99999, name: '----' }];
    delete raw.iteminfo.actress;
    const r = mapItem(parsed(raw));
    if (!r.ok) throw new Error(r.reason);
    expect([r.video.thumbnailUrl, r.video.thumbnailVerticalUrl]).toEqual(['L', 'S']);
    expect(r.video.sampleVideoUrl).toBe('M476');
    expect(r.video.director).toBe('五右衛門 / 二人目');
    expect(r.video.label).toBeNull();
    expect(r.video.performers).toEqual([]);
  });

  it('derives five sample images for amateur items without samples', () => {
    const raw = current();
    raw.floor_code = 'videoc';
    raw.volume = '1:29:00';
    raw.imageURL = { list: 'https://pics.example.invalid/abc123jm.jpg', small: 'https://pics.example.invalid/abc123jp.jpg' };
    delete raw.sampleImageURL;
    const r = mapItem(parsed(raw));
    if (!r.ok) throw new Error(r.reason);
    expect(r.video.source).toBe('FANZA_AMATEUR');
    expect(r.video.durationSeconds).toBe(5340);
    expect(r.video.imageUrls).toEqual([1, 2, 3, 4, 5].map((i) => `https://pics.example.invalid/abc123js-00${i}.jpg`));
  });

  it('builds the affiliate link with the link affiliate id when the item has none', () => {
    const raw = current();
    delete raw.affiliateURL;
    expect(mapItem(parsed(raw)).ok && (mapItem(parsed(raw)) as { video: { affiliateUrl: unknown } }).video.affiliateUrl).toBeNull();
    const r = mapItem(parsed(raw), { linkAffiliateId: 'mysite-001' });
    expect(r.ok && r.video.affiliateUrl).toBe(
      'https://al.fanza.co.jp/?lurl=https%3A%2F%2Fvideo.dmm.co.jp%2Fav%2Fcontent%2F%3Fid%3Dmide00799&af_id=mysite-001&ch=link_tool&ch_id=link',
    );
  });
});

describe('helpers', () => {
  it('parses every volume format', () => {
    expect(parseDurationSeconds('120')).toBe(7200);
    expect(parseDurationSeconds('1:29:00')).toBe(5340);
    expect(parseDurationSeconds('29:30')).toBe(1770);
    expect(parseDurationSeconds('120分')).toBe(7200);
    expect(parseDurationSeconds('293ページ')).toBeNull();
    expect(parseDurationSeconds(undefined)).toBeNull();
  });

  it('extracts the cid from current and legacy product URLs', () => {
    expect(contentIdFromUrl('https://video.dmm.co.jp/av/content/?id=mide00799')).toBe('mide00799');
    expect(contentIdFromUrl('http://www.dmm.co.jp/digital/videoa/-/detail/=/cid=1hawa00124/')).toBe('1hawa00124');
    expect(contentIdFromUrl('https://www.dmm.co.jp/mono/dvd/-/detail/=/cid=juy553/')).toBe('juy553');
    expect(contentIdFromUrl('https://example.com/')).toBeNull();
  });
});
