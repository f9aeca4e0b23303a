import { readFileSync, writeFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { main } from '../cli.js';
import { ConfigError, EXIT, UsageError, ValidationFailedError } from '../errors.js';
import { parseManifest } from '../ml/artifacts-fs.js';
import { localStore } from '../registry/backends/local.js';
import { readCurrent } from '../registry/registry.js';
import { captureStream } from '../testing/capture.js';
import { type FakeSupabase, startFakeSupabase } from '../testing/fake-supabase-storage.js';
import { writeModelFolder } from '../testing/model-folder.js';
import { recordingReporter } from '../testing/recording-reporter.js';
import { type TmpDir, tmpDir } from '../testing/tmp-dir.js';
import { publish } from './publish.js';

let t: TmpDir;
let fake: FakeSupabase | undefined;
beforeEach(async () => {
  t = tmpDir();
  await writeModelFolder(t.join('runs/a'), { seed: 1, metrics: { 'recall@100': 0.3, 'ndcg@10': 0.1 } });
  await writeModelFolder(t.join('runs/b'), { seed: 2, metrics: { 'recall@100': 0.25, 'ndcg@10': 0.2 } });
  await writeModelFolder(t.join('export/out'), { seed: 3, kind: 'keras-export' });
});
afterEach(async () => {
  t.remove();
  await fake?.stop();
  fake = undefined;
});

const local = () => ({ store: localStore({ dir: t.join('.am-ml/models') }), name: 'two_tower', parseManifest });
const currentOf = async () => (await readCurrent(local())).pointer?.current;

async function cli(args: string[], env: NodeJS.ProcessEnv = {}) {
  const stdout = captureStream();
  const stderr = captureStream() as unknown as NodeJS.WriteStream;
  const code = await main(['node', 'am-ml', ...args], { stdout, stderr, env, cwd: t.path, handleSignals: false });
  return { code, stdout: stdout.text(), stderr: (stderr as unknown as ReturnType<typeof captureStream>).text() };
}

describe('publish (file store)', () => {
  it('publishes, verifies and activates, with a bar per file and the sha256 pass reported', async () => {
    const reporter = recordingReporter();
    const r = await publish({ cwd: t.path, env: {}, reporter, modelDir: 'runs/a', version: 'v1', notes: 'first' });
    expect(r).toMatchObject({ name: 'two_tower', version: 'v1', activated: true, previous: null, uploaded: 7, reused: 0, files: 7 });
    expect(r.reload).toMatchObject({ ok: true, skipped: expect.stringMatching(/not on Supabase/) });
    const bars = reporter.events.filter((e) => e.kind === 'progress').map((e) => (e as { label: string }).label);
    expect(bars).toContain('Uploading 7 files');
    expect(bars).toContain('  user/group1-shard1of1.bin');
    expect(bars).toContain('Verifying v1 (sha256)');
    expect(reporter.lines('info')).toContain('current moved: none → v1');
    expect((await currentOf())!.notes).toBe('first');
    const stored = parseManifest(readFileSync(t.join('.am-ml/models/two_tower/v1/manifest.json'), 'utf8'), 'x');
    expect(stored.publication).toMatchObject({ name: 'two_tower', version: 'v1', notes: 'first', sourcePath: t.join('runs/a') });
  });

  it('defaults the version to a sortable UTC id and publishes export output', async () => {
    const r = await publish({ cwd: t.path, env: {}, modelDir: 'export/out', now: () => new Date('2026-11-22T09:15:00.123Z') });
    expect(r.version).toBe('20261122T091500Z');
    expect(r.source.kind).toBe('keras-export');
    expect((await currentOf())!.towers).toEqual({ model: { path: 'model' } });
  });

  it('refuses on a failed gate (exit 4) before writing anything', async () => {
    const err = await publish({ cwd: t.path, env: {}, modelDir: 'runs/b', version: 'v1', gate: ['recall@100>=0.3'] }).catch((e) => e);
    expect(err).toBeInstanceOf(ValidationFailedError);
    expect(err.code).toBe('GATE_REFUSED');
    expect(err.message).toMatch(/recall@100>=0.3: recall@100 is 0.25/);
    expect(await local().store.list('')).toEqual([]);
  });

  it('compares with the current version, and records a forced publish with its reason', async () => {
    await publish({ cwd: t.path, env: {}, modelDir: 'runs/a', version: 'v1', gateVsCurrent: ['recall@100'] });
    const refused = await publish({ cwd: t.path, env: {}, modelDir: 'runs/b', version: 'v2', gateVsCurrent: ['recall@100'] }).catch((e) => e);
    expect(refused.code).toBe('GATE_REFUSED');
    expect(refused.message).toMatch(/recall@100>=current\(0.3\): recall@100 is 0.25/);
    // ndcg@10 improved, recall did not: forcing is recorded in the published manifest.
    const reporter = recordingReporter();
    const r = await publish({ cwd: t.path, env: {}, reporter, modelDir: 'runs/b', version: 'v2', gateVsCurrent: ['recall@100', 'ndcg@10'], force: true, reason: 'ndcg matters more' });
    expect(r.gate).toMatchObject({ passed: false, forcedReason: 'ndcg matters more' });
    expect(reporter.lines('warn').join('\n')).toMatch(/publishing anyway/);
    const stored = parseManifest(readFileSync(t.join('.am-ml/models/two_tower/v2/manifest.json'), 'utf8'), 'x');
    expect(stored.publication!.gate).toEqual({ expressions: ['recall@100>=current(0.3)', 'ndcg@10>=current(0.1)'], passed: false, forcedReason: 'ndcg matters more' });
  });

  it('checks flag combinations first', async () => {
    await expect(publish({ cwd: t.path, env: {}, modelDir: 'runs/a', force: true })).rejects.toBeInstanceOf(UsageError);
    await expect(publish({ cwd: t.path, env: {}, modelDir: 'runs/a', reason: 'x' })).rejects.toBeInstanceOf(UsageError);
    await expect(publish({ cwd: t.path, env: {}, modelDir: 'runs/a', version: '../up' })).rejects.toBeInstanceOf(UsageError);
    await expect(publish({ cwd: t.path, env: {}, modelDir: 'runs/a', version: 'current' })).rejects.toBeInstanceOf(UsageError);
    await expect(publish({ cwd: t.path, env: {}, modelDir: 'runs/a', gate: ['recall is good'] })).rejects.toBeInstanceOf(UsageError);
  });

  it('refuses a damaged or invalid source folder without uploading', async () => {
    const shard = t.join('runs/a/item/group1-shard1of1.bin');
    const bytes = readFileSync(shard);
    bytes[3] ^= 1;
    writeFileSync(shard, bytes);
    const damaged = await publish({ cwd: t.path, env: {}, modelDir: 'runs/a' }).catch((e) => e);
    expect(damaged.code).toBe('MODEL_FOLDER_DAMAGED');
    expect(damaged.exitCode).toBe(EXIT.VALIDATION);
    writeFileSync(t.join('runs/b/manifest.json'), '{"schemaVersion":1}');
    const invalid = await publish({ cwd: t.path, env: {}, modelDir: 'runs/b' }).catch((e) => e);
    expect(invalid).toBeInstanceOf(ConfigError);
    expect(await local().store.list('')).toEqual([]);
  });

  it('--dry-run writes nothing; --no-activate leaves current alone', async () => {
    const dry = await publish({ cwd: t.path, env: {}, modelDir: 'runs/a', version: 'v1', dryRun: true });
    expect(dry).toMatchObject({ dryRun: true, activated: false, uploaded: 0 });
    expect(await local().store.list('')).toEqual([]);
    await publish({ cwd: t.path, env: {}, modelDir: 'runs/a', version: 'v1' });
    const r = await publish({ cwd: t.path, env: {}, modelDir: 'runs/b', version: 'v2', activate: false });
    expect(r.activated).toBe(false);
    expect(r.reload).toBeUndefined();
    expect((await currentOf())!.version).toBe('v1');
  });

  it('through the CLI: --version is the version id, one JSON document, exit 6 for an existing version', async () => {
    const first = await cli(['publish', 'runs/a', '--version', 'v1', '--json']);
    expect(first.code).toBe(0);
    const doc = JSON.parse(first.stdout);
    expect(doc).toMatchObject({ schemaVersion: 1, command: 'publish', ok: true, result: { version: 'v1', activated: true } });
    const again = await cli(['publish', 'runs/b', '--version', 'v1', '--json']);
    expect(again.code).toBe(EXIT.CONFLICT);
    expect(JSON.parse(again.stdout).error).toMatchObject({ code: 'VERSION_EXISTS', exitCode: 6 });
    expect((await cli(['--version'])).stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });
});

describe('publish (supabase store, real client against the loopback server)', () => {
  const envFor = (f: FakeSupabase) => ({ SUPABASE_URL: f.url, SUPABASE_SERVICE_ROLE_KEY: f.key, AMML_MODEL_STORE: 'supabase://models/prod' });

  it('uploads under the prefix, moves the pointer and asks reload_models to load the version', async () => {
    fake = await startFakeSupabase();
    fake.setFunction('reload_models', (body) => ({ status: 200, body: { loaded: (body as { version: string }).version } }));
    const r = await publish({ cwd: t.path, env: envFor(fake), modelDir: 'runs/a', version: 'v1' });
    expect(r.store).toBe('supabase://models/prod');
    expect(r.path).toBe('prod/two_tower/v1');
    expect(r.reload).toMatchObject({ ok: true, function: 'reload_models', response: { loaded: 'v1' } });
    expect(fake.invocations).toEqual([{ name: 'reload_models', body: { version: 'v1', name: 'two_tower' }, authorized: true }]);
    const pointer = JSON.parse(fake.getObject('models', 'prod/two_tower/current.json')!.toString());
    expect(pointer.current).toMatchObject({ version: 'v1', path: 'prod/two_tower/v1' });
    expect(fake.objectNames('models')).toContain('prod/two_tower/v1/user/group1-shard1of1.bin');
  });

  it('exits 5 when the reload fails, but the publish stands and says so; --no-reload skips it', async () => {
    fake = await startFakeSupabase();
    fake.setFunction('reload_models', () => ({ status: 500, body: { error: 'boom' } }));
    const r = await cli(['publish', 'runs/a', '--version', 'v1'], envFor(fake));
    expect(r.code).toBe(EXIT.EXTERNAL);
    expect(r.stdout).toMatch(/current:\s+none → v1/);
    expect(r.stdout).toMatch(/reload:\s+FAILED: reload_models did not confirm v1 .*The pointer has moved/);
    expect(fake.invocations.length).toBe(3); // retried
    expect(JSON.parse(fake.getObject('models', 'prod/two_tower/current.json')!.toString()).current.version).toBe('v1');
    const quiet = await cli(['publish', 'runs/b', '--version', 'v2', '--no-reload', '--reload-function', 'other', '--json'], envFor(fake));
    expect(quiet.code).toBe(0);
    expect(JSON.parse(quiet.stdout).result.reload).toMatchObject({ skipped: '--no-reload' });
    expect(fake.invocations.length).toBe(3);
  });

  it('names a custom reload function, and never prints the service key', async () => {
    fake = await startFakeSupabase();
    fake.setFunction('reload_v2', () => ({ status: 200, body: 'ok' }));
    const r = await cli(['publish', 'runs/a', '--version', 'v1', '--reload-function', 'reload_v2', '--json', '--verbose'], envFor(fake));
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).result.reload).toMatchObject({ ok: true, function: 'reload_v2' });
    fake.inject({ method: 'POST', path: '/object/list/models', action: { kind: 'status', status: 400, message: 'refused' } });
    const failed = await cli(['publish', 'runs/b', '--version', 'v2', '--json'], envFor(fake));
    expect(failed.code).toBe(EXIT.EXTERNAL);
    expect(JSON.parse(failed.stdout).error).toMatchObject({ code: 'STORAGE', exitCode: 5 });
    for (const out of [r.stdout, r.stderr, failed.stdout, failed.stderr]) expect(out).not.toContain(fake.key);
  });

  it('asks for both Supabase settings at once when they are missing (exit 3)', async () => {
    const err = await publish({ cwd: t.path, env: { AMML_MODEL_STORE: 'supabase://models/prod' }, modelDir: 'runs/a' }).catch((e) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.issues.map((i: { key: string }) => i.key)).toEqual(['SUPABASE_URL', 'SUPABASE_SERVICE_ROLE_KEY']);
  });
});
