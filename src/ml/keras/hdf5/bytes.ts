/**
 * Bounds-checked little-endian reads over an HDF5 file held in memory. Every read checks the file length first, so
 * a truncated or hostile file ends in an `Hdf5Error` naming the offset instead of garbage or a RangeError.
 */

export type Hdf5ErrorKind = 'corrupt' | 'unsupported' | 'limit';

/** A file the reader cannot read: damaged (`corrupt`), using an HDF5 feature we do not read, or over a limit. */
export class Hdf5Error extends Error {
  constructor(
    readonly kind: Hdf5ErrorKind,
    message: string,
  ) {
    super(message);
    this.name = 'Hdf5Error';
  }
}

/** The HDF5 "undefined address" (all bits set) as we decode it. */
export const UNDEFINED_ADDRESS = -1;

export class Bytes {
  readonly view: DataView;
  readonly length: number;

  constructor(
    readonly u8: Uint8Array,
    /** Size of file offsets (2, 4 or 8). */
    public offsetSize = 8,
    /** Size of lengths (2, 4 or 8). */
    public lengthSize = 8,
  ) {
    this.view = new DataView(u8.buffer, u8.byteOffset, u8.byteLength);
    this.length = u8.byteLength;
  }

  check(pos: number, n: number, what: string): void {
    if (!Number.isSafeInteger(pos) || pos < 0 || n < 0 || pos + n > this.length) {
      throw new Hdf5Error('corrupt', `${what} at byte ${pos} (+${n}) lies outside the file (${this.length} bytes); the file is truncated or damaged.`);
    }
  }

  u8At(pos: number): number {
    this.check(pos, 1, 'a byte');
    return this.u8[pos];
  }
  u16(pos: number): number {
    this.check(pos, 2, 'a 16-bit field');
    return this.view.getUint16(pos, true);
  }
  u32(pos: number): number {
    this.check(pos, 4, 'a 32-bit field');
    return this.view.getUint32(pos, true);
  }
  /** Unsigned 64-bit as a JS number; values past 2^53 are refused (no real file offset or size is that large). */
  u64(pos: number): number {
    this.check(pos, 8, 'a 64-bit field');
    const lo = this.view.getUint32(pos, true);
    const hi = this.view.getUint32(pos + 4, true);
    if (hi === 0xffffffff && lo === 0xffffffff) return UNDEFINED_ADDRESS;
    if (hi >= 0x200000) throw new Hdf5Error('limit', `a 64-bit value at byte ${pos} is larger than 2^53.`);
    return hi * 0x100000000 + lo;
  }
  /** Unsigned integer of `size` bytes (1..8). */
  uint(pos: number, size: number): number {
    switch (size) {
      case 1:
        return this.u8At(pos);
      case 2:
        return this.u16(pos);
      case 4: {
        const v = this.u32(pos);
        return v === 0xffffffff && size === this.offsetSize ? UNDEFINED_ADDRESS : v;
      }
      case 8:
        return this.u64(pos);
      default: {
        this.check(pos, size, 'an integer field');
        let v = 0;
        for (let i = size - 1; i >= 0; i--) v = v * 256 + this.u8[pos + i];
        if (!Number.isSafeInteger(v)) throw new Hdf5Error('limit', `an integer at byte ${pos} is larger than 2^53.`);
        return v;
      }
    }
  }
  offset(pos: number): number {
    return this.uint(pos, this.offsetSize);
  }
  len(pos: number): number {
    const v = this.uint(pos, this.lengthSize);
    if (v === UNDEFINED_ADDRESS) throw new Hdf5Error('corrupt', `a length field at byte ${pos} is undefined.`);
    return v;
  }
  ascii(pos: number, n: number): string {
    this.check(pos, n, 'a string');
    let s = '';
    for (let i = 0; i < n; i++) s += String.fromCharCode(this.u8[pos + i]);
    return s;
  }
  /** NUL-terminated string starting at `pos`, at most `max` bytes. */
  cstring(pos: number, max = 65536): string {
    const end = Math.min(this.length, pos + max);
    let i = pos;
    while (i < end && this.u8[i] !== 0) i++;
    if (i >= end) throw new Hdf5Error('corrupt', `an unterminated name at byte ${pos}.`);
    return utf8(this.u8.subarray(pos, i));
  }
  slice(pos: number, n: number, what = 'a data block'): Uint8Array {
    this.check(pos, n, what);
    return this.u8.subarray(pos, pos + n);
  }
  signature(pos: number, sig: string, what: string): void {
    const found = this.length >= pos + 4 && pos >= 0 ? this.ascii(pos, 4) : '';
    if (found !== sig) {
      throw new Hdf5Error('corrupt', `expected the ${what} signature '${sig}' at byte ${pos}, found ${JSON.stringify(found)}; the file is damaged.`);
    }
  }
}

