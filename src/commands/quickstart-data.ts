/**
 * The quickstart's data: a generated DMM catalog served by the replay server (on its own thread, like the remote
 * API) and synced with `am-ml sync-dmm`, then a generated interaction log over the synced catalog written into
 * `auth.users` + `user_video_decisions`. Both are seeded, so a second run finds the same catalog (the sync updates
 * nothing) and the same log (nothing new is inserted).
 */
import { openDb } from '../db/open.js';
import { readCatalog } from '../db/training-data.js';
import type { CatalogItem } from '../ml/data/dataset.js';
import { generateInteractions, type PlantedCluster } from '../ml/synthetic.js';
import { seedDecisions } from '../testing/app-db-seed.js';
import { startFakeDmmServerInWorker } from '../testing/fake-dmm-server-worker.js';
import type { CommonOptions } from './common.js';
import { syncDmm, type SyncDmmResult } from './sync-dmm.js';

/**
 * The generated world. Releases span two years and every decision falls in the two months after the last
 * release, so no one likes a video before it came out.
 */
export const QUICKSTART_WORLD = {
  catalogFrom: '2024-09-01',
  catalogTo: '2026-08-31',
  decisionsFrom: '2026-09-01T00:00:00Z',
  decisionDays: 60,
  /** Share of the catalog on the amateur floor (videoc); the rest is videoa. */
  amateurShare: 0.15,
  /** Taste clusters of the generated users. */
  clusters: 12,
  likesPerUser: [10, 40] as [number, number],
} as const;
/** The replay server is local: the sync may use the client's highest rate. */
const REPLAY_RPS = 100;

export interface QuickstartSizes {
  items: number;
  users: number;
  seed: number;
}

export interface CatalogStepResult {
  floors: { videoa: number; videoc: number };
  from: string;
  to: string;
  sync: Pick<SyncDmmResult, 'runId' | 'requests' | 'items' | 'reconciliation' | 'database'>;
}

/** Start the replay server over the generated catalog, sync it with `am-ml sync-dmm`, stop the server. */
export async function syncGeneratedCatalog(common: CommonOptions, sizes: QuickstartSizes): Promise<CatalogStepResult> {
  const videoc = Math.round(sizes.items * QUICKSTART_WORLD.amateurShare);
  const floors = { videoa: sizes.items - videoc, videoc };
  const from = QUICKSTART_WORLD.catalogFrom;
  const to = QUICKSTART_WORLD.catalogTo;
  const server = await startFakeDmmServerInWorker({ catalog: { seed: sizes.seed, items: floors, from, to } });
  try {
    const r = await syncDmm({
      ...common,
      // The replay server's made-up credentials and address; nothing leaves the machine.
      env: { ...common.env, ...server.env },
      apiBaseUrl: server.url,
      floors: ['videoa', 'videoc'],
      from,
      to,
      rps: REPLAY_RPS,
      // The quickstart re-embeds everything after publishing; embedding during the sync would be thrown away.
      embed: 'off',
    });
    return {
      floors,
      from,
      to,
      sync: { runId: r.runId, requests: r.requests, items: r.items, reconciliation: r.reconciliation, database: r.database },
    };
  } finally {
    await server.close();
  }
}

export interface InteractionsStepResult {
  users: number;
  likes: number;
  nopes: number;
  /** Rows new in this run (0 on a second run: the same seeded log is already there). */
  inserted: { users: number; decisions: number };
  clusters: number;
}

export interface GeneratedLog {
  result: InteractionsStepResult;
  catalog: CatalogItem[];
  /** Generated users with their planted taste cluster. */
  users: { userId: string; cluster: number }[];
  clusters: PlantedCluster[];
}

/**
 * Read the synced catalog, generate users whose tastes are explained by its features (a few genres, makers and
 * performers per taste cluster) and write their decisions, in one transaction.
 */
export async function seedInteractionLog(common: CommonOptions & { databaseUrl: string; cwd: string }, sizes: QuickstartSizes): Promise<GeneratedLog> {
  const db = await openDb({ url: common.databaseUrl, cwd: common.cwd });
  try {
    // In content-id order: the generated log then depends on the seed alone, not on the database's row ids.
    const catalog = (await readCatalog(db)).sort((a, b) => (String(a.external_id) < String(b.external_id) ? -1 : 1));
    const planted = generateInteractions(catalog, {
      seed: sizes.seed,
      users: sizes.users,
      clusters: QUICKSTART_WORLD.clusters,
      likesPerUser: QUICKSTART_WORLD.likesPerUser,
      userIdFormat: 'uuid',
      start: QUICKSTART_WORLD.decisionsFrom,
      spanDays: QUICKSTART_WORLD.decisionDays,
    });
    // Catalog item ids are videos.id already.
    const ids = new Map(catalog.map((c) => [c.item_id, c.item_id]));
    const inserted = await db.transaction((tx) => seedDecisions(tx, planted.interactions, ids));
    const likes = planted.interactions.filter((i) => i.label === 1).length;
    return {
      result: { users: planted.users.length, likes, nopes: planted.interactions.length - likes, inserted, clusters: planted.clusters.length },
      catalog,
      users: planted.users,
      clusters: planted.clusters,
    };
  } finally {
    await db.close();
  }
}
