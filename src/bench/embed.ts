/**
 * Embed speed (issue 7): rows/s end to end (`am-ml embed`: read, features + towers, binary COPY into staging, the
 * switch) into the PGlite default for 100,000 items and 100,000 users at the default dimension (halfvec(128)), next
 * to the tower-inference-only and COPY-only rates measured in the same run; goal: end to end ≥ 0.8 × the slower of
 * the two. Peak RSS and heap are reported.
 *
 * The model is trained (one epoch, default architecture) on a small slice of the same generated catalog: its speed,
 * not its quality, is what is measured. The database is seeded once per run (not timed).
 */
import path from 'node:path';
import { embed } from '../commands/embed.js';
import { init } from '../commands/init.js';
import { publish } from '../commands/publish.js';
import { train } from '../commands/train.js';
import { openDb } from '../db/open.js';
import { readCatalogPage, readUserHistories } from '../db/training-data.js';
import { writeDatasetFolder } from '../ml/data/dataset.js';
import { embedAndCacheItems, embedUserRows, EncodedItemCache } from '../ml/embed-batch.js';
import { loadTwoTowerFromDir } from '../ml/load-model-fs.js';
import { generateCatalog, generateInteractions } from '../ml/synthetic.js';
import { initTf } from '../ml/tf.js';
import { seedCatalog, seedDecisions } from '../testing/app-db-seed.js';
import { type Reporter, silentReporter } from '../output/reporter.js';
import type { Benchmark } from './types.js';

/** AMML_BENCH_EMBED_ROWS scales the benchmark down while iterating (the recorded numbers use the default). */
const ITEMS = Number(process.env.AMML_BENCH_EMBED_ROWS ?? 100_000);
const USERS = ITEMS;
const BATCH = 2048;

function peakTracker() {
  let rss = 0;
  let heap = 0;
  const sample = () => {
    const m = process.memoryUsage();
    rss = Math.max(rss, m.rss);
    heap = Math.max(heap, m.heapUsed);
  };
  const timer = setInterval(sample, 50);
  return {
    stop() {
      clearInterval(timer);
      sample();
      return { rssMiB: rss / 2 ** 20, heapMiB: heap / 2 ** 20 };
    },
  };
}

/** Logs each phase with its duration (where the end-to-end time goes); `phaseSeconds` keeps them by title. */
function timingReporter(log: (t: string) => void): Reporter & { phaseSeconds: Map<string, number> } {
  const t0 = performance.now();
  const at = () => `${((performance.now() - t0) / 1000).toFixed(1)} s`;
  const r = silentReporter();
  const phaseSeconds = new Map<string, number>();
  return {
    ...r,
    phaseSeconds,
    phase: (text) => {
      log(`${at()} ${text}`);
      const start = performance.now();
      const done = (word: string) => () => {
        phaseSeconds.set(text, (performance.now() - start) / 1000);
        log(`${at()} ${word}: ${text}`);
      };
      return { succeed: done('done'), fail: done('failed'), update() {} };
    },
    progress: (label, total) => {
      log(`${at()} ${label} (${total})`);
      return { update() {}, setTotal() {}, stop: () => log(`${at()} end of ${label}`) };
    },
  };
}

