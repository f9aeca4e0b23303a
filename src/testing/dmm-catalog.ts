/**
 * Catalogs for the DMM replay server (`fake-dmm-server.ts`):
 *
 * - `generateDmmCatalog`: a seeded, realistic catalog of any size, generated lazily (item i is computed from the
 *   seed and i when served), so a 60,000-item catalog costs no memory. Makers have labels, series and a genre
 *   profile; performers belong to makers and have genres of their own; items draw their genres from their maker
 *   and performers, so a user's taste is explained by catalog features (the quickstart trains on this). Titles,
 *   names and makers are made up from word lists; URLs point at a placeholder host. With `quirks` (default on) the
 *   items show the API's documented quirks at realistic rates.
 * - `fixtureCatalog`: real (or hand-made) API items, grouped by floor and sorted by date.
 *
 * Both give, per floor, items in non-decreasing release date, which is what the server's date filter searches.
 */
import { parseDmmDate } from '../dmm/schema.js';
import { GENRE_GROUPS } from '../db/genre-groups.js';
import { mulberry32 } from '../ml/rng.js';

export type RawItem = Record<string, unknown>;

export interface ReplayFloor {
  service: string;
  floor: string;
  size: number;
  /** Release instant (ms since epoch) of item i; non-decreasing in i. */
  dateAt(i: number): number;
  /** The raw API item i (a fresh object on every call). */
  itemAt(i: number): RawItem;
  /** The index of a content id in this floor, or -1. */
  indexOf(contentId: string): number;
}

export interface ReplayCatalog {
  floors: ReplayFloor[];
}

// ---------------------------------------------------------------------------------------------------------------
// Seeded randomness
// ---------------------------------------------------------------------------------------------------------------

/** 32-bit string/number hash (FNV-1a), for per-item seeds. */
function hash(...parts: (string | number)[]): number {
  let h = 0x811c9dc5;
  for (const p of parts) {
    const s = `${p}|`;
    for (let i = 0; i < s.length; i++) {
      h ^= s.charCodeAt(i);
      h = Math.imul(h, 0x01000193);
    }
  }
  return h >>> 0;
}

/** Seeded [0, 1) numbers for test data (mulberry32). */
export const seededRandom = mulberry32;

const pick = <T>(rng: () => number, xs: readonly T[]): T => xs[Math.floor(rng() * xs.length)];
const intIn = (rng: () => number, lo: number, hi: number) => lo + Math.floor(rng() * (hi - lo + 1));
/** Skewed pick: low indexes are much more likely (popular makers and performers). */
const zipfIndex = (rng: () => number, n: number) => Math.min(n - 1, Math.floor(n * rng() ** 2.2));

// ---------------------------------------------------------------------------------------------------------------
// Word lists (made up; no real titles, names or companies)
// ---------------------------------------------------------------------------------------------------------------

const FAMILY = ['佐藤', '鈴木', '高橋', '田中', '伊藤', '渡辺', '山本', '中村', '小林', '加藤', '吉田', '山田', '佐々木', '松本', '井上', '木村', '林', '清水', '山崎', '森', '池田', '橋本', '阿部', '石川', '前田', '藤田', '小川', '岡田', '長谷川', '村上', '近藤', '坂本', '遠藤', '青木', '西村', '福田', '太田', '三浦', '藤井', '岡本'];
const GIVEN = ['さくら', 'ゆい', 'あおい', 'ひなた', 'めい', 'りこ', 'みお', 'かえで', 'あかり', 'ことね', 'ゆず', 'なつき', 'まりな', 'えま', 'しずく', 'はるか', 'みさき', 'のぞみ', 'あやね', 'ちひろ', 'りん', 'かのん', 'ほのか', 'いろは', 'つむぎ', 'すみれ', 'なぎさ', 'まひろ', 'せな', 'ゆきの'];
const MAKER_WORDS_A = ['ミライ', 'ソラ', 'ヒカリ', 'ツバサ', 'アオバ', 'コハク', 'ルミナ', 'サクラ', 'ハルカ', 'ミナト', 'カナタ', 'ユメ', 'アカネ', 'シオン', 'リンドウ', 'ホシゾラ', 'ナギ', 'トワ', 'ヒビキ', 'スバル'];
const MAKER_WORDS_B = ['映像', 'ピクチャーズ', 'スタジオ', 'プロダクション', 'フィルム', 'ワークス', 'メディア', 'エンタテインメント', '企画', 'レーベル'];
const LABEL_WORDS = ['PRIME', 'NEXT', 'BLUE', 'ROSE', 'STAR', 'PURE', 'LUXE', 'NOVA', 'FIRST', 'GRACE', 'MINT', 'AURA'];
const TITLE_A = ['放課後の', '週末の', '秘密の', 'はじめての', '真夏の', '雨の日の', '深夜の', '憧れの', '久しぶりの', '二人きりの', '忘れられない', '特別な', '内緒の', '最後の', '約束の'];
const TITLE_B = ['物語', '記録', '旅', '約束', '休日', '再会', 'レッスン', '告白', '同窓会', '出張', 'ドライブ', '温泉旅行', 'ルームシェア', 'アルバイト', '撮影会'];
const TITLE_C = ['', '', ' 完全版', ' 特別編', ' 総集編', ' 4時間スペシャル', ' 密着ドキュメント'];
const SERIES_WORDS = ['シリーズ', 'コレクション', '日記', 'ファイル', 'セレクション'];
const LETTERS = 'abcdefghijklmnopqrstuvwxyz';

