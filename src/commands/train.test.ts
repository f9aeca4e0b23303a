import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate } from '../db/migrate.js';
import { openPglite } from '../db/pglite.js';
import { ConflictError, InterruptedError, UsageError, ValidationFailedError } from '../errors.js';
import { readManifest, verifyModelFolder } from '../ml/artifacts-fs.js';
import { generateCatalog, generateInteractions } from '../ml/synthetic.js';
import { SALE_TAG, seedCatalog, seedDecisions } from '../testing/app-db-seed.js';
import { recordingReporter } from '../testing/recording-reporter.js';
import { writeTinyDataset } from '../testing/synthetic-data.js';
import { type TmpDir, tmpDir } from '../testing/tmp-dir.js';
import { formatTrain, train, type TrainOptions } from './train.js';

let dir: TmpDir;
let dbUrl: string;
const catalog = generateCatalog({ seed: 3, items: 300, genres: 6, tags: 40, idFormat: 'cid' });

/** A small, fast model for command tests. */
const TINY: TrainOptions = { dim: 16, hidden: [32], bagDim: 8, batchSize: 128, epochs: 2, lr: 0.01, temperature: 0.1, backend: 'wasm', threads: 1 };

beforeAll(async () => {
  dir = tmpDir();
  writeTinyDataset(dir.join('data'), { items: 300, users: 150 });
  // An embedded app database with a catalog and decisions (user ids are UUIDs, as in auth.users).
  const db = await openPglite({ dir: dir.join('app-db') });
  await migrate(db, { embeddingType: 'halfvec', dim: 16 });
  const ids = await seedCatalog(db, catalog);
  const { interactions } = generateInteractions(catalog, { seed: 4, users: 120, userIdFormat: 'uuid', clusters: 5 });
  await seedDecisions(db, interactions, ids);
  await db.close();
  dbUrl = `pglite://${dir.join('app-db')}`;
});
afterAll(() => dir.remove());

