/**
 * Encoder for PostgreSQL's binary COPY format (`COPY t FROM … WITH (FORMAT binary)`). Text input of vectors is
 * parsed inside Postgres (inside wasm for PGlite) and measured 10–25× slower than binary input, so every bulk
 * write of vectors goes through here.
 *
 * Format: 11-byte signature, int32 flags, int32 header-extension length; then per tuple an int16 field count and
 * per field an int32 byte length (-1 = NULL) followed by the type's binary send format; then an int16 -1 trailer.
 * pgvector's `vector` is int16 dim, int16 unused, dim × float32 (big-endian); `halfvec` the same with float16.
 */

export type CopyScalarType =
  | 'bool'
  | 'int2'
  | 'int4'
  | 'int8'
  | 'float4'
  | 'float8'
  | 'text'
  | 'uuid'
  | 'timestamptz'
  | 'jsonb'
  | 'bytea'
  | 'text[]';
export type CopyVectorType = { kind: 'vector' | 'halfvec'; dim: number };
export type CopyColumnType = CopyScalarType | CopyVectorType;

const SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1');
const TEXT_OID = 25;
/** Microseconds between the Unix epoch and PostgreSQL's epoch (2000-01-01). */
const PG_EPOCH_OFFSET_MS = 946_684_800_000;
const INITIAL_BUFFER_BYTES = 64 * 1024;

/** Scratch views for reading a float32's bits. */
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** A growable big-endian byte writer. */
class ByteWriter {
  private buf: Buffer;
  private len = 0;
  constructor(initial = INITIAL_BUFFER_BYTES) {
    this.buf = Buffer.allocUnsafe(initial);
  }
  private ensure(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.len);
    this.buf = next;
  }
  int16(v: number): void {
    this.ensure(2);
    this.buf.writeInt16BE(v, this.len);
    this.len += 2;
  }
  int32(v: number): void {
    this.ensure(4);
    this.buf.writeInt32BE(v, this.len);
    this.len += 4;
  }
  int64(v: bigint): void {
    this.ensure(8);
    this.buf.writeBigInt64BE(v, this.len);
    this.len += 8;
  }
  float32(v: number): void {
    this.ensure(4);
    this.buf.writeFloatBE(v, this.len);
    this.len += 4;
  }
  float64(v: number): void {
    this.ensure(8);
    this.buf.writeDoubleBE(v, this.len);
    this.len += 8;
  }
  bytes(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }
  /**
   * A vector's elements, big-endian float16 bits or float32, with one bounds check for the whole vector (per
   * element `writeUInt16BE` calls were most of the encoding time: 200,000 halfvec(128) rows per re-embed).
   * Returns the index of the first non-finite element, or -1; nothing is written then.
   */
  vectorElements(v: ArrayLike<number>, half: boolean): number {
    for (let i = 0; i < v.length; i++) if (!Number.isFinite(v[i])) return i;
    const n = v.length * (half ? 2 : 4);
    this.ensure(n);
    const buf = this.buf;
    let at = this.len;
    if (half) {
      for (let i = 0; i < v.length; i++) {
        const h = float32ToFloat16Bits(v[i]);
        buf[at++] = h >>> 8;
        buf[at++] = h & 0xff;
      }
    } else {
      for (let i = 0; i < v.length; i++) {
        f32[0] = v[i];
        const x = u32[0];
        buf[at++] = x >>> 24;
        buf[at++] = (x >>> 16) & 0xff;
        buf[at++] = (x >>> 8) & 0xff;
        buf[at++] = x & 0xff;
      }
    }
    this.len = at;
    return -1;
  }
  /** Reserve an int32 length slot and return its position. */
  reserve32(): number {
    this.ensure(4);
    const at = this.len;
    this.len += 4;
    return at;
  }
  patch32(at: number, v: number): void {
    this.buf.writeInt32BE(v, at);
  }
  get length(): number {
    return this.len;
  }
  result(): Uint8Array {
    return this.buf.subarray(0, this.len);
  }
}

/** IEEE-754 float32 → float16 bits with round-to-nearest-even, subnormals, overflow to ±Inf and NaN kept. */
export function float32ToFloat16Bits(value: number): number {
  f32[0] = value;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0); // Inf / NaN
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // overflow → Inf
  if (e <= 0) {
    if (e < -10) return sign; // too small → ±0
    const m = mant | 0x800000; // implicit leading 1
    const shift = 14 - e;
    let half = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && half & 1)) half += 1;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half += 1; // may carry into the exponent: still correct
  return sign | half;
}

/** float16 bits → number (used to check halfvec round trips). */
export function float16BitsToFloat32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** What a float32 value becomes after a round trip through halfvec. */
export function roundToFloat16(value: number): number {
  return float16BitsToFloat32(float32ToFloat16Bits(value));
}

const UUID_RE = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;

