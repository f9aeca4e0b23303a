/**
 * One backend-agnostic contract suite for ModelStore backends (like dvc's remote_tests): the store primitives and
 * the registry built on them: publish, list, verify, rollback, repair, prune, the model cache, a publish killed at
 * every write, two concurrent publishes, and a flipped byte. Run it from a test file:
 *
 *   describeModelStore('local', async () => ({ store: localStore({dir}), cleanup }), fixtures);
 *
 * The registry may not import ml values or test helpers (STYLE.md §2), so the caller passes the manifest parser
 * and a model-folder generator in `fixtures`.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AmMlError, ConflictError, EXIT } from '../errors.js';
import type { ModelManifest } from '../ml/artifacts.js';
import type { RegistryContext } from './context.js';
import { sha256Hex } from './hash.js';
import { resolveStoredModel } from './model-cache.js';
import { manifestPath, pointerPath, versionDir } from './paths.js';
import { listVersions, parsePointer, prune, publishVersion, readCurrent, repair, rollback, verifyVersion } from './registry.js';
import type { ModelStore, ParseManifest } from './types.js';

export interface StoreUnderTest {
  store: ModelStore;
  cleanup(): Promise<void>;
}

export interface ModelFolderFixture {
  dir: string;
  manifest: ModelManifest;
}

export interface ContractFixtures {
  parseManifest: ParseManifest;
  /** Write a small model folder (distinct bytes per seed) into `dir`. */
  writeModelFolder(dir: string, seed: number): Promise<ModelManifest>;
}

const NAME = 'two_tower';
const enc = new TextEncoder();
const dec = new TextDecoder();

async function rejection(p: Promise<unknown>): Promise<AmMlError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof AmMlError) return err;
    throw err;
  }
  throw new Error('expected a rejection');
}

class SimulatedCrash extends Error {}

/** A store that "dies" just before its k-th mutating call (k from 1); every earlier call completed. */
function crashingStore(inner: ModelStore, crashAt: number): ModelStore {
  let writes = 0;
  const gate = () => {
    writes++;
    if (writes === crashAt) throw new SimulatedCrash(`simulated kill before write #${crashAt}`);
  };
  return {
    url: inner.url,
    rootPath: inner.rootPath,
    maxFileBytes: inner.maxFileBytes,
    putFile: async (p, b, o) => (gate(), inner.putFile(p, b, o)),
    getFile: (p, o) => inner.getFile(p, o),
    list: (p, o) => inner.list(p, o),
    remove: async (p, o) => (gate(), inner.remove(p, o)),
    readPointer: (p, o) => inner.readPointer(p, o),
    writePointer: async (p, t, o) => (gate(), inner.writePointer(p, t, o)),
  };
}

