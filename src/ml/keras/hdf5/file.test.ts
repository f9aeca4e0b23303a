/**
 * Cross-checks the TypeScript HDF5 reader against h5wasm (libhdf5 2.0 in WebAssembly) on every HDF5 file in
 * fixtures/keras: same tree, same attributes, same dataset shapes and element-for-element equal values. Also
 * files written by h5wasm with the layouts Keras does not use by default (libver latest: dense links and
 * attributes, chunked + gzip + shuffle datasets).
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { unzipSync } from 'fflate';
import h5wasm from 'h5wasm/node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FIXTURES_DIR, type TmpDir, tmpDir } from '../../../testing/tmp-dir.js';
import { Hdf5Error, H5Dataset, H5Group, openHdf5 } from './file.js';

const KERAS_DIR = path.join(FIXTURES_DIR, 'keras');

let tmp: TmpDir;
beforeAll(async () => {
  await h5wasm.ready;
  tmp = tmpDir('am-ml-hdf5-');
});
afterAll(() => tmp.remove());

/** Every HDF5 file among the fixtures, as [label, path on disk] (zip members extracted to tmp for h5wasm). */
function hdf5Fixtures(): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  const names = [...readdirSync(KERAS_DIR), ...readdirSync(path.join(KERAS_DIR, 'generated')).map((n) => `generated/${n}`)].sort();
  for (const name of names) {
    const full = path.join(KERAS_DIR, name);
    if (name.endsWith('.h5')) out.push([name, full]);
    if (name.endsWith('.keras')) {
      const files = unzipSync(new Uint8Array(readFileSync(full)), { filter: (f) => f.name === 'model.weights.h5' });
      const dest = tmp.join(`${name.replace(/\//g, '_')}.weights.h5`);
      writeFileSync(dest, files['model.weights.h5']);
      out.push([`${name}!model.weights.h5`, dest]);
    }
  }
  return out;
}

type H5wasmGroup = InstanceType<typeof h5wasm.Group>;

function normaliseWasmValue(v: unknown): unknown {
  if (ArrayBuffer.isView(v)) return Array.from(v as unknown as ArrayLike<number | bigint>, (x) => (typeof x === 'bigint' ? Number(x) : x));
  if (typeof v === 'bigint') return Number(v);
  if (Array.isArray(v)) return v.map(normaliseWasmValue);
  return v;
}

function normaliseOurValue(v: unknown): unknown {
  if (typeof v === 'bigint') return Number(v);
  if (Array.isArray(v)) return v.map(normaliseOurValue);
  return v;
}

/** Walk both trees in lock step and compare everything; returns the number of datasets compared. */
function compareTrees(ours: H5Group, theirs: H5wasmGroup, where: string): number {
  expect(ours.keys(), `${where} children`).toEqual([...theirs.keys()].sort());
  expect([...ours.attrs.keys()].sort(), `${where} attribute names`).toEqual(Object.keys(theirs.attrs).sort());
  for (const [name, attr] of Object.entries(theirs.attrs)) {
    expect(normaliseOurValue(ours.attr(name)), `${where}@${name}`).toEqual(normaliseWasmValue(attr.value));
  }
  let datasets = 0;
  for (const key of theirs.keys()) {
    const t = theirs.get(key);
    const o = ours.get(key);
    if (t instanceof h5wasm.Dataset) {
      expect(o, `${where}/${key}`).toBeInstanceOf(H5Dataset);
      const d = o as H5Dataset;
      expect(d.shape, `${where}/${key} shape`).toEqual(t.shape ?? []);
      for (const [name, attr] of Object.entries(t.attrs)) {
        expect(normaliseOurValue(d.attr(name)), `${where}/${key}@${name}`).toEqual(normaliseWasmValue(attr.value));
      }
      const theirsValue = t.value;
      if (ArrayBuffer.isView(theirsValue)) {
        const a = d.read();
        expect(a.length).toBe((theirsValue as unknown as ArrayLike<number>).length);
        // Bit-for-bit: compare the bytes of equal-typed arrays.
        expect(Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(theirsValue.buffer, theirsValue.byteOffset, theirsValue.byteLength))).toBe(true);
      } else {
        expect(normaliseOurValue(d.values())).toEqual(normaliseWasmValue(theirsValue));
      }
      datasets++;
    } else if (t instanceof h5wasm.Group) {
      expect(o, `${where}/${key}`).toBeInstanceOf(H5Group);
      datasets += compareTrees(o as H5Group, t, `${where}/${key}`);
    }
  }
  return datasets;
}

