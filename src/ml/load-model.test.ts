import { cpSync, existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConflictError, ValidationFailedError } from '../errors.js';
import { TINY_TRAIN_CONFIG, tinyTrainingData } from '../testing/synthetic-data.js';
import { type TmpDir, tmpDir } from '../testing/tmp-dir.js';
import { FEATURES_FILE, MANIFEST_FILE, PROBE_FILE } from './artifacts.js';
import { describeFiles, readManifest, verifyModelFolder, writeManifest } from './artifacts-fs.js';
import { embedAndCacheItems, EncodedItemCache } from './embed-batch.js';
import { buildItemInputs } from './features/index.js';
import { loadTwoTower } from './load-model.js';
import { loadTwoTowerFromDir } from './load-model-fs.js';
import { predictTower } from './model.js';
import { finishRun } from './run.js';
import { initTf, tf } from './tf.js';
import { DEFAULT_TRAIN_CONFIG, type TrainResult, trainTwoTower } from './train.js';

let dir: TmpDir;
let run: string;
let result: TrainResult;
const { data } = tinyTrainingData({ items: 300, users: 150 });

beforeAll(async () => {
  await initTf('wasm');
  dir = tmpDir();
  run = dir.join('runs', 'r1');
  result = await trainTwoTower(data, { ...TINY_TRAIN_CONFIG, epochs: 1 }, { tf, backend: 'wasm' });
  await finishRun(result, data, {
    out: run,
    runId: '20260101T000000Z',
    createdAt: '2026-01-01T00:00:00.000Z',
    gates: [],
    amMl: { version: '0.0.0-test', gitCommit: null },
    tf: { version: tf.version.tfjs, backend: 'wasm' as const },
    config: { ...DEFAULT_TRAIN_CONFIG, ...TINY_TRAIN_CONFIG, epochs: 1 },
    threads: 1,
  });
});

afterAll(() => {
  result.models.user.dispose();
  result.models.item.dispose();
  dir.remove();
});

/** Copy the run, let `edit` change files, and re-hash the manifest so only the deeper checks can catch it. */
function tamperedCopy(name: string, edit: (d: string) => void, rehash = true): Promise<string> {
  const d = dir.join('tampered', name);
  cpSync(run, d, { recursive: true });
  edit(d);
  if (!rehash) return Promise.resolve(d);
  const m = readManifest(d);
  return describeFiles(d).then((files) => {
    writeManifest(d, { ...m, files });
    return d;
  });
}

describe('run folder', () => {
  it('holds both towers, features, metrics, probe and a manifest whose files all verify', async () => {
    const m = readManifest(run);
    expect(m).toMatchObject({ kind: 'two-tower', runId: '20260101T000000Z', embeddingDim: 16, tf: { backend: 'wasm' } });
    expect(Object.keys(m.towers).sort()).toEqual(['item', 'user']);
    expect(m.towers.item.customLayers).toEqual(['AmMlWeightedBag', 'AmMlL2Normalize']);
    expect(m.files.map((f) => f.path)).toEqual(
      expect.arrayContaining([FEATURES_FILE, 'metrics.json', PROBE_FILE, 'user_tower/model.json', 'item_tower/model.json', 'item_tower/group1-shard1of1.bin']),
    );
    expect(await verifyModelFolder(run, m)).toEqual([]);
    expect(Object.keys(m.metrics!)).toEqual(expect.arrayContaining(['recall@10', 'recall@50', 'recall@100', 'ndcg@10', 'coverage@100', 'popularity.recall@100', 'val.recall@100']));
    expect(Object.values(m.metrics!).every((v) => typeof v === 'number')).toBe(true);
    expect(m.data).toMatchObject({ source: 'synthetic', sha256: expect.stringMatching(/^[0-9a-f]{64}$/) });
    // nothing but the run folder was left in runs/
    expect(readdirSync(path.dirname(run))).toEqual(['r1']);
  });

  it('refuses to overwrite an existing run and leaves nothing behind when writing fails', async () => {
    const base = { runId: 'x', createdAt: '2026-01-01T00:00:00.000Z', gates: [], amMl: { version: '0', gitCommit: null }, tf: { version: '0', backend: 'cpu' as const }, config: DEFAULT_TRAIN_CONFIG, threads: 1 };
    await expect(finishRun(result, data, { ...base, out: run })).rejects.toBeInstanceOf(ConflictError);
    const out = dir.join('runs', 'broken');
    // The item tower fails while being saved (after the user tower's files were written).
    const failingSave = new Proxy(result.models.item, {
      get: (t, k) => {
        if (k === 'save') return () => Promise.reject(new Error('disk full'));
        const v = Reflect.get(t, k, t);
        return typeof v === 'function' ? v.bind(t) : v;
      },
    });
    const broken = { ...result, models: { user: result.models.user, item: failingSave } } as TrainResult;
    await expect(finishRun(broken, data, { ...base, out })).rejects.toThrow(/disk full/);
    expect(existsSync(out)).toBe(false);
    expect(readdirSync(path.dirname(run))).toEqual(['r1']);
  });
});

