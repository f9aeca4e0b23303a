/**
 * The TF.js layers-model format (spec §1): `model.json` and the weight bytes cut into shards, optionally quantized.
 * Pure functions over memory; writing to disk is `export-folder.ts`. Also the inverse (`decodeWeights`), used to
 * check the written shards byte for byte and by the validator.
 */
import { concatBytes } from '../bytes.js';
import { invalidModel } from './errors.js';
import type { MappedWeight } from './weights.js';

export const DEFAULT_SHARD_SIZE_BYTES = 4 * 1024 * 1024;
export const MIN_SHARD_SIZE_BYTES = 1024;

export type QuantizeDtype = 'float16' | 'uint8';

export interface WeightEntry {
  name: string;
  shape: number[];
  dtype: 'float32' | 'int32';
  quantization?: { dtype: 'uint8' | 'float16'; scale?: number; min?: number };
}

export interface ModelJson {
  format: 'layers-model';
  generatedBy: string | null;
  convertedBy: string;
  modelTopology: { keras_version: string | null; backend: string; model_config: Record<string, unknown> };
  weightsManifest: Array<{ paths: string[]; weights: WeightEntry[] }>;
  userDefinedMetadata?: Record<string, unknown>;
}

export interface QuantizationStats {
  dtype: QuantizeDtype;
  /** Largest |w − dequantized(w)| over all weights. */
  maxAbsError: number;
  /** Root mean square of the weight errors. */
  rmsError: number;
  /** Values that float16 could not hold and were clamped to ±65504. */
  clamped: number;
}

export interface EncodedWeights {
  entries: WeightEntry[];
  /**
   * The weight bytes in entry order, little-endian, no padding, as a list of pieces: float32 weights are views of
   * the source file's bytes (written and hashed from there, never copied), quantized weights one new buffer.
   */
  pieces: Uint8Array[];
  byteLength: number;
  /** All pieces concatenated (copied on first use: validation and the quantization report read it whole). */
  readonly bytes: Uint8Array;
  quantization?: QuantizationStats;
}

function encoded(entries: WeightEntry[], pieces: Uint8Array[], quantization?: QuantizationStats): EncodedWeights {
  let bytes: Uint8Array | undefined;
  return {
    entries,
    pieces,
    byteLength: pieces.reduce((a, p) => a + p.byteLength, 0),
    get bytes() {
      bytes ??= concatBytes(pieces);
      return bytes;
    },
    ...(quantization ? { quantization } : {}),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// float16
// ---------------------------------------------------------------------------------------------------------------

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE half from a float32 value, round to nearest even; out-of-range values clamp to ±65504. */
export function toFloat16(value: number): { bits: number; clamped: boolean } {
  if (Number.isNaN(value)) return { bits: 0x7e00, clamped: false };
  const max = 65504;
  let clamped = false;
  if (value > max) {
    value = max;
    clamped = true;
  } else if (value < -max) {
    value = -max;
    clamped = true;
  }
  f32[0] = value;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return { bits: sign | 0x7c00 | (mant ? 0x200 : 0), clamped };
  let e = exp - 127 + 15;
  if (e >= 0x1f) return { bits: sign | 0x7bff, clamped: true };
  if (e <= 0) {
    if (e < -10) return { bits: sign, clamped }; // underflows to zero
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    let m = mant >>> shift;
    const rest = mant & ((1 << shift) - 1);
    if (rest > half || (rest === half && (m & 1))) m++;
    return { bits: sign | m, clamped };
  }
  let m = mant >>> 13;
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (m & 1))) {
    m++;
    if (m === 0x400) {
      m = 0;
      e++;
      if (e >= 0x1f) return { bits: sign | 0x7bff, clamped: true };
    }
  }
  return { bits: sign | (e << 10) | m, clamped };
}