export const benchmarks: Benchmark[] = [
  {
    name: 'embed.100k-items-100k-users',
    issue: 7,
    description: `am-ml embed of ${ITEMS.toLocaleString('en-US')} items and ${USERS.toLocaleString('en-US')} users into halfvec(128) on the PGlite default, end to end (read, towers, COPY, switch), against tower inference alone and binary COPY alone in the same run.`,
    repeats: 1,
    units: {
      endToEndRowsPerSec: 'rows/s',
      inferenceRowsPerSec: 'rows/s',
      copyRowsPerSec: 'rows/s',
      ratioToSlower: '× min(inference, COPY)',
      switchSec: 's',
      endToEndSec: 's',
      peakRssMiB: 'MiB',
      peakHeapMiB: 'MiB',
    },
    goals: [{ metric: 'ratioToSlower', op: '>=', value: 0.8, description: 'end to end ≥ 0.8 × the slower of inference-only and COPY-only' }],
    async run(ctx) {
      const cwd = ctx.tmp;
      const store = `file://${path.join(cwd, 'store')}`;
      await initTf('auto');
      ctx.log('generating and seeding the catalog and decisions (not timed)');
      const items = generateCatalog({ seed: 21, items: ITEMS, genres: 12, tags: 120 });
      const planted = generateInteractions(items, { seed: 22, users: USERS, clusters: 12, likesPerUser: [4, 12], userIdFormat: 'uuid' });
      const dbUrl = `pglite://${path.join(cwd, 'db')}`;
      await init({ cwd, env: {}, db: dbUrl, store });
      let db = await openDb({ url: dbUrl, cwd });
      try {
        const ids = await seedCatalog(db, items);
        await seedDecisions(db, planted.interactions, ids);
      } finally {
        await db.close();
      }
      ctx.log('training a default-architecture model on a slice (not timed)');
      const sliceItems = items.slice(0, 4000);
      const sliceIds = new Set(sliceItems.map((i) => i.item_id));
      writeDatasetFolder(path.join(cwd, 'dataset'), { items: sliceItems, interactions: planted.interactions.filter((i) => sliceIds.has(i.itemId)).slice(0, 40_000) });
      await train({ cwd, env: {}, dataset: 'dataset', epochs: 1, out: 'run', seed: 1 });
      await publish({ cwd, env: {}, store, modelDir: path.join(cwd, 'run'), version: 'bench' });

      ctx.log('end to end: am-ml embed');
      const peak = peakTracker();
      const t0 = performance.now();
      const timing = timingReporter(ctx.log);
      const r = await embed({ cwd, env: {}, db: dbUrl, store, batchSize: BATCH, reporter: timing });
      const endToEndSec = (performance.now() - t0) / 1000;
      const mem = peak.stop();
      const rows = r.counts.items.embedded + r.counts.users.embedded;
      if (r.run?.status !== 'switched') throw new Error(`embed did not switch: ${JSON.stringify(r.run)}`);
      ctx.log(`pipeline timings: items ${JSON.stringify(r.counts.items.timings)}, users ${JSON.stringify(r.counts.users.timings)}`);

      ctx.log('inference only: the towers over the same rows, already in memory');
      const model = await loadTwoTowerFromDir(path.join(cwd, 'run'), { batchSize: BATCH });
      db = await openDb({ url: dbUrl, cwd, pgliteWorker: true });
      let inferenceSec = 0;
      let copySec = 0;
      try {
        const catalog = await readCatalogPage(db, null, ITEMS + 1);
        const userIds = (await db.query<{ id: string }>('SELECT id::text AS id FROM auth.users ORDER BY id')).rows.map((x) => x.id);
        const histories = await readUserHistories(db, userIds, model.spec.user);
        let t = performance.now();
        // The same code path as the embedder (each item encoded once, for its row and for the histories).
        const cache = new EncodedItemCache(model, Number.POSITIVE_INFINITY);
        for (let s = 0; s < catalog.length; s += BATCH) embedAndCacheItems(model, cache, catalog.slice(s, s + BATCH));
        const refs = userIds.map((u) => ({ userId: u, likes: histories.get(u)!.likes, nopes: histories.get(u)!.nopes }));
        let sample: Float32Array | undefined;
        for (let s = 0; s < refs.length; s += BATCH) sample ??= embedUserRows(model, cache, refs.slice(s, s + BATCH)).rows[0]?.embedding;
        inferenceSec = (performance.now() - t) / 1000;

        ctx.log('COPY only: binary COPY of the same number of halfvec(128) rows into a staging table');
        await db.exec('CREATE TABLE am_ml.bench_copy (id uuid PRIMARY KEY, embedding halfvec(128) NOT NULL)');
        const vec = sample ?? new Float32Array(128).fill(1 / Math.sqrt(128));
        const allIds = [...catalog.map((c) => c.item_id), ...userIds];
        t = performance.now();
        for (let s = 0; s < allIds.length; s += BATCH) {
          const chunk = allIds.slice(s, s + BATCH);
          await db.transaction((tx) =>
            tx.copyRows('am_ml.bench_copy', [{ name: 'id', type: 'uuid' }, { name: 'embedding', type: { kind: 'halfvec', dim: 128 } }], chunk.map((id) => [id, vec])),
          );
        }
        copySec = (performance.now() - t) / 1000;
      } finally {
        model.dispose();
        await db.close();
      }
      const inferenceRowsPerSec = rows / inferenceSec;
      const copyRowsPerSec = rows / copySec;
      const endToEndRowsPerSec = rows / endToEndSec;
      return {
        endToEndRowsPerSec,
        inferenceRowsPerSec,
        copyRowsPerSec,
        ratioToSlower: endToEndRowsPerSec / Math.min(inferenceRowsPerSec, copyRowsPerSec),
        endToEndSec,
        switchSec: [...timing.phaseSeconds].find(([title]) => title.startsWith('Switching'))?.[1] ?? Number.NaN,
        peakRssMiB: mem.rssMiB,
        peakHeapMiB: mem.heapMiB,
      };
    },
  },
];
