/**
 * The quickstart's sample users: their recent likes next to the recommendations the app would serve them now
 * (`db/recommendations.ts`), and why those make sense. Each generated user likes videos because of a taste: a few
 * makers, performers and genres of the catalog (the planted cluster, `ml/synthetic.ts`). The report shows that
 * taste with how many of the user's likes carry each part of it, and for every recommendation the parts it carries.
 * The same check on the popularity feed is the comparison: a model that learned the taste recommends videos that
 * carry it far more often than the most liked videos do.
 */
import { openDb } from '../db/open.js';
import type { Queryable } from '../db/types.js';
import {
  decidedVideos,
  performerNames,
  popularityRanking,
  recentLikes,
  SERVING_LIKES_WINDOW,
  servedRecommendations,
  undecidedBy,
  type VideoCard,
  videoCards,
} from '../db/recommendations.js';
import type { PlantedCluster } from '../ml/synthetic.js';

/** Likes needed for a user to be a sample (enough history to show a taste). */
const MIN_SAMPLE_LIKES = 15;

export interface TasteFeature {
  name: string;
  /** How many of the user's likes (the newest 200, what serving averages) carry it. */
  likes: number;
}

export interface Taste {
  makers: TasteFeature[];
  /** Genres (tags) of the taste; some are in groups the app does not show (e.g. ハイビジョン). */
  genres: TasteFeature[];
  performers: (TasteFeature & { id: string })[];
  /** The user's likes counted. */
  of: number;
}

export interface Shared {
  maker: string | null;
  performers: string[];
  genres: string[];
  /** Carries at least one part of the taste. */
  matches: boolean;
}

export interface SampleRecommendation {
  title: string;
  externalId: string | null;
  maker: string | null;
  genres: string[];
  score: number;
  shared: Shared;
}

export interface SampleUser {
  userId: string;
  /** Index of the planted taste cluster. */
  cluster: number;
  taste: Taste;
  recentLikes: { title: string; externalId: string | null; maker: string | null; genres: string[]; likedAt: string | null; shared: Shared }[];
  recommendations: SampleRecommendation[];
  /** Where the serving rule's query vector came from (`liked-items-mean` for users with likes). */
  querySource: string;
  modelVersion: string | null;
  /** Share of the recommendations that carry the taste, next to the same share of the popularity feed. */
  relevance: { model: number; popularity: number };
}

export function sharedWith(card: VideoCard, cluster: PlantedCluster, names: ReadonlyMap<string, string>): Shared {
  const maker = card.maker !== null && cluster.makers.includes(card.maker) ? card.maker : null;
  const performers = card.performers.filter((p) => cluster.performers.includes(p.id)).map((p) => names.get(p.id) ?? p.name);
  const genres = card.tags.filter((t) => cluster.tags.includes(t));
  return { maker, performers, genres, matches: maker !== null || performers.length > 0 || genres.length > 0 };
}

export function tasteOf(cluster: PlantedCluster, likes: readonly VideoCard[], names: ReadonlyMap<string, string>): Taste {
  const count = (has: (c: VideoCard) => boolean) => likes.filter(has).length;
  const byLikes = <T extends TasteFeature>(xs: T[]) => xs.sort((a, b) => b.likes - a.likes || (a.name < b.name ? -1 : 1));
  return {
    makers: byLikes(cluster.makers.map((name) => ({ name, likes: count((c) => c.maker === name) }))),
    genres: byLikes(cluster.tags.map((name) => ({ name, likes: count((c) => c.tags.includes(name)) }))),
    performers: byLikes(cluster.performers.map((id) => ({ id, name: names.get(id) ?? id, likes: count((c) => c.performers.some((p) => p.id === id)) }))),
    of: likes.length,
  };
}

const shareMatching = (cards: readonly VideoCard[], cluster: PlantedCluster) =>
  cards.length ? cards.filter((c) => sharedWith(c, cluster, new Map()).matches).length / cards.length : 0;

/**
 * Users with enough likes from different taste clusters (the first such users in id order, so the choice is the
 * same on every run with the same seed).
 */
