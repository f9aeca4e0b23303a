/**
 * The Edge runtime's loading, caching, reload and fallback policies, in Node (fast, with a clock), against the
 * loopback Supabase Storage (Storage's authenticated download endpoint) and a plain static HTTP folder, with a
 * real model trained by `am-ml train` and published by `am-ml publish`. (edge-deno.test.ts runs it under Deno.)
 */
import { execFile } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { publish } from '../commands/publish.js';
import { train, type TrainOptions } from '../commands/train.js';
import { StorageError } from '../errors.js';
import { readDatasetFolder } from '../ml/data/dataset.js';
import type { ItemAttributes } from '../ml/features/index.js';
import { type LoadedTwoTower } from '../ml/load-model.js';
import { loadTwoTowerFromDir } from '../ml/load-model-fs.js';
import { initTf } from '../ml/tf.js';
import { type FakeSupabase, startFakeSupabase } from '../testing/fake-supabase-storage.js';
import { writeTinyDataset } from '../testing/synthetic-data.js';
import { REPO_ROOT, type TmpDir, tmpDir } from '../testing/tmp-dir.js';
import { createEdgeEmbedder, edgeSettingsFromEnv, edgeStoreConfig, httpStoreReader, ModelHolder } from './index.js';
import type { HolderEvent } from './model-holder.js';
import { createUserEmbedder } from './user-embedder.js';

const TINY: TrainOptions = { dim: 16, hidden: [32], bagDim: 8, batchSize: 128, epochs: 1, lr: 0.01, temperature: 0.1, backend: 'wasm', threads: 1 };

let dir: TmpDir;
let fake: FakeSupabase;
let model: LoadedTwoTower;
let likes: ItemAttributes[];
let staticServer: http.Server;
let staticUrl: string;

const envFor = (f: FakeSupabase) => ({ SUPABASE_URL: f.url, SUPABASE_SERVICE_ROLE_KEY: f.key, AMML_MODEL_STORE: 'supabase://models/prod' });

function holderFor(f: FakeSupabase, clock: { t: number }, events: HolderEvent[] = [], name = 'two_tower'): ModelHolder {
  const store = httpStoreReader(edgeStoreConfig('supabase://models/prod', { supabaseUrl: f.url, key: f.key }));
  return new ModelHolder({ store, name, now: () => clock.t, pointerMaxAgeMs: 60_000, retryAfterFailureMs: 30_000, onEvent: (e) => events.push(e) });
}

const gets = (f: FakeSupabase, suffix: string) => f.requests.filter((r) => r.method === 'GET' && r.path.endsWith(suffix)).length;

beforeAll(async () => {
  dir = tmpDir('am-ml-edge-unit-');
  writeTinyDataset(dir.join('data'), { items: 200, users: 100 });
  await train({ ...TINY, cwd: dir.path, dataset: 'data', out: dir.join('runs', 'a'), seed: 1 });
  await train({ ...TINY, cwd: dir.path, dataset: 'data', out: dir.join('runs', 'b'), seed: 2 });
  await initTf('wasm');
  model = await loadTwoTowerFromDir(dir.join('runs', 'a'));
  likes = readDatasetFolder(dir.join('data')).items.slice(0, 6);
  // A local store (file://), served as a plain static folder: the "public bucket / CDN" way in.
  await publish({ cwd: dir.path, env: { AMML_MODEL_STORE: `file://${dir.join('store')}` }, modelDir: 'runs/a', version: 'v1' });
  staticServer = http.createServer((req, res) => {
    const file = path.join(dir.join('store'), decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname));
    try {
      if (!file.startsWith(dir.join('store')) || !statSync(file).isFile()) throw new Error('no');
      res.writeHead(200).end(readFileSync(file));
    } catch {
      res.writeHead(404).end('not found');
    }
  });
  await new Promise<void>((resolve) => staticServer.listen(0, '127.0.0.1', resolve));
  staticUrl = `http://127.0.0.1:${(staticServer.address() as AddressInfo).port}`;
}, 300_000);

afterAll(async () => {
  await fake?.stop();
  await new Promise<void>((resolve) => staticServer?.close(() => resolve()));
  model?.dispose();
  dir?.remove();
});

