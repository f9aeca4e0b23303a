/**
 * `am-ml embed` against real PGlite + pgvector and a real tiny model trained from the seeded database and
 * published to a file:// store: exact equality with a direct forward pass (halfvec and vector columns), the
 * refusals that must happen before anything is written, --missing, shards equal a single run, --dry-run, offline
 * --dataset, and the serving rule observed between the run's transactions.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDb } from '../db/open.js';
import { readCatalogPage, readUserHistories } from '../db/training-data.js';
import type { Db } from '../db/types.js';
import { roundToFloat16 } from '../db/binary-copy.js';
import { writeDatasetFolder } from '../ml/data/dataset.js';
import type { LoadedTwoTower } from '../ml/load-model.js';
import { initTf } from '../ml/tf.js';
import { publishedTinyModel, publishTo, type SeededDb, seededAppDb, TINY_DIM } from '../testing/embed-fixture.js';
import { recordingReporter } from '../testing/recording-reporter.js';
import { type TmpDir, tmpDir } from '../testing/tmp-dir.js';
import { embed, type EmbedOptions } from './embed.js';

let dir: TmpDir;
let halfDb: SeededDb;
let runDir: string;
let model: LoadedTwoTower;

const store = () => `file://${dir.join('store')}`;
const run = (o: EmbedOptions) => embed({ cwd: dir.path, env: {}, store: store(), reporter: recordingReporter(), ...o });

beforeAll(async () => {
  dir = tmpDir();
  await initTf('auto');
  ({ seeded: halfDb, runDir, model } = await publishedTinyModel({ cwd: dir.path, name: 'db-half' }));
}, 240_000);

afterAll(() => {
  model?.dispose();
  dir?.remove();
});

/** What the live tables hold, as id → numbers. */
async function liveRows(url: string, table: 'video_embeddings' | 'user_embeddings'): Promise<Map<string, { v: number[]; version: string }>> {
  const db = await openDb({ url, cwd: dir.path });
  try {
    const key = table === 'video_embeddings' ? 'video_id' : 'user_id';
    const { rows } = await db.query<{ id: string; e: string; version: string }>(`SELECT ${key}::text AS id, embedding::text AS e, model_version AS version FROM ${table}`);
    return new Map(rows.map((r) => [r.id, { v: r.e.slice(1, -1).split(',').map((x) => Math.fround(Number(x))), version: r.version }]));
  } finally {
    await db.close();
  }
}

/** The direct forward pass over the same database rows: item tower on the catalog, user tower on histories. */
async function expectedVectors(url: string): Promise<{ items: Map<string, Float32Array>; users: Map<string, Float32Array> }> {
  const db = await openDb({ url, cwd: dir.path });
  try {
    const items = await readCatalogPage(db, null, 100_000);
    const byId = new Map(items.map((i) => [i.item_id, i]));
    const itemOut = model.embedItems(items).embeddings;
    const userIds = (await db.query<{ id: string }>('SELECT DISTINCT user_id::text AS id FROM user_video_decisions ORDER BY 1')).rows.map((r) => r.id);
    const hist = await readUserHistories(db, userIds, model.spec.user);
    const userOut = model.embedUsers(userIds.map((u) => ({ likes: hist.get(u)!.likes.map((id) => byId.get(id)!), nopes: hist.get(u)!.nopes.map((id) => byId.get(id)!) }))).embeddings;
    const slice = (m: Float32Array, r: number) => m.subarray(r * TINY_DIM, (r + 1) * TINY_DIM);
    return {
      items: new Map(items.map((it, r) => [it.item_id, slice(itemOut, r)])),
      users: new Map(userIds.map((u, r) => [u, slice(userOut, r)])),
    };
  } finally {
    await db.close();
  }
}

function expectEqualRows(got: Map<string, { v: number[] }>, want: Map<string, Float32Array>, round: (x: number) => number): void {
  expect([...got.keys()].sort()).toEqual([...want.keys()].sort());
  for (const [id, row] of got) expect([id, row.v]).toEqual([id, Array.from(want.get(id)!, round)]);
}

