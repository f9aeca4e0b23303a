/**
 * The properties that matter to serving, end to end:
 *  - while a new version is staged and switched, a concurrent reader (polling between the run's transactions on
 *    the same embedded database; PGlite has one connection) always sees one version across items and users, and
 *    never a smaller candidate pool;
 *  - a run killed with SIGKILL in the middle (the real CLI in a child process) leaves the live tables untouched,
 *    refuses to silently start over, and `--resume` finishes it with every row written once.
 */
import { spawn, spawnSync } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openPglite } from '../db/pglite.js';
import { openDb } from '../db/open.js';
import { readCatalogPage } from '../db/training-data.js';
import type { LoadedTwoTower } from '../ml/load-model.js';
import { localEmbedder } from '../ml/embedder.js';
import { initTf } from '../ml/tf.js';
import { publishedTinyModel, publishTo, type SeededDb, TINY_DIM } from '../testing/embed-fixture.js';
import { recordingReporter } from '../testing/recording-reporter.js';
import { REPO_ROOT, type TmpDir, tmpDir } from '../testing/tmp-dir.js';
import { embed } from './embed.js';
import { runFull } from './embed-run.js';

const BIN = path.join(REPO_ROOT, 'bin', 'am-ml.js');
let dir: TmpDir;
let seeded: SeededDb;
let runDir: string;
let model: LoadedTwoTower;
const store = () => `file://${dir.join('store')}`;

beforeAll(async () => {
  dir = tmpDir();
  await initTf('auto');
  ({ seeded, runDir, model } = await publishedTinyModel({ cwd: dir.path, name: 'db', items: 1500, users: 400 }));
}, 240_000);

afterAll(() => {
  model?.dispose();
  dir?.remove();
});

describe('the serving rule during a version switch', () => {
  it('a concurrent reader sees one version everywhere, and never fewer rows', async () => {
    await embed({ cwd: dir.path, env: {}, db: seeded.url, store: store(), reporter: recordingReporter() });
    const db = await openPglite({ dir: dir.join('db') });
    try {
      const initial = (await db.query<{ n: number }>('SELECT count(*)::int AS n FROM video_embeddings')).rows[0].n;
      expect(initial).toBe(1500);
      const observations: { items: string[]; users: string[]; n: number; served: string }[] = [];
      let finished = false;
      const observe = async () => {
          const { rows } = await db.query<{ items: string[]; users: string[]; n: number; served: string }>(
            `SELECT (SELECT array_agg(DISTINCT model_version) FROM video_embeddings) AS items,
                    (SELECT array_agg(DISTINCT model_version) FROM user_embeddings) AS users,
                    (SELECT count(*)::int FROM video_embeddings) AS n,
                    (SELECT model_version FROM video_embeddings ORDER BY updated_at DESC LIMIT 1) AS served`,
          );
          observations.push(rows[0]);
      };
      const poll = (async () => {
        // Chain queries directly: a poller that yields to the macrotask queue is starved by PGlite's in-process
        // mutex while the run keeps it busy (measured: 1 observation in 50 transactions, vs 51 chained).
        while (!finished) await observe();
      })();
      const r = await runFull(
        { db, embedder: localEmbedder(model), version: 'v2', targets: ['items', 'users'], batchSize: 32, minHistory: 1 },
        { shard: { index: 0, count: 1 }, resume: false, restart: false, finalizeOnly: false, indexPolicy: 'keep', modelSha256: 'test' },
      );
      finished = true;
      await poll;
      await observe(); // after the commit
      expect(r.status).toBe('switched');
      const seen = observations.map((o) => `${o.items.join('+')}|${o.users.join('+')}|${o.served}`);
      // Many observations while staging (v1 everywhere), then v2 everywhere; nothing else in between.
      expect(new Set(seen)).toEqual(new Set(['v1|v1|v1', 'v2|v2|v2']));
      expect(seen.filter((s) => s.startsWith('v1')).length).toBeGreaterThan(10);
      expect(seen.indexOf('v2|v2|v2')).toBeGreaterThan(seen.lastIndexOf('v1|v1|v1'));
      expect(Math.min(...observations.map((o) => o.n))).toBe(initial);
    } finally {
      await db.close();
    }
  });
});

