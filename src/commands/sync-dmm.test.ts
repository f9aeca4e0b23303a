import { spawn } from 'node:child_process';
import { cpSync } from 'node:fs';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../cli.js';
import { openPglite } from '../db/pglite.js';
import { ConfigError, UsageError, ValidationFailedError } from '../errors.js';
import { catalogCounts, expectedRow, storedVideos } from '../testing/catalog-assert.js';
import { generateDmmCatalog, type RawItem, type ReplayCatalog } from '../testing/dmm-catalog.js';
import { type FakeDmmServer, startFakeDmmServer } from '../testing/fake-dmm-server.js';
import { recordingReporter } from '../testing/recording-reporter.js';
import { REPO_ROOT, type TmpDir, tmpDir } from '../testing/tmp-dir.js';
import { init } from './init.js';
import { syncDmm } from './sync-dmm.js';

const SECRET_ID = 'cmd-test-secret-api-id';
const SECRET_AFF = 'cmd-test-secret-990';
const BIN = path.join(REPO_ROOT, 'bin', 'am-ml.js');

let tmp: TmpDir;
let template: string;
beforeAll(async () => {
  tmp = tmpDir('am-ml-sync-dmm-');
  // `am-ml init` once (seconds: initdb + migrations); each test gets a copy of the folder.
  await init({ cwd: tmp.join('template'), env: {} });
  template = tmp.join('template', '.am-ml', 'db');
});
afterAll(() => tmp.remove());

async function withServer<T>(catalog: ReplayCatalog, fn: (s: FakeDmmServer) => Promise<T>): Promise<T> {
  const server = await startFakeDmmServer({ catalog, apiId: SECRET_ID, affiliateId: SECRET_AFF });
  try {
    return await fn(server);
  } finally {
    await server.close();
  }
}

/** A fresh embedded database folder with the schema applied (a copy of what `am-ml init` made). */
async function initDb(name: string): Promise<string> {
  const dir = tmp.join(name, 'db');
  cpSync(template, dir, { recursive: true });
  return `pglite://${dir}`;
}

function allItems(catalog: ReplayCatalog): RawItem[] {
  return catalog.floors.flatMap((f) => Array.from({ length: f.size }, (_, i) => f.itemAt(i)));
}

async function expectDbMatchesCatalog(url: string, catalog: ReplayCatalog) {
  const db = await openPglite({ dir: url.slice('pglite://'.length) });
  try {
    const stored = await storedVideos(db);
    const items = allItems(catalog);
    expect(stored.size).toBe(items.length);
    for (const raw of items) expect(stored.get(String(raw.content_id))).toEqual(expectedRow(raw));
    const counts = await catalogCounts(db);
    const dupes = await db.query(`SELECT external_id FROM videos GROUP BY 1 HAVING count(*) > 1`);
    expect(dupes.rows).toEqual([]);
    return counts;
  } finally {
    await db.close();
  }
}

describe('sync-dmm: flags and configuration', () => {
  const base = { env: { DMM_API_ID: SECRET_ID, DMM_AFFILIATE_ID: SECRET_AFF }, db: 'pglite://:memory:' };
  it.each([
    [{ resume: true, restart: true }, /--resume and --restart contradict each other/],
    [{ floors: ['videoz'] }, /--floor videoz is not a floor am-ml syncs; use videoa or videoc/],
    [{ from: '2024-02-30' }, /--from must be a date as YYYY-MM-DD/],
    [{ from: '2024-03-01', to: '2024-02-01' }, /--from 2024-03-01 is after --to 2024-02-01/],
    [{ rps: 0 }, /--rps must be above 0/],
    [{ chunk: 0 }, /--chunk must be a whole number/],
    [{ apiBaseUrl: 'ftp://x' }, /--api-base-url must be an http\(s\) URL/],
  ])('rejects %o', async (flags, message) => {
    const err = await syncDmm({ ...base, ...flags }).catch((e) => e);
    expect(err).toBeInstanceOf(UsageError);
    expect(err.message).toMatch(message);
  });

  it('lists every missing credential at once', async () => {
    const err = await syncDmm({ env: {}, db: 'pglite://:memory:', from: '2024-01-01', to: '2024-01-02' }).catch((e) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.message).toMatch(/DMM_API_ID: is not set/);
    expect(err.message).toMatch(/DMM_AFFILIATE_ID: is not set/);
  });

  it('explains a database without the schema', async () => {
    const catalog = generateDmmCatalog({ seed: 30, items: 10, from: '2024-01-01', to: '2024-01-02' });
    await withServer(catalog, async (s) => {
      const err = await syncDmm({ env: s.env, db: 'pglite://:memory:', from: '2024-01-01', to: '2024-01-02' }).catch((e) => e);
      expect(err).toBeInstanceOf(ValidationFailedError);
      expect(err.message).toMatch(/Schema drift: table public\.videos is missing/);
      expect(err.hint).toMatch(/am-ml db migrate/);
      expect(s.requests).toHaveLength(0);
    });
  });
});

