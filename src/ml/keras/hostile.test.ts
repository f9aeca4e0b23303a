/**
 * Hostile and broken inputs, built here from the real fixtures: each must fail through `am-ml export` with a clear
 * error and a documented exit code (2 unreadable, 4 inconsistent or over the limits), never an internal error, and
 * leave no output folder and no temporary folder behind.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { strFromU8, strToU8, unzipSync, zipSync } from 'fflate';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportModel } from '../../commands/export.js';
import { AmMlError } from '../../errors.js';
import { FIXTURES_DIR, type TmpDir, tmpDir } from '../../testing/tmp-dir.js';

const K = path.join(FIXTURES_DIR, 'keras');
const NUDGE = path.join(K, 'nudge-deploy__NudgeCronjob__two_tower_model.h5');
const USER = path.join(K, 'generated/user_tower_768.keras');

let tmp: TmpDir;
let n = 0;
beforeAll(() => {
  tmp = tmpDir('am-ml-hostile-');
});
afterAll(() => tmp.remove());

function file(name: string, bytes: Uint8Array | string): string {
  const p = tmp.join(`${n++}-${name}`);
  writeFileSync(p, bytes);
  return p;
}

async function expectRefused(input: string, exitCode: 2 | 4, message: RegExp, extra: { weights?: string } = {}): Promise<AmMlError> {
  const outParent = tmp.join(`out-${n++}`);
  const out = path.join(outParent, 'model');
  let caught: unknown;
  try {
    await exportModel({ input, weights: extra.weights, out, cwd: tmp.path });
  } catch (err) {
    caught = err;
  }
  expect(caught, 'the export should have failed').toBeInstanceOf(AmMlError);
  const err = caught as AmMlError;
  expect(err.message).toMatch(message);
  expect(err.exitCode, err.message).toBe(exitCode);
  expect(existsSync(out), 'no output folder').toBe(false);
  if (existsSync(outParent)) expect(readdirSync(outParent), 'no temporary folder left').toEqual([]);
  return err;
}

const unzip = (p: string) => unzipSync(new Uint8Array(readFileSync(p)));

/** Rebuild a .keras with some members replaced (stored, like Keras writes them). */
function rezip(p: string, change: (files: Record<string, Uint8Array>) => void): Uint8Array {
  const files = unzip(p);
  change(files);
  return zipSync(files, { level: 0 });
}

function editConfig(p: string, edit: (cfg: any) => void): Uint8Array {
  return rezip(p, (files) => {
    const cfg = JSON.parse(strFromU8(files['config.json']));
    edit(cfg);
    files['config.json'] = strToU8(JSON.stringify(cfg));
  });
}

/** Overwrite every occurrence of `find` with `replace` (same length). */
function patchAll(bytes: Uint8Array, find: Uint8Array, replace: Uint8Array): number {
  let count = 0;
  outer: for (let i = 0; i + find.length <= bytes.length; i++) {
    for (let j = 0; j < find.length; j++) if (bytes[i + j] !== find[j]) continue outer;
    bytes.set(replace, i);
    count++;
  }
  return count;
}

/**
 * A copy of a .keras file with the central directory entry of `member` edited by `patch` (given the entry's offset;
 * entries start with the signature 0x02014b50, the name length is at +28 and the name at +46).
 */
function patchCentralEntry(archive: string, member: string, patch: (dv: DataView, at: number) => void): Uint8Array {
  const bytes = new Uint8Array(readFileSync(archive));
  const dv = new DataView(bytes.buffer);
  let patched = 0;
  for (let i = 0; i + 46 < bytes.length; i++) {
    if (dv.getUint32(i, true) !== 0x02014b50) continue;
    const nameLen = dv.getUint16(i + 28, true);
    if (strFromU8(bytes.subarray(i + 46, i + 46 + nameLen)) !== member) continue;
    patch(dv, i);
    patched++;
  }
  expect(patched, `central directory entries of ${member}`).toBe(1);
  return bytes;
}

const le64 = (v: number) => {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(v), true);
  return b;
};

