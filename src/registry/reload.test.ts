import { afterEach, describe, expect, it } from 'vitest';
import { createSupabaseClient } from '../commands/supabase-client.js';
import { type FakeSupabase, startFakeSupabase } from '../testing/fake-supabase-storage.js';
import { triggerReload } from './reload.js';

const FAST = { attempts: 3, baseDelayMs: 1, maxDelayMs: 2 };
let fake: FakeSupabase | undefined;
afterEach(async () => {
  await fake?.stop();
  fake = undefined;
});

describe('triggerReload (real supabase-js functions client, loopback server)', () => {
  it('invokes the function with {version, name} and the service key, and returns its answer', async () => {
    fake = await startFakeSupabase();
    fake.setFunction('reload_models', (body) => ({ status: 200, body: { reloaded: body } }));
    const r = await triggerReload(createSupabaseClient(fake.url, fake.key).functions, { functionName: 'reload_models', name: 'two_tower', version: 'v7', retry: FAST });
    expect(r).toMatchObject({ ok: true, attempts: 1, response: { reloaded: { version: 'v7', name: 'two_tower' } } });
    expect(fake.invocations).toEqual([{ name: 'reload_models', body: { version: 'v7', name: 'two_tower' }, authorized: true }]);
  });

  it('retries 5xx, gives up with the status and body, and never throws', async () => {
    fake = await startFakeSupabase();
    fake.setFunction('reload_models', () => ({ status: 503, body: { error: 'cold start' } }));
    const retries: number[] = [];
    const r = await triggerReload(createSupabaseClient(fake.url, fake.key).functions, {
      functionName: 'reload_models',
      name: 'two_tower',
      version: 'v7',
      retry: FAST,
      onRetry: (a) => retries.push(a),
    });
    expect(r).toMatchObject({ ok: false, attempts: 3, status: 503, error: expect.stringMatching(/HTTP 503.*cold start/) });
    expect(retries).toEqual([1, 2]);
  });

  it('does not retry a missing function (404), and reports an unreachable host', async () => {
    fake = await startFakeSupabase();
    const client = createSupabaseClient(fake.url, fake.key);
    const missing = await triggerReload(client.functions, { functionName: 'nope', name: 'two_tower', version: 'v7', retry: FAST });
    expect(missing).toMatchObject({ ok: false, attempts: 1, status: 404 });
    await fake.stop();
    fake = undefined;
    const down = await triggerReload(client.functions, { functionName: 'reload_models', name: 'two_tower', version: 'v7', retry: FAST });
    expect(down).toMatchObject({ ok: false, attempts: 3 });
    expect(down.error).toBeTruthy();
  });
});