export function pickSampleUsers(users: readonly { userId: string; cluster: number }[], likesOf: (userId: string) => number, count: number): { userId: string; cluster: number }[] {
  const out: { userId: string; cluster: number }[] = [];
  for (const u of [...users].sort((a, b) => (a.userId < b.userId ? -1 : 1))) {
    if (out.length >= count) break;
    if (likesOf(u.userId) >= MIN_SAMPLE_LIKES && !out.some((o) => o.cluster === u.cluster)) out.push(u);
  }
  return out;
}

/** The popularity feed of each user (one ranking, minus what each decided), as cards. */
async function popularFeeds(db: Queryable, userIds: readonly string[], k: number): Promise<Map<string, VideoCard[]>> {
  const decided = await decidedVideos(db, userIds);
  const ranking = await popularityRanking(db, Math.max(0, ...[...decided.values()].map((d) => d.size)) + k);
  const feeds = new Map(userIds.map((u) => [u, undecidedBy(ranking, decided.get(u)!, k)]));
  const cards = new Map((await videoCards(db, [...new Set([...feeds.values()].flat())])).map((c) => [c.videoId, c]));
  return new Map([...feeds].map(([u, ids]) => [u, ids.map((id) => cards.get(id)!)]));
}

export interface RelevanceSummary {
  /** Users checked: the first ones in id order with enough likes. */
  users: number;
  /** Recommendations per user (the serving rule's top k, and the popularity feed's top k). */
  k: number;
  /** Mean share of a user's recommendations that carry their taste, and the same for the popularity feed. */
  model: number;
  popularity: number;
}

/** The sample check over many users (two samples alone are noisy): what share of each user's top k carries their taste. */
export async function relevanceOverUsers(
  opts: { databaseUrl: string; cwd: string },
  users: readonly { userId: string; cluster: number }[],
  likesOf: (userId: string) => number,
  clusters: readonly PlantedCluster[],
  limits: { users: number; k: number },
): Promise<RelevanceSummary> {
  const chosen = [...users].sort((a, b) => (a.userId < b.userId ? -1 : 1)).filter((u) => likesOf(u.userId) >= MIN_SAMPLE_LIKES).slice(0, limits.users);
  const db = await openDb({ url: opts.databaseUrl, cwd: opts.cwd });
  try {
    const feeds = await popularFeeds(db, chosen.map((u) => u.userId), limits.k);
    let model = 0;
    let popularity = 0;
    for (const u of chosen) {
      model += shareMatching((await servedRecommendations(db, u.userId, limits.k)).items, clusters[u.cluster]);
      popularity += shareMatching(feeds.get(u.userId)!, clusters[u.cluster]);
    }
    const n = Math.max(1, chosen.length);
    return { users: chosen.length, k: limits.k, model: model / n, popularity: popularity / n };
  } finally {
    await db.close();
  }
}

export async function sampleRecommendations(
  opts: { databaseUrl: string; cwd: string },
  samples: readonly { userId: string; cluster: number }[],
  clusters: readonly PlantedCluster[],
  counts: { likesShown: number; recommendations: number },
): Promise<SampleUser[]> {
  const db = await openDb({ url: opts.databaseUrl, cwd: opts.cwd });
  try {
    const out: SampleUser[] = [];
    for (const s of samples) {
      const cluster = clusters[s.cluster];
      const names = await performerNames(db, cluster.performers);
      const likes = await recentLikes(db, s.userId, SERVING_LIKES_WINDOW);
      const served = await servedRecommendations(db, s.userId, counts.recommendations);
      const popular = (await popularFeeds(db, [s.userId], counts.recommendations)).get(s.userId)!;
      out.push({
        userId: s.userId,
        cluster: s.cluster,
        taste: tasteOf(cluster, likes, names),
        recentLikes: likes.slice(0, counts.likesShown).map((l) => ({
          title: l.title,
          externalId: l.externalId,
          maker: l.maker,
          genres: l.genres,
          likedAt: l.likedAt,
          shared: sharedWith(l, cluster, names),
        })),
        recommendations: served.items.map((r) => ({ title: r.title, externalId: r.externalId, maker: r.maker, genres: r.genres, score: r.score, shared: sharedWith(r, cluster, names) })),
        querySource: served.source,
        modelVersion: served.modelVersion,
        relevance: { model: shareMatching(served.items, cluster), popularity: shareMatching(popular, cluster) },
      });
    }
    return out;
  } finally {
    await db.close();
  }
}
