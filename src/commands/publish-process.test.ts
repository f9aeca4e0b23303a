/**
 * The real binary (`bin/am-ml.js` over dist/, built by `npm test`) in child processes against the loopback
 * Supabase server: a publish killed with SIGKILL in the middle of an upload, and two publishes racing for the
 * pointer. The server holds chosen requests so both scenarios happen in a fixed order, not by timing luck.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type FakeSupabase, startFakeSupabase } from '../testing/fake-supabase-storage.js';
import { writeModelFolder } from '../testing/model-folder.js';
import { REPO_ROOT, type TmpDir, tmpDir } from '../testing/tmp-dir.js';
import { modelsList, modelsVerify } from './models.js';
import { publish } from './publish.js';

const BIN = path.join(REPO_ROOT, 'bin', 'am-ml.js');
let t: TmpDir;
let fake: FakeSupabase;
let env: NodeJS.ProcessEnv;
const children: ChildProcess[] = [];

beforeEach(async () => {
  t = tmpDir();
  for (const seed of [1, 2, 3]) await writeModelFolder(t.join(`runs/${seed}`), { seed });
  fake = await startFakeSupabase();
  fake.setFunction('reload_models', () => ({ status: 200, body: { ok: true } }));
  env = { SUPABASE_URL: fake.url, SUPABASE_SERVICE_ROLE_KEY: fake.key, AMML_MODEL_STORE: 'supabase://models/prod' };
});
afterEach(async () => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await fake.stop();
  t.remove();
});

function amMl(args: string[]) {
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd: t.path,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal, stdout, stderr })),
  );
  return { child, done };
}

const pointerVersion = () => JSON.parse(fake.getObject('models', 'prod/two_tower/current.json')!.toString()).current.version as string;

describe('publish in a real process', () => {
  it('killed mid-upload: the old version stays current and complete, the new one is incomplete, and a re-run finishes it', async () => {
    await publish({ cwd: t.path, env, modelDir: 'runs/1', version: 'v1' });
    fake.inject({ method: 'POST', path: '/object/models/prod/two_tower/v2/user/model.json', action: { kind: 'stall' } });
    const run = amMl(['publish', 'runs/2', '--version', 'v2', '--json']);
    await fake.nextHeld();
    run.child.kill('SIGKILL');
    expect((await run.done).signal).toBe('SIGKILL');

    expect(pointerVersion()).toBe('v1');
    const list = await modelsList({ cwd: t.path, env });
    expect(list.versions.map((v) => [v.version, v.status, v.current])).toEqual([
      ['v2', 'incomplete', false], // newest write first
      ['v1', 'complete', true],
    ]);
    expect((await modelsVerify({ cwd: t.path, env, version: 'v1' })).ok).toBe(true);
    const landed = fake.objectNames('models').filter((n) => n.startsWith('prod/two_tower/v2/')).length;
    expect(landed).toBeLessThan(7);

    const resumed = await publish({ cwd: t.path, env, modelDir: 'runs/2', version: 'v2' });
    expect(resumed).toMatchObject({ activated: true, previous: 'v1', reused: landed, uploaded: 7 - landed });
    expect(pointerVersion()).toBe('v2');
  });

  it('two racing publishes: the one that read a stale pointer exits 6 and its version stays complete but not current', async () => {
    await publish({ cwd: t.path, env, modelDir: 'runs/1', version: 'v1' });
    fake.inject({ method: 'POST', path: '/object/models/prod/two_tower/vA/', action: { kind: 'hold' } });
    const a = amMl(['publish', 'runs/2', '--version', 'vA']);
    await fake.nextHeld(); // A has read the pointer (v1) and is uploading
    const b = await amMl(['publish', 'runs/3', '--version', 'vB']).done;
    expect(b.code).toBe(0);
    expect(pointerVersion()).toBe('vB');
    fake.releaseHeld();
    const ra = await a.done;
    expect(ra.code).toBe(6);
    expect(ra.stderr).toMatch(/changed from v1 to vB while this command ran, so vA was not made current/);
    expect(ra.stderr).toMatch(/am-ml rollback --to vA/);
    const pointer = JSON.parse(fake.getObject('models', 'prod/two_tower/current.json')!.toString());
    expect(pointer.current.version).toBe('vB');
    expect(pointer.history.map((e: { version: string }) => e.version)).toEqual(['v1']);
    expect((await modelsVerify({ cwd: t.path, env, version: 'vA' })).ok).toBe(true);
  });
});