/** Genres from the realistic list (the same names the writer maps to tag groups), sale tags left out. */
const GENRES: readonly string[] = Object.entries(GENRE_GROUPS)
  .filter(([group]) => group !== 'セール')
  .flatMap(([, gs]) => gs)
  .filter((g, i, all) => all.indexOf(g) === i);
const COMMON_GENRES = ['ハイビジョン', '独占配信', 'デジモ', 'サンプル動画'];
const PLACEHOLDER_HOST = 'https://dmm-replay.invalid';

interface Maker {
  id: number;
  name: string;
  prefix: string;
  labels: { id: number; name: string }[];
  series: { id: number; name: string }[];
  genres: string[];
  basePrice: number;
  minutes: number;
  directors: { id: number; name: string; ruby: string }[];
}

interface Performer {
  id: number;
  name: string;
  ruby: string;
  makers: number[];
  genres: string[];
}

export interface GenerateCatalogOptions {
  /** @default 1 */
  seed?: number;
  /** Items per floor. A number means that many videoa items. */
  items: number | Partial<Record<'videoa' | 'videoc', number>>;
  /** First release date, YYYY-MM-DD (JST). */
  from: string;
  /** Last release date, YYYY-MM-DD (JST), inclusive. */
  to: string;
  /** Show the API's quirks at realistic rates (string ids, missing review, single objects, ruby entries, …). @default true */
  quirks?: boolean;
  /** Items released on or after this date (YYYY-MM-DD) are pre-orders: often no performers or genres yet. */
  preordersFrom?: string;
}

const DAY_MS = 86_400_000;
const JST_MS = 9 * 3_600_000;

function jstMidnight(date: string): number {
  const d = parseDmmDate(date);
  if (!d || !/^\d{4}-\d{2}-\d{2}$/.test(date)) throw new RangeError(`expected YYYY-MM-DD, got ${date}`);
  return d.getTime();
}

/** `YYYY-MM-DD HH:MM:SS` (or with slashes) in JST for an instant. */
function formatJst(ms: number, slashes = false): string {
  const iso = new Date(ms + JST_MS).toISOString();
  const s = `${iso.slice(0, 10)} ${iso.slice(11, 19)}`;
  return slashes ? s.replace(/-/g, '/') : s;
}

