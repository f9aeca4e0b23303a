/**
 * `am-ml quickstart`: the whole model loop on the embedded defaults, offline, in one command. Each step is the
 * real command: `init`; a replay of a generated DMM catalog synced by `sync-dmm`; a generated interaction log in
 * `user_video_decisions`; `train --from-db`; golden outputs + `validate` for both towers; `publish` (gated on beating
 * the popularity baseline); `embed`; then two sample users' likes next to what the app's serving rule recommends.
 *
 * It always works on the embedded database and local store inside `--dir` (it creates made-up users, so it never
 * touches a database or store configured in the environment). A second run finds the catalog and the log in place,
 * trains and publishes a new version, and switches the live embeddings to it.
 */
import { existsSync, mkdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { DEFAULT_DATABASE_URL, DEFAULT_HOME_DIR, DEFAULT_MODEL_STORE, resolveUrlPath } from '../config.js';
import { liveVersions, servedVersion } from '../db/embedding-store.js';
import { openDb } from '../db/open.js';
import { UsageError } from '../errors.js';
import type { BackendChoice } from '../ml/tf.js';
import type { CommonOptions } from './common.js';
import { cwdOf, reporterOf } from './common.js';
import { embed } from './embed.js';
import { init } from './init.js';
import { publish } from './publish.js';
import { type CatalogStepResult, type InteractionsStepResult, QUICKSTART_WORLD, seedInteractionLog, syncGeneratedCatalog } from './quickstart-data.js';
import { pickSampleUsers, type RelevanceSummary, relevanceOverUsers, sampleRecommendations, type SampleUser } from './quickstart-samples.js';
import { type TowerValidation, validateRunTowers } from './quickstart-validate.js';
import { train } from './train.js';

/** The default size: a few thousand items and users, a few minutes on two cores (see the README). */
export const QUICKSTART_DEFAULTS = { items: 3000, users: 2000, seed: 7, epochs: 10 } as const;
const SAMPLE_USERS = 2;
const LIKES_SHOWN = 5;
const RECOMMENDATIONS_SHOWN = 8;
const EVAL_METRICS = ['recall@10', 'recall@50', 'recall@100', 'ndcg@10', 'coverage@100'] as const;
const STEP_COUNT = 8;
/** Users whose recommendations are checked against their taste (the two samples are shown, these are counted). */
const RELEVANCE_USERS = 100;
const pct = (x: number) => `${Math.round(x * 100)}%`;

export interface QuickstartOptions extends CommonOptions {
  /** Working directory: `.am-ml/` is created in it. @default cwd */
  dir?: string;
  /** Catalog items (videoa + videoc). @default 3000 */
  items?: number;
  /** Generated users. @default 2000 */
  users?: number;
  /** Seed of the catalog and the users. @default 7 */
  seed?: number;
  /** Training epochs at most (early stopping on validation recall@100 usually ends the run before). @default 10 */
  epochs?: number;
  backend?: BackendChoice;
  now?: () => Date;
}

export interface QuickstartStep {
  name: string;
  ok: true;
  seconds: number;
  summary: string;
}

export interface QuickstartResult {
  dir: string;
  seconds: number;
  steps: QuickstartStep[];
  catalog: CatalogStepResult & { seed: number };
  interactions: InteractionsStepResult;
  training: { runId: string; runDir: string; epochs: { run: number; best: number }; backend: string };
  evaluation: {
    evaluatedOn: string;
    users: number;
    items: number;
    metrics: { name: string; model: number; popularity: number }[];
    beatsPopularity: boolean;
  };
  validation: TowerValidation[];
  published: { name: string; version: string; previous: string | null; path: string; store: string; gate: string[] };
  embedded: { version: string; items: number; users: number; usersSkipped: number; switched: boolean };
  live: { servedVersion: string | null; videoEmbeddings: { version: string | null; rows: number }[]; userEmbeddings: { version: string | null; rows: number }[] };
  samples: SampleUser[];
  /** The samples' check over many users. */
  relevance: RelevanceSummary;
  written: { home: string; database: string; store: string; run: string; version: string; goldens: string[] };
}

/** Only the embedded database and a local store: the quickstart writes made-up users. */
function checkTargets(opts: QuickstartOptions): { db: string; store: string } {
  const db = opts.db ?? DEFAULT_DATABASE_URL;
  const store = opts.store ?? DEFAULT_MODEL_STORE;
  if (!db.startsWith('pglite://') || db === 'pglite://:memory:') {
    throw new UsageError(`am-ml quickstart runs on an embedded database folder only (--db pglite://<dir>), not ${db.replace(/\/\/[^@/]*@/, '//***@')}: it writes made-up users and decisions.`, {
      hint: 'Leave out --db (default pglite://.am-ml/db inside --dir).',
    });
  }
  if (!store.startsWith('file://')) {
    throw new UsageError(`am-ml quickstart publishes to a local store only (--store file://<dir>), not ${store}.`, { hint: 'Leave out --store (default file://.am-ml/models inside --dir).' });
  }
  return { db, store };
}

/** `halfvec(128)` → 128. */
function columnDim(formatted: string): number | undefined {
  const m = /\((\d+)\)/.exec(formatted);
  return m ? Number(m[1]) : undefined;
}

function positive(name: string, v: number | undefined, min: number): void {
  if (v !== undefined && (!Number.isInteger(v) || v < min)) throw new UsageError(`--${name} must be a whole number of at least ${min}, not ${v}.`);
}

export async function quickstart(opts: QuickstartOptions = {}): Promise<QuickstartResult> {
  const started = Date.now();
  positive('items', opts.items, 200);
  positive('users', opts.users, 50);
  positive('epochs', opts.epochs, 1);
  const targets = checkTargets(opts);
  const dir = path.resolve(cwdOf(opts), opts.dir ?? '.');
  if (existsSync(dir) && !statSync(dir).isDirectory()) throw new UsageError(`--dir ${dir} is a file, not a folder.`);
  mkdirSync(dir, { recursive: true });
  const reporter = reporterOf(opts);
  const env = opts.env ?? process.env;
  for (const key of ['AMML_DATABASE_URL', 'DATABASE_URL', 'AMML_MODEL_STORE']) {
    if (env[key]) reporter.info(`${key} is set; the quickstart ignores it and uses the embedded database and local store in ${dir}.`);
  }
  const sizes = { items: opts.items ?? QUICKSTART_DEFAULTS.items, users: opts.users ?? QUICKSTART_DEFAULTS.users, seed: opts.seed ?? QUICKSTART_DEFAULTS.seed };
  // Every sub-command gets the same working directory and the embedded targets as if given as flags.
  // (Only the common fields: the quickstart's own options, such as `items`, mean something else to sub-commands.)
  const common: CommonOptions & { cwd: string } = {
    cwd: dir,
    env,
    reporter,
    signal: opts.signal,
    configFile: opts.configFile,
    verbose: opts.verbose,
    db: targets.db,
    store: targets.store,
  };
  const databaseUrl = targets.db;

  const steps: QuickstartStep[] = [];
  const step = async <T>(name: string, title: string, fn: () => Promise<T>, summary: (r: T) => string): Promise<T> => {
    reporter.info(`[${steps.length + 1}/${STEP_COUNT}] ${title}`);
    const t0 = Date.now();
    const r = await fn();
    const s: QuickstartStep = { name, ok: true, seconds: (Date.now() - t0) / 1000, summary: summary(r) };
    steps.push(s);
    reporter.info(`      ${s.summary} (${s.seconds.toFixed(1)} s)`);
    return r;
  };

  const initialised = await step('init', 'Preparing the embedded database and the local model store', () => init(common), (r) => {
    const where = `${resolveUrlPath(targets.db, dir)} and ${r.store.path ?? r.store.url}`;
    return r.database.appliedMigrations.length ? `created ${where}` : `${where} already in place`;
  });

  const catalog = await step(
    'catalog',
    `Syncing a generated DMM catalog of ${sizes.items} items (replay server on 127.0.0.1, no network)`,
    () => syncGeneratedCatalog(common, sizes),
    (r) => `${r.sync.items.seen} items synced (${r.sync.items.inserted} new, ${r.sync.items.updated} updated, ${r.sync.items.unchanged} unchanged) in ${r.sync.requests} requests`,
  );

  const log = await step(
    'interactions',
    `Generating ${sizes.users} users whose tastes the catalog's genres, makers and performers explain`,
    () => seedInteractionLog({ ...common, databaseUrl }, sizes),
    (r) =>
      `${r.result.likes} likes and ${r.result.nopes} nopes by ${r.result.users} users in ${r.result.clusters} taste clusters` +
      (r.result.inserted.decisions ? `; ${r.result.inserted.decisions} decisions written` : '; already in user_video_decisions'),
  );

  const trained = await step(
    'train',
    'Training the two-tower model on user_video_decisions (TF.js)',
    // The model's dimension is the embedding columns' (128 unless the database was created otherwise).
    () => train({ ...common, fromDb: true, dim: columnDim(initialised.embeddingColumns.videos), epochs: opts.epochs ?? QUICKSTART_DEFAULTS.epochs, backend: opts.backend, now: opts.now }),
    (r) => `run ${r.runId}: recall@100 ${r.metrics!.model['recall@100'].toFixed(3)} vs popularity ${r.metrics!.popularity['recall@100'].toFixed(3)}`,
  );
  const runDir = trained.out!;
  const m = trained.metrics!;

  const goldenDir = path.join(dir, DEFAULT_HOME_DIR, 'validation', trained.runId);
  const validation = await step(
    'validate',
    'Validating both towers against an independent forward pass (am-ml validate --golden)',
    () => validateRunTowers({ ...common, databaseUrl }, { dir: runDir, runId: trained.runId }, { catalog: log.catalog, userIds: log.users.map((u) => u.userId) }, goldenDir),
    (r) => r.map((v) => `${v.tower} tower equal (max |Δ| ${v.maxAbsDiff.toExponential(1)} over ${v.rows} rows, ${v.backend})`).join('; '),
  );

  // The gate: a model that does not beat the popularity baseline it was evaluated against is not published.
  const gate = [`recall@100>${m.popularity['recall@100']}`, `ndcg@10>${m.popularity['ndcg@10']}`];
  const published = await step(
    'publish',
    'Publishing the run to the local model store',
    () => publish({ ...common, modelDir: runDir, version: trained.runId, gate, reload: false, notes: 'am-ml quickstart', now: opts.now }),
    (r) => `${r.name} ${r.version} is current (previous: ${r.previous ?? 'none'}); every sha256 verified in the store`,
  );

  const embedded = await step(
    'embed',
    `Embedding every item and user with ${published.version}`,
    () => embed({ ...common, model: 'current', all: true, backend: opts.backend }),
    (r) => `${r.counts.items.embedded} items and ${r.counts.users.embedded} users embedded; live tables switched to ${r.model.version}`,
  );

  const recommended = await step(
    'recommend',
    'Recommending for two sample users the way the app serves (mean of liked items, served version, undecided)',
    async () => {
      const likes = new Map<string, number>();
      // Likes per user from the generated log (the same rows the database holds).
      for (const u of log.users) likes.set(u.userId, 0);
      const db = await openDb({ url: databaseUrl, cwd: dir });
      let live: QuickstartResult['live'];
      try {
        const { rows } = await db.query<{ user_id: string; n: number }>(
          `SELECT user_id::text AS user_id, count(*)::int AS n FROM public.user_video_decisions WHERE decision_type IN ('swipe_like', 'grid_like') GROUP BY user_id`,
        );
        for (const r of rows) if (likes.has(r.user_id)) likes.set(r.user_id, r.n);
        live = { servedVersion: await servedVersion(db), videoEmbeddings: await liveVersions(db, 'items'), userEmbeddings: await liveVersions(db, 'users') };
      } finally {
        await db.close();
      }
      const samples = pickSampleUsers(log.users, (u) => likes.get(u) ?? 0, SAMPLE_USERS);
      const shown = { likesShown: LIKES_SHOWN, recommendations: RECOMMENDATIONS_SHOWN };
      const where = { databaseUrl, cwd: dir };
      return {
        live,
        samples: await sampleRecommendations(where, samples, log.clusters, shown),
        relevance: await relevanceOverUsers(where, log.users, (u) => likes.get(u) ?? 0, log.clusters, { users: RELEVANCE_USERS, k: RECOMMENDATIONS_SHOWN }),
      };
    },
    (r) =>
      `over ${r.relevance.users} users, ${pct(r.relevance.model)} of the top ${r.relevance.k} recommendations carry the user's taste ` +
      `(popularity feed: ${pct(r.relevance.popularity)})`,
  );

  const metrics = EVAL_METRICS.map((name) => ({ name, model: m.model[name], popularity: m.popularity[name] }));
  return {
    dir,
    seconds: (Date.now() - started) / 1000,
    steps,
    catalog: { ...catalog, seed: sizes.seed },
    interactions: log.result,
    training: { runId: trained.runId, runDir, epochs: { run: trained.epochs!.run, best: trained.epochs!.best }, backend: trained.backend!.name },
    evaluation: {
      evaluatedOn: m.evaluatedOn,
      users: m.users,
      items: Number(trained.counts.items),
      metrics,
      beatsPopularity: m.model['recall@100'] > m.popularity['recall@100'] && m.model['ndcg@10'] > m.popularity['ndcg@10'],
    },
    validation,
    published: { name: published.name, version: published.version, previous: published.previous, path: published.path, store: published.store, gate },
    embedded: {
      version: embedded.model.version,
      items: embedded.counts.items.embedded,
      users: embedded.counts.users.embedded,
      usersSkipped: embedded.counts.users.skipped,
      switched: embedded.run?.status === 'switched',
    },
    live: recommended.live,
    samples: recommended.samples,
    relevance: recommended.relevance,
    written: {
      home: initialised.home,
      database: resolveUrlPath(targets.db, dir),
      store: resolveUrlPath(targets.store, dir),
      run: runDir,
      version: path.join(resolveUrlPath(targets.store, dir), published.path),
      goldens: validation.map((v) => v.golden),
    },
  };
}

export { formatQuickstart } from './quickstart-format.js';
export { QUICKSTART_WORLD };
