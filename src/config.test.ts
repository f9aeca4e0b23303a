import { writeFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError, redact } from './errors.js';
import { credentialPresence, loadConfig, StrictBoolean } from './config.js';
import { type TmpDir, tmpDir } from './testing/tmp-dir.js';

let dir: TmpDir;
beforeEach(() => {
  dir = tmpDir();
});
afterEach(() => dir.remove());

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig precedence: flag > env > config file > default', () => {
  it('uses the default when nothing is set', () => {
    const c = loadConfig({ parts: ['db', 'store'], env: {}, cwd: dir.path });
    expect(c.databaseUrl).toBe('pglite://.am-ml/db');
    expect(c.modelStore).toBe('file://.am-ml/models');
    expect(c.sources).toEqual({ databaseUrl: 'default', modelStore: 'default' });
  });

  it('prefers the config file over the default, env over the file, and the flag over env', () => {
    writeFileSync(dir.join('am-ml.config.json'), JSON.stringify({ databaseUrl: 'pglite://from-file', modelStore: 'file://from-file' }));
    const fileOnly = loadConfig({ parts: ['db', 'store'], env: {}, cwd: dir.path });
    expect([fileOnly.databaseUrl, fileOnly.sources.databaseUrl]).toEqual(['pglite://from-file', 'am-ml.config.json']);

    const env = { AMML_DATABASE_URL: 'postgres://u@h/db', AMML_MODEL_STORE: 'supabase://models/two_tower' };
    const fromEnv = loadConfig({ parts: ['db', 'store'], env, cwd: dir.path });
    expect([fromEnv.databaseUrl, fromEnv.modelStore]).toEqual([env.AMML_DATABASE_URL, env.AMML_MODEL_STORE]);

    const fromFlag = loadConfig({ parts: ['db', 'store'], env, cwd: dir.path, flags: { db: 'pglite://flag', store: 'file://flag' } });
    expect([fromFlag.databaseUrl, fromFlag.sources.databaseUrl]).toEqual(['pglite://flag', '--db']);
    expect([fromFlag.modelStore, fromFlag.sources.modelStore]).toEqual(['file://flag', '--store']);
  });

  it('falls back from AMML_DATABASE_URL to DATABASE_URL', () => {
    const c = loadConfig({ parts: ['db'], env: { DATABASE_URL: 'postgres://a@b/c' }, cwd: dir.path });
    expect([c.databaseUrl, c.sources.databaseUrl]).toEqual(['postgres://a@b/c', 'env DATABASE_URL']);
  });

  it('reads an explicit --config file and fails when it is missing', () => {
    writeFileSync(dir.join('custom.json'), JSON.stringify({ modelStore: 'file://x' }));
    expect(loadConfig({ parts: ['store'], env: {}, cwd: dir.path, configFile: 'custom.json' }).modelStore).toBe('file://x');
    const e = configError(() => loadConfig({ parts: ['store'], env: {}, cwd: dir.path, configFile: 'nope.json' }));
    expect(e.message).toMatch(/config: file not found/);
  });
});

describe('loadConfig errors', () => {
  it('lists every problem at once, with where to set each key', () => {
    writeFileSync(dir.join('am-ml.config.json'), JSON.stringify({ databaseUrl: 'mysql://x', colour: 'blue', dmmApiId: 'oops' }));
    const e = configError(() =>
      loadConfig({ parts: ['db', 'store', 'dmm', 'supabase'], env: { AMML_MODEL_STORE: 's3://bucket', DMM_AFFILIATE_ID: 'me-123' }, cwd: dir.path }),
    );
    const keys = e.issues.map((i) => i.key).sort();
    expect(keys).toEqual(
      ['AMML_DATABASE_URL', 'AMML_MODEL_STORE', 'DMM_AFFILIATE_ID', 'DMM_API_ID', 'SUPABASE_SERVICE_ROLE_KEY', 'SUPABASE_URL', 'colour', 'dmmApiId'].sort(),
    );
    expect(e.message).toMatch(/AMML_DATABASE_URL: must start with pglite:\/\/, postgres:\/\/, postgresql:\/\//);
    expect(e.message).toMatch(/DMM_API_ID: is not set .*set env DMM_API_ID/);
    expect(e.message).toMatch(/dmmApiId: secrets are read from the environment only \(set DMM_API_ID\)/);
    expect(e.message).toMatch(/colour: unknown key/);
    expect(e.exitCode).toBe(3);
  });

  it('reports invalid JSON in the config file', () => {
    writeFileSync(dir.join('am-ml.config.json'), '{ nope');
    expect(configError(() => loadConfig({ parts: ['db'], env: {}, cwd: dir.path })).message).toMatch(/is not valid JSON/);
  });

  it('only asks for the parts a command needs', () => {
    expect(() => loadConfig({ parts: ['db'], env: {}, cwd: dir.path })).not.toThrow();
    expect(() => loadConfig({ parts: ['supabase'], env: {}, cwd: dir.path })).toThrow(ConfigError);
  });

  it('registers secrets so they are redacted everywhere, and never echoes them in messages', () => {
    const env = { DMM_API_ID: 'supersecret-api-id', DMM_AFFILIATE_ID: 'not-an-api-affiliate' };
    const e = configError(() => loadConfig({ parts: ['dmm'], env, cwd: dir.path }));
    expect(e.message).not.toContain('not-an-api-affiliate');
    expect(redact('GET /ItemList?x=supersecret-api-id')).not.toContain('supersecret-api-id');
    expect(credentialPresence(env)).toEqual({ SUPABASE_SERVICE_ROLE_KEY: false, DMM_API_ID: true, DMM_AFFILIATE_ID: true });
  });
});

describe('StrictBoolean', () => {
  it('accepts only true/false/1/0', () => {
    expect(StrictBoolean.parse('true')).toBe(true);
    expect(StrictBoolean.parse('0')).toBe(false);
    expect(StrictBoolean.safeParse('yes').success).toBe(false);
    expect(StrictBoolean.safeParse('False').success).toBe(false);
  });
});
