/**
 * Seeded generators of realistic training data with planted structure, for tests, benchmarks and the quickstart.
 *
 * - `generateCatalog`: items whose features are correlated the way a video catalog's are: each item has a latent
 *   genre that drives its tags; makers specialise in one or two genres; performers work mostly for a few makers;
 *   popularity is Zipf-like. Neutral placeholder names (`genre-07`, `performer-0042`); no real titles.
 * - `generateInteractions(catalog, …)`: users with taste clusters *defined over the catalog's own features* (a few
 *   tags, makers and performers per cluster), so any catalog works, e.g. one synced from the DMM replay. A user
 *   likes items with probability ∝ popularity^0.5 · exp(β · affinity) and nopes popular items off their taste, at
 *   increasing timestamps. A model that reads features can recover the clusters; popularity cannot.
 *
 * Deterministic for a seed. Pure module (no Node APIs).
 */
import type { CatalogItem } from './data/dataset.js';
import type { Interaction } from './data/types.js';
import { tokensOf } from './features/encode.js';
import { Rng } from './rng.js';

export interface SyntheticCatalogOptions {
  seed: number;
  items: number;
  /** @default 12 */
  genres?: number;
  /** Distinct tags. @default 80 */
  tags?: number;
  /** @default max(20, items / 6) */
  performers?: number;
  /** @default max(8, items / 60) */
  makers?: number;
  /** Release dates fall between these (ISO dates). */
  from?: string;
  to?: string;
  /** `plain`: item-000001; `cid`: abc00001 (DMM content id shape). @default 'plain' */
  idFormat?: 'plain' | 'cid';
}

const pad = (n: number, w: number) => String(n).padStart(w, '0');

function zipfCumulative(n: number, s: number, rng: Rng): { cumulative: Float64Array; order: number[] } {
  const order = rng.shuffle(Array.from({ length: n }, (_, i) => i)) as number[];
  const cumulative = new Float64Array(n);
  let acc = 0;
  for (let r = 0; r < n; r++) {
    acc += 1 / (r + 1) ** s;
    cumulative[r] = acc;
  }
  return { cumulative, order };
}

export function generateCatalog(opts: SyntheticCatalogOptions): CatalogItem[] {
  const rng = new Rng(opts.seed ^ 0x5eed0001);
  const nGenres = opts.genres ?? 12;
  const nTags = opts.tags ?? 80;
  const nPerformers = opts.performers ?? Math.max(20, Math.floor(opts.items / 6));
  const nMakers = opts.makers ?? Math.max(8, Math.floor(opts.items / 60));
  const from = Date.parse(`${opts.from ?? '2019-01-01'}T00:00:00Z`);
  const to = Date.parse(`${opts.to ?? '2026-06-30'}T00:00:00Z`);
  const tagName = (t: number) => `tag-${pad(t, 3)}`;
  // Each genre has a pool of characteristic tags (overlapping); some tags are generic and appear everywhere.
  const genericTags = Array.from({ length: Math.max(2, Math.floor(nTags / 10)) }, (_, i) => i);
  const genreTags = Array.from({ length: nGenres }, () => Array.from({ length: 8 }, () => genericTags.length + rng.int(nTags - genericTags.length)));
  const makerGenres = Array.from({ length: nMakers }, () => [rng.int(nGenres), rng.int(nGenres)]);
  const makerPerformers = Array.from({ length: nMakers }, () => Array.from({ length: 12 }, () => rng.int(nPerformers)));
  const makerPick = zipfCumulative(nMakers, 1.0, rng);
  const items: CatalogItem[] = [];
  for (let i = 0; i < opts.items; i++) {
    const maker = makerPick.order[rng.pickCumulative(makerPick.cumulative)];
    const genre = rng.next() < 0.8 ? makerGenres[maker][rng.int(2)] : rng.int(nGenres);
    const tags = new Set<string>();
    const nItemTags = 3 + rng.int(6);
    while (tags.size < nItemTags) {
      const r = rng.next();
      tags.add(tagName(r < 0.7 ? genreTags[genre][rng.int(8)] : r < 0.85 ? genericTags[rng.int(genericTags.length)] : rng.int(nTags)));
    }
    const performers = new Set<string>();
    const nItemPerformers = rng.next() < 0.15 ? 0 : 1 + (rng.next() < 0.3 ? rng.int(3) : 0);
    while (performers.size < nItemPerformers) {
      const p = rng.next() < 0.75 ? makerPerformers[maker][rng.int(12)] : rng.int(nPerformers);
      performers.add(`performer-${pad(p, 4)}`);
    }
    const released = from + Math.floor(rng.next() * (to - from));
    const id = opts.idFormat === 'cid' ? `${String.fromCharCode(97 + (maker % 26))}${String.fromCharCode(97 + ((maker * 7) % 26))}${String.fromCharCode(97 + genre)}${pad(i + 1, 5)}` : `item-${pad(i + 1, 6)}`;
    items.push({
      item_id: id,
      title: `Sample title ${i + 1}`,
      tags: [...tags].sort(),
      performers: [...performers].sort(),
      maker: `maker-${pad(maker, 3)}`,
      series: rng.next() < 0.4 ? `series-${pad(maker, 3)}-${rng.int(6)}` : null,
      label: `label-${pad(maker, 3)}-${rng.int(2)}`,
      source: rng.next() < 0.85 ? 'FANZA' : 'FANZA_AMATEUR',
      price: 300 + 100 * rng.int(28),
      released_at: new Date(released).toISOString().slice(0, 10),
      duration_seconds: 60 * (60 + rng.int(150)),
    });
  }
  return items;
}