export function fromFloat16(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

// ---------------------------------------------------------------------------------------------------------------

/** Encode weights in order, optionally quantized. */
export function encodeWeights(weights: readonly MappedWeight[], quantize?: QuantizeDtype): EncodedWeights {
  const seen = new Set<string>();
  for (const w of weights) {
    if (seen.has(w.name)) throw invalidModel(`Two weights would both be named ${w.name} in model.json.`, { code: 'KERAS_DUPLICATE_WEIGHT' });
    seen.add(w.name);
  }
  if (!quantize) {
    // No copy: the weight stream is the source file's own float32 bytes, in order.
    const entries = weights.map((w): WeightEntry => ({ name: w.name, shape: [...w.shape], dtype: w.dtype }));
    return encoded(
      entries,
      weights.map((w) => w.bytes).filter((b) => b.byteLength > 0),
    );
  }
  const bytesPer = quantize === 'float16' ? 2 : 1;
  const total = weights.reduce((a, w) => a + (w.bytes.length / 4) * bytesPer, 0);
  // Shared memory, so that the worker can hash the shards in place (parallel-sha256.ts); every byte is written below.
  const bytes = new Uint8Array(new SharedArrayBuffer(total));
  const dv = new DataView(bytes.buffer, 0, total);
  const entries: WeightEntry[] = [];
  let offset = 0;
  let maxAbs = 0;
  let sumSq = 0;
  let count = 0;
  let clamped = 0;
  for (const w of weights) {
    const entry: WeightEntry = { name: w.name, shape: [...w.shape], dtype: w.dtype };
    const d = w.data;
    if (quantize === 'float16') {
      entry.quantization = { dtype: 'float16' };
      for (let i = 0; i < d.length; i++) {
        const h = toFloat16(d[i]);
        if (h.clamped) clamped++;
        dv.setUint16(offset + i * 2, h.bits, true);
        const err = Math.abs(fromFloat16(h.bits) - d[i]);
        if (err > maxAbs) maxAbs = err;
        sumSq += err * err;
      }
      offset += d.length * 2;
    } else {
      // Affine uint8 per tensor; the range includes 0 and is nudged so 0 stays exact (biases, padding rows).
      let lo = 0;
      let hi = 0;
      for (let i = 0; i < d.length; i++) {
        if (d[i] < lo) lo = d[i];
        if (d[i] > hi) hi = d[i];
      }
      let scale = (hi - lo) / 255;
      if (!(scale > 0)) scale = 1;
      const zero = Math.round(-lo / scale);
      const min = -zero * scale;
      entry.quantization = { dtype: 'uint8', scale, min };
      for (let i = 0; i < d.length; i++) {
        const q = Math.min(255, Math.max(0, Math.round((d[i] - min) / scale)));
        bytes[offset + i] = q;
        const err = Math.abs(q * scale + min - d[i]);
        if (err > maxAbs) maxAbs = err;
        sumSq += err * err;
      }
      offset += d.length;
    }
    count += d.length;
    entries.push(entry);
  }
  return encoded(entries, total > 0 ? [bytes] : [], { dtype: quantize, maxAbsError: maxAbs, rmsError: count ? Math.sqrt(sumSq / count) : 0, clamped });
}

/** Decode weight bytes back into float32 arrays (dequantizing as the TF.js loader does). */
export function decodeWeights(entries: readonly WeightEntry[], bytes: Uint8Array): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let offset = 0;
  for (const e of entries) {
    const n = e.shape.reduce((a, d) => a * d, 1);
    const q = e.quantization;
    const width = q?.dtype === 'uint8' ? 1 : q?.dtype === 'float16' ? 2 : 4;
    if (offset + n * width > bytes.length) throw invalidModel(`The weight data ends before ${e.name} (needs ${n * width} bytes at ${offset}, ${bytes.length} in total).`, { code: 'TFJS_WEIGHTS_SHORT' });
    const arr = new Float32Array(n);
    if (!q) for (let i = 0; i < n; i++) arr[i] = dv.getFloat32(offset + i * 4, true);
    else if (q.dtype === 'float16') for (let i = 0; i < n; i++) arr[i] = fromFloat16(dv.getUint16(offset + i * 2, true));
    else for (let i = 0; i < n; i++) arr[i] = bytes[offset + i] * (q.scale ?? 1) + (q.min ?? 0);
    offset += n * width;
    out.set(e.name, arr);
  }
  if (offset !== bytes.length) throw invalidModel(`The weight data has ${bytes.length - offset} bytes more than model.json describes.`, { code: 'TFJS_WEIGHTS_LONG' });
  return out;
}

export function shardName(index: number, count: number): string {
  return `group1-shard${index + 1}of${count}.bin`;
}

export interface Shard {
  name: string;
  size: number;
  /** Views of the weight pieces that make up this shard, in order. */
  pieces: Uint8Array[];
}

/**
 * Cut the weight stream into shards of at most `shardSize` bytes, as TF.js does (a weight may straddle two shards).
 * Views only, no copies. An empty stream still gets one (empty) shard, as model.json lists at least one path.
 */
export function cutShards(pieces: readonly Uint8Array[], shardSize: number): Shard[] {
  const total = pieces.reduce((a, p) => a + p.byteLength, 0);
  const count = Math.max(1, Math.ceil(total / shardSize));
  const shards: Shard[] = Array.from({ length: count }, (_, i) => ({ name: shardName(i, count), size: 0, pieces: [] }));
  let s = 0;
  for (const piece of pieces) {
    let at = 0;
    while (at < piece.byteLength) {
      if (shards[s].size === shardSize) s++;
      const take = Math.min(shardSize - shards[s].size, piece.byteLength - at);
      shards[s].pieces.push(piece.subarray(at, at + take));
      shards[s].size += take;
      at += take;
    }
  }
  return shards;
}
