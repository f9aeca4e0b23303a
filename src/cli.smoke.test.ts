/**
 * The real binary (`bin/am-ml.js` over dist/, built by `npm test` before vitest runs) in child processes: exit
 * codes, one JSON document on stdout, TF.js not loaded by commands that do not need it, quiet EPIPE.
 * Later commands add their smoke cases here.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeTinyDataset } from './testing/synthetic-data.js';
import { REPO_ROOT, type TmpDir, tmpDir } from './testing/tmp-dir.js';

const BIN = path.join(REPO_ROOT, 'bin', 'am-ml.js');
let dir: TmpDir;
beforeAll(() => {
  dir = tmpDir();
});
afterAll(() => dir.remove());

function amMl(args: string[], env: NodeJS.ProcessEnv = {}) {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    cwd: dir.path,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    encoding: 'utf8',
    timeout: 120_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function jsonDoc(stdout: string) {
  const lines = stdout.trim().split('\n');
  expect(lines).toHaveLength(1);
  return JSON.parse(lines[0]);
}

describe('bin/am-ml.js', () => {
  it('--help and --version exit 0', () => {
    expect(amMl(['--help']).code).toBe(0);
    expect(amMl(['--version']).stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });

  it('does not load TensorFlow.js for --help or doctor --no-tf', () => {
    const script = `
      const { main } = await import(${JSON.stringify(path.join(REPO_ROOT, 'dist', 'cli.js'))});
      const { createRequire } = await import('node:module');
      const sink = { write() { return true; } };
      await main(['node', 'am-ml', ...JSON.parse(process.argv[1])], { stdout: sink, stderr: sink, handleSignals: false });
      const loaded = Object.keys(createRequire(import.meta.url).cache).filter((k) => k.includes('@tensorflow'));
      console.log(JSON.stringify(loaded.length));`;
    for (const args of [['--help'], ['doctor', '--no-tf', '--json']]) {
      const r = spawnSync(process.execPath, ['--input-type=module', '-e', script, JSON.stringify(args)], {
        cwd: dir.path,
        encoding: 'utf8',
      });
      expect([args.join(' '), r.stdout.trim()]).toEqual([args.join(' '), '0']);
    }
  });

  it('does not load TensorFlow.js for sync-dmm, models and rollback (their modules, imported)', () => {
    const script = `
      for (const m of ['sync-dmm', 'models', 'rollback', 'publish']) await import(${JSON.stringify(path.join(REPO_ROOT, 'dist', 'commands'))} + '/' + m + '.js');
      const { createRequire } = await import('node:module');
      console.log(Object.keys(createRequire(import.meta.url).cache).filter((k) => k.includes('@tensorflow')).length);`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: dir.path, encoding: 'utf8' });
    expect(r.stdout.trim()).toBe('0');
  });

  it('init then doctor --json: one document each, exit 0, the active TF backend reported', () => {
    const init = amMl(['init', '--json']);
    expect(init.code).toBe(0);
    expect(jsonDoc(init.stdout)).toMatchObject({ schemaVersion: 1, command: 'init', ok: true });
    const doctor = amMl(['doctor', '--json']);
    expect(doctor.code).toBe(0);
    const doc = jsonDoc(doctor.stdout);
    expect(doc.result.ok).toBe(true);
    expect(['tensorflow', 'wasm', 'cpu']).toContain(doc.result.tf.backend);
  });

  it('exits 3 on bad env with every problem listed, and 2 on a bad flag', () => {
    const bad = amMl(['doctor', '--no-tf', '--json'], { AMML_MODEL_STORE: 'ftp://x', AMML_DATABASE_URL: 'sqlite://y' });
    expect(bad.code).toBe(4); // doctor's answer is its exit code: config is a failing needed check
    expect(jsonDoc(bad.stdout).result.checks.find((c: { name: string }) => c.name === 'config').detail).toMatch(/2 problems/);
    const init = amMl(['init', '--json'], { AMML_MODEL_STORE: 'ftp://x' });
    expect(init.code).toBe(3);
    expect(amMl(['init', '--dim', '0']).code).toBe(2);
  });

  it('train --json: one document, exit 0; a failed --gate exits 4 with the run written', () => {
    writeTinyDataset(path.join(dir.path, 'train-data'), { items: 300, users: 150 });
    const tiny = ['--dim', '16', '--hidden', '32', '--bag-dim', '8', '--batch-size', '128', '--epochs', '1', '--backend', 'wasm', '--threads', '1'];
    const ok = amMl(['train', '--dataset', 'train-data', ...tiny, '--out', 'runs/ok', '--json']);
    expect(ok.code).toBe(0);
    const doc = jsonDoc(ok.stdout);
    expect(doc).toMatchObject({ schemaVersion: 1, command: 'train', ok: true, result: { dryRun: false, epochs: { run: 1 } } });
    expect(doc.result.metrics.model['recall@100']).toBeGreaterThan(0);
    const gated = amMl(['train', '--dataset', 'train-data', ...tiny, '--out', 'runs/gated', '--gate', 'ndcg@10>=2', '--json']);
    expect(gated.code).toBe(4);
    expect(jsonDoc(gated.stdout)).toMatchObject({ ok: false, command: 'train', error: { code: 'GATE_FAILED', exitCode: 4 } });
    expect(existsSync(path.join(dir.path, 'runs', 'gated', 'manifest.json'))).toBe(true);
    expect(amMl(['train', '--json']).code).toBe(2);
  });

  it('publish, models, rollback --json on the local store: one document each, the documented exit codes', async () => {
    const { writeModelFolder } = await import('./testing/model-folder.js');
    await writeModelFolder(dir.join('runs/a'), { seed: 1 });
    await writeModelFolder(dir.join('runs/b'), { seed: 2 });
    expect(jsonDoc(amMl(['publish', 'runs/a', '--version', 'v1', '--json']).stdout)).toMatchObject({ command: 'publish', ok: true, result: { version: 'v1', activated: true } });
    expect(amMl(['publish', 'runs/b', '--version', 'v2', '--json']).code).toBe(0);
    const list = amMl(['models', '--json']);
    expect(jsonDoc(list.stdout)).toMatchObject({ command: 'models list', ok: true, result: { current: 'v2', previous: 'v1' } });
    const back = amMl(['rollback', '--json']);
    expect(back.code).toBe(0);
    expect(jsonDoc(back.stdout).result).toMatchObject({ from: 'v2', to: 'v1', changed: true });
    expect(jsonDoc(amMl(['models', 'verify', '--json']).stdout)).toMatchObject({ command: 'models verify', ok: true, result: { ok: true } });
    const exists = amMl(['publish', 'runs/b', '--version', 'v2', '--json']);
    expect(exists.code).toBe(6);
    expect(jsonDoc(exists.stdout).error.code).toBe('VERSION_EXISTS');
    expect(amMl(['rollback', '--to', 'nope', '--json']).code).toBe(6);
  });

  it('export and validate --json: one document each; exit 0 when equal, 4 on refused layers or a mismatch, 2 on a damaged file', () => {
    const keras = path.join(REPO_ROOT, 'fixtures', 'keras');
    const ok = amMl(['export', path.join(keras, 'generated', 'lambda_l2.keras'), '--out', 'exp', '--validate', '--json']);
    expect(ok.code, ok.stderr).toBe(0);
    const doc = jsonDoc(ok.stdout);
    expect(doc).toMatchObject({ ok: true, command: 'export', result: { model: 'lambda_l2', customLayers: ['AmMlL2Normalize'], validation: { ok: true } } });

    const refused = amMl(['export', path.join(keras, 'fastmachinelearning__example-models__qkeras-v3_3layer.keras'), '--out', 'q', '--json']);
    expect(refused.code).toBe(4);
    expect(jsonDoc(refused.stdout)).toMatchObject({ ok: false, error: { code: 'KERAS_UNSUPPORTED_LAYERS', exitCode: 4 } });

    const damaged = amMl(['export', path.join(keras, 'fastmachinelearning__example-models__KERAS_3layer.json'), '--weights', BIN, '--out', 'd', '--json']);
    expect(damaged.code).toBe(2);
    expect(jsonDoc(damaged.stdout).error.code).toBe('KERAS_INPUT_UNREADABLE');

    const golden = JSON.parse(readFileSync(path.join(keras, 'generated', 'lambda_l2.golden.json'), 'utf8'));
    golden.outputs[0][0][0] += 0.5;
    writeFileSync(path.join(dir.path, 'bad-golden.json'), JSON.stringify(golden));
    const mismatch = amMl(['validate', 'exp', '--golden', 'bad-golden.json', '--json']);
    expect(mismatch.code).toBe(4);
    expect(jsonDoc(mismatch.stdout)).toMatchObject({ command: 'validate', result: { ok: false, report: { golden: [{ ok: false }] } } });
  });

  it('ends quietly when stdout is closed early (EPIPE)', async () => {
    const child = spawn(process.execPath, [BIN, '--help'], { cwd: dir.path, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.destroy();
    let stderr = '';
    child.stderr.on('data', (d) => {
      stderr += d.toString();
    });
    const code = await new Promise((r) => child.on('exit', r));
    expect(code).toBe(0);
    expect(stderr).not.toMatch(/EPIPE|Error/);
  });
});