export interface SyntheticInteractionsOptions {
  seed: number;
  users: number;
  /** Taste clusters. @default 8 */
  clusters?: number;
  /** Likes per user, uniform in [min, max]. @default [8, 40] */
  likesPerUser?: [number, number];
  /** Nopes per like. @default 0.5 */
  nopesPerLike?: number;
  /** Strength of taste (higher = more predictable). @default 2.5 */
  beta?: number;
  /** Share of likes drawn by popularity alone (exploration, noise). @default 0.1 */
  noise?: number;
  /** First event time (ISO) and the span events spread over. */
  start?: string;
  /** @default 180 */
  spanDays?: number;
  /** `plain`: user-0001; `uuid`: seeded UUIDs (for `auth.users`/`user_video_decisions`). @default 'plain' */
  userIdFormat?: 'plain' | 'uuid';
}

/** One planted taste cluster: the feature values its users are drawn to. */
export interface PlantedCluster {
  tags: string[];
  makers: string[];
  performers: string[];
}

export interface SyntheticInteractions {
  users: { userId: string; cluster: number }[];
  interactions: Interaction[];
  clusters: PlantedCluster[];
}

function seededUuid(rng: Rng): string {
  const hex = Array.from({ length: 4 }, () => rng.nextU32().toString(16).padStart(8, '0')).join('');
  const v = `${hex.slice(0, 12)}4${hex.slice(13, 16)}${((parseInt(hex[16], 16) & 0x3) | 0x8).toString(16)}${hex.slice(17, 32)}`;
  return `${v.slice(0, 8)}-${v.slice(8, 12)}-${v.slice(12, 16)}-${v.slice(16, 20)}-${v.slice(20, 32)}`;
}

/** Values of an attribute that occur on at least `minItems` items, most frequent first (ties by name). */
function frequentValues(catalog: readonly CatalogItem[], attribute: 'tags' | 'maker' | 'performers', minItems: number): string[] {
  const counts = new Map<string, number>();
  for (const item of catalog) for (const t of tokensOf(item[attribute])) counts.set(t, (counts.get(t) ?? 0) + 1);
  return [...counts]
    .filter(([, n]) => n >= minItems)
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
    .map(([t]) => t);
}

function pickDistinct(pool: readonly string[], n: number, rng: Rng, skipTop = 0): string[] {
  const candidates = pool.slice(Math.min(skipTop, Math.max(0, pool.length - n)));
  const out = new Set<string>();
  for (let tries = 0; out.size < Math.min(n, candidates.length) && tries < n * 50; tries++) out.add(candidates[rng.int(candidates.length)]);
  return [...out];
}