describe('sync-dmm: against the replay server', () => {
  it('syncs, reports progress, returns the summary without secrets', async () => {
    const catalog = generateDmmCatalog({ seed: 31, items: { videoa: 300, videoc: 60 }, from: '2024-02-01', to: '2024-02-10' });
    const url = await initDb('cmd');
    await withServer(catalog, async (s) => {
      const reporter = recordingReporter();
      const r = await syncDmm({ env: s.env, db: url, reporter, from: '2024-02-01', to: '2024-02-10', rps: 100, chunk: 100 });
      expect(r).toMatchObject({ floors: ['digital/videoa', 'digital/videoc'], database: url, apiBaseUrl: s.url });
      expect(r.items).toMatchObject({ seen: 360, inserted: 360, invalid: 0 });
      expect(r.reconciliation).toMatchObject({ apiTotal: 360, stored: 360, unexplained: 0 });
      expect(reporter.lines('info').find((l) => l.startsWith('Starting'))).toMatch(/^Starting sync run sync-\d{8}T\d{6}Z-[0-9a-f]{6}: digital\/videoa, digital\/videoc 2024-02-01\.\.2024-02-10/);
      const updates = reporter.events.filter((e) => e.kind === 'progress-update');
      expect(updates.at(-1)).toMatchObject({ done: 360 });
      expect(reporter.events.some((e) => e.kind === 'progress-stop')).toBe(true);
      expect(JSON.stringify(r)).not.toContain(SECRET_ID);
      expect(JSON.stringify(reporter.events)).not.toContain(SECRET_AFF);
    });
    await expectDbMatchesCatalog(url, catalog);
  });

  it('prints one JSON document (success and failure), never a secret', async () => {
    const catalog = generateDmmCatalog({ seed: 32, items: 120, from: '2024-02-01', to: '2024-02-03' });
    const url = await initDb('cli');
    await withServer(catalog, async (s) => {
      const run = async (args: string[], env: NodeJS.ProcessEnv) => {
        const out = new PassThrough();
        const err = new PassThrough();
        let stdout = '';
        let stderr = '';
        out.on('data', (d) => (stdout += d));
        err.on('data', (d) => (stderr += d));
        const code = await main(['node', 'am-ml', ...args], { stdout: out, stderr: err as unknown as NodeJS.WriteStream, env, cwd: tmp.path, handleSignals: false });
        return { code, stdout, stderr };
      };
      const args = ['sync-dmm', '--json', '--db', url, '--floor', 'videoa', '--from', '2024-02-01', '--to', '2024-02-03', '--rps', '50'];
      const ok = await run(args, s.env);
      expect(ok.code).toBe(0);
      const doc = JSON.parse(ok.stdout);
      expect(doc).toMatchObject({ schemaVersion: 1, command: 'sync-dmm', ok: true, result: { items: { inserted: 120 } } });
      const bad = await run(args, { ...s.env, DMM_API_ID: 'wrong-api-id-value' });
      expect(bad.code).toBe(5);
      const fail = JSON.parse(bad.stdout);
      expect(fail).toMatchObject({ ok: false, error: { code: 'DMM_BAD_REQUEST', exitCode: 5 } });
      expect(fail.error.message).toMatch(/api_id: Invalid Request Error/);
      for (const text of [ok.stdout, ok.stderr, bad.stdout, bad.stderr]) {
        expect(text).not.toContain(SECRET_ID);
        expect(text).not.toContain(SECRET_AFF);
        expect(text).not.toContain('wrong-api-id-value');
      }
    });
  });
});