function buildWorld(seed: number, floor: 'videoa' | 'videoc', size: number) {
  const rng = seededRandom(hash(seed, 'world', floor));
  const makerCount = Math.max(8, Math.min(60, Math.round(size / 60)));
  const usedPrefixes = new Set<string>();
  const makers: Maker[] = [];
  for (let m = 0; m < makerCount; m++) {
    let prefix: string;
    do {
      const letters = Array.from({ length: intIn(rng, 3, 4) }, () => pick(rng, [...LETTERS])).join('');
      // videoc content ids look different from videoa ones, and the two floors never share a prefix.
      prefix = floor === 'videoc' ? `${intIn(rng, 100, 499)}${letters}` : rng() < 0.2 ? `h_${intIn(rng, 100, 1999)}${letters}` : letters;
    } while (usedPrefixes.has(prefix));
    usedPrefixes.add(prefix);
    const name = `${pick(rng, MAKER_WORDS_A)}${pick(rng, MAKER_WORDS_B)}${m >= MAKER_WORDS_A.length ? ` ${m}` : ''}`;
    const genres = Array.from({ length: intIn(rng, 3, 6) }, () => pick(rng, GENRES));
    makers.push({
      id: 40000 + hash(seed, floor, 'maker', m) % 50000,
      name,
      prefix,
      labels: Array.from({ length: intIn(rng, 1, 2) }, (_, k) => ({
        id: 20000 + hash(seed, floor, 'label', m, k) % 60000,
        name: `${name.replace(/\s.*/, '')} ${pick(rng, LABEL_WORDS)}`,
      })),
      series: Array.from({ length: intIn(rng, 3, 10) }, (_, k) => ({
        id: 200000 + hash(seed, floor, 'series', m, k) % 4000000,
        name: `${pick(rng, TITLE_A)}${pick(rng, TITLE_B)}${pick(rng, SERIES_WORDS)}`,
      })),
      genres: [...new Set(genres)],
      basePrice: pick(rng, [300, 500, 980, 1480, 1980]),
      minutes: floor === 'videoc' ? intIn(rng, 40, 90) : pick(rng, [120, 150, 180, 240]),
      directors: Array.from({ length: intIn(rng, 1, 3) }, (_, k) => ({
        id: 100000 + hash(seed, floor, 'director', m, k) % 20000,
        name: `${pick(rng, FAMILY)}${pick(rng, ['監督', '太郎', '健', '誠', '翔'])}`,
        ruby: 'かんとく',
      })),
    });
  }
  const performerCount = floor === 'videoc' ? Math.max(10, Math.round(size / 20)) : Math.max(20, Math.round(size / 8));
  const performers: Performer[] = [];
  for (let p = 0; p < performerCount; p++) {
    const family = pick(rng, FAMILY);
    const given = pick(rng, GIVEN);
    performers.push({
      id: 1_000_000 + hash(seed, floor, 'actress', p) % 900_000,
      // Names repeat across performers (performers.name is not unique; the key is the actress id).
      name: `${family}${given}`,
      ruby: `${given}`,
      makers: Array.from({ length: intIn(rng, 1, 3) }, () => zipfIndex(rng, makers.length)),
      genres: [...new Set(Array.from({ length: intIn(rng, 2, 4) }, () => pick(rng, GENRES)))],
    });
  }
  // Fix duplicate ids from hash collisions: ids must identify one performer.
  const seenIds = new Set<number>();
  for (const p of performers) {
    while (seenIds.has(p.id)) p.id++;
    seenIds.add(p.id);
  }
  const byMaker = makers.map((_, m) => performers.filter((p) => p.makers.includes(m)));
  return { makers, performers, byMaker };
}