describe('am-ml embed: full run', () => {
  it('writes exactly the direct forward pass, items and users, halfvec(16)', async () => {
    const r = await run({ db: halfDb.url });
    expect(r.mode).toBe('full');
    expect(r.run?.status).toBe('switched');
    expect(r.model).toMatchObject({ version: 'v1', published: true, dim: TINY_DIM });
    expect(r.counts.items.embedded).toBe(halfDb.items.length);
    expect(r.counts.users.embedded).toBe(150);
    expect(r.determinism?.checked).toBe(64);
    const want = await expectedVectors(halfDb.url);
    const items = await liveRows(halfDb.url, 'video_embeddings');
    expectEqualRows(items, want.items, roundToFloat16);
    expectEqualRows(await liveRows(halfDb.url, 'user_embeddings'), want.users, roundToFloat16);
    expect(new Set([...items.values()].map((x) => x.version))).toEqual(new Set(['v1']));
  });

  it('writes exactly the direct forward pass into vector(16) columns, float32 for float32', async () => {
    const vecDb = await seededAppDb({ cwd: dir.path, name: 'db-vec', embeddingType: 'vector' });
    const r = await run({ db: vecDb.url });
    expect(r.column).toBe('vector(16)');
    const want = await expectedVectors(vecDb.url);
    expectEqualRows(await liveRows(vecDb.url, 'video_embeddings'), want.items, Math.fround);
    expectEqualRows(await liveRows(vecDb.url, 'user_embeddings'), want.users, Math.fround);
    // Re-embedding a sample in a smaller batch may differ by float32 rounding (wasm matmul blocking), never more.
    expect(r.determinism?.maxAbsDiff).toBeLessThan(1e-6);
  });

  it('counts users without history as skipped, and gives them no row', async () => {
    const db = await openDb({ url: halfDb.url, cwd: dir.path });
    await db.query('INSERT INTO auth.users (id) SELECT gen_random_uuid() FROM generate_series(1, 5)');
    await db.close();
    const r = await run({ db: halfDb.url });
    expect(r.counts.users).toMatchObject({ read: 155, embedded: 150, skipped: 5 });
    expect((await liveRows(halfDb.url, 'user_embeddings')).size).toBe(150);
  });
});

describe('am-ml embed: refusals before anything is written', () => {
  it('exits 4 when the column dimension differs from the model, naming both', async () => {
    const other = await seededAppDb({ cwd: dir.path, name: 'db-32', dim: 32, items: 20, users: 5 });
    const err = await run({ db: other.url }).catch((e) => e);
    expect(err).toMatchObject({ exitCode: 4, code: 'DIMENSION_MISMATCH' });
    expect(err.message).toMatch(/model outputs 16-d vectors but public.video_embeddings.embedding is halfvec\(32\)/);
    const db = await openDb({ url: other.url, cwd: dir.path });
    try {
      expect((await db.query('SELECT 1 FROM am_ml.embedding_runs')).rows).toEqual([]);
      expect((await db.query('SELECT 1 FROM video_embeddings')).rows).toEqual([]);
    } finally {
      await db.close();
    }
  });

  it('exits 6 for a model that is not the current version, and for an unpublished folder without --unpublished', async () => {
    await publishTo(dir.path, runDir, 'v0-old', false);
    const err = await run({ db: halfDb.url, model: 'v0-old' }).catch((e) => e);
    expect(err).toMatchObject({ exitCode: 6, code: 'VERSION_NOT_ACTIVE' });
    expect(err.message).toMatch(/v0-old is not the current version .* \(current: v1\)/);
    expect(err.hint).toMatch(/am-ml rollback --to v0-old/);
    const err2 = await run({ db: halfDb.url, model: runDir }).catch((e) => e);
    expect(err2).toMatchObject({ exitCode: 6, code: 'VERSION_NOT_ACTIVE' });
  });

  it('refuses flag combinations naming both flags', async () => {
    await expect(run({ db: halfDb.url, missing: true, restart: true })).rejects.toThrow(/--missing and --restart cannot be used together/);
    await expect(run({ db: halfDb.url, finalize: true, shard: '1/2' })).rejects.toThrow(/--finalize and --shard/);
    await expect(run({ db: halfDb.url, dataset: 'x' })).rejects.toThrow(/--dataset <dir> and --to <dir> go together/);
    await expect(run({ db: halfDb.url, shard: '0/2' })).rejects.toThrow(/--shard '0\/2' must be i\/n with 1 ≤ i ≤ n/);
  });

  it('--dry-run checks everything and embeds one batch, writing nothing', async () => {
    const before = await liveRows(halfDb.url, 'video_embeddings');
    const r = await run({ db: halfDb.url, dryRun: true, batchSize: 50 });
    expect(r.mode).toBe('dry-run');
    expect(r.dryRun?.candidates.items).toBe(halfDb.items.length);
    expect(r.counts.items).toEqual({ read: 50, embedded: 50, skipped: 0 });
    expect(await liveRows(halfDb.url, 'video_embeddings')).toEqual(before);
  });
});