function describeColumn(t: CopyColumnType): string {
  return typeof t === 'string' ? t : `${t.kind}(${t.dim})`;
}

export class CopyEncodeError extends Error {
  constructor(
    readonly row: number,
    readonly column: number,
    message: string,
  ) {
    super(`row ${row}, column ${column + 1}: ${message}`);
    this.name = 'CopyEncodeError';
  }
}

function writeField(w: ByteWriter, type: CopyColumnType, value: unknown, row: number, col: number): void {
  if (value === null || value === undefined) {
    w.int32(-1);
    return;
  }
  const fail = (what: string): never => {
    throw new CopyEncodeError(row, col, `${what} for ${describeColumn(type)}`);
  };
  if (typeof type === 'object') {
    const v = value as ArrayLike<number>;
    if (typeof v.length !== 'number') fail('expected an array of numbers');
    if (v.length !== type.dim) fail(`expected ${type.dim} dimensions, found ${v.length}`);
    const half = type.kind === 'halfvec';
    w.int32(4 + v.length * (half ? 2 : 4));
    w.int16(v.length);
    w.int16(0);
    const bad = w.vectorElements(v, half);
    if (bad >= 0) fail(`non-finite value at dimension ${bad}`);
    return;
  }
  switch (type) {
    case 'bool':
      w.int32(1);
      w.bytes(Uint8Array.of(value ? 1 : 0));
      return;
    case 'int2':
      w.int32(2);
      w.int16(Number(value));
      return;
    case 'int4':
      if (!Number.isInteger(Number(value))) fail(`expected an integer, found ${String(value)}`);
      w.int32(4);
      w.int32(Number(value));
      return;
    case 'int8':
      w.int32(8);
      w.int64(BigInt(value as number | bigint | string));
      return;
    case 'float4':
      w.int32(4);
      w.float32(Number(value));
      return;
    case 'float8':
      w.int32(8);
      w.float64(Number(value));
      return;
    case 'text': {
      const b = Buffer.from(String(value), 'utf8');
      w.int32(b.length);
      w.bytes(b);
      return;
    }
    case 'uuid': {
      const s = String(value);
      if (!UUID_RE.test(s)) fail(`expected a uuid, found ${JSON.stringify(s.slice(0, 40))}`);
      w.int32(16);
      w.bytes(Buffer.from(s.replace(/-/g, ''), 'hex'));
      return;
    }
    case 'timestamptz': {
      const ms = value instanceof Date ? value.getTime() : new Date(value as string | number).getTime();
      if (!Number.isFinite(ms)) fail(`expected a timestamp, found ${String(value)}`);
      w.int32(8);
      w.int64(BigInt(Math.round((ms - PG_EPOCH_OFFSET_MS) * 1000)));
      return;
    }
    case 'jsonb': {
      const b = Buffer.from(typeof value === 'string' ? value : JSON.stringify(value), 'utf8');
      w.int32(b.length + 1);
      w.bytes(Uint8Array.of(1)); // jsonb binary format version
      w.bytes(b);
      return;
    }
    case 'bytea': {
      const b = value as Uint8Array;
      w.int32(b.length);
      w.bytes(b);
      return;
    }
    case 'text[]': {
      const items = value as (string | null)[];
      if (!Array.isArray(items)) fail('expected an array of strings');
      const at = w.reserve32();
      const start = w.length;
      w.int32(items.length ? 1 : 0); // ndim
      w.int32(items.some((s) => s === null || s === undefined) ? 1 : 0); // has nulls
      w.int32(TEXT_OID);
      if (items.length) {
        w.int32(items.length);
        w.int32(1); // lower bound
        for (const s of items) {
          if (s === null || s === undefined) {
            w.int32(-1);
            continue;
          }
          const b = Buffer.from(String(s), 'utf8');
          w.int32(b.length);
          w.bytes(b);
        }
      }
      w.patch32(at, w.length - start);
      return;
    }
  }
}

/**
 * Encode rows for `COPY <table> (<columns>) FROM … WITH (FORMAT binary)`. Each row is an array in column order;
 * `null`/`undefined` is SQL NULL. Throws `CopyEncodeError` naming the row and column of a bad value.
 */
export function encodeCopyBinary(types: readonly CopyColumnType[], rows: Iterable<readonly unknown[]>): Uint8Array {
  const w = new ByteWriter();
  w.bytes(SIGNATURE);
  w.int32(0); // flags: no OIDs
  w.int32(0); // header extension length
  let r = 0;
  for (const row of rows) {
    if (row.length !== types.length) {
      throw new CopyEncodeError(r, 0, `expected ${types.length} fields, found ${row.length}`);
    }
    w.int16(types.length);
    for (let c = 0; c < types.length; c++) writeField(w, types[c], row[c], r, c);
    r++;
  }
  w.int16(-1);
  return w.result();
}