describe('hostile zip archives', () => {
  it("refuses members with '../' paths", async () => {
    const bad = rezip(USER, (f) => {
      f['../../evil.sh'] = strToU8('echo pwned');
    });
    await expectRefused(file('traversal.keras', bad), 2, /'\.\.' component/);
  });

  it('refuses absolute member paths', async () => {
    const bad = rezip(USER, (f) => {
      f['/etc/passwd'] = strToU8('x');
    });
    await expectRefused(file('absolute.keras', bad), 2, /absolute path/);
  });

  it('refuses absurd declared sizes before inflating anything', async () => {
    const bytes = patchCentralEntry(USER, 'model.weights.h5', (dv, at) => dv.setUint32(at + 24, 0xfffffff0, true)); // uncompressed size
    await expectRefused(file('absurd.keras', bytes), 4, /declares 4294967280 bytes/);
  });

  it('refuses a deflate bomb (a huge expansion ratio)', async () => {
    const files = unzip(USER);
    files['model.weights.h5'] = new Uint8Array(8 * 1024 * 1024); // zeros: compresses ~1000×
    const bomb = zipSync(files, { level: 9 });
    await expectRefused(file('bomb.keras', bomb), 4, /would expand \d+×/);
  });

  it('refuses a truncated archive', async () => {
    const bytes = readFileSync(USER);
    await expectRefused(file('truncated.keras', bytes.subarray(0, bytes.length >> 1)), 2, /not a readable zip archive/);
  });

  it('refuses a stored member whose local header offset points elsewhere', async () => {
    const bytes = patchCentralEntry(USER, 'model.weights.h5', (dv, at) => dv.setUint32(at + 42, dv.getUint32(at + 42, true) + 7, true)); // local header offset
    await expectRefused(file('offset.keras', bytes), 2, /local header of model\.weights\.h5 is out of place/);
  });

  it('refuses a zip that is not a Keras archive, and an npz weights save', async () => {
    await expectRefused(file('other.keras', zipSync({ 'readme.txt': strToU8('hello') })), 2, /without config\.json/);
    const npz = rezip(USER, (f) => {
      delete f['model.weights.h5'];
      f['model.weights.npz'] = new Uint8Array(10);
    });
    await expectRefused(file('npz.keras', npz), 2, /model\.weights\.npz/);
  });

  it('refuses absurdly deep model nesting without overflowing the stack', async () => {
    let cfg = '{"class_name": "Dense", "config": {"name": "d", "units": 1}}';
    for (let i = 0; i < 3000; i++) cfg = `{"class_name": "Sequential", "config": {"name": "s${i}", "layers": [${cfg}]}}`;
    const bad = rezip(USER, (f) => {
      f['config.json'] = strToU8(cfg);
    });
    await expectRefused(file('deep.keras', bad), 4, /nested more than 32 levels/);
  });

  it('refuses a damaged config.json', async () => {
    const bad = rezip(USER, (f) => {
      f['config.json'] = strToU8('{"class_name": "Functional", "config": ');
    });
    await expectRefused(file('badjson.keras', bad), 2, /config\.json is not valid JSON/);
  });
});