describe('am-ml train', () => {
  it('--dataset: trains, reports progress per epoch, and writes a complete run folder', async () => {
    const reporter = recordingReporter();
    const out = dir.join('runs', 'a');
    const r = await train({ ...TINY, cwd: dir.path, reporter, dataset: 'data', out, gate: ['recall@10>0', 'popularity.recall@100>=0'] });
    expect(r).toMatchObject({ dryRun: false, out, epochs: { run: 2 }, backend: { name: 'wasm', threads: 1 } });
    expect(r.metrics!.model['recall@10']).toBeGreaterThan(r.metrics!.popularity['recall@10']);
    expect(r.gates.map((g) => g.passed)).toEqual([true, true]);
    const m = readManifest(out);
    expect(m.runId).toBe(r.runId);
    expect(await verifyModelFolder(out, m)).toEqual([]);
    expect(m.config).toMatchObject({ dim: 16, batchSize: 128, seed: 42, threads: 1 });
    // a bar per epoch with loss, examples/s and ETA; a line per epoch with validation metrics
    const bars = reporter.events.filter((e) => e.kind === 'progress').map((e) => (e as { label: string }).label);
    expect(bars).toEqual(['Epoch 1/2', 'Epoch 2/2']);
    const updates = reporter.events.filter((e) => e.kind === 'progress-update') as { info?: string }[];
    expect(updates[0].info).toMatch(/^loss \d+\.\d{4} · \d+ ex\/s · ETA \d+s$/);
    expect(reporter.lines('info').filter((l) => /^epoch \d\/2: loss .* val recall@10 \d\.\d{3} recall@100/.test(l))).toHaveLength(2);
    expect(formatTrain(r)).toMatch(/recall@100 +\d\.\d{3} +\d\.\d{3}/);
  });

  it('--gate: exits 4 when a gate fails, with the run and its metrics written anyway', async () => {
    const out = dir.join('runs', 'gated');
    const err = await train({ ...TINY, epochs: 1, cwd: dir.path, dataset: 'data', out, gate: ['recall@100>=1.01'] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ValidationFailedError);
    expect((err as ValidationFailedError).exitCode).toBe(4);
    expect((err as ValidationFailedError).code).toBe('GATE_FAILED');
    expect((err as Error).message).toMatch(/recall@100>=1\.01: recall@100 is 0\.\d+\. The run was still written to/);
    const metrics = JSON.parse(readFileSync(path.join(out, 'metrics.json'), 'utf8'));
    expect(metrics.gates[0]).toMatchObject({ expression: 'recall@100>=1.01', passed: false });
    expect(readManifest(out).config).toMatchObject({ gates: [{ expression: 'recall@100>=1.01', passed: false }] });
  });

  it('checks flags before any work', async () => {
    await expect(train({ cwd: dir.path })).rejects.toThrow(/--from-db, --reviews <csv> or --dataset <dir>/);
    await expect(train({ cwd: dir.path, dataset: 'data', fromDb: true })).rejects.toThrow(/only one data source; got --from-db and --dataset/);
    await expect(train({ cwd: dir.path, dataset: 'data', gate: ['recall@100 => 1'] })).rejects.toBeInstanceOf(UsageError);
    await expect(train({ cwd: dir.path, reviews: 'r.csv', positiveMinStars: 3, negativeMaxStars: 3 })).rejects.toThrow(/--negative-max-stars \(3\) must be below --positive-min-stars \(3\)/);
    await expect(train({ cwd: dir.path, dataset: 'data', out: dir.join('runs', 'a') })).rejects.toBeInstanceOf(ConflictError);
  });

  it('reports bad rows with line numbers, and stops on a mostly bad file without writing anything', async () => {
    const bad = dir.join('bad-data');
    writeTinyDataset(bad, { items: 300, users: 150 });
    const csv = readFileSync(path.join(bad, 'interactions.csv'), 'utf8').split('\n');
    csv[5] = 'user-00001,no-such-item,1,2026-01-01T00:00:00Z';
    writeFileSync(path.join(bad, 'interactions.csv'), csv.join('\n'));
    const reporter = recordingReporter();
    const r = await train({ ...TINY, cwd: dir.path, reporter, dataset: 'bad-data', dryRun: true });
    expect(r.data.summary.interactionRowsBad).toBe(1);
    expect(reporter.lines('warn')).toEqual([`${path.join(bad, 'interactions.csv')}:6: item_id "no-such-item" is not in items.jsonl`]);

    writeFileSync(path.join(bad, 'interactions.csv'), `user_id,item_id,label\n${'u,item-000001,maybe\n'.repeat(6)}u,item-000001,1\n`);
    const out = dir.join('runs', 'never');
    const err = await train({ ...TINY, cwd: dir.path, dataset: 'bad-data', out }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ValidationFailedError);
    expect((err as Error).message).toMatch(/6 of 7 rows are bad .*line 2: label "maybe"/);
    expect(existsSync(out)).toBe(false);
  });

  it('--dry-run reads, splits and builds features, and writes nothing', async () => {
    const before = readdirSync(dir.join('runs')).length;
    const r = await train({ cwd: dir.path, dataset: 'data', dryRun: true });
    expect(r).toMatchObject({ dryRun: true, out: null, counts: { timeOrdered: true } });
    expect(r.vocabularies.tags).toBeGreaterThan(10);
    expect(readdirSync(dir.join('runs')).length).toBe(before);
  });

  it('stops on Ctrl-C (AbortSignal) with nothing written', async () => {
    const ac = new AbortController();
    ac.abort();
    const out = dir.join('runs', 'aborted');
    await expect(train({ ...TINY, cwd: dir.path, dataset: 'data', out, signal: ac.signal })).rejects.toBeInstanceOf(InterruptedError);
    expect(existsSync(out)).toBe(false);
  });
});

describe('am-ml train against the app database', () => {
  it('--from-db: trains on user_video_decisions with training tags only', async () => {
    const out = dir.join('runs', 'db');
    const r = await train({ ...TINY, cwd: dir.path, db: dbUrl, fromDb: true, out });
    expect(r.source).toMatch(/^db:pglite:\/\//);
    expect(r.data.summary).toMatchObject({ items: 300, users: 120 });
    // (model quality on planted data is the ml tests' job; here: the metrics exist for both rankers)
    for (const ranker of [r.metrics!.model, r.metrics!.popularity]) {
      expect(ranker['recall@100']).toBeGreaterThan(0);
      expect(ranker['recall@100']).toBeLessThanOrEqual(1);
    }
    expect(r.metrics!.users).toBeGreaterThan(50);
    const spec = JSON.parse(readFileSync(path.join(out, 'features.json'), 'utf8'));
    const tags: string[] = spec.vocabularies.find((v: { name: string }) => v.name === 'tags').tokens;
    expect(tags.length).toBeGreaterThan(10);
    expect(tags).not.toContain(SALE_TAG);
    // items are keyed by videos.id (what embed writes to video_embeddings)
    const items: string[] = spec.vocabularies.find((v: { name: string }) => v.name === 'item_id').tokens;
    expect(items[0]).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('--reviews: joins both URL forms to videos.external_id and reports unmatched rows', async () => {
    const lines = ['product_url,reviewer_id,stars'];
    const { interactions } = generateInteractions(catalog, { seed: 9, users: 60, clusters: 4 });
    interactions.forEach((x, i) => {
      const url = i % 2 ? `https://www.dmm.co.jp/digital/videoa/-/detail/=/cid=${x.itemId.toUpperCase()}/` : `https://video.dmm.co.jp/av/content/?id=${x.itemId}`;
      lines.push(`${url},${x.userId.replace('user-', '')},${x.label ? 5 : 1}`);
    });
    lines.push('https://video.dmm.co.jp/av/content/?id=notinthecatalog01,1,5');
    writeFileSync(dir.join('reviews.csv'), `${lines.join('\n')}\n`);
    const reporter = recordingReporter();
    const r = await train({ ...TINY, cwd: dir.path, db: dbUrl, reviews: 'reviews.csv', reporter, dryRun: true });
    expect(r.data.summary).toMatchObject({ reviewRows: interactions.length + 1, reviewRowsUnmatched: 1, reviewRowsBad: 0, interactions: interactions.length });
    expect(reporter.lines('warn').join('\n')).toMatch(/1 review row\(s\) \(1 product\(s\)\) matched no videos\.external_id and were not used, e\.g\. notinthecatalog01/);
  });
  it('--from-db: refuses a decision_type constraint it does not know (schema drift, exit 4)', async () => {
    // Last test of the file: it changes the shared database to the pre-May-2026 values.
    const db = await openPglite({ dir: dir.join('app-db') });
    await db.exec(`DELETE FROM public.user_video_decisions;
                   ALTER TABLE public.user_video_decisions DROP CONSTRAINT user_video_decisions_decision_type_check;
                   ALTER TABLE public.user_video_decisions ADD CONSTRAINT user_video_decisions_decision_type_check CHECK (decision_type IN ('like', 'nope'));`);
    await db.close();
    const err = await train({ ...TINY, cwd: dir.path, db: dbUrl, fromDb: true, dryRun: true }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ValidationFailedError);
    expect((err as ValidationFailedError).code).toBe('SCHEMA_DRIFT');
    expect((err as Error).message).toMatch(/decision_type allows like, nope; am-ml expects swipe_like, swipe_nope, grid_like, grid_nope/);
  });

});
