import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseManifest } from '../../ml/artifacts-fs.js';
import { writeModelFolder } from '../../testing/model-folder.js';
import { tmpDir, type TmpDir } from '../../testing/tmp-dir.js';
import { describeModelStore } from '../contract.js';
import { localStore, TMP_PREFIX } from './local.js';

const fixtures = { parseManifest, writeModelFolder: (dir: string, seed: number) => writeModelFolder(dir, { seed }) };

describeModelStore(
  'local',
  async () => {
    const t = tmpDir();
    return { store: localStore({ dir: t.join('models') }), cleanup: async () => t.remove() };
  },
  fixtures,
);

describe('local store specifics', () => {
  let t: TmpDir;
  afterEach(() => t?.remove());

  it('never shows half-written temporaries (what a kill in the middle of a write leaves)', async () => {
    t = tmpDir();
    const store = localStore({ dir: t.join('models') });
    await store.putFile('two_tower/v1/a.bin', new Uint8Array([1, 2, 3]));
    writeFileSync(t.join('models/two_tower/v1', `${TMP_PREFIX}abc123`), 'half a file');
    expect((await store.list('two_tower')).map((o) => o.path)).toEqual(['two_tower/v1/a.bin']);
    expect(readdirSync(t.join('models/two_tower/v1')).sort()).toEqual([`${TMP_PREFIX}abc123`, 'a.bin']);
  });

  it('leaves no temporaries after writes and removes emptied folders', async () => {
    t = tmpDir();
    const store = localStore({ dir: t.join('models') });
    await store.putFile('m/v1/x/y.bin', new Uint8Array(10));
    await store.putFile('m/v1/x/y.bin', new Uint8Array(11), { overwrite: true });
    await store.putFile('m/v1/x/y.bin', new Uint8Array(12)).catch(() => {});
    expect(readdirSync(t.join('models/m/v1/x'))).toEqual(['y.bin']);
    await store.remove(['m/v1/x/y.bin']);
    expect(readdirSync(t.join('models'))).toEqual([]);
  });

  it('refuses unsafe paths', async () => {
    t = tmpDir();
    const store = localStore({ dir: t.join('models') });
    mkdirSync(t.join('outside'), { recursive: true });
    await expect(store.putFile('../outside/x', new Uint8Array(1))).rejects.toThrow(/unsafe store path/);
    await expect(store.getFile('/etc/passwd')).rejects.toThrow(/unsafe store path/);
    expect(path.isAbsolute(new URL(store.url).pathname)).toBe(true);
  });
});