describe('am-ml embed --missing', () => {
  it('adds rows for new items with the served version, without a switch', async () => {
    const db: Db = await openDb({ url: halfDb.url, cwd: dir.path });
    const { rows } = await db.query<{ id: string }>(
      `INSERT INTO videos (external_id, title, source, maker) VALUES ('new-1', 'n1', 'FANZA', 'maker-1'), ('new-2', 'n2', 'FANZA', NULL) RETURNING id::text`,
    );
    await db.close();
    const r = await run({ db: halfDb.url, missing: true, items: true });
    expect(r.mode).toBe('missing');
    expect(r.counts.items).toEqual({ read: 2, embedded: 2, skipped: 0 });
    const live = await liveRows(halfDb.url, 'video_embeddings');
    for (const { id } of rows) expect(live.get(id)?.version).toBe('v1');
    expect(new Set([...live.values()].map((x) => x.version))).toEqual(new Set(['v1']));
    const again = await run({ db: halfDb.url, missing: true, items: true });
    expect(again.counts.items.read).toBe(0);
  });

  it('refuses when the live tables serve another version', async () => {
    await publishTo(dir.path, runDir, 'v2');
    const err = await run({ db: halfDb.url, missing: true }).catch((e) => e);
    expect(err).toMatchObject({ exitCode: 6, code: 'VERSION_NOT_ACTIVE' });
    expect(err.message).toMatch(/The live tables serve v1, not v2/);
    await publishTo(dir.path, runDir, 'v1-again'); // keep later tests independent of v2 being current
  });
});

describe('am-ml embed --shard', () => {
  it('two shards plus the switch by the last one equal a single run', async () => {
    const shardDb = await seededAppDb({ cwd: dir.path, name: 'db-shard' });
    const first = await run({ db: shardDb.url, shard: '1/2', batchSize: 64 });
    expect(first.run?.status).toBe('waiting-for-shards');
    expect(first.run?.pendingShards).toEqual(['items 1/2', 'users 1/2']);
    expect((await liveRows(shardDb.url, 'video_embeddings')).size).toBe(0);
    const second = await run({ db: shardDb.url, shard: '2/2', batchSize: 64 });
    expect(second.run?.status).toBe('switched');
    expect(first.counts.items.read + second.counts.items.read).toBe(shardDb.items.length);
    expect(first.counts.items.read).toBeGreaterThan(0);
    const want = await expectedVectors(shardDb.url);
    expectEqualRows(await liveRows(shardDb.url, 'video_embeddings'), want.items, roundToFloat16);
    expectEqualRows(await liveRows(shardDb.url, 'user_embeddings'), want.users, roundToFloat16);
  });
});

describe('am-ml embed --dataset --to', () => {
  it('embeds a dataset folder into JSONL files equal to the model', async () => {
    const ds = dir.join('dataset');
    const items = halfDb.items.slice(0, 50);
    const ids = new Set(items.map((i) => i.item_id));
    writeDatasetFolder(ds, { items, interactions: halfDb.interactions.filter((i) => ids.has(i.itemId)) });
    const r = await run({ dataset: ds, to: dir.join('out'), model: runDir });
    expect(r.mode).toBe('dataset');
    const lines = readFileSync(path.join(dir.join('out'), 'items.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines).toHaveLength(50);
    const want = model.embedItems(items).embeddings;
    lines.forEach((l, r2) => {
      expect(l.id).toBe(items[r2].item_id);
      expect(l.embedding).toEqual(Array.from(want.subarray(r2 * TINY_DIM, (r2 + 1) * TINY_DIM)));
    });
    const users = readFileSync(path.join(dir.join('out'), 'users.jsonl'), 'utf8').trim().split('\n');
    expect(users.length).toBe(r.dataset!.users);
  });
});

describe('am-ml rollback --embed', () => {
  it('moves the pointer and re-embeds with the target version in one command', async () => {
    const { rollback } = await import('./rollback.js');
    const r = await rollback({ cwd: dir.path, env: {}, store: store(), db: halfDb.url, to: 'v1', embed: true, reporter: recordingReporter() });
    expect(r).toMatchObject({ changed: true, to: 'v1' });
    expect(r.embed?.run?.status).toBe('switched');
    const live = await liveRows(halfDb.url, 'video_embeddings');
    expect(new Set([...live.values()].map((x) => x.version))).toEqual(new Set(['v1']));
  });
});