export function generateInteractions(catalog: readonly CatalogItem[], opts: SyntheticInteractionsOptions): SyntheticInteractions {
  if (catalog.length < 10) throw new Error('generateInteractions needs a catalog of at least 10 items');
  const rng = new Rng(opts.seed ^ 0x5eed0002);
  const k = opts.clusters ?? 8;
  const [minLikes, maxLikes] = opts.likesPerUser ?? [8, 40];
  const nopesPerLike = opts.nopesPerLike ?? 0.5;
  const beta = opts.beta ?? 2.5;
  const noise = opts.noise ?? 0.1;
  const start = Date.parse(opts.start ?? '2026-01-01T00:00:00Z');
  const spanMs = (opts.spanDays ?? 180) * 86400_000;
  const n = catalog.length;

  // Clusters over the catalog's own values; the most common tags are skipped so they are not trivial.
  const minItems = Math.max(2, Math.floor(n / 400));
  const tagPool = frequentValues(catalog, 'tags', minItems);
  const makerPool = frequentValues(catalog, 'maker', minItems);
  const performerPool = frequentValues(catalog, 'performers', 2);
  const clusters: PlantedCluster[] = Array.from({ length: k }, () => ({
    tags: pickDistinct(tagPool, 3, rng, 3),
    makers: pickDistinct(makerPool, 2, rng),
    performers: pickDistinct(performerPool, 8, rng),
  }));

  // Base popularity: Zipf over a seeded permutation.
  const pop = new Float64Array(n);
  const perm = rng.shuffle(Array.from({ length: n }, (_, i) => i)) as number[];
  perm.forEach((item, rank) => {
    pop[item] = 1 / (rank + 1) ** 0.8;
  });
  const affinity = (c: PlantedCluster, item: CatalogItem) => {
    const tags = tokensOf(item.tags);
    const perfs = tokensOf(item.performers);
    const maker = tokensOf(item.maker)[0];
    return (
      1.0 * tags.filter((t) => c.tags.includes(t)).length +
      1.5 * (maker !== undefined && c.makers.includes(maker) ? 1 : 0) +
      2.0 * perfs.filter((p) => c.performers.includes(p)).length
    );
  };
  const cumulative = (w: (i: number) => number) => {
    const out = new Float64Array(n);
    let acc = 0;
    for (let i = 0; i < n; i++) {
      acc += w(i);
      out[i] = acc;
    }
    return out;
  };
  const likeCum: Float64Array[] = [];
  const nopeCum: Float64Array[] = [];
  for (const c of clusters) {
    const a = catalog.map((item) => affinity(c, item));
    likeCum.push(cumulative((i) => Math.sqrt(pop[i]) * Math.exp(beta * a[i])));
    nopeCum.push(cumulative((i) => pop[i] * Math.exp(-beta * a[i])));
  }
  const popCum = cumulative((i) => pop[i]);

  const users: SyntheticInteractions['users'] = [];
  const interactions: Interaction[] = [];
  for (let u = 0; u < opts.users; u++) {
    const userId = opts.userIdFormat === 'uuid' ? seededUuid(rng) : `user-${pad(u + 1, 5)}`;
    const cluster = rng.int(k);
    users.push({ userId, cluster });
    const nLikes = minLikes + rng.int(maxLikes - minLikes + 1);
    const nNopes = Math.round(nLikes * nopesPerLike * (0.5 + rng.next()));
    const used = new Set<number>();
    const events: { item: number; label: 1 | 0 }[] = [];
    const draw = (cum: Float64Array) => {
      for (let tries = 0; tries < 50; tries++) {
        const i = rng.pickCumulative(cum);
        if (!used.has(i)) {
          used.add(i);
          return i;
        }
      }
      return -1;
    };
    for (let j = 0; j < nLikes; j++) {
      const i = draw(rng.next() < noise ? popCum : likeCum[cluster]);
      if (i >= 0) events.push({ item: i, label: 1 });
    }
    for (let j = 0; j < nNopes; j++) {
      const i = draw(nopeCum[cluster]);
      if (i >= 0) events.push({ item: i, label: 0 });
    }
    rng.shuffle(events);
    const userStart = start + Math.floor(rng.next() * spanMs * 0.5);
    const times = events.map(() => userStart + Math.floor(rng.next() * spanMs * 0.5)).sort((a, b) => a - b);
    events.forEach((e, j) => interactions.push({ userId, itemId: catalog[e.item].item_id, label: e.label, timestamp: times[j] }));
  }
  return { users, interactions, clusters };
}