export function describeModelStore(name: string, makeStore: () => Promise<StoreUnderTest>, fixtures: ContractFixtures): void {
  describe(`ModelStore contract: ${name}`, () => {
    let sut: StoreUnderTest;
    let store: ModelStore;
    let tmp: string;
    const folders = new Map<number, ModelFolderFixture>();

    beforeEach(async () => {
      sut = await makeStore();
      store = sut.store;
      tmp = mkdtempSync(path.join(os.tmpdir(), 'am-ml-contract-'));
      folders.clear();
    });
    afterEach(async () => {
      await sut.cleanup();
      rmSync(tmp, { recursive: true, force: true });
    });

    const ctxFor = (s: ModelStore = store, extra: Partial<RegistryContext> = {}): RegistryContext => ({
      store: s,
      name: NAME,
      parseManifest: fixtures.parseManifest,
      concurrency: 2,
      ...extra,
    });
    const folder = async (seed: number): Promise<ModelFolderFixture> => {
      let f = folders.get(seed);
      if (!f) {
        const dir = path.join(tmp, `run-${seed}`);
        f = { dir, manifest: await fixtures.writeModelFolder(dir, seed) };
        folders.set(seed, f);
      }
      return f;
    };
    const publish = async (seed: number, version: string, ctx = ctxFor(), extra: { activate?: boolean } = {}) => {
      const f = await folder(seed);
      return publishVersion(ctx, {
        version,
        manifest: f.manifest,
        readFile: async (p) => new Uint8Array(await readFile(path.join(f.dir, p))),
        publication: { sourcePath: f.dir, sourceRunId: f.manifest.runId },
        ...extra,
      });
    };
    const currentVersion = async () => (await readCurrent(ctxFor())).pointer?.current.version ?? null;
    const shardOf = (version: string) => `${versionDir(NAME, version)}/user/group1-shard1of1.bin`;
    const flipByte = async (p: string) => {
      const bytes = (await store.getFile(p))!;
      bytes[Math.floor(bytes.length / 2)] ^= 0xff;
      await store.putFile(p, bytes, { overwrite: true });
    };

    describe('store primitives', () => {
      it('round-trips bytes exactly, including empty files and nested paths; a missing object reads as null', async () => {
        const all = new Uint8Array(512).map((_, i) => i % 256);
        await store.putFile('a/b/c/all-bytes.bin', all);
        await store.putFile('a/empty.txt', new Uint8Array(0));
        expect(Buffer.from((await store.getFile('a/b/c/all-bytes.bin'))!).equals(Buffer.from(all))).toBe(true);
        expect((await store.getFile('a/empty.txt'))!.byteLength).toBe(0);
        expect(await store.getFile('a/nope.bin')).toBeNull();
      });

      it('creates only if absent, and overwrites only when asked', async () => {
        await store.putFile('x/file.json', enc.encode('{"v":1}'));
        const err = await rejection(store.putFile('x/file.json', enc.encode('{"v":2}')));
        expect(err).toBeInstanceOf(ConflictError);
        expect(err.code).toBe('OBJECT_EXISTS');
        expect(dec.decode((await store.getFile('x/file.json'))!)).toBe('{"v":1}');
        await store.putFile('x/file.json', enc.encode('{"v":3}'), { overwrite: true });
        expect(dec.decode((await store.getFile('x/file.json'))!)).toBe('{"v":3}');
      });

      it('lets exactly one of several concurrent creates of one path win', async () => {
        const results = await Promise.allSettled([1, 2, 3, 4].map((i) => store.putFile('race/one.bin', enc.encode(`writer ${i}`))));
        expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
        for (const r of results.filter((r): r is PromiseRejectedResult => r.status === 'rejected')) expect(r.reason.code).toBe('OBJECT_EXISTS');
      });

      it('lists a folder recursively with sizes, sorted, and nothing outside it', async () => {
        await store.putFile('m/v1/b.bin', new Uint8Array(3));
        await store.putFile('m/v1/a/x.bin', new Uint8Array(5));
        await store.putFile('m/v10/c.bin', new Uint8Array(1));
        await store.putFile('m/current.json', enc.encode('{}'));
        expect((await store.list('m/v1')).map((o) => [o.path, o.size])).toEqual([
          ['m/v1/a/x.bin', 5],
          ['m/v1/b.bin', 3],
        ]);
        const direct = await store.list('m', { recursive: false });
        expect(direct.map((o) => [o.path, Boolean(o.folder)])).toEqual([
          ['m/current.json', false],
          ['m/v1', true],
          ['m/v10', true],
        ]);
        expect(await store.list('nothing/here')).toEqual([]);
      });

      it('removes objects and ignores missing ones', async () => {
        await store.putFile('r/1.bin', new Uint8Array(1));
        await store.putFile('r/2.bin', new Uint8Array(1));
        await store.remove(['r/1.bin', 'r/missing.bin']);
        expect((await store.list('r')).map((o) => o.path)).toEqual(['r/2.bin']);
      });

      it('swaps the pointer only from the text it expects, and releases its lock', async () => {
        const p = 'm/current.json';
        expect(await store.readPointer(p)).toBeNull();
        await store.writePointer(p, 'one', { expected: null });
        expect(await store.readPointer(p)).toBe('one');
        const stale = await rejection(store.writePointer(p, 'two', { expected: null }));
        expect(stale.code).toBe('POINTER_MOVED');
        expect(stale.exitCode).toBe(EXIT.CONFLICT);
        expect(await store.readPointer(p)).toBe('one');
        await store.writePointer(p, 'three', { expected: 'one' });
        expect(await store.readPointer(p)).toBe('three');
        expect((await store.list('m')).map((o) => o.path)).toEqual(['m/current.json']);
      });

      it('refuses while another writer holds a fresh lock, and breaks a stale one', async () => {
        const p = 'm/current.json';
        await store.writePointer(p, 'one', { expected: null });
        const lock = (at: Date) => enc.encode(JSON.stringify({ token: 'other', acquiredAt: at.toISOString(), host: 'elsewhere', pid: 1 }));
        await store.putFile(`${p}.lock`, lock(new Date()));
        const held = await rejection(store.writePointer(p, 'two', { expected: 'one' }));
        expect(held.code).toBe('POINTER_LOCKED');
        expect(await store.readPointer(p)).toBe('one');
        await store.putFile(`${p}.lock`, lock(new Date(Date.now() - 3_600_000)), { overwrite: true });
        await store.writePointer(p, 'two', { expected: 'one' });
        expect(await store.readPointer(p)).toBe('two');
        expect(await store.getFile(`${p}.lock`)).toBeNull();
      });

      it('lets exactly one of several concurrent pointer swaps from the same text win', async () => {
        const p = 'm/current.json';
        await store.writePointer(p, 'base', { expected: null });
        const results = await Promise.allSettled(['a', 'b', 'c'].map((t) => store.writePointer(p, t, { expected: 'base' })));
        const won = results.map((r, i) => (r.status === 'fulfilled' ? ['a', 'b', 'c'][i] : null)).filter(Boolean);
        expect(won).toHaveLength(1);
        for (const r of results.filter((r): r is PromiseRejectedResult => r.status === 'rejected')) {
          expect(['POINTER_MOVED', 'POINTER_LOCKED']).toContain(r.reason.code);
        }
        expect(await store.readPointer(p)).toBe(won[0]);
      });
    });

    describe('registry', () => {
      it('publishes a verified, immutable version and points current at it with a complete entry', async () => {
        const r = await publish(1, 'v1');
        expect(r).toMatchObject({ version: 'v1', activated: true, previous: null, uploaded: r.files, reused: 0 });
        const { pointer } = await readCurrent(ctxFor());
        expect(pointer!.current.version).toBe('v1');
        expect(pointer!.history).toEqual([]);
        const f = await folder(1);
        expect(pointer!.current.files).toEqual(f.manifest.files);
        expect(pointer!.current.featureSpecSha256).toBe(f.manifest.featureSpecSha256);
        expect(pointer!.current.path).toBe([store.rootPath, NAME, 'v1'].filter(Boolean).join('/'));
        const stored = fixtures.parseManifest(dec.decode((await store.getFile(manifestPath(NAME, 'v1')))!), 'stored');
        expect(stored.publication).toMatchObject({ name: NAME, version: 'v1', sourceRunId: f.manifest.runId });
        expect(sha256Hex((await store.getFile(manifestPath(NAME, 'v1')))!)).toBe(pointer!.current.manifest.sha256);
        const v = await verifyVersion(ctxFor(), 'v1');
        expect(v.status).toBe('complete');
        expect(v.checked).toBe('sha256');

        const again = await rejection(publish(2, 'v1'));
        expect(again.code).toBe('VERSION_EXISTS');
        expect(again.exitCode).toBe(EXIT.CONFLICT);
        expect((await verifyVersion(ctxFor(), 'v1')).status).toBe('complete');
        expect(await currentVersion()).toBe('v1');
      });

      it('lists versions with status, current and previous; rolls back and forth; refuses unknown targets', async () => {
        await publish(1, 'v1');
        await publish(2, 'v2');
        await publish(3, 'v3', ctxFor(), { activate: false });
        let list = await listVersions(ctxFor());
        expect(list.versions.map((v) => [v.version, v.status, v.current, v.previous])).toEqual([
          ['v3', 'complete', false, false],
          ['v2', 'complete', true, false],
          ['v1', 'complete', false, true],
        ]);
        const back = await rollback(ctxFor());
        expect(back).toMatchObject({ from: 'v2', to: 'v1', changed: true });
        const { pointer } = await readCurrent(ctxFor());
        expect(pointer!.current).toMatchObject({ version: 'v1', reason: 'rollback' });
        expect(pointer!.history.map((e) => e.version)).toEqual(['v2', 'v1']);
        expect((await rollback(ctxFor())).to).toBe('v2');
        expect((await rollback(ctxFor(), { to: 'v3' })).to).toBe('v3');
        list = await listVersions(ctxFor());
        expect(list.current).toBe('v3');
        const missing = await rejection(rollback(ctxFor(), { to: 'v9' }));
        expect(missing.code).toBe('ROLLBACK_TARGET_MISSING');
        expect(missing.exitCode).toBe(EXIT.CONFLICT);
        expect(await currentVersion()).toBe('v3');
        // Nothing was deleted by any of it.
        for (const v of ['v1', 'v2', 'v3']) expect((await verifyVersion(ctxFor(), v)).status).toBe('complete');
      });

      it('survives a kill before any write of a publish: old pointer valid, old version complete, new one never current', async () => {
        await publish(1, 'v1');
        const files = (await folder(2)).manifest.files.length;
        const writes = files + 2; // every file, the manifest, the pointer
        for (let k = 1; k <= writes; k++) {
          const version = `v2-k${k}`;
          const before = await store.readPointer(pointerPath(NAME));
          const err = await publish(2, version, ctxFor(crashingStore(store, k), { concurrency: 1 })).catch((e) => e);
          expect(err).toBeInstanceOf(SimulatedCrash);
          expect(await store.readPointer(pointerPath(NAME))).toBe(before);
          parsePointer(before!, 'pointer');
          expect((await verifyVersion(ctxFor(), 'v1')).status).toBe('complete');
          const status = (await listVersions(ctxFor())).versions.find((v) => v.version === version)?.status ?? 'absent';
          expect(status).toBe(k === 1 ? 'absent' : k <= files + 1 ? 'incomplete' : 'complete');
          expect(await currentVersion()).toBe('v1');
          // The same publish run again finishes the job, reusing what landed.
          if (k === 1 || k === files || k === writes) {
            if (k === writes) {
              const exists = await rejection(publish(2, version));
              expect(exists.code).toBe('VERSION_EXISTS');
              expect((await rollback(ctxFor(), { to: version })).to).toBe(version);
            } else {
              const resumed = await publish(2, version);
              expect(resumed.reused).toBe(k - 1);
              expect(resumed.activated).toBe(true);
            }
            expect(await currentVersion()).toBe(version);
            await rollback(ctxFor(), { to: 'v1' });
          }
        }
      });

      it('lets one of two concurrent publishes move the pointer; the other exits 6 and stays complete but not current', async () => {
        await publish(1, 'v1');
        const results = await Promise.allSettled([publish(2, 'v2'), publish(3, 'v3')]);
        const won = results.findIndex((r) => r.status === 'fulfilled');
        expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
        const lost = results[1 - won] as PromiseRejectedResult;
        expect(lost.reason.exitCode).toBe(EXIT.CONFLICT);
        expect(['POINTER_MOVED', 'POINTER_LOCKED']).toContain(lost.reason.code);
        const winner = won === 0 ? 'v2' : 'v3';
        const loser = won === 0 ? 'v3' : 'v2';
        const { pointer } = await readCurrent(ctxFor());
        expect(pointer!.current.version).toBe(winner);
        expect(pointer!.history.map((e) => e.version)).toEqual(['v1']);
        expect((await verifyVersion(ctxFor(), loser)).status).toBe('complete');
      });

      it('finds a flipped byte, refuses to roll back to it, and repairs a corrupt current', async () => {
        await publish(1, 'v1');
        await publish(2, 'v2');
        await publish(3, 'v3');
        await flipByte(shardOf('v3'));
        const quick = await listVersions(ctxFor());
        expect(quick.versions.find((v) => v.version === 'v3')!.status).toBe('complete'); // same size: only hashing sees it
        const deep = await verifyVersion(ctxFor(), 'v3');
        expect(deep.status).toBe('corrupt');
        expect(deep.problems).toEqual([expect.objectContaining({ path: 'user/group1-shard1of1.bin', problem: 'sha256' })]);

        await flipByte(shardOf('v1'));
        const refused = await rejection(rollback(ctxFor(), { to: 'v1' }));
        expect(refused.code).toBe('VERSION_INCOMPLETE');
        expect(refused.exitCode).toBe(EXIT.VALIDATION);
        expect(await currentVersion()).toBe('v3');

        const fixed = await repair(ctxFor());
        expect(fixed.currentProblem).toMatch(/v3 is corrupt/);
        expect(fixed.moved).toMatchObject({ from: 'v3', to: 'v2', changed: true });
        const { pointer } = await readCurrent(ctxFor());
        expect(pointer!.current).toMatchObject({ version: 'v2', reason: 'repair' });
        expect((await repair(ctxFor())).currentProblem).toBeNull();
      });

      it('repairs a damaged pointer document', async () => {
        await publish(1, 'v1');
        await publish(2, 'v2');
        await store.putFile(pointerPath(NAME), enc.encode('{"schemaVersion":1,"current":'), { overwrite: true });
        const err = await rejection(readCurrent(ctxFor()));
        expect(err.code).toBe('POINTER_CORRUPT');
        expect(err.exitCode).toBe(EXIT.VALIDATION);
        const fixed = await repair(ctxFor());
        expect(fixed.moved!.to).toBe('v2');
        expect((await readCurrent(ctxFor())).pointer!.current.version).toBe('v2');
      });

      it('prunes all but the newest N complete versions, never current or its predecessor', async () => {
        for (const [i, v] of ['v1', 'v2', 'v3', 'v4'].entries()) await publish(i + 1, v);
        await rollback(ctxFor(), { to: 'v1' }); // current v1, previous v4
        const dry = await prune(ctxFor(), { keep: 1, dryRun: true });
        expect(dry.removed.map((r) => r.version).sort()).toEqual(['v2', 'v3']);
        expect((await listVersions(ctxFor())).versions).toHaveLength(4);
        const r = await prune(ctxFor(), { keep: 1 });
        expect(r.removed.map((x) => x.version).sort()).toEqual(['v2', 'v3']);
        expect((await listVersions(ctxFor())).versions.map((v) => v.version).sort()).toEqual(['v1', 'v4']);
        expect(await store.list(versionDir(NAME, 'v2'))).toEqual([]);
        expect((await rollback(ctxFor())).to).toBe('v4');
      });

      it('keeps a fresh incomplete version from prune and removes an abandoned one', async () => {
        await publish(1, 'v1');
        await publish(2, 'v2-partial', ctxFor(crashingStore(store, 3), { concurrency: 1 })).catch(() => {});
        const fresh = await prune(ctxFor(), { keep: 1 });
        expect(fresh.removed).toEqual([]);
        expect(fresh.skipped.map((s) => s.version)).toContain('v2-partial');
        const later = await prune(ctxFor(store, { now: () => new Date(Date.now() + 2 * 3_600_000) }), { keep: 1 });
        expect(later.removed.map((x) => x.version)).toEqual(['v2-partial']);
        expect((await listVersions(ctxFor())).versions.map((v) => v.version)).toEqual(['v1']);
      });

      it('resolves current and versions into a verified cache, downloads once, and re-downloads a damaged copy', async () => {
        await publish(1, 'v1');
        await publish(2, 'v2');
        const cacheDir = path.join(tmp, 'cache');
        const opts = { store, name: NAME, cacheDir, parseManifest: fixtures.parseManifest };
        const first = await resolveStoredModel({ ...opts, ref: 'current' });
        expect(first).toMatchObject({ version: 'v2', source: 'download' });
        expect(path.basename(first.dir)).toBe(first.manifestSha256);
        expect(fixtures.parseManifest(readFileSync(path.join(first.dir, 'manifest.json'), 'utf8'), 'cached').publication!.version).toBe('v2');
        expect((await resolveStoredModel({ ...opts, ref: 'current' })).source).toBe('cache');
        writeFileSync(path.join(first.dir, 'user/group1-shard1of1.bin'), 'damaged');
        const events: string[] = [];
        const again = await resolveStoredModel({ ...opts, ref: 'current', onProgress: (e) => events.push(e.kind) });
        expect(again.source).toBe('download');
        expect(events).toContain('cache-damaged');
        expect((await resolveStoredModel({ ...opts, ref: 'v1' })).version).toBe('v1');
        await flipByte(shardOf('v1'));
        rmSync(cacheDir, { recursive: true, force: true });
        const bad = await rejection(resolveStoredModel({ ...opts, ref: 'v1' }));
        expect(bad.code).toBe('CHECKSUM_MISMATCH');
        const missing = await rejection(resolveStoredModel({ ...opts, ref: 'v7' }));
        expect(missing.exitCode).toBe(EXIT.CONFLICT);
      });
    });
  });
}