describe('ModelHolder', () => {
  it('loads by the pointer once, shares the load between concurrent requests, and re-reads the pointer only after the max age', async () => {
    fake = await startFakeSupabase();
    await publish({ cwd: dir.path, env: envFor(fake), modelDir: 'runs/a', version: 'v1', reload: false });
    const clock = { t: 0 };
    const h = holderFor(fake, clock);
    const publishReads = { pointer: gets(fake, '/current.json'), manifest: gets(fake, '/v1/manifest.json') };
    const pointerReads = () => gets(fake, '/current.json') - publishReads.pointer;
    const manifestReads = () => gets(fake, '/v1/manifest.json') - publishReads.manifest;
    const [a, b] = await Promise.all([h.current(), h.current()]);
    expect(a.served?.version).toBe('v1');
    expect(b.served).toBe(a.served);
    expect(pointerReads()).toBe(1);
    expect(manifestReads()).toBe(1);
    // the files came through Storage's authenticated download endpoint
    expect(fake.requests.some((r) => r.path === '/storage/v1/object/authenticated/models/prod/two_tower/v1/user_tower/model.json')).toBe(true);
    clock.t = 59_999;
    await h.current();
    expect(pointerReads()).toBe(1);
    clock.t = 60_000;
    expect((await h.current()).served?.version).toBe('v1');
    expect(pointerReads()).toBe(2);
    expect(manifestReads()).toBe(1); // unchanged pointer: nothing reloaded
    h.dispose();
  });

  it('picks up a new current version after the max age, or at once on reload; a failed load keeps the old version serving', async () => {
    fake = await startFakeSupabase();
    await publish({ cwd: dir.path, env: envFor(fake), modelDir: 'runs/a', version: 'v1', reload: false });
    const clock = { t: 0 };
    const events: HolderEvent[] = [];
    const h = holderFor(fake, clock, events);
    const embedder = createUserEmbedder({ holder: h });
    expect((await embedder.embed({ likes })).model?.version).toBe('v1');

    await publish({ cwd: dir.path, env: envFor(fake), modelDir: 'runs/b', version: 'v2', reload: false });
    expect((await embedder.embed({ likes })).model?.version).toBe('v1'); // within the max age
    const r = await embedder.reload({ version: 'v2', name: 'two_tower' });
    expect(r).toMatchObject({ ok: true, version: 'v2', previous: 'v1', changed: true, requested: 'v2' });
    expect(events.filter((e) => e.kind === 'load-done').map((e) => (e as { replaced: string | null }).replaced)).toEqual([null, 'v1']);

    // v3's manifest no longer matches what the pointer recorded: refused, v2 keeps serving, with a warning.
    await publish({ cwd: dir.path, env: envFor(fake), modelDir: 'runs/a', version: 'v3', reload: false });
    const manifest = fake.getObject('models', 'prod/two_tower/v3/manifest.json')!;
    fake.putObject('models', 'prod/two_tower/v3/manifest.json', Buffer.from(manifest.toString().replace('"schemaVersion": 1', '"schemaVersion":1')));
    clock.t = 61_000;
    const served = await embedder.embed({ likes });
    expect(served).toMatchObject({ source: 'model', model: { version: 'v2' }, warning: expect.stringMatching(/manifest\.json is \d+ bytes with sha256 [0-9a-f]{64}, but the pointer recorded/) });
    const again = await embedder.reload({ version: 'v3' });
    expect(again).toMatchObject({ ok: false, version: 'v2', changed: false, error: expect.stringMatching(/pointer recorded/) });
    h.dispose();
  });

  it('does not download a version that failed again before the back-off, even with the pointer checked on every request', async () => {
    fake = await startFakeSupabase();
    await publish({ cwd: dir.path, env: envFor(fake), modelDir: 'runs/a', version: 'v1', reload: false });
    const clock = { t: 0 };
    const store = httpStoreReader(edgeStoreConfig('supabase://models/prod', { supabaseUrl: fake.url, key: fake.key }));
    const h = new ModelHolder({ store, now: () => clock.t, pointerMaxAgeMs: 0, retryAfterFailureMs: 30_000 });
    expect((await h.current()).served?.version).toBe('v1');
    await publish({ cwd: dir.path, env: envFor(fake), modelDir: 'runs/b', version: 'v2', reload: false });
    fake.putObject('models', 'prod/two_tower/v2/user_tower/group1-shard1of1.bin', new Uint8Array(8));
    const shardReads = () => gets(fake, '/v2/user_tower/group1-shard1of1.bin');
    const before = shardReads();
    const first = await h.current();
    expect(first).toMatchObject({ served: { version: 'v1' }, failure: expect.stringMatching(/group1-shard1of1\.bin: size 8, manifest says \d+/) });
    expect(shardReads()).toBe(before + 1);
    clock.t = 29_999;
    expect((await h.current()).served?.version).toBe('v1');
    expect(shardReads()).toBe(before + 1); // pointer re-read, broken version not fetched again
    expect((await h.reload({ version: 'v2' })).ok).toBe(false);
    expect(shardReads()).toBe(before + 2); // a reload call tries at once
    clock.t = 29_999 + 30_000;
    await h.current();
    expect(shardReads()).toBe(before + 3);
    h.dispose();
  });

  it('with nothing to serve, falls back and retries the store only after the back-off (a reload retries at once)', async () => {
    fake = await startFakeSupabase();
    const clock = { t: 0 };
    const h = holderFor(fake, clock);
    const embedder = createUserEmbedder({
      holder: h,
      lookupItemEmbeddings: async (ids) => new Map(ids.slice(0, 2).map((id, k) => [id, k === 0 ? [1, 0, 0] : [0, 1, 0]])),
    });
    const r = await embedder.embed({ likes: likes.slice(0, 3) });
    expect(r).toMatchObject({ source: 'liked-items-mean', fallbackItems: { used: 2, missing: 1 }, fallbackReason: expect.stringMatching(/No model is published: supabase:\/\/models\/prod\/two_tower\/current\.json does not exist/) });
    expect(r.embedding).toEqual([Math.fround(Math.SQRT1_2), Math.fround(Math.SQRT1_2), 0]);
    await embedder.embed({ likes: [] });
    expect(gets(fake, '/current.json')).toBe(1);
    clock.t = 30_000;
    await embedder.embed({ likes: [] });
    expect(gets(fake, '/current.json')).toBe(2);
    await publish({ cwd: dir.path, env: envFor(fake), modelDir: 'runs/a', version: 'v1', reload: false });
    expect(await embedder.reload()).toMatchObject({ ok: true, version: 'v1', changed: true, requested: null });
    expect((await embedder.embed({ likes })).source).toBe('model');
    h.dispose();
  });

  it('loads from any static HTTP copy of a store (public bucket, CDN, a served file:// store)', async () => {
    const embedder = createEdgeEmbedder({ store: staticUrl, backend: 'wasm' });
    const r = await embedder.embed({ likes, nopes: likes.slice(0, 2) });
    expect(r).toMatchObject({ source: 'model', model: { version: 'v1', runId: model.runId }, dim: 16, history: { likes: 6, nopes: 2, likesUsed: 6, nopesUsed: 2 } });
    expect(r.embedding).toEqual(Array.from(model.embedUsers([{ likes, nopes: likes.slice(0, 2) }]).embeddings));
    embedder.holder.dispose();
  });
});