/** Run the built CLI in a child process; `onRequest` may kill it. */
function child(args: string[], env: NodeJS.ProcessEnv) {
  const p = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  p.stdout.on('data', (d) => (stdout += d));
  p.stderr.on('data', (d) => (stderr += d));
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve) =>
    p.on('exit', (code, signal) => resolve({ code, signal, stdout, stderr })),
  );
  return { process: p, done };
}

describe('sync-dmm: killed at any moment, resumed without loss or duplicates', () => {
  it('SIGKILL mid-run (twice), then rerun: every row as served, checkpoints match the rows', async () => {
    const catalog = generateDmmCatalog({ seed: 33, items: 1500, from: '2024-04-01', to: '2024-04-15' });
    const url = await initDb('kill');
    const args = ['sync-dmm', '--json', '--db', url, '--floor', 'videoa', '--from', '2024-04-01', '--to', '2024-04-15', '--chunk', '100', '--rps', '40'];
    await withServer(catalog, async (s) => {
      for (const killAt of [5, 9]) {
        let served = 0;
        const c = child(args, s.env);
        s.onRequest = () => {
          if (++served === killAt) c.process.kill('SIGKILL');
        };
        const exit = await c.done;
        expect(exit.signal).toBe('SIGKILL');
        // The checkpoint committed with the rows: stored videos are exactly those before next_offset.
        const db = await openPglite({ dir: url.slice('pglite://'.length) });
        try {
          const n = (await catalogCounts(db)).videos;
          const cp = await db.query<{ next_offset: number; status: string }>(`SELECT next_offset, status FROM am_ml.sync_checkpoints`);
          if (cp.rows.length) expect(n).toBe(cp.rows[0].next_offset - 1);
          else expect(n).toBe(0);
        } finally {
          await db.close();
        }
      }
      s.onRequest = undefined;
      const last = child(args, s.env);
      const exit = await last.done;
      expect(exit.code, exit.stderr).toBe(0);
      const doc = JSON.parse(exit.stdout);
      expect(doc.result).toMatchObject({ resumed: true, reconciliation: { apiTotal: 1500, stored: 1500, unexplained: 0 } });
      expect(doc.result.windows.probed).toBe(0); // resumed inside the window: no new probe
    });
    const counts = await expectDbMatchesCatalog(url, catalog);
    expect(counts.videos).toBe(1500);
  });

  it('Ctrl-C stops cleanly with exit 130 and says how to resume', async () => {
    const catalog = generateDmmCatalog({ seed: 34, items: 800, from: '2024-05-01', to: '2024-05-10' });
    const url = await initDb('sigint');
    const args = ['sync-dmm', '--json', '--db', url, '--floor', 'videoa', '--from', '2024-05-01', '--to', '2024-05-10', '--chunk', '100', '--rps', '20'];
    await withServer(catalog, async (s) => {
      let served = 0;
      const c = child(args, s.env);
      s.onRequest = () => {
        if (++served === 3) c.process.kill('SIGINT');
      };
      const exit = await c.done;
      expect(exit.code, exit.stdout + exit.stderr).toBe(130);
      const doc = JSON.parse(exit.stdout);
      expect(doc).toMatchObject({ ok: false, error: { code: 'INTERRUPTED', exitCode: 130 } });
      expect(doc.error.message).toMatch(/run the same command again to resume/);
      s.onRequest = undefined;
      const again = child(args, s.env);
      expect((await again.done).code).toBe(0);
    });
    await expectDbMatchesCatalog(url, catalog);
  });
});