describe('loadTwoTower', () => {
  it('loads strictly from bytes through any reader (no file system needed) and embeds like the trained models', async () => {
    const files = new Map<string, Uint8Array>();
    const walk = (rel: string) => {
      for (const e of readdirSync(path.join(run, rel), { withFileTypes: true })) {
        const r = rel ? `${rel}/${e.name}` : e.name;
        if (e.isDirectory()) walk(r);
        else files.set(r, new Uint8Array(readFileSync(path.join(run, r))));
      }
    };
    walk('');
    const before = tf.memory().numTensors;
    const m = await loadTwoTower(async (p) => {
      const b = files.get(p);
      if (!b) throw new Error(`no ${p}`);
      return b;
    });
    try {
      expect(m.dim).toBe(16);
      expect(m.runId).toBe('20260101T000000Z');
      const got = m.embedItems(data.items.slice(0, 20));
      const want = predictTower(result.models.item, buildItemInputs(result.spec, data.items.slice(0, 20)).inputs.arrays);
      expect(Array.from(got.embeddings)).toEqual(Array.from(want));
      const users = m.embedUsers([{ likes: data.items.slice(0, 3) }, { likes: [] }]);
      expect(users.rows).toBe(2);
      for (let r = 0; r < 2; r++) expect(Math.hypot(...users.embeddings.subarray(r * 16, (r + 1) * 16))).toBeCloseTo(1, 5);
    } finally {
      m.dispose();
    }
    expect(tf.memory().numTensors).toBe(before);
  });

  it('works on the cpu backend too (the probe tolerates backend rounding)', async () => {
    await initTf('cpu');
    try {
      const m = await loadTwoTowerFromDir(run);
      m.dispose();
    } finally {
      await initTf('wasm');
    }
  });

  const expectInvalid = async (d: string, pattern: RegExp) => {
    const err = await loadTwoTowerFromDir(d).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ValidationFailedError);
    expect((err as ValidationFailedError).exitCode).toBe(4);
    expect((err as Error).message).toMatch(pattern);
  };

  it('refuses a corrupted weight shard (sha256) and a missing one', async () => {
    const flipped = await tamperedCopy(
      'flip',
      (d) => {
        const f = path.join(d, 'item_tower', 'group1-shard1of1.bin');
        const b = readFileSync(f);
        b[100] ^= 0xff;
        writeFileSync(f, b);
      },
      false,
    );
    await expectInvalid(flipped, /item_tower\/group1-shard1of1\.bin: sha256 [0-9a-f]{64}, manifest says/);
    const missing = await tamperedCopy('missing', (d) => rmSync(path.join(d, 'user_tower', 'group1-shard1of1.bin')), false);
    await expectInvalid(missing, /user_tower\/group1-shard1of1\.bin: missing/);
  });

  it('refuses a feature spec that is not the one the manifest names', async () => {
    const d = await tamperedCopy('features', (x) => {
      const f = path.join(x, FEATURES_FILE);
      const spec = JSON.parse(readFileSync(f, 'utf8'));
      spec.user.maxLikes = 7;
      writeFileSync(f, `${JSON.stringify(spec)}\n`);
    });
    await expectInvalid(d, /features\.json does not match the manifest's featureSpecSha256/);
  });

  it('refuses weights that are not the trained ones even when every hash was updated (the probe catches it)', async () => {
    const d = await tamperedCopy('zeros', (x) => {
      const f = path.join(x, 'item_tower', 'group1-shard1of1.bin');
      writeFileSync(f, Buffer.alloc(readFileSync(f).length));
    });
    await expectInvalid(d, /probe failed: the item tower's output differs from training time \(max abs diff [\d.e-]+, tolerance 0\.0001/);
  });

  it('refuses when the feature code would build different inputs than at training time', async () => {
    const d = await tamperedCopy('probe-inputs', (x) => {
      const f = path.join(x, PROBE_FILE);
      const probe = JSON.parse(readFileSync(f, 'utf8'));
      probe.user.inputs[0].data[0] += 1;
      writeFileSync(f, JSON.stringify(probe));
    });
    await expectInvalid(d, /feature code builds different user inputs than at training time \(liked_tags_idx\[0\]/);
  });

  it('refuses a truncated shard described as complete (never loads zeros)', async () => {
    const d = await tamperedCopy('truncated', (x) => {
      const f = path.join(x, 'user_tower', 'group1-shard1of1.bin');
      writeFileSync(f, readFileSync(f).subarray(0, 1000));
    });
    await expectInvalid(d, /does not load strictly: weight shards hold 1000 bytes but model\.json describes \d+/);
  });

  it('reads the manifest first and names a folder that is not a model', async () => {
    const d = dir.join('empty');
    cpSync(run, d, { recursive: true });
    rmSync(path.join(d, MANIFEST_FILE));
    await expectInvalid(d, /manifest\.json cannot be read/);
  });
});

describe('encoded items (am-ml embed encodes each catalog item once)', () => {
  it('embedAndCacheItems gives the rows embedItems gives, and keeps the encodings for histories', async () => {
    const m = await loadTwoTowerFromDir(run);
    try {
      const items = data.items.slice(0, 40);
      const cache = new EncodedItemCache(m, 1000);
      const rows = embedAndCacheItems(m, cache, items);
      const want = m.embedItems(items).embeddings;
      expect(rows.map((r) => r.id)).toEqual(items.map((i) => i.item_id));
      expect(Array.from(Float32Array.from(rows.flatMap((r) => Array.from(r.embedding))))).toEqual(Array.from(want));
      expect(cache.size).toBe(40);
      expect(cache.missing(items.map((i) => i.item_id))).toEqual([]);
    } finally {
      m.dispose();
    }
  });

  it('stays within its bound and gives items read since the last pass a second chance (CLOCK)', async () => {
    const m = await loadTwoTowerFromDir(run);
    try {
      const [a, b, c, d, e] = data.items.slice(0, 5);
      const cache = new EncodedItemCache(m, 3);
      cache.add([a, b, c]);
      expect(cache.get(a.item_id)).toBeDefined(); // a was read: it survives the next eviction, b (oldest unread) goes
      cache.add([d]);
      expect(cache.size).toBe(3);
      expect(cache.missing([a, b, c, d].map((i) => i.item_id))).toEqual([b.item_id]);
      cache.add([e]); // a went to the back when it was passed over: c, now the oldest, goes
      expect(cache.missing([a, c, d, e].map((i) => i.item_id))).toEqual([c.item_id]);
      cache.add([b]); // order d, a, e: d goes, and a (its flag spent) would be next
      expect(cache.missing([a, b, d, e].map((i) => i.item_id))).toEqual([d.item_id]);
      cache.add([c]);
      expect(cache.missing([a, b, c, e].map((i) => i.item_id))).toEqual([a.item_id]);
      expect(cache.size).toBe(3);
    } finally {
      m.dispose();
    }
  });
});