describe('HDF5 reader cross-checked with h5wasm', () => {
  it('reads every Keras fixture exactly as libhdf5 does', () => {
    const fixtures = hdf5Fixtures();
    expect(fixtures.length).toBeGreaterThanOrEqual(20);
    for (const [label, file] of fixtures) {
      const ours = openHdf5(new Uint8Array(readFileSync(file)), label);
      const theirs = new h5wasm.File(file, 'r');
      try {
        const n = compareTrees(ours.root, theirs, label);
        expect(n, `${label} datasets`).toBeGreaterThan(0);
      } finally {
        theirs.close();
      }
    }
  });

  it('reads files with dense links and attributes, chunked gzip+shuffle data, and superblock v3', () => {
    const file = tmp.join('latest.h5');
    const f = new h5wasm.File(file, 'w', { libver: 'latest' });
    const g = f.create_group('many');
    for (let i = 0; i < 40; i++) {
      const sub = g.create_group(`layer_${i}`);
      sub.create_attribute('name', `layer number ${i}`);
    }
    for (let i = 0; i < 30; i++) g.create_attribute(`attr_${i}`, `value ${i}`);
    g.create_attribute('numbers', new Float64Array([1.5, 2.5, -3]));
    const big = new Float32Array(100 * 37).map((_, i) => Math.sin(i) * 1000);
    g.create_dataset({ name: 'chunked', data: big, shape: [100, 37], chunks: [16, 10], compression: 'gzip', compression_opts: 4 });
    g.create_dataset({ name: 'plain', data: new Float64Array([1, 2, 3, 4, 5, 6]), shape: [2, 3] });
    g.create_dataset({ name: 'ints', data: new BigInt64Array([1n, -2n, 3n]) });
    g.create_dataset({ name: 'single_chunk', data: new Float32Array(24).map((_, i) => i / 7), shape: [4, 6], chunks: [4, 6], compression: 'gzip' });
    f.close();

    const ours = openHdf5(new Uint8Array(readFileSync(file)), 'latest.h5');
    expect(ours.superblockVersion).toBeGreaterThanOrEqual(2);
    const theirs = new h5wasm.File(file, 'r');
    try {
      expect(compareTrees(ours.root, theirs, 'latest.h5')).toBe(4);
    } finally {
      theirs.close();
    }
    // Version-2 object headers carry checksums: a flipped byte inside one is caught as damage.
    const bytes = new Uint8Array(readFileSync(file));
    const at = Buffer.from(bytes).indexOf('OHDR', 100);
    expect(at).toBeGreaterThan(0);
    bytes[at + 7] ^= 0x01;
    const walkAll = (g: H5Group) => {
      void g.attrs.size;
      for (const k of g.keys()) {
        const e = g.get(k);
        if (e instanceof H5Group) walkAll(e);
        else if (e instanceof H5Dataset) e.read();
      }
    };
    expect(() => walkAll(openHdf5(bytes).root)).toThrow(/checksum/);

    const chunked = ours.root.dataset('many/chunked')!;
    expect(chunked.filters.map((x) => x.id)).toContain(1);
    expect(Array.from(chunked.read() as Float32Array).slice(0, 3)).toEqual(Array.from(big.slice(0, 3)));
  });

  it('refuses damaged files with an Hdf5Error instead of crashing', () => {
    const bytes = new Uint8Array(readFileSync(path.join(KERAS_DIR, 'nudge-deploy__NudgeCronjob__two_tower_model.h5')));
    expect(() => openHdf5(bytes.slice(0, 100_000))).toThrow(/truncated/);
    expect(() => openHdf5(bytes.slice(0, 6))).toThrow(Hdf5Error);
    expect(() => openHdf5(new TextEncoder().encode('not an hdf5 file at all, just text'))).toThrow(/not an HDF5 file/);
    // Flip bytes all over the file: every read either succeeds or throws Hdf5Error; never anything else.
    let seed = 7;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
    for (let trial = 0; trial < 60; trial++) {
      const damaged = bytes.slice();
      for (let k = 0; k < 20; k++) damaged[Math.floor(rnd() * 4096)] = Math.floor(rnd() * 256);
      try {
        const f = openHdf5(damaged);
        const walk = (g: H5Group, depth: number) => {
          if (depth > 8) return;
          void g.attrs.size;
          for (const k of g.keys()) {
            const e = g.get(k);
            if (e instanceof H5Group) walk(e, depth + 1);
            else if (e instanceof H5Dataset && e.size < 1e6) e.read();
          }
        };
        walk(f.root, 0);
      } catch (err) {
        expect(err, String(err)).toBeInstanceOf(Hdf5Error);
      }
    }
  });
});
