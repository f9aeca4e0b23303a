/**
 * Registry throughput (issue 6): publishing a model of realistic size (64 MiB in 4 MiB TF.js shards) to the local
 * store and, through the real supabase-js client, to the loopback Storage server; then resolving it into the
 * model cache cold (download + verify) and warm (re-hash of the cached copy). Publish includes the full read-back
 * sha256 pass. The issue names no limit; these are reference numbers for regressions.
 */
import { randomFillSync } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { createSupabaseClient } from '../commands/supabase-client.js';
import { describeFiles, parseManifest, readManifest, writeManifest } from '../ml/artifacts-fs.js';
import { localStore } from '../registry/backends/local.js';
import { supabaseStore } from '../registry/backends/supabase.js';
import { resolveStoredModel } from '../registry/model-cache.js';
import { publishVersion } from '../registry/registry.js';
import type { ModelStore } from '../registry/types.js';
import { startFakeSupabase } from '../testing/fake-supabase-storage.js';
import { writeModelFolder } from '../testing/model-folder.js';
import type { Benchmark } from './types.js';

const SHARD_BYTES = 4 * 1024 * 1024;
const SHARDS = 16;
const MIB = 1024 * 1024;

/** A two-tower folder plus 16 extra 4 MiB weight shards, listed in a rewritten manifest. */
async function bigModelFolder(dir: string) {
  await writeModelFolder(dir, { seed: 7 });
  mkdirSync(path.join(dir, 'item'), { recursive: true });
  for (let i = 1; i <= SHARDS; i++) writeFileSync(path.join(dir, 'item', `group2-shard${i}of${SHARDS}.bin`), randomFillSync(Buffer.alloc(SHARD_BYTES)));
  const manifest = { ...readManifest(dir), files: await describeFiles(dir) };
  writeManifest(dir, manifest);
  return manifest;
}

async function timedPublish(store: ModelStore, dir: string): Promise<Record<string, number>> {
  const manifest = readManifest(dir);
  const bytes = manifest.files.reduce((s, f) => s + f.size, 0);
  const t0 = performance.now();
  await publishVersion(
    { store, name: 'two_tower', parseManifest },
    { version: 'bench', manifest, readFile: async (p) => new Uint8Array(await readFile(path.join(dir, p))) },
  );
  const s = (performance.now() - t0) / 1000;
  return { seconds: s, mibPerSec: bytes / MIB / s, mib: bytes / MIB };
}

export const benchmarks: Benchmark[] = [
  {
    name: 'registry.publish-local',
    issue: 6,
    description: 'publish 64 MiB (upload, list back, sha256 read-back, manifest, pointer) to a file:// store',
    repeats: 3,
    units: { seconds: 's', mibPerSec: 'MiB/s', mib: 'MiB' },
    async run(ctx) {
      const dir = path.join(ctx.tmp, 'run');
      await bigModelFolder(dir);
      return timedPublish(localStore({ dir: path.join(ctx.tmp, 'store') }), dir);
    },
  },
  {
    name: 'registry.publish-supabase-loopback',
    issue: 6,
    description: 'the same publish through @supabase/supabase-js to the loopback Storage server (client and protocol cost, no network)',
    repeats: 3,
    units: { seconds: 's', mibPerSec: 'MiB/s', mib: 'MiB' },
    async run(ctx) {
      const dir = path.join(ctx.tmp, 'run');
      await bigModelFolder(dir);
      const fake = await startFakeSupabase();
      try {
        return await timedPublish(supabaseStore({ client: createSupabaseClient(fake.url, fake.key), bucket: 'models', prefix: 'bench' }), dir);
      } finally {
        await fake.stop();
      }
    },
  },
  {
    name: 'registry.resolve-model',
    issue: 6,
    description: '--model current from a file:// store: cold (download into the cache, verify every sha256) and warm (re-hash the cached copy)',
    repeats: 3,
    units: { coldMibPerSec: 'MiB/s', warmMibPerSec: 'MiB/s', coldSeconds: 's', warmSeconds: 's' },
    async run(ctx) {
      const dir = path.join(ctx.tmp, 'run');
      const manifest = await bigModelFolder(dir);
      const store = localStore({ dir: path.join(ctx.tmp, 'store') });
      await timedPublish(store, dir);
      const mib = manifest.files.reduce((s, f) => s + f.size, 0) / MIB;
      const opts = { store, name: 'two_tower', ref: 'current', cacheDir: path.join(ctx.tmp, 'cache'), parseManifest };
      let t0 = performance.now();
      await resolveStoredModel(opts);
      const cold = (performance.now() - t0) / 1000;
      t0 = performance.now();
      const warm = await resolveStoredModel(opts);
      const warmS = (performance.now() - t0) / 1000;
      if (warm.source !== 'cache') throw new Error('second resolve did not use the cache');
      return { coldSeconds: cold, warmSeconds: warmS, coldMibPerSec: mib / cold, warmMibPerSec: mib / warmS };
    },
  },
];
