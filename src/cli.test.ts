/**
 * The CLI contract, in process: `--json` prints exactly one document (also on failure), exit codes per error class,
 * usage errors from commander, human errors with hints on stderr, nothing but the result on stdout.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type ActionFn, main, runAction } from './cli.js';
import {
  ConfigError,
  ConflictError,
  DbError,
  InternalError,
  InterruptedError,
  UsageError,
  ValidationFailedError,
} from './errors.js';
import { captureStream } from './testing/capture.js';
import { type TmpDir, tmpDir } from './testing/tmp-dir.js';

let dir: TmpDir;
beforeEach(() => {
  dir = tmpDir();
});
afterEach(() => dir.remove());

async function run(args: string[], env: NodeJS.ProcessEnv = {}) {
  const stdout = captureStream();
  const stderr = captureStream();
  const code = await main(['node', 'am-ml', ...args], {
    stdout,
    stderr: stderr as unknown as NodeJS.WriteStream,
    env,
    cwd: dir.path,
    handleSignals: false,
  });
  return { code, stdout: stdout.text(), stderr: stderr.text() };
}

function onlyJsonDoc(stdout: string) {
  const lines = stdout.trim().split('\n');
  expect(lines).toHaveLength(1);
  return JSON.parse(lines[0]);
}

describe('am-ml CLI', () => {
  it('prints help with every command and the exit-code table, exit 0', async () => {
    const r = await run(['--help']);
    expect(r.code).toBe(0);
    for (const cmd of ['init', 'db', 'doctor']) expect(r.stdout).toContain(cmd);
    expect(r.stdout).toMatch(/Exit codes: 0 ok, 1 internal error, 2 usage, 3 config, 4 validation failed, 5 external service, 6 conflict, 130 interrupted/);
  });

  it('init --json prints one success document; running it twice is safe', async () => {
    const first = onlyJsonDoc((await run(['init', '--json'])).stdout);
    expect(first).toMatchObject({ schemaVersion: 1, command: 'init', ok: true });
    expect(first.result.database.appliedMigrations.length).toBeGreaterThan(0);
    expect(first.result.embeddingColumns).toEqual({ videos: 'halfvec(128)', users: 'halfvec(128)' });
    const second = await run(['init', '--json']);
    expect(second.code).toBe(0);
    expect(onlyJsonDoc(second.stdout).result.database.appliedMigrations).toEqual([]);
  });

  it('init with a different dimension on an existing database exits 4 naming both shapes', async () => {
    await run(['init', '--json']);
    const r = await run(['init', '--dim', '768', '--json']);
    expect(r.code).toBe(4);
    const doc = onlyJsonDoc(r.stdout);
    expect(doc).toMatchObject({ ok: false, command: 'init', error: { code: 'DIMENSION_MISMATCH', exitCode: 4 } });
    expect(doc.error.message).toMatch(/already exists as halfvec\(128\), not halfvec\(768\)/);
  });

  it('a bad environment exits 3 and lists every problem, as JSON and as text', async () => {
    const env = { AMML_DATABASE_URL: 'mysql://x', AMML_MODEL_STORE: 's3://y' };
    const json = await run(['init', '--json'], env);
    expect(json.code).toBe(3);
    const doc = onlyJsonDoc(json.stdout);
    expect(doc.error.code).toBe('CONFIG');
    expect(doc.error.details.issues.map((i: { key: string }) => i.key)).toEqual(['AMML_DATABASE_URL', 'AMML_MODEL_STORE']);
    const text = await run(['init'], env);
    expect(text.code).toBe(3);
    expect(text.stdout).toBe('');
    expect(text.stderr).toMatch(/error: Configuration has 2 problems:\n {2}- AMML_DATABASE_URL: .*\n {2}- AMML_MODEL_STORE: /);
    expect(text.stderr).toMatch(/hint: /);
  });

  it('a bad flag exits 2 with a usage error, also as one JSON document', async () => {
    const r = await run(['init', '--dim', 'lots', '--json']);
    expect(r.code).toBe(2);
    expect(onlyJsonDoc(r.stdout)).toMatchObject({ ok: false, command: 'init', error: { code: 'USAGE', exitCode: 2 } });
    const unknown = await run(['nope']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/unknown command 'nope'/i);
    const choice = await run(['db', 'migrate', '--vector-type', 'float', '--json']);
    expect(choice.code).toBe(2);
    expect(onlyJsonDoc(choice.stdout).command).toBe('db migrate');
  });

  it('an unreachable database exits 5 without leaking the password', async () => {
    const r = await run(['db', 'migrate', '--db', 'postgres://u:topsecretpw@127.0.0.1:1/db?sslmode=disable', '--json']);
    expect(r.code).toBe(5);
    expect(r.stdout).not.toContain('topsecretpw');
    expect(onlyJsonDoc(r.stdout).error).toMatchObject({ code: 'DB', exitCode: 5 });
  });

  it('doctor reports failing needed checks with exit 4 before init, and passes after', async () => {
    const before = await run(['doctor', '--no-tf', '--json']);
    expect(before.code).toBe(4);
    const doc = onlyJsonDoc(before.stdout);
    expect(doc.ok).toBe(true); // the command ran; its answer is in result.ok and the exit code
    expect(doc.result.ok).toBe(false);
    expect(doc.result.checks.find((c: { name: string }) => c.name === 'database')).toMatchObject({ ok: false, needed: true });
    await run(['init']);
    const after = await run(['doctor', '--no-tf', '--json'], { DMM_API_ID: 'secret-api-id-value' });
    expect(after.code).toBe(0);
    expect(after.stdout).not.toContain('secret-api-id-value');
    expect(onlyJsonDoc(after.stdout).result.credentials).toMatchObject({ DMM_API_ID: true, SUPABASE_SERVICE_ROLE_KEY: false });
  });
});

describe('runAction: the one error → exit mapping', () => {
  const io = () => {
    const stdout = captureStream();
    const stderr = captureStream();
    return { stdout, stderr, io: { stdout, stderr: stderr as unknown as NodeJS.WriteStream, env: {}, cwd: '/', handleSignals: false } };
  };
  const cases: [Error, number, string][] = [
    [new InternalError('bug'), 1, 'INTERNAL'],
    [new Error('plain'), 1, 'INTERNAL'],
    [new UsageError('--a and --b'), 2, 'USAGE'],
    [new ConfigError('bad', [{ key: 'K', message: 'm' }]), 3, 'CONFIG'],
    [new ValidationFailedError('diff 0.1 > 1e-4'), 4, 'VALIDATION_FAILED'],
    [new DbError('down', { sqlState: '08006' }), 5, 'DB'],
    [new ConflictError('v2 vs v3'), 6, 'CONFLICT'],
    [new InterruptedError('stopped; rerun with --resume'), 130, 'INTERRUPTED'],
  ];
  for (const [err, exit, code] of cases) {
    it(`${err.constructor.name} → exit ${exit}, JSON error code ${code}`, async () => {
      const fn: ActionFn = async () => {
        throw err;
      };
      const j = io();
      const got = await runAction('x', fn, { flags: {}, globals: { json: true }, args: [], io: j.io, signal: new AbortController().signal });
      expect(got).toBe(exit);
      expect(onlyJsonDoc(j.stdout.text())).toMatchObject({ schemaVersion: 1, command: 'x', ok: false, error: { code, exitCode: exit } });
      const h = io();
      await runAction('x', fn, { flags: {}, globals: {}, args: [], io: h.io, signal: new AbortController().signal });
      expect(h.stdout.text()).toBe('');
      expect(h.stderr.text()).toMatch(/^error: /);
      if (exit === 1) expect(h.stderr.text()).toMatch(/This is a bug in am-ml v\d+\.\d+\.\d+; please report it/);
    });
  }

  it('reports an aborted run as interrupted (130) whatever the library threw', async () => {
    const ac = new AbortController();
    ac.abort();
    const j = io();
    const code = await runAction(
      'x',
      async () => {
        throw new Error('socket hang up');
      },
      { flags: {}, globals: { json: true }, args: [], io: j.io, signal: ac.signal },
    );
    expect(code).toBe(130);
  });

  it('redacts secrets in results and errors', async () => {
    const j = io();
    await runAction('x', async () => ({ result: { url: 'https://api?api_id=SECRET123' } }), {
      flags: {},
      globals: { json: true },
      args: [],
      io: j.io,
      signal: new AbortController().signal,
    });
    expect(j.stdout.text()).not.toContain('SECRET123');
  });
});