describe('broken HDF5', () => {
  it('refuses wrong magic bytes', async () => {
    await expectRefused(file('image.keras', new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0])), 2, /is not a Keras model: it starts with "\\x89PNG/);
    await expectRefused(file('text.h5', 'just some text'), 2, /is not a Keras model/);
  });

  it('refuses a truncated .h5', async () => {
    const bytes = readFileSync(NUDGE);
    await expectRefused(file('truncated.h5', bytes.subarray(0, 100_000)), 2, /truncated/);
    await expectRefused(file('tiny.h5', bytes.subarray(0, 12)), 2, /cannot be read as HDF5/);
  });

  it('refuses a .keras whose weights file is truncated', async () => {
    const bad = rezip(USER, (f) => {
      f['model.weights.h5'] = f['model.weights.h5'].slice(0, 50_000);
    });
    await expectRefused(file('truncated-weights.keras', bad), 2, /truncated/);
  });

  it('refuses huge declared shapes without allocating them', async () => {
    // dense_44/kernel:0 is [128, 1]: its dataspace message holds the dims as two 8-byte lengths.
    const huge = new Uint8Array(readFileSync(NUDGE));
    const count = patchAll(huge, new Uint8Array([...le64(128), ...le64(1)]), new Uint8Array([...le64(2 ** 40), ...le64(1)]));
    expect(count).toBeGreaterThan(0);
    await expectRefused(file('huge-shape.h5', huge), 4, /more than the limit/);
    // A shape that fits the limit but not the bytes stored for it.
    const big = new Uint8Array(readFileSync(NUDGE));
    patchAll(big, new Uint8Array([...le64(128), ...le64(1)]), new Uint8Array([...le64(128_000), ...le64(1)]));
    await expectRefused(file('big-shape.h5', big), 2, /needs \d+ bytes but only \d+ are stored/);
  });

  it('refuses a weights-only file given as the model, and a model without weights', async () => {
    await expectRefused(path.join(K, 'fastmachinelearning__example-models__KERAS_3layer_weights.h5'), 2, /weights-only HDF5 file.*needs the model topology/s);
    await expectRefused(path.join(K, 'fastmachinelearning__example-models__KERAS_3layer.json'), 2, /topology without weights/);
    await expectRefused(path.join(K, 'generated/nested_sequential.weights.h5'), 2, /Keras 3 weights file/);
  });

  it('fails cleanly on bit flips anywhere in the weights file (never an internal error)', async () => {
    const original = unzip(USER)['model.weights.h5'];
    let seed = 11;
    const rnd = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
    let refused = 0;
    for (let trial = 0; trial < 25; trial++) {
      const damaged = original.slice();
      for (let k = 0; k < 8; k++) damaged[Math.floor(rnd() * 8192)] = Math.floor(rnd() * 256);
      const input = file('flipped.keras', rezip(USER, (f) => (f['model.weights.h5'] = damaged)));
      const out = tmp.join(`flip-out-${trial}`);
      try {
        await exportModel({ input, out, cwd: tmp.path });
        expect(existsSync(path.join(out, 'manifest.json'))).toBe(true); // a flip in weight values still converts
      } catch (err) {
        refused++;
        expect(err, String(err)).toBeInstanceOf(AmMlError);
        expect([2, 4], (err as Error).message).toContain((err as AmMlError).exitCode);
        expect(existsSync(out)).toBe(false);
      }
    }
    expect(refused).toBeGreaterThan(0);
  });
});

describe('weights that disagree with the config', () => {
  it('refuses a weight count that differs from the layer config', async () => {
    const bad = editConfig(USER, (cfg) => {
      cfg.config.layers.find((l: any) => l.name === 'user_projection').config.use_bias = false;
    });
    await expectRefused(file('count.keras', bad), 4, /user_projection \(Dense\) has 2 weight\(s\) .* has 1 \(kernel\)/);
  });

  it('refuses shapes that differ from the config', async () => {
    const bad = editConfig(USER, (cfg) => {
      cfg.config.layers.find((l: any) => l.name === 'user_projection').config.units = 700;
    });
    await expectRefused(file('shape.keras', bad), 4, /user_projection: kernel is \[64, 768\], a Dense with units=700/);
  });

  it('refuses a vars name that does not match the layer the config puts there', async () => {
    const bad = editConfig(USER, (cfg) => {
      const layer = cfg.config.layers.find((l: any) => l.name === 'user_hidden');
      layer.name = 'renamed';
      layer.config.name = 'renamed';
      for (const l of cfg.config.layers) {
        for (const node of l.inbound_nodes ?? []) {
          JSON.stringify(node, (_k, v) => {
            if (v && Array.isArray(v.keras_history) && v.keras_history[0] === 'user_hidden') v.keras_history[0] = 'renamed';
            return v;
          });
        }
      }
    });
    await expectRefused(file('renamed.keras', bad), 4, /belong to layer 'user_hidden', but the config puts layer 'renamed' there/);
  });

  it('refuses a weights file with layers the topology does not have', async () => {
    const topo = JSON.parse(readFileSync(path.join(K, 'fastmachinelearning__example-models__KERAS_3layer.json'), 'utf8'));
    topo.config.layers = topo.config.layers.filter((l: any) => l.name !== 'fc3_relu');
    topo.config.layers.find((l: any) => l.name === 'output_softmax').inbound_nodes = [[['fc2_relu', 0, 0, {}]]];
    await expectRefused(file('topology.json', JSON.stringify(topo)), 4, /weights for a layer 'fc3_relu' that the model config does not contain/, {
      weights: path.join(K, 'fastmachinelearning__example-models__KERAS_3layer_weights.h5'),
    });
  });
});
