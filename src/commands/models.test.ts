import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { main } from '../cli.js';
import { EXIT } from '../errors.js';
import { captureStream } from '../testing/capture.js';
import { type FakeSupabase, startFakeSupabase } from '../testing/fake-supabase-storage.js';
import { writeModelFolder } from '../testing/model-folder.js';
import { type TmpDir, tmpDir } from '../testing/tmp-dir.js';
import { doctor } from './doctor.js';
import { resolveModel } from './model-ref.js';
import { modelsList, modelsPrune, modelsVerify } from './models.js';
import { publish } from './publish.js';
import { rollback } from './rollback.js';

let t: TmpDir;
let fake: FakeSupabase | undefined;
beforeEach(async () => {
  t = tmpDir();
  for (const seed of [1, 2, 3]) await writeModelFolder(t.join(`runs/${seed}`), { seed });
});
afterEach(async () => {
  t.remove();
  await fake?.stop();
  fake = undefined;
});

async function cli(args: string[], env: NodeJS.ProcessEnv = {}) {
  const stdout = captureStream();
  const stderr = captureStream();
  const code = await main(['node', 'am-ml', ...args], { stdout, stderr: stderr as unknown as NodeJS.WriteStream, env, cwd: t.path, handleSignals: false });
  return { code, stdout: stdout.text(), stderr: stderr.text() };
}

/** Both stores; the supabase one through the real client against the loopback server. */
const stores: [string, () => Promise<NodeJS.ProcessEnv>, (path: string, flip: (b: Buffer) => void) => void][] = [
  [
    'file',
    async () => ({}),
    (p, flip) => {
      const file = t.join('.am-ml/models', p);
      const b = readFileSync(file);
      flip(b);
      writeFileSync(file, b);
    },
  ],
  [
    'supabase',
    async () => {
      fake = await startFakeSupabase();
      fake.setFunction('reload_models', () => ({ status: 200, body: { ok: true } }));
      return { SUPABASE_URL: fake.url, SUPABASE_SERVICE_ROLE_KEY: fake.key, AMML_MODEL_STORE: 'supabase://models/prod' };
    },
    (p, flip) => {
      const b = Buffer.from(fake!.getObject('models', `prod/${p}`)!);
      flip(b);
      fake!.putObject('models', `prod/${p}`, b);
    },
  ],
];

describe.each(stores)('models and rollback (%s store)', (_kind, setup, damage) => {
  it('lists, rolls back, verifies, repairs, prunes, and resolves --model', async () => {
    const env = await setup();
    const common = { cwd: t.path, env };
    for (const [seed, v] of [[1, 'v1'], [2, 'v2'], [3, 'v3']] as const) await publish({ ...common, modelDir: `runs/${seed}`, version: v });

    const list = await modelsList(common);
    expect(list.versions.map((v) => [v.version, v.status, v.current, v.previous])).toEqual([
      ['v3', 'complete', true, false],
      ['v2', 'complete', false, true],
      ['v1', 'complete', false, false],
    ]);
    const text = await cli(['models'], env);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^\*\s+v3\s+complete/m);

    const back = await rollback(common);
    expect(back).toMatchObject({ from: 'v3', to: 'v2', changed: true });
    if (fake) expect(fake.invocations.at(-1)).toMatchObject({ name: 'reload_models', body: { version: 'v2' } });
    const dry = await rollback({ ...common, to: 'v1', dryRun: true });
    expect(dry).toMatchObject({ to: 'v1', changed: false, dryRun: true });
    expect((await modelsList(common)).current).toBe('v2');
    expect((await cli(['models', '--check'], env)).code).toBe(EXIT.VALIDATION); // v3 is newer than current

    expect((await cli(['models', 'verify'], env)).code).toBe(0);
    damage('two_tower/v2/item/group1-shard1of1.bin', (b) => (b[0] ^= 0x80));
    const verify = await cli(['models', 'verify', '--json'], env);
    expect(verify.code).toBe(EXIT.VALIDATION);
    const doc = JSON.parse(verify.stdout).result;
    expect(doc.ok).toBe(false);
    expect(doc.versions.find((v: { version: string }) => v.version === 'v2')).toMatchObject({ status: 'corrupt', problems: [{ path: 'item/group1-shard1of1.bin', problem: 'sha256' }] });
    expect((await cli(['models', 'verify', 'v3'], env)).code).toBe(0);
    expect((await cli(['models', 'verify', 'v2'], env)).code).toBe(EXIT.VALIDATION);
    expect((await resolveModel({ ...common, model: 'v2' }).catch((e) => e)).code).toBe('CHECKSUM_MISMATCH');

    const repaired = await modelsVerify({ ...common, repair: true });
    expect(repaired.ok).toBe(true);
    expect(repaired.repair!.moved).toMatchObject({ from: 'v2', to: 'v3', changed: true });
    expect(repaired.current).toBe('v3');
    const again = await cli(['models', 'verify', '--repair'], env);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/repair: current is complete; nothing to repair/);
    expect((await cli(['models', '--check', '--json'], env)).code).toBe(0);

    const resolved = await resolveModel(common);
    expect(resolved).toMatchObject({ version: 'v3', source: 'download', published: true });
    expect((await resolveModel({ ...common, model: 'current' })).source).toBe('cache');
    expect((await resolveModel({ ...common, model: 'runs/1' })).source).toBe('dir');

    const pruned = await modelsPrune({ ...common, keep: 1 });
    // current v3 is the newest; its predecessor v2 stays although it is damaged; v1 goes.
    expect(pruned.removed.map((r) => r.version)).toEqual(['v1']);
    expect((await modelsList(common)).versions.map((v) => v.version)).toEqual(['v3', 'v2']);
    const target = await cli(['rollback', '--to', 'v1'], env);
    expect(target.code).toBe(EXIT.CONFLICT);
    expect(target.stderr).toMatch(/v1 is not in/);
  });

  it('doctor reaches the store and reports the current version', async () => {
    const env = await setup();
    mkdirSync(t.join('.am-ml/models'), { recursive: true }); // the file store's folder (`am-ml init` makes it)
    await publish({ cwd: t.path, env, modelDir: 'runs/1', version: 'v1' });
    const r = await doctor({ cwd: t.path, env, tf: false });
    expect(r.checks.find((c) => c.name === 'model-store')).toMatchObject({ ok: true, detail: expect.stringMatching(/reachable/) });
    expect(r.checks.find((c) => c.name === 'model-current')).toMatchObject({ ok: true, detail: expect.stringMatching(/two_tower v1/) });
  });
});

describe('doctor with an unreachable supabase:// store', () => {
  it('fails the model-store check with the storage error, not just "configured"', async () => {
    fake = await startFakeSupabase();
    const env = { SUPABASE_URL: fake.url, SUPABASE_SERVICE_ROLE_KEY: 'sb_secret_notthekeynotthekeynotthekey', AMML_MODEL_STORE: 'supabase://models/prod' };
    const r = await doctor({ cwd: t.path, env, tf: false });
    const c = r.checks.find((x) => x.name === 'model-store')!;
    expect(c.ok).toBe(false);
    expect(c.detail).toMatch(/status 403/);
    expect(c.hint).toMatch(/SUPABASE_SERVICE_ROLE_KEY/);
    expect(r.ok).toBe(false);
    await fake.stop();
    fake = undefined;
    const gone = await doctor({ cwd: t.path, env, tf: false });
    expect(gone.checks.find((x) => x.name === 'model-store')).toMatchObject({ ok: false, detail: expect.stringMatching(/network error/) });
  });
});
