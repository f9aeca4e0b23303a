/**
 * The serving side under real Deno: two models trained by `am-ml train` on a tiny generated dataset, published by
 * `am-ml publish` to the loopback Supabase Storage, and the example Edge Functions (embed-user, reload_models,
 * with am-ml/edge vendored by scripts/vendor-edge.mjs) served by Deno against it. Checks:
 * - the user embeddings Deno returns equal Node's `loadTwoTowerFromDir(run).embedUsers(histories)` (the loader and
 *   feature path `am-ml embed` uses) within 1e-6, for users with likes and nopes, only nopes, and no history, both
 *   with the history in the request and read from the database through the history RPC; and equal what
 *   `am-ml embed` writes, to user_embeddings and to users.jsonl (`--dataset --to`);
 * - a flipped byte in a stored shard makes a fresh function fall back (liked-items mean, stored user vector, none),
 *   say why, and never crash; reload_models reports the failure;
 * - `am-ml publish` of a second version calls reload_models in Deno, which loads it, and embed-user serves it
 *   after the pointer max age;
 * - the functions type-check (`deno check`), and the service key never appears in an answer.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { embed, type EmbedResult } from '../commands/embed.js';
import { publish } from '../commands/publish.js';
import { train, type TrainOptions } from '../commands/train.js';
import { migrate } from '../db/migrate.js';
import { openPglite, type PgliteDb } from '../db/pglite.js';
import { readUserHistories } from '../db/training-data.js';
import { readCatalog } from '../db/training-data.js';
import { readDatasetFolder } from '../ml/data/dataset.js';
import { datasetHistories } from '../ml/embed-dataset.js';
import type { ItemAttributes, UserHistory } from '../ml/features/index.js';
import type { LoadedTwoTower } from '../ml/load-model.js';
import { loadTwoTowerFromDir } from '../ml/load-model-fs.js';
import { generateInteractions } from '../ml/synthetic.js';
import { initTf } from '../ml/tf.js';
import { seedCatalog, seedDecisions } from '../testing/app-db-seed.js';
import { denoArgs, denoBinary, denoEnv, type ServedFunctions, serveFunctions } from '../testing/deno.js';
import { type FakeSupabase, startFakeSupabase } from '../testing/fake-supabase-storage.js';
import { startSupabaseGateway, type SupabaseGateway } from '../testing/supabase-gateway.js';
import { writeTinyDataset } from '../testing/synthetic-data.js';
import { REPO_ROOT, type TmpDir, tmpDir } from '../testing/tmp-dir.js';

const run = promisify(execFile);
const TOLERANCE = 1e-6;
const TINY: TrainOptions = { dim: 16, hidden: [32], bagDim: 8, batchSize: 128, epochs: 1, lr: 0.01, temperature: 0.1, backend: 'wasm', threads: 1 };
const USER_SHARD = 'prod/two_tower/v1/user_tower/group1-shard1of1.bin';

let dir: TmpDir;
let fake: FakeSupabase;
let gateway: SupabaseGateway;
let db: PgliteDb;
let embedded: EmbedResult;
let fns: ServedFunctions;
let modelA: LoadedTwoTower;
let modelB: LoadedTwoTower;
let items: Map<string, ItemAttributes>;
const histories: { name: string; history: UserHistory }[] = [];
const started: ServedFunctions[] = [];

const functionEnv = () => ({
  SUPABASE_URL: gateway.url,
  SUPABASE_SERVICE_ROLE_KEY: fake.key,
  AMML_MODEL_STORE: 'supabase://models/prod',
  AMML_POINTER_MAX_AGE_SECONDS: '1',
  AMML_RETRY_AFTER_FAILURE_SECONDS: '0',
});

async function start(names: string[], extraEnv: Record<string, string> = {}): Promise<ServedFunctions> {
  const s = await serveFunctions(names, { denoDir: dir.join('deno-cache'), env: { ...functionEnv(), ...extraEnv } });
  started.push(s);
  return s;
}

async function call(s: ServedFunctions, name: string, body: unknown, token: string = fake.key): Promise<{ status: number; body: Record<string, unknown>; text: string }> {
  const res = await fetch(`${s.url}/functions/v1/${name}`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const text = await res.text();
  expect(text).not.toContain(fake.key);
  return { status: res.status, body: JSON.parse(text), text };
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function rowOf(e: Float32Array, dim: number, r: number): Float32Array {
  return e.subarray(r * dim, (r + 1) * dim);
}

beforeAll(async () => {
  dir = tmpDir('am-ml-edge-');
  writeTinyDataset(dir.join('data'), { items: 300, users: 150 });
  await train({ ...TINY, cwd: dir.path, dataset: 'data', out: dir.join('runs', 'a'), seed: 42 });
  await train({ ...TINY, cwd: dir.path, dataset: 'data', out: dir.join('runs', 'b'), seed: 7 });
  await initTf('wasm');
  modelA = await loadTwoTowerFromDir(dir.join('runs', 'a'));
  modelB = await loadTwoTowerFromDir(dir.join('runs', 'b'));

  // Histories from the dataset (newest first), plus the edge cases.
  const data = readDatasetFolder(dir.join('data'));
  items = new Map(data.items.map((i) => [String(i.item_id), i]));
  const byUser = new Map<string, typeof data.interactions>();
  for (const x of data.interactions) byUser.set(x.userId, [...(byUser.get(x.userId) ?? []), x]);
  const users = [...byUser.entries()].sort((a, b) => b[1].length - a[1].length || (a[0] < b[0] ? -1 : 1)).slice(0, 4);
  for (const [user, rows] of users) {
    const newest = [...rows].sort((a, b) => (b.timestamp ?? 0) - (a.timestamp ?? 0));
    histories.push({ name: user, history: { likes: newest.filter((r) => r.label === 1).map((r) => items.get(r.itemId)!), nopes: newest.filter((r) => r.label === 0).map((r) => items.get(r.itemId)!) } });
  }
  const some = data.items.slice(0, 12);
  histories.push({ name: 'only nopes', history: { likes: [], nopes: some.slice(0, 5) } });
  histories.push({ name: 'empty history', history: { likes: [], nopes: [] } });
  histories.push({
    name: 'unseen items and odd values',
    history: { likes: [{ item_id: 'never-seen', tags: ['no-such-tag', null, ''], maker: 42, price: 'NaN', released_at: 'not a date' }, ...some.slice(5, 8)], nopes: [] },
  });

  // The app database (vector(16), so stored vectors are exact float32): the same catalog, users with UUIDs, the
  // history RPC of the example migration.
  const dbDir = dir.join('app-db');
  const seed = await openPglite({ dir: dbDir });
  await migrate(seed, { embeddingType: 'vector', dim: 16 });
  await seed.exec('CREATE ROLE anon; CREATE ROLE authenticated; CREATE ROLE service_role;');
  const ids = await seedCatalog(seed, data.items);
  const planted = generateInteractions(data.items, { seed: 11, users: 6, userIdFormat: 'uuid', clusters: 3, likesPerUser: [3, 12] });
  await seedDecisions(seed, planted.interactions, ids);
  await seed.exec(readFileSync(path.join(REPO_ROOT, 'examples/supabase/migrations/20261122000000_am_ml_user_history.sql'), 'utf8'));
  await seed.close();

  fake = await startFakeSupabase();
  gateway = await startSupabaseGateway(fake.url);
  gateway.setRpc('am_ml_user_history', async (args) => {
    const { rows } = await db.query<{ h: unknown }>('SELECT public.am_ml_user_history($1::uuid, $2::int, $3::int) AS h', [args.p_user_id, args.p_max_likes, args.p_max_nopes]);
    return rows[0].h;
  });
  // PostgREST's answer to .from('video_embeddings').select('video_id, embedding').in('video_id', ids): vectors as text.
  gateway.setTable('video_embeddings', async (q) => {
    const ids = /^in\.\((.*)\)$/.exec(q.get('video_id') ?? '')?.[1].split(',') ?? [];
    const { rows } = await db.query('SELECT video_id::text AS video_id, embedding::text AS embedding FROM public.video_embeddings WHERE video_id = ANY($1::uuid[])', [ids]);
    return rows;
  });
  const env = { SUPABASE_URL: gateway.url, SUPABASE_SERVICE_ROLE_KEY: fake.key, AMML_MODEL_STORE: 'supabase://models/prod' };
  await publish({ cwd: dir.path, env, modelDir: 'runs/a', version: 'v1', reload: false });
  // `am-ml embed` of the current version writes every item and user embedding of the database.
  embedded = await embed({ cwd: dir.path, env: { ...env, AMML_DATABASE_URL: `pglite://${dbDir}` }, backend: 'wasm' });
  db = await openPglite({ dir: dbDir });

  await run(process.execPath, [path.join(REPO_ROOT, 'scripts/vendor-edge.mjs')], { cwd: REPO_ROOT });
  fns = await start(['embed-user', 'reload_models']);
  gateway.setFunctionsUrl(fns.url);
}, 600_000);

afterAll(async () => {
  for (const s of started) await s.stop();
  await gateway?.stop();
  await fake?.stop();
  await db?.close();
  modelA?.dispose();
  modelB?.dispose();
  dir?.remove();
});

describe('embed-user under Deno', () => {
  it('returns the embedding Node computes for the same history (model v1), within 1e-6', async () => {
    const expected = modelA.embedUsers(histories.map((h) => h.history)).embeddings;
    for (const [k, h] of histories.entries()) {
      const r = await call(fns, 'embed-user', h.history);
      expect(r.status, r.text).toBe(200);
      expect(r.body).toMatchObject({ source: 'model', dim: 16, model: { name: 'two_tower', version: 'v1', runId: modelA.runId, backend: 'cpu' } });
      const embedding = r.body.embedding as number[];
      expect(maxAbsDiff(embedding, rowOf(expected, 16, k)), h.name).toBeLessThanOrEqual(TOLERANCE);
      expect(Math.hypot(...embedding)).toBeCloseTo(1, 5);
    }
    const odd = await call(fns, 'embed-user', histories.at(-1)!.history);
    expect((odd.body.featureStats as { fields: Record<string, { unknown: number }> }).fields.tags.unknown).toBeGreaterThan(0);
  });

  it('equals `am-ml embed --dataset --to` (users.jsonl) for the same users, within 1e-6', async () => {
    const r = await embed({ cwd: dir.path, env: {}, model: dir.join('runs', 'a'), dataset: 'data', to: 'embedded', backend: 'wasm' });
    expect(r.mode).toBe('dataset');
    const written = new Map(
      readFileSync(dir.join('embedded', 'users.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { id: string; embedding: number[] })
        .map((u) => [u.id, u.embedding]),
    );
    const users = datasetHistories(readDatasetFolder(dir.join('data')).interactions).slice(0, 8);
    expect(users.length).toBe(8);
    for (const u of users) {
      const res = await call(fns, 'embed-user', { likes: u.likes.map((id) => items.get(id)), nopes: u.nopes.map((id) => items.get(id)) });
      expect(res.body).toMatchObject({ source: 'model', model: { runId: r.model.runId } });
      expect(maxAbsDiff(res.body.embedding as number[], written.get(u.userId)!), u.userId).toBeLessThanOrEqual(TOLERANCE);
    }
  });

  it('reads the history from the database (am_ml_user_history) and equals what `am-ml embed` wrote to user_embeddings', async () => {
    expect(embedded).toMatchObject({ mode: 'full', model: { version: 'v1', runId: modelA.runId } });
    const written = (await db.query<{ id: string; e: string; v: string }>('SELECT user_id::text AS id, embedding::text AS e, model_version AS v FROM public.user_embeddings ORDER BY 1')).rows;
    expect(written.length).toBe(6);
    // the RPC reads the history as embed does (latest decision per video, newest first, capped by the spec)
    const catalog = new Map((await readCatalog(db)).map((i) => [String(i.item_id), i]));
    const spec = modelA.spec.user;
    const histories = await readUserHistories(db, written.map((w) => w.id), { maxLikes: spec.maxLikes, maxNopes: spec.maxNopes });
    for (const w of written) {
      expect(w.v).toBe('v1'); // embed writes the store version as model_version, which the answer names
      const r = await call(fns, 'embed-user', { user_id: w.id });
      expect(r.status, r.text).toBe(200);
      const h = histories.get(w.id)!;
      expect(r.body).toMatchObject({ user_id: w.id, source: 'model', model: { version: w.v }, history: { likes: h.likes.length, nopes: h.nopes.length } });
      expect(maxAbsDiff(r.body.embedding as number[], JSON.parse(w.e))).toBeLessThanOrEqual(TOLERANCE);
      const direct = modelA.embedUsers([{ likes: h.likes.map((v) => catalog.get(v)!), nopes: h.nopes.map((v) => catalog.get(v)!) }]).embeddings;
      expect(maxAbsDiff(r.body.embedding as number[], direct)).toBeLessThanOrEqual(TOLERANCE);
    }
  });

  it('lets a signed-in user embed only themselves; rejects bad bodies with every problem named', async () => {
    const [me, other] = (await db.query<{ id: string }>('SELECT DISTINCT user_id::text AS id FROM public.user_video_decisions ORDER BY 1 LIMIT 2')).rows.map((r) => r.id);
    gateway.addUserToken('user-token-1', me);
    const own = await call(fns, 'embed-user', {}, 'user-token-1');
    expect(own.status, own.text).toBe(200);
    expect(own.body).toMatchObject({ user_id: me, source: 'model' });
    expect((await call(fns, 'embed-user', { user_id: other }, 'user-token-1')).status).toBe(403);
    expect((await call(fns, 'embed-user', { user_id: other }, 'not-a-token')).status).toBe(401);
    const bad = await call(fns, 'embed-user', { likes: [{ tags: ['x'] }, { item_id: 'a', price: {} }] });
    expect(bad.status).toBe(400);
    expect(bad.body.error).toMatch(/likes\.0\.item_id: .*likes\.1\.price/);
    expect((await call(fns, 'reload_models', { version: 'v1' }, 'user-token-1')).status).toBe(403);
  });

  it('gives the same embeddings on the wasm backend (AMML_TF_BACKEND=wasm)', async () => {
    const wasm = await start(['embed-user'], { AMML_TF_BACKEND: 'wasm' });
    const expected = modelA.embedUsers(histories.map((h) => h.history)).embeddings;
    for (const [k, h] of histories.slice(0, 3).entries()) {
      const r = await call(wasm, 'embed-user', h.history);
      expect(r.body).toMatchObject({ source: 'model', model: { version: 'v1', backend: 'wasm' } });
      expect(maxAbsDiff(r.body.embedding as number[], rowOf(expected, 16, k))).toBeLessThanOrEqual(TOLERANCE);
    }
    await wasm.stop();
  });

  it('type-checks under Deno (deno check of both functions and the local server)', async () => {
    const files = ['examples/supabase/functions/embed-user/index.ts', 'examples/supabase/functions/reload_models/index.ts', 'examples/supabase/dev/serve-functions.ts'];
    const r = await run(denoBinary(), denoArgs('check', files), { cwd: REPO_ROOT, env: denoEnv(dir.join('deno-cache')) }).catch((e: { stdout: string; stderr: string }) => e);
    expect(r.stderr).not.toMatch(/error/i);
  });
});

describe('a corrupt model file', () => {
  it('makes a fresh function fall back and report why, never crash; reload_models reports the failure', async () => {
    const good = fake.getObject('models', USER_SHARD)!;
    const flipped = Buffer.from(good);
    flipped[flipped.length >> 1] ^= 0x01;
    fake.putObject('models', USER_SHARD, flipped);
    try {
      const cold = await start(['embed-user', 'reload_models']);
      const likes = histories[0].history.likes.slice(0, 10);
      const stored = modelA.embedItems(likes).embeddings;
      const r = await call(cold, 'embed-user', { likes: likes.map((it, k) => ({ ...it, embedding: Array.from(rowOf(stored, 16, k)) })), nopes: [] });
      expect(r.status, r.text).toBe(200);
      expect(r.body).toMatchObject({ source: 'liked-items-mean', model: null, fallbackItems: { used: 10, missing: 0 } });
      expect(r.body.fallbackReason).toMatch(/user_tower\/group1-shard1of1\.bin: sha256 [0-9a-f]{64}, manifest says [0-9a-f]{64}/);
      const mean = new Float64Array(16);
      for (let k = 0; k < 10; k++) rowOf(stored, 16, k).forEach((x, i) => (mean[i] += x));
      const norm = Math.hypot(...mean);
      expect(maxAbsDiff(r.body.embedding as number[], Array.from(mean, (x) => x / norm))).toBeLessThanOrEqual(TOLERANCE);

      const userOnly = await call(cold, 'embed-user', { likes: [], nopes: likes.slice(0, 2), stored_embedding: [3, 4, 0, 0] });
      expect(userOnly.body).toMatchObject({ source: 'stored-user', embedding: [Math.fround(0.6), Math.fround(0.8), 0, 0] });
      expect((await call(cold, 'embed-user', {})).body).toMatchObject({ error: 'Give the history (likes, nopes) or a user_id.' });
      const none = await call(cold, 'embed-user', { likes: [], nopes: [] });
      expect(none.body).toMatchObject({ source: 'none', embedding: null, dim: null });

      // From the database: the RPC returns each liked item's stored vector; a history given without vectors has them
      // read from video_embeddings (supabase-js, PostgREST).
      const [user] = (await db.query<{ id: string }>('SELECT user_id::text AS id FROM public.user_embeddings ORDER BY 1 LIMIT 1')).rows.map((x) => x.id);
      const fromDb = await call(cold, 'embed-user', { user_id: user });
      const likedIds = (await readUserHistories(db, [user], { maxLikes: 200, maxNopes: 0 })).get(user)!.likes;
      const vectors = (await db.query<{ e: string }>('SELECT embedding::text AS e FROM public.video_embeddings WHERE video_id = ANY($1::uuid[])', [likedIds])).rows.map((x) => JSON.parse(x.e) as number[]);
      expect(vectors.length).toBe(likedIds.length);
      const dbMean = new Float64Array(16);
      for (const v of vectors) v.forEach((x, i) => (dbMean[i] += x));
      const dbNorm = Math.hypot(...dbMean);
      expect(fromDb.body).toMatchObject({ source: 'liked-items-mean', fallbackItems: { used: likedIds.length, missing: 0 } });
      expect(maxAbsDiff(fromDb.body.embedding as number[], Array.from(dbMean, (x) => x / dbNorm))).toBeLessThanOrEqual(TOLERANCE);
      const looked = await call(cold, 'embed-user', { user_id: user, likes: (await readCatalog(db)).filter((i) => likedIds.includes(String(i.item_id))) });
      expect(looked.body).toMatchObject({ source: 'liked-items-mean', fallbackItems: { used: likedIds.length, missing: 0 } });
      expect(maxAbsDiff(looked.body.embedding as number[], Array.from(dbMean, (x) => x / dbNorm))).toBeLessThanOrEqual(TOLERANCE);

      const reload = await call(cold, 'reload_models', { version: 'v1', name: 'two_tower' });
      expect(reload.status).toBe(500);
      expect(reload.body).toMatchObject({ ok: false, version: null, requested: 'v1' });
      expect(reload.body.error).toMatch(/sha256/);
      expect(cold.output()).not.toMatch(/unhandled/);
    } finally {
      fake.putObject('models', USER_SHARD, good);
    }
  });
});

describe('reload', () => {
  it('am-ml publish of v2 calls reload_models in Deno, which loads it; embed-user serves v2 after the pointer max age', async () => {
    const env = { SUPABASE_URL: gateway.url, SUPABASE_SERVICE_ROLE_KEY: fake.key, AMML_MODEL_STORE: 'supabase://models/prod' };
    const r = await publish({ cwd: dir.path, env, modelDir: 'runs/b', version: 'v2' });
    expect(r.reload).toMatchObject({ ok: true, function: 'reload_models', response: { ok: true, version: 'v2', runId: modelB.runId, changed: true } });
    await new Promise((resolve) => setTimeout(resolve, 1100)); // AMML_POINTER_MAX_AGE_SECONDS=1
    const expected = modelB.embedUsers(histories.map((h) => h.history)).embeddings;
    for (const [k, h] of histories.entries()) {
      const res = await call(fns, 'embed-user', h.history);
      expect(res.body).toMatchObject({ source: 'model', model: { version: 'v2', runId: modelB.runId } });
      expect(maxAbsDiff(res.body.embedding as number[], rowOf(expected, 16, k))).toBeLessThanOrEqual(TOLERANCE);
    }
    // A reload naming an older version loads what the pointer names, and says so.
    const stale = await call(fns, 'reload_models', { version: 'v1', name: 'two_tower' });
    expect(stale.body).toMatchObject({ ok: true, version: 'v2', changed: false, note: expect.stringMatching(/pointer names v2/) });
    const wrong = await call(fns, 'reload_models', { version: 'v2', name: 'other_model' });
    expect(wrong.body).toMatchObject({ ok: false, error: expect.stringMatching(/serves model 'two_tower', not 'other_model'/) });
    expect(fns.output()).not.toMatch(/unhandled/);
  });
});
