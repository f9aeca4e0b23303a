import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EXIT, InterruptedError } from '../errors.js';
import type { ModelManifest } from '../ml/artifacts.js';
import { parseManifest } from '../ml/artifacts-fs.js';
import { writeModelFolder } from '../testing/model-folder.js';
import { type TmpDir, tmpDir } from '../testing/tmp-dir.js';
import { localStore } from './backends/local.js';
import type { RegistryContext } from './context.js';
import { listVersions, publishVersion, readCurrent } from './registry.js';

let t: TmpDir;
let manifest: ModelManifest;
beforeEach(async () => {
  t = tmpDir();
  manifest = await writeModelFolder(t.join('run'), { seed: 1 });
});
afterEach(() => t.remove());

const input = (version: string) => ({
  version,
  manifest,
  readFile: async (p: string) => new Uint8Array(await readFile(path.join(t.join('run'), p))),
});

describe('publishVersion', () => {
  it('stops between files on abort and says what it left: an incomplete version, current unchanged', async () => {
    const store = localStore({ dir: t.join('store') });
    const ctx: RegistryContext = { store, name: 'two_tower', parseManifest, concurrency: 1 };
    await publishVersion(ctx, input('v1'));
    const abort = new AbortController();
    let started = 0;
    const err = await publishVersion(
      { ...ctx, signal: abort.signal, onProgress: (e) => e.kind === 'upload-start' && ++started === 2 && abort.abort() },
      input('v2'),
    ).catch((e) => e);
    expect(err).toBeInstanceOf(InterruptedError);
    expect(err.exitCode).toBe(EXIT.INTERRUPTED);
    expect(err.message).toMatch(/v2 is incomplete and not current.*--version v2/);
    expect((await readCurrent(ctx)).pointer!.current.version).toBe('v1');
    expect((await listVersions(ctx)).versions.find((v) => v.version === 'v2')!.status).toBe('incomplete');
  });

  it('refuses files over the store limit before uploading anything', async () => {
    const store = localStore({ dir: t.join('store'), maxFileBytes: 200 });
    const err = await publishVersion({ store, name: 'two_tower', parseManifest }, input('v1')).catch((e) => e);
    expect(err.code).toBe('FILE_TOO_LARGE');
    expect(err.exitCode).toBe(EXIT.VALIDATION);
    expect(err.message).toMatch(/model\.json \(\d+ bytes\)/);
    expect(await store.list('')).toEqual([]);
  });

  it('refuses a source file that changes after the folder was verified', async () => {
    const store = localStore({ dir: t.join('store') });
    const err = await publishVersion(
      { store, name: 'two_tower', parseManifest },
      { ...input('v1'), readFile: async () => new Uint8Array([1, 2, 3]) },
    ).catch((e) => e);
    expect(err.code).toBe('SOURCE_CHANGED');
    expect((await readCurrent({ store, name: 'two_tower', parseManifest })).pointer).toBeNull();
  });
});
