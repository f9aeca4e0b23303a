/**
 * `am-ml quickstart --json`, the README's first command, through the real binary (bin/am-ml.js over dist/, built by
 * `npm test`) in a temporary folder, twice. A smaller world than the default (the hidden --items/--users/--epochs
 * flags) keeps it to about a minute; the default size is measured in the README and the report, not here.
 *
 * Checked: one JSON document, every step ok; the model beats popularity; the towers passed validation; the sample
 * users' recommendations carry their taste far more often than the popularity feed; the live tables hold one
 * version (read from the database itself); a second run keeps the catalog and the log, publishes a new version
 * and switches to it; no replay credential in the output.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDb } from '../db/open.js';
import { FAKE_DMM_API_ID } from '../testing/fake-dmm-server.js';
import { REPO_ROOT, type TmpDir, tmpDir } from '../testing/tmp-dir.js';
import type { QuickstartResult } from './quickstart.js';

const BIN = path.join(REPO_ROOT, 'bin', 'am-ml.js');
const SIZE = ['--items', '600', '--users', '300', '--epochs', '15'];
const RUN_TIMEOUT_MS = 240_000;

let dir: TmpDir;
let first: { code: number | null; doc: { ok: boolean; command: string; result: QuickstartResult }; stdout: string; stderr: string };
let second: typeof first;

function quickstart(): typeof first {
  const r = spawnSync(process.execPath, [BIN, 'quickstart', '--json', '--dir', 'work', ...SIZE], {
    cwd: dir.path,
    // No DMM or Supabase credentials, and a database URL in the environment that the quickstart must ignore.
    env: { PATH: process.env.PATH, HOME: process.env.HOME, AMML_DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none' },
    encoding: 'utf8',
    timeout: RUN_TIMEOUT_MS,
  });
  const lines = r.stdout.trim().split('\n');
  expect(lines, r.stderr.slice(-2000)).toHaveLength(1);
  return { code: r.status, doc: JSON.parse(lines[0]), stdout: r.stdout, stderr: r.stderr };
}

beforeAll(() => {
  dir = tmpDir();
  first = quickstart();
  second = quickstart();
}, 2 * RUN_TIMEOUT_MS + 10_000);
afterAll(() => dir.remove());

describe('am-ml quickstart --json', () => {
  it('runs every step and exits 0 with one JSON document', () => {
    expect(first.code, first.stderr.slice(-2000)).toBe(0);
    expect(first.doc).toMatchObject({ schemaVersion: 1, command: 'quickstart', ok: true });
    const r = first.doc.result;
    expect(r.dir).toBe(dir.join('work'));
    expect(r.steps.map((s) => s.name)).toEqual(['init', 'catalog', 'interactions', 'train', 'validate', 'publish', 'embed', 'recommend']);
    expect(r.steps.every((s) => s.ok && s.seconds >= 0 && s.summary.length > 0)).toBe(true);
    expect(r.catalog.sync.items).toMatchObject({ seen: 600, inserted: 600, invalid: 0 });
    expect(r.catalog.floors).toEqual({ videoa: 510, videoc: 90 });
    expect(r.catalog.sync.reconciliation).toMatchObject({ difference: 0, unexplained: 0 });
    expect(r.interactions).toMatchObject({ users: 300 });
    expect(r.interactions.inserted.decisions).toBe(r.interactions.likes + r.interactions.nopes);
    for (const f of Object.values(r.written).flat()) expect(path.isAbsolute(f as string)).toBe(true);
  });

  it('trains a model that beats the popularity baseline, proves both towers equal, and publishes it gated', () => {
    const r = first.doc.result;
    const metric = (name: string) => r.evaluation.metrics.find((m) => m.name === name)!;
    expect(r.evaluation.beatsPopularity).toBe(true);
    expect(metric('recall@100').model).toBeGreaterThan(metric('recall@100').popularity + 0.1);
    expect(metric('ndcg@10').model).toBeGreaterThan(metric('ndcg@10').popularity);
    expect(r.validation.map((v) => [v.tower, v.ok])).toEqual([['item', true], ['user', true]]);
    for (const v of r.validation) expect(v.maxAbsDiff).toBeLessThan(1e-5);
    expect(r.published).toMatchObject({ name: 'two_tower', version: r.training.runId, previous: null });
    expect(r.published.gate).toEqual([expect.stringMatching(/^recall@100>0\.\d+/), expect.stringMatching(/^ndcg@10>0\.\d+/)]);
    expect(r.embedded).toMatchObject({ version: r.training.runId, items: 600, users: 300, switched: true });
  });

  it("recommends what the sample users' taste explains, far more often than the popularity feed", () => {
    const r = first.doc.result;
    expect(r.samples).toHaveLength(2);
    expect(new Set(r.samples.map((s) => s.cluster)).size).toBe(2);
    for (const s of r.samples) {
      expect(s.querySource).toBe('liked-items-mean');
      expect(s.modelVersion).toBe(r.training.runId);
      expect(s.recentLikes).toHaveLength(5);
      expect(s.recommendations).toHaveLength(8);
      // Scores descend (L2 ranking) and nothing already decided is recommended.
      const scores = s.recommendations.map((x) => x.score);
      expect(scores).toEqual([...scores].sort((a, b) => b - a));
      // The taste is visible in the likes: its makers, genres and performers are carried by most of them.
      expect(s.taste.of).toBeGreaterThanOrEqual(15);
      const likesCarrying = s.recentLikes.filter((l) => l.shared.matches).length;
      expect(likesCarrying).toBeGreaterThanOrEqual(3);
      for (const rec of s.recommendations.filter((x) => x.shared.matches)) {
        expect(Boolean(rec.shared.maker) || rec.shared.performers.length > 0 || rec.shared.genres.length > 0).toBe(true);
      }
    }
    // Most of the samples' recommendations share a maker, performer or genre of their taste, and more than popular
    // videos do. Averaged over the two: one sample alone is noisy at this small size (video ids are random UUIDs, so
    // each fresh database orders the training rows differently and trains a slightly different model).
    const mean = (f: (s: (typeof r.samples)[number]) => number) => (f(r.samples[0]) + f(r.samples[1])) / 2;
    expect(mean((s) => s.relevance.model)).toBeGreaterThanOrEqual(0.5);
    expect(mean((s) => s.relevance.model)).toBeGreaterThan(mean((s) => s.relevance.popularity));
    // Over many users (two samples are noisy): the model's top 8 carry the taste much more often.
    expect(r.relevance.users).toBeGreaterThanOrEqual(50);
    // Seen 0.745–0.815 over six fresh databases at this size (popularity: 0.38); 0.6 leaves room for the UUID order.
    expect(r.relevance.model).toBeGreaterThanOrEqual(0.6);
    expect(r.relevance.model - r.relevance.popularity).toBeGreaterThanOrEqual(0.25);
  });

  it('runs again: catalog and decisions unchanged, a new version published and switched to, one version live', async () => {
    expect(second.code, second.stderr.slice(-2000)).toBe(0);
    const a = first.doc.result;
    const b = second.doc.result;
    expect(b.steps.every((s) => s.ok)).toBe(true);
    expect(b.catalog.sync.items).toMatchObject({ seen: 600, inserted: 0, updated: 0, unchanged: 600 });
    expect(b.interactions.inserted).toEqual({ users: 0, decisions: 0 });
    expect(b.training.runId).not.toBe(a.training.runId);
    expect(b.published).toMatchObject({ version: b.training.runId, previous: a.training.runId });
    expect(b.embedded).toMatchObject({ version: b.training.runId, switched: true });
    expect(b.live).toEqual({
      servedVersion: b.training.runId,
      videoEmbeddings: [{ version: b.training.runId, rows: 600 }],
      userEmbeddings: [{ version: b.training.runId, rows: 300 }],
    });
    // The same users are sampled again (seeded), now served by the new version.
    expect(b.samples.map((s) => s.userId)).toEqual(a.samples.map((s) => s.userId));
    // Read the live tables directly, not through the summary.
    const db = await openDb({ url: `pglite://${b.written.database}`, cwd: dir.path });
    try {
      for (const table of ['public.video_embeddings', 'public.user_embeddings']) {
        const { rows } = await db.query<{ v: string; n: number }>(`SELECT model_version AS v, count(*)::int AS n FROM ${table} GROUP BY 1`);
        expect(rows.map((x) => x.v)).toEqual([b.training.runId]);
      }
    } finally {
      await db.close();
    }
  });

  it('prints no credential, and says where everything was written', () => {
    for (const run of [first, second]) {
      expect(run.stdout).not.toContain(FAKE_DMM_API_ID);
      expect(run.stderr).not.toContain(FAKE_DMM_API_ID);
      expect(run.stdout).not.toContain('nobody@');
    }
    const w = second.doc.result.written;
    expect(w.database).toBe(dir.join('work', '.am-ml', 'db'));
    expect(w.store).toBe(dir.join('work', '.am-ml', 'models'));
    expect(w.version).toBe(path.join(w.store, 'two_tower', second.doc.result.training.runId));
    expect(w.run).toBe(dir.join('work', '.am-ml', 'runs', second.doc.result.training.runId));
  });
});