describe('am-ml/runtime with a two-tower run', () => {
  const script = (withRuntime: boolean) => `
${withRuntime ? "import 'am-ml/runtime';" : ''}
import * as tf from '@tensorflow/tfjs';
tf.enableProdMode();
await tf.setBackend('cpu');
try {
  const m = await tf.loadLayersModel('${staticUrl}/two_tower/v1/user_tower/model.json', { strict: true });
  const y = m.predict(m.inputs.map((i) => tf.zeros([2, ...i.shape.slice(1)], i.dtype)));
  console.log(JSON.stringify({ ok: true, shape: y.shape, classes: [...new Set(m.layers.map((l) => l.getClassName()))] }));
} catch (err) {
  console.log(JSON.stringify({ ok: false, message: err.message }));
}`;
  const node = (code: string) =>
    new Promise<Record<string, unknown>>((resolve, reject) =>
      execFile(process.execPath, ['--input-type=module', '-e', code], { cwd: REPO_ROOT, timeout: 60_000 }, (err, stdout) => (err ? reject(err) : resolve(JSON.parse(stdout)))),
    );

  it('lets plain tf.loadLayersModel load a tower of `am-ml train` (AmMlWeightedBag, AmMlL2Normalize) after importing it alone', async () => {
    expect(await node(script(true))).toMatchObject({ ok: true, shape: [2, 16], classes: expect.arrayContaining(['AmMlWeightedBag', 'AmMlL2Normalize']) });
    expect(await node(script(false))).toMatchObject({ ok: false, message: expect.stringMatching(/Unknown layer: AmMlWeightedBag/) });
  });

  it('am-ml/edge is importable by its package name and embeds from a store URL', async () => {
    const out = await node(`
import { createEdgeEmbedder } from 'am-ml/edge';
const e = createEdgeEmbedder({ store: '${staticUrl}' });
const r = await e.embed({ likes: ${JSON.stringify(likes.slice(0, 3))} });
console.log(JSON.stringify({ source: r.source, dim: r.dim, model: r.model }));`);
    expect(out).toMatchObject({ source: 'model', dim: 16, model: { version: 'v1', backend: 'cpu' } });
  });
});

