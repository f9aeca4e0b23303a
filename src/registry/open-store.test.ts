import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, UsageError } from '../errors.js';
import { openStore, parseStoreUrl } from './open-store.js';
import { assertId } from './paths.js';
import { backoffDelayMs } from './retry.js';

describe('store URLs', () => {
  it('parses file:// (relative to cwd) and supabase://bucket/prefix', () => {
    expect(parseStoreUrl('file://.am-ml/models', '/w')).toEqual({ scheme: 'file', dir: path.resolve('/w', '.am-ml/models') });
    expect(parseStoreUrl('file:///abs/m', '/w')).toEqual({ scheme: 'file', dir: '/abs/m' });
    expect(parseStoreUrl('supabase://models/prod/two', '/w')).toEqual({ scheme: 'supabase', bucket: 'models', prefix: 'prod/two' });
    expect(parseStoreUrl('supabase://models', '/w')).toEqual({ scheme: 'supabase', bucket: 'models', prefix: '' });
  });

  it('rejects bad URLs with a ConfigError naming AMML_MODEL_STORE', () => {
    for (const bad of ['models', 's3://b/p', 'supabase://', 'supabase://models/../x', 'supabase://b/a b']) {
      const err = (() => {
        try {
          parseStoreUrl(bad, '/w');
        } catch (e) {
          return e as ConfigError;
        }
      })();
      expect(err, bad).toBeInstanceOf(ConfigError);
      expect(err!.issues[0].key).toBe('AMML_MODEL_STORE');
    }
  });

  it('needs a Supabase client for supabase:// stores', () => {
    expect(() => openStore('supabase://models/p', { cwd: '/w' })).toThrow(ConfigError);
    expect(openStore('file://x', { cwd: '/w' }).url).toBe('file:///w/x');
  });
});

describe('names and backoff', () => {
  it('accepts run ids and names, refuses paths and reserved words', () => {
    for (const ok of ['two_tower', '20261122T091500Z', 'v1.2-rc_3']) expect(() => assertId(ok, 'version', '--version')).not.toThrow();
    for (const bad of ['', '../x', 'a/b', 'current', 'latest', '.hidden', 'x.json', 'a'.repeat(129)]) {
      expect(() => assertId(bad, 'version', '--version'), bad).toThrow(UsageError);
    }
  });

  it('backs off exponentially, capped, with jitter between half and full delay', () => {
    const policy = { attempts: 6, baseDelayMs: 100, maxDelayMs: 1000 };
    expect([1, 2, 3, 4, 5].map((a) => backoffDelayMs(policy, a, () => 1))).toEqual([100, 200, 400, 800, 1000]);
    expect([1, 2, 3].map((a) => backoffDelayMs(policy, a, () => 0))).toEqual([50, 100, 200]);
  });
});