function generatedFloor(opts: GenerateCatalogOptions, floor: 'videoa' | 'videoc', size: number): ReplayFloor {
  const seed = opts.seed ?? 1;
  const quirks = opts.quirks ?? true;
  const start = jstMidnight(opts.from);
  const days = Math.round((jstMidnight(opts.to) - start) / DAY_MS) + 1;
  if (days < 1) throw new RangeError(`to (${opts.to}) is before from (${opts.from})`);
  const preorderStart = opts.preordersFrom ? jstMidnight(opts.preordersFrom) : Infinity;
  const perDay = Math.ceil(size / days);
  if (perDay > 86_400) throw new RangeError(`${perDay} items a day do not fit one-second release times; widen the range`);
  // Releases start at 10:00:00 JST (as on FANZA) unless a day is too crowded for that, spread over the day so that
  // hour windows hold a share of a day's items.
  const dayStartSec = perDay <= 50_400 ? 10 * 3600 : 0;
  const spacingSec = Math.max(1, Math.floor((86_400 - dayStartSec) / perDay));
  const firstOfDay = (d: number) => Math.ceil((d * size) / days);
  const dayOf = (i: number) => Math.floor((i * days) / size);
  const world = buildWorld(seed, floor, size);
  const pad = Math.max(5, String(size - 1).length);

  const dateAt = (i: number): number => {
    const d = dayOf(i);
    return start + d * DAY_MS + (dayStartSec + (i - firstOfDay(d)) * spacingSec) * 1000;
  };

  const makerOf = (i: number) => zipfIndex(seededRandom(hash(seed, floor, 'maker-of', i)), world.makers.length);
  const cidOf = (i: number) => `${world.makers[makerOf(i)].prefix}${String(i).padStart(pad, '0')}`;

  function itemAt(i: number): RawItem {
    if (!Number.isInteger(i) || i < 0 || i >= size) throw new RangeError(`item ${i} outside 0..${size - 1}`);
    const rng = seededRandom(hash(seed, floor, 'item', i));
    const q = (p: number) => quirks && rng() < p;
    const maker = world.makers[makerOf(i)];
    const cid = cidOf(i);
    const at = dateAt(i);
    const preorder = at >= preorderStart;
    const vr = floor === 'videoa' && rng() < 0.05;

    const pool = world.byMaker[makerOf(i)].length ? world.byMaker[makerOf(i)] : world.performers;
    const castSize = floor === 'videoc' ? (rng() < 0.3 ? 1 : 0) : rng() < 0.12 ? 0 : intIn(rng, 1, rng() < 0.8 ? 1 : 3);
    const cast = preorder && rng() < 0.5 ? [] : [...new Set(Array.from({ length: castSize }, () => pool[zipfIndex(rng, pool.length)]))];

    const genreSet = new Set<string>();
    if (!(preorder && rng() < 0.5)) {
      for (const g of maker.genres) if (rng() < 0.6) genreSet.add(g);
      for (const p of cast) for (const g of p.genres) if (rng() < 0.5) genreSet.add(g);
      for (const g of COMMON_GENRES) if (rng() < 0.4) genreSet.add(g);
      while (genreSet.size < 3) genreSet.add(pick(rng, GENRES));
      if (vr) genreSet.add('VR専用');
      if (floor === 'videoc') genreSet.add('素人');
    }
    const genreIds = (name: string) => 1000 + (hash('genre', name) % 9000);
    const genres = [...genreSet].map((name) => ({ id: q(0.02) ? String(genreIds(name)) : genreIds(name), name }));

    const series = rng() < 0.6 ? [pick(rng, maker.series)] : [];
    const label = pick(rng, maker.labels);
    const director = rng() < 0.7 ? pick(rng, maker.directors) : undefined;
    const title = `${pick(rng, TITLE_A)}${pick(rng, TITLE_B)}${pick(rng, TITLE_C)}${cast.length === 1 ? ` ${cast[0].name}` : ''}`;

    const floorPath = floor === 'videoc' ? 'amateur' : 'av';
    const url = `${PLACEHOLDER_HOST}/${floorPath}/content/?id=${cid}`;
    const img = `${PLACEHOLDER_HOST}/pics/${cid}/${cid}`;
    const price = maker.basePrice + (rng() < 0.3 ? 200 : 0);
    const minutes = maker.minutes + intIn(rng, -10, 30);

    const iteminfo: RawItem = {};
    if (genres.length) iteminfo.genre = genres;
    if (series.length) iteminfo.series = series;
    iteminfo.maker = q(0.03) ? { id: maker.id, name: maker.name } : [{ id: maker.id, name: maker.name }];
    if (cast.length) {
      const actress: RawItem[] = [];
      for (const p of cast) {
        if (q(0.03)) {
          // Legacy 2014–2018 shape: ruby and classify as pseudo-entries with string ids.
          actress.push({ id: p.id, name: p.name }, { id: `${p.id}_ruby`, name: p.ruby }, { id: `${p.id}_classify`, name: 'av' });
        } else {
          actress.push({ id: p.id, name: p.name, ruby: p.ruby });
        }
      }
      iteminfo.actress = actress;
    }
    if (director) iteminfo.director = [director];
    iteminfo.label = q(0.02) ? [{ id: 99999, name: '----' }] : [label];

    const item: RawItem = {
      service_code: 'digital',
      service_name: '動画',
      floor_code: floor,
      floor_name: floor === 'videoc' ? '素人' : 'ビデオ',
      category_name: floor === 'videoc' ? '素人 (動画)' : 'ビデオ (動画)',
      content_id: cid,
      product_id: cid,
      title,
      volume: floor === 'videoc' ? `${Math.floor(minutes / 60)}:${String(minutes % 60).padStart(2, '0')}:00` : String(minutes),
      URL: url,
      affiliateURL: `https://al.fanza.co.jp/?lurl=${encodeURIComponent(url)}&af_id=replay-990&ch=api`,
      imageURL:
        floor === 'videoc'
          ? { list: `${img}jm.jpg`, small: `${img}jp.jpg`, large: `${img}jp.jpg` }
          : { list: `${img}pt.jpg`, small: `${img}ps.jpg`, large: `${img}pl.jpg` },
      prices: {
        price: `${price}${q(0.03) ? '～' : '~'}`,
        list_price: `${price}~`,
        deliveries: {
          delivery: [
            { type: 'stream', price: String(price), list_price: '' },
            { type: 'download', price: String(price + 480) },
          ],
        },
      },
      date: formatJst(at, q(0.05)),
      iteminfo,
    };
    if (!preorder && !q(0.15)) {
      const avg = (3 + rng() * 2).toFixed(2);
      item.review = { count: intIn(rng, 1, 300), average: q(0.02) ? Number(avg) : avg };
    }
    if (!(floor === 'videoc' && q(0.3))) {
      const n = intIn(rng, 5, 12);
      const s: RawItem = { sample_s: { image: Array.from({ length: n }, (_, k) => `${img}-${k + 1}.jpg`) } };
      if (floor === 'videoa') s.sample_l = { image: Array.from({ length: n }, (_, k) => `${img}jp-${k + 1}.jpg`) };
      item.sampleImageURL = s;
    }
    if (!vr && !preorder) {
      const movie = (w: number, h: number) => `${PLACEHOLDER_HOST}/litevideo/-/part/=/cid=${cid}/size=${w}_${h}/`;
      item.sampleMovieURL = {
        size_476_306: movie(476, 306),
        size_560_360: movie(560, 360),
        size_644_414: movie(644, 414),
        size_720_480: movie(720, 480),
        pc_flag: 1,
        sp_flag: 1,
      };
    }
    if (q(0.1)) item.campaign = [{ date_begin: formatJst(at), date_end: formatJst(at + 7 * DAY_MS), title: '期間限定セール' }];
    if (q(0.01)) item.brand_new_field = { note: 'a key the schema does not know yet' };
    return item;
  }

  return {
    service: 'digital',
    floor,
    size,
    dateAt,
    itemAt,
    indexOf(contentId: string) {
      const m = /(\d+)$/.exec(contentId);
      if (!m) return -1;
      const i = Number(m[1]);
      return i < size && cidOf(i) === contentId ? i : -1;
    },
  };
}