describe('httpStoreReader', () => {
  it('treats Storage’s 400 {"statusCode":"404"} and a 404 as absent, retries 5xx, and never shows the key', async () => {
    fake = await startFakeSupabase();
    const reader = httpStoreReader(edgeStoreConfig('supabase://models/prod', { supabaseUrl: fake.url, key: fake.key }), { sleep: async () => {} });
    expect(await reader.get('prod/nothing/here.json')).toBeNull();
    fake.putObject('models', 'prod/x.bin', new Uint8Array([1, 2, 3]));
    fake.inject({ method: 'GET', path: '/prod/x.bin', times: 2, action: { kind: 'status', status: 503 } });
    expect(Array.from((await reader.get('prod/x.bin'))!)).toEqual([1, 2, 3]);
    fake.inject({ method: 'GET', path: '/prod/x.bin', times: 3, action: { kind: 'status', status: 500, message: 'down' } });
    const err = await reader.get('prod/x.bin').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorageError);
    expect((err as Error).message).toMatch(/supabase:\/\/models\/prod\/prod\/x\.bin failed after 3 attempts: HTTP 500/);
    const denied = httpStoreReader(edgeStoreConfig('supabase://models/prod', { supabaseUrl: fake.url, key: 'wrong-key-0123456789abcdef' }));
    const e403 = await denied.get('prod/x.bin').catch((e: unknown) => e);
    expect(e403).toBeInstanceOf(StorageError);
    expect(JSON.stringify({ m: (e403 as Error).message, d: (e403 as StorageError).details })).not.toContain('wrong-key-0123456789abcdef');
  });
});

describe('edgeSettingsFromEnv', () => {
  it('applies defaults, parses strictly, and lists every problem without echoing secrets', () => {
    expect(edgeSettingsFromEnv((k) => ({ SUPABASE_URL: 'https://p.supabase.co', SUPABASE_SERVICE_ROLE_KEY: 'k'.repeat(40) })[k])).toMatchObject({
      store: 'supabase://models',
      name: 'two_tower',
      pointerMaxAgeMs: 60_000,
      retryAfterFailureMs: 30_000,
      backend: 'cpu',
    });
    const env: Record<string, string> = { AMML_POINTER_MAX_AGE_SECONDS: 'soon', AMML_TF_BACKEND: 'gpu', SUPABASE_SERVICE_ROLE_KEY: 'short-secret' };
    const err = (() => {
      try {
        edgeSettingsFromEnv((k) => env[k]);
      } catch (e) {
        return e as Error;
      }
    })();
    expect(err?.message).toMatch(/AMML_POINTER_MAX_AGE_SECONDS: must be a number of seconds/);
    expect(err?.message).toMatch(/AMML_TF_BACKEND: /);
    expect(err?.message).toMatch(/SUPABASE_SERVICE_ROLE_KEY: looks too short/);
    expect(err?.message).not.toContain('short-secret');
    expect(edgeSettingsFromEnv((k) => ({ AMML_MODEL_STORE: 'https://cdn.example/models', AMML_POINTER_MAX_AGE_SECONDS: '0' })[k])).toMatchObject({ store: 'https://cdn.example/models', pointerMaxAgeMs: 0 });
  });
});
