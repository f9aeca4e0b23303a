/**
 * Disk side of `load-model.ts`: read a model folder's files with node:fs. Kept apart so the loader itself stays
 * free of Node APIs for the Deno runtime.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { type LoadedTwoTower, loadTwoTower, type LoadTwoTowerOptions } from './load-model.js';

/** Load and verify the two-tower model in `dir` (a run folder or a downloaded version folder). */
export function loadTwoTowerFromDir(dir: string, opts: LoadTwoTowerOptions = {}): Promise<LoadedTwoTower> {
  const root = path.resolve(dir);
  return loadTwoTower(
    async (rel) => {
      const full = path.resolve(root, rel);
      if (!full.startsWith(root + path.sep)) throw new Error(`${rel} points outside the model folder`);
      return new Uint8Array(await readFile(full));
    },
    { where: dir, ...opts },
  );
}
