/**
 * The Supabase backend through the real @supabase/supabase-js client against the loopback fake Storage server:
 * the whole contract suite, plus what only a remote store has (retries, lost answers, status mapping, paging).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createSupabaseClient } from '../../commands/supabase-client.js';
import { EXIT, StorageError } from '../../errors.js';
import { parseManifest } from '../../ml/artifacts-fs.js';
import { type FakeSupabase, startFakeSupabase } from '../../testing/fake-supabase-storage.js';
import { writeModelFolder } from '../../testing/model-folder.js';
import { describeModelStore } from '../contract.js';
import type { StoreRetryEvent } from '../types.js';
import { supabaseStore } from './supabase.js';

const fixtures = { parseManifest, writeModelFolder: (dir: string, seed: number) => writeModelFolder(dir, { seed }) };
const FAST_RETRY = { attempts: 4, baseDelayMs: 1, maxDelayMs: 2 };

describeModelStore(
  'supabase (real supabase-js client, loopback Storage server)',
  async () => {
    const fake = await startFakeSupabase();
    const client = createSupabaseClient(fake.url, fake.key);
    return { store: supabaseStore({ client, bucket: 'models', prefix: 'prod/am-ml', retry: FAST_RETRY }), cleanup: () => fake.stop() };
  },
  fixtures,
);

describe('supabase store specifics', () => {
  let fake: FakeSupabase;
  afterEach(async () => fake?.stop());

  const open = (opts: { key?: string; bucket?: string; maxFileBytes?: number; events?: StoreRetryEvent[] } = {}) =>
    supabaseStore({
      client: createSupabaseClient(fake.url, opts.key ?? fake.key),
      bucket: opts.bucket ?? 'models',
      prefix: 'p',
      retry: FAST_RETRY,
      maxFileBytes: opts.maxFileBytes,
      onRetry: (e) => opts.events?.push(e),
    });

  it('speaks the documented protocol: x-upsert false for files, true for the pointer, keys under the prefix', async () => {
    fake = await startFakeSupabase();
    const store = open();
    await store.putFile('two_tower/v1/a.bin', new Uint8Array([1, 2]));
    await store.writePointer('two_tower/current.json', '{"x":1}', { expected: null });
    const uploads = fake.requests.filter((r) => r.method === 'POST' && r.path.startsWith('/storage/v1/object/models/'));
    expect(uploads.map((r) => [r.path, r.upsert])).toEqual([
      ['/storage/v1/object/models/p/two_tower/v1/a.bin', 'false'],
      ['/storage/v1/object/models/p/two_tower/current.json.lock', 'false'],
      ['/storage/v1/object/models/p/two_tower/current.json', 'true'],
    ]);
    expect(fake.objectNames('models')).toEqual(['p/two_tower/current.json', 'p/two_tower/v1/a.bin']);
    expect(fake.requests.some((r) => r.method === 'DELETE' && r.path === '/storage/v1/object/models')).toBe(true);
  });

  it('retries 5xx and dropped connections with backoff, then succeeds', async () => {
    fake = await startFakeSupabase();
    const events: StoreRetryEvent[] = [];
    const store = open({ events });
    fake.inject({ method: 'POST', path: '/object/models/p/a.bin', times: 2, action: { kind: 'status', status: 503 } });
    await store.putFile('a.bin', new Uint8Array([7]));
    fake.inject({ method: 'GET', path: '/object/models/p/a.bin', action: { kind: 'drop' } });
    expect(Array.from((await store.getFile('a.bin'))!)).toEqual([7]);
    fake.inject({ method: 'POST', path: '/object/list/models', action: { kind: 'status', status: 502 } });
    expect((await store.list('')).map((o) => o.path)).toEqual(['a.bin']);
    expect(events.map((e) => [e.op, e.attempt])).toEqual([
      ['put', 1],
      ['put', 2],
      ['get', 1],
      ['list', 1],
    ]);
    expect(events[0].reason).toMatch(/503/);
  });

  it('treats a create whose answer was lost as done when the stored bytes are its own', async () => {
    fake = await startFakeSupabase();
    const store = open();
    fake.inject({ method: 'POST', path: '/object/models/p/once.bin', action: { kind: 'drop-after-commit' } });
    await store.putFile('once.bin', new Uint8Array([1, 2, 3]));
    expect(Array.from(fake.getObject('models', 'p/once.bin')!)).toEqual([1, 2, 3]);
    // ...but someone else's bytes at that key are a conflict.
    fake.putObject('models', 'p/other.bin', new Uint8Array([9]));
    fake.inject({ method: 'POST', path: '/object/models/p/other.bin', action: { kind: 'status', status: 503 } });
    await expect(store.putFile('other.bin', new Uint8Array([1]))).rejects.toMatchObject({ code: 'OBJECT_EXISTS' });
  });

  it('fails with a StorageError (exit 5) naming bucket, path and status after the retries run out', async () => {
    fake = await startFakeSupabase();
    const store = open();
    fake.inject({ method: 'GET', path: '/object/models/p/x.bin', times: 10, action: { kind: 'status', status: 500 } });
    const err = await store.getFile('x.bin').catch((e) => e);
    expect(err).toBeInstanceOf(StorageError);
    expect(err.exitCode).toBe(EXIT.EXTERNAL);
    expect(err.message).toContain('models/p/x.bin');
    expect(err.status).toBe(500);
    expect(fake.requests.filter((r) => r.path.endsWith('/p/x.bin'))).toHaveLength(FAST_RETRY.attempts);
  });

  it('does not retry a bad key; says what to fix without echoing the key', async () => {
    fake = await startFakeSupabase();
    const wrong = 'sb_secret_wrongwrongwrongwrongwrong';
    const err = await open({ key: wrong }).list('').catch((e) => e);
    expect(err).toBeInstanceOf(StorageError);
    expect(err.status).toBe(403);
    expect(err.hint).toMatch(/SUPABASE_SERVICE_ROLE_KEY/);
    expect(`${err.message} ${err.hint}`).not.toContain(wrong);
    expect(fake.requests).toHaveLength(1);
  });

  it('reports a missing bucket as an error, never as "no pointer yet"', async () => {
    fake = await startFakeSupabase();
    const err = await open({ bucket: 'nope' }).readPointer('two_tower/current.json').catch((e) => e);
    expect(err).toBeInstanceOf(StorageError);
    expect(err.hint).toMatch(/Create the bucket 'nope'/);
  });

  it('refuses files over the per-file limit before sending them, and maps a server-side 413', async () => {
    fake = await startFakeSupabase({ maxObjectBytes: 10 });
    const small = open({ maxFileBytes: 4 });
    await expect(small.putFile('big.bin', new Uint8Array(5))).rejects.toMatchObject({ code: 'FILE_TOO_LARGE', exitCode: EXIT.VALIDATION });
    expect(fake.requests).toHaveLength(0);
    const err = await open().putFile('big.bin', new Uint8Array(11)).catch((e) => e);
    expect(err).toBeInstanceOf(StorageError);
    expect(err.status).toBe(413);
  });

  it('pages through folders with more than one page of entries', async () => {
    fake = await startFakeSupabase();
    for (let i = 0; i < 1003; i++) fake.putObject('models', `p/many/f${String(i).padStart(4, '0')}.bin`, new Uint8Array(1));
    fake.putObject('models', 'p/many/sub/deep.bin', new Uint8Array(2));
    const all = await open().list('many');
    expect(all).toHaveLength(1004);
    expect(all[all.length - 1]).toMatchObject({ path: 'many/sub/deep.bin', size: 2 });
    expect(fake.requests.filter((r) => r.path === '/storage/v1/object/list/models')).toHaveLength(3);
  });
});