const decoder = new TextDecoder('utf-8');
export function utf8(bytes: Uint8Array): string {
  return decoder.decode(bytes);
}

/** Jenkins lookup3 hash (HDF5's metadata checksum), used to reject damaged v2 metadata blocks. */
export function lookup3(data: Uint8Array, initval = 0): number {
  let a = (0xdeadbeef + data.length + initval) >>> 0;
  let b = a;
  let c = a;
  const rot = (x: number, k: number) => ((x << k) | (x >>> (32 - k))) >>> 0;
  let i = 0;
  let length = data.length;
  while (length > 12) {
    a = (a + (data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24))) >>> 0;
    b = (b + (data[i + 4] | (data[i + 5] << 8) | (data[i + 6] << 16) | (data[i + 7] << 24))) >>> 0;
    c = (c + (data[i + 8] | (data[i + 9] << 8) | (data[i + 10] << 16) | (data[i + 11] << 24))) >>> 0;
    a = (a - c) >>> 0; a = (a ^ rot(c, 4)) >>> 0; c = (c + b) >>> 0;
    b = (b - a) >>> 0; b = (b ^ rot(a, 6)) >>> 0; a = (a + c) >>> 0;
    c = (c - b) >>> 0; c = (c ^ rot(b, 8)) >>> 0; b = (b + a) >>> 0;
    a = (a - c) >>> 0; a = (a ^ rot(c, 16)) >>> 0; c = (c + b) >>> 0;
    b = (b - a) >>> 0; b = (b ^ rot(a, 19)) >>> 0; a = (a + c) >>> 0;
    c = (c - b) >>> 0; c = (c ^ rot(b, 4)) >>> 0; b = (b + a) >>> 0;
    length -= 12;
    i += 12;
  }
  if (length === 0) return c;
  // Tail: the remaining bytes are added little-endian into c, b, a (from the top down), then a final mix.
  const k = (n: number) => (i + n < data.length && n < length ? data[i + n] : 0);
  c = (c + ((k(11) << 24) | (k(10) << 16) | (k(9) << 8) | k(8))) >>> 0;
  b = (b + ((k(7) << 24) | (k(6) << 16) | (k(5) << 8) | k(4))) >>> 0;
  a = (a + ((k(3) << 24) | (k(2) << 16) | (k(1) << 8) | k(0))) >>> 0;
  c = (c ^ b) >>> 0; c = (c - rot(b, 14)) >>> 0;
  a = (a ^ c) >>> 0; a = (a - rot(c, 11)) >>> 0;
  b = (b ^ a) >>> 0; b = (b - rot(a, 25)) >>> 0;
  c = (c ^ b) >>> 0; c = (c - rot(b, 16)) >>> 0;
  a = (a ^ c) >>> 0; a = (a - rot(c, 4)) >>> 0;
  b = (b ^ a) >>> 0; b = (b - rot(a, 14)) >>> 0;
  c = (c ^ b) >>> 0; c = (c - rot(b, 24)) >>> 0;
  return c;
}