function amMl(args: string[]) {
  return spawnSync(process.execPath, [BIN, ...args, '--db', seeded.url, '--store', store()], { cwd: dir.path, encoding: 'utf8', env: { PATH: process.env.PATH } });
}

describe('kill and resume', () => {
  it('a SIGKILLed run leaves the live tables as they were; --resume finishes it, every row once', async () => {
    await publishTo(dir.path, runDir, 'v3');
    const child = spawn(process.execPath, [BIN, 'embed', '--batch-size', '50', '--db', seeded.url, '--store', store()], {
      cwd: dir.path,
      env: { PATH: process.env.PATH },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    const killed = new Promise<void>((resolve) => {
      child.stderr.on('data', (d) => {
        stderr += d.toString();
        // The plain reporter prints a line per 10 %: kill as soon as some batches are committed.
        if (/Embedding items: [1-9]\d?%/.test(stderr) && child.exitCode === null) {
          child.kill('SIGKILL');
          resolve();
        }
      });
      child.on('exit', () => resolve());
    });
    await killed;
    await new Promise((r) => child.on('exit', r));
    expect(child.signalCode).toBe('SIGKILL');

    const db = await openDb({ url: seeded.url, cwd: dir.path });
    try {
      // Nothing of v3 is live: staging only.
      const live = await db.query<{ v: string; n: number }>('SELECT model_version AS v, count(*)::int AS n FROM video_embeddings GROUP BY 1');
      expect(live.rows.map((r) => r.v)).not.toContain('v3');
      const shard = await db.query<{ last_key: string | null; rows_written: number; done: boolean }>(
        `SELECT s.last_key, s.rows_written, s.done FROM am_ml.embedding_shards s JOIN am_ml.embedding_runs r USING (run_id)
          WHERE r.model_version = 'v3' AND s.target = 'items'`,
      );
      expect(shard.rows[0].rows_written).toBeGreaterThan(0);
      expect(shard.rows[0].done).toBe(false);
    } finally {
      await db.close();
    }

    const again = amMl(['embed', '--json']);
    expect(again.status).toBe(2);
    expect(JSON.parse(again.stdout).error.hint).toMatch(/--resume/);

    const resumed = amMl(['embed', '--resume', '--batch-size', '50', '--json']);
    expect(resumed.status).toBe(0);
    const doc = JSON.parse(resumed.stdout);
    expect(doc.result.run.status).toBe('switched');
    expect(doc.result.switch.written.items).toBe(1500);

    const db2 = await openDb({ url: seeded.url, cwd: dir.path });
    try {
      const versions = await db2.query<{ v: string; n: number }>('SELECT model_version AS v, count(*)::int AS n FROM video_embeddings GROUP BY 1');
      expect(versions.rows).toEqual([{ v: 'v3', n: 1500 }]);
      const items = await readCatalogPage(db2, null, 10_000);
      const want = model.embedItems(items).embeddings;
      const { rows } = await db2.query<{ id: string; e: string }>('SELECT video_id::text AS id, embedding::text AS e FROM video_embeddings');
      const byId = new Map(rows.map((r) => [r.id, r.e.slice(1, -1).split(',').map(Number)]));
      let maxDiff = 0;
      items.forEach((it, r) => {
        const got = byId.get(it.item_id)!;
        for (let k = 0; k < TINY_DIM; k++) maxDiff = Math.max(maxDiff, Math.abs(got[k] - want[r * TINY_DIM + k]));
      });
      // Batches of 50 vs one batch: float32 noise, then float16 storage (half an ulp below 1 is 2^-12).
      expect(maxDiff).toBeLessThanOrEqual(2 ** -11);
      const staging = await db2.query(`SELECT 1 FROM pg_tables WHERE schemaname = 'am_ml' AND tablename LIKE 'embed_stage_%'`);
      expect(staging.rows).toEqual([]);
    } finally {
      await db2.close();
    }
  });
});