/** A seeded catalog; the same options always give the same items. */
export function generateDmmCatalog(opts: GenerateCatalogOptions): ReplayCatalog {
  const sizes = typeof opts.items === 'number' ? { videoa: opts.items } : opts.items;
  const floors: ReplayFloor[] = [];
  for (const floor of ['videoa', 'videoc'] as const) {
    const n = sizes[floor] ?? 0;
    if (n > 0) floors.push(generatedFloor(opts, floor, n));
  }
  return { floors };
}

/** A catalog of given raw items (fixtures, hand-made variants), grouped by service/floor and sorted by date. */
export function fixtureCatalog(items: readonly RawItem[]): ReplayCatalog {
  const groups = new Map<string, { at: number; item: RawItem }[]>();
  for (const item of items) {
    const key = `${String(item.service_code)}/${String(item.floor_code)}`;
    const at = typeof item.date === 'string' ? parseDmmDate(item.date)?.getTime() : undefined;
    if (at === undefined) throw new RangeError(`fixture item ${String(item.content_id)} has no readable date`);
    let g = groups.get(key);
    if (!g) groups.set(key, (g = []));
    g.push({ at, item });
  }
  return {
    floors: [...groups].map(([key, list]) => {
      list.sort((a, b) => a.at - b.at);
      const [service, floor] = key.split('/');
      return {
        service,
        floor,
        size: list.length,
        dateAt: (i) => list[i].at,
        itemAt: (i) => structuredClone(list[i].item),
        indexOf: (cid) => list.findIndex((x) => x.item.content_id === cid),
      };
    }),
  };
}
