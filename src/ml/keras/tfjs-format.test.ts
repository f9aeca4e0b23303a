/** float16 encoding, shard cutting and the weight round trip of the TF.js format. */
import { describe, expect, it } from 'vitest';
import { cutShards, decodeWeights, encodeWeights, fromFloat16, toFloat16 } from './tfjs-format.js';
import type { MappedWeight } from './weights.js';

const weight = (name: string, values: number[]): MappedWeight => {
  const data = Float32Array.from(values);
  return { name, layerPath: name.split('/')[0], shape: [values.length], dtype: 'float32', bytes: new Uint8Array(data.buffer), data, source: name, sourceDtype: 'float32' };
};

describe('float16', () => {
  it('rounds to nearest even and keeps exact halves exact', () => {
    expect(toFloat16(1).bits).toBe(0x3c00);
    expect(toFloat16(-2).bits).toBe(0xc000);
    expect(toFloat16(65504).bits).toBe(0x7bff);
    expect(toFloat16(2 ** -24).bits).toBe(0x0001); // smallest subnormal
    expect(toFloat16(1 + 2 ** -11).bits).toBe(0x3c00); // a tie rounds to even
    expect(toFloat16(1 + 3 * 2 ** -11).bits).toBe(0x3c02);
    expect(toFloat16(1e6)).toEqual({ bits: 0x7bff, clamped: true });
    for (let h = 0; h < 0x7c00; h += 7) expect(toFloat16(fromFloat16(h)).bits).toBe(h);
  });
});

describe('weights and shards', () => {
  const weights = [weight('a/kernel', [1, -2, 3.5]), weight('b/bias', [0.25, 1e-3])];

  it('round-trips float32 exactly and cuts shards with no padding', () => {
    const enc = encodeWeights(weights);
    expect(enc.bytes.length).toBe(20);
    const shards = cutShards(enc.pieces, 8);
    expect(shards.map((s) => [s.name, s.size])).toEqual([['group1-shard1of3.bin', 8], ['group1-shard2of3.bin', 8], ['group1-shard3of3.bin', 4]]);
    const decoded = decodeWeights(enc.entries, enc.bytes);
    expect(Array.from(decoded.get('a/kernel')!)).toEqual([1, -2, 3.5]);
    expect(decoded.get('b/bias')![1]).toBe(Math.fround(1e-3));
  });

  it('cuts shards from views of the source bytes, weights straddling shard ends', () => {
    const source = new Uint8Array(new ArrayBuffer(64));
    source.forEach((_, i) => (source[i] = i));
    const ws = [12, 20, 0, 8].map((n, k) => ({ ...weight(`w${k}/kernel`, []), shape: [n / 4], bytes: source.subarray(k * 16, k * 16 + n) }));
    const enc = encodeWeights(ws);
    expect(enc.byteLength).toBe(40);
    for (const p of enc.pieces) expect(p.buffer).toBe(source.buffer); // no copy
    const shards = cutShards(enc.pieces, 16);
    expect(shards.map((s) => s.size)).toEqual([16, 16, 8]);
    const joined = shards.flatMap((s) => s.pieces.flatMap((p) => Array.from(p)));
    expect(joined).toEqual(Array.from(enc.bytes));
    expect(Array.from(enc.bytes)).toEqual([...ws[0].bytes, ...ws[1].bytes, ...ws[3].bytes]);
    expect(cutShards([], 16)).toEqual([{ name: 'group1-shard1of1.bin', size: 0, pieces: [] }]);
  });

  it('quantizes to uint8 with 0 exact, and refuses duplicate names', () => {
    const enc = encodeWeights([weight('c/kernel', [0, 1, -1, 0.5])], 'uint8');
    const q = enc.entries[0].quantization!;
    expect(q.dtype).toBe('uint8');
    const back = decodeWeights(enc.entries, enc.bytes).get('c/kernel')!;
    expect(back[0]).toBe(0);
    expect(Math.max(...Array.from(back, (v, i) => Math.abs(v - [0, 1, -1, 0.5][i])))).toBeLessThanOrEqual(q.scale!);
    expect(() => encodeWeights([weight('d/kernel', [1]), weight('d/kernel', [2])])).toThrow(/both be named d\/kernel/);
  });

  it('notices weight data that is too short or too long', () => {
    const enc = encodeWeights(weights);
    expect(() => decodeWeights(enc.entries, enc.bytes.subarray(0, 16))).toThrow(/ends before b\/bias/);
    expect(() => decodeWeights(enc.entries, new Uint8Array(24))).toThrow(/4 bytes more/);
  });
});
