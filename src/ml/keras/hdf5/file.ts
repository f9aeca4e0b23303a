/**
 * A read-only HDF5 reader in TypeScript for the files Keras and h5py write: superblocks 0–3, object headers v1/v2,
 * old-style (symbol table) and new-style (link message, dense) groups, compact and dense attributes, and
 * compact/contiguous/chunked datasets. The whole file is in memory; nothing is read lazily from disk.
 *
 * Why not a library: h5wasm (libhdf5 in WebAssembly) needs a host file path (a temp copy of every .keras weights
 * file), prints HDF5-DIAG traces on damaged files and returns invalid handles instead of throwing; jsfive drops dense
 * attributes silently and returns plain arrays (slow for large weights). h5wasm stays as the test oracle: every
 * fixture is read with both and compared element for element (file.test.ts).
 */
import { Bytes, Hdf5Error, UNDEFINED_ADDRESS, utf8 } from './bytes.js';
import { type Filter, type Layout, parseFilterPipeline, parseLayout, readRawData } from './dataset.js';
import { FractalHeap, GlobalHeaps, localHeapString, readLocalHeap, v1GroupLeaves, v2BtreeRecords } from './heaps.js';
import { MSG, type RawMessage, readObjectHeader } from './object-header.js';
import { describeDatatype, elementCount, type H5Datatype, type H5Dataspace, parseDataspace, parseDatatype } from './types.js';

export { Hdf5Error } from './bytes.js';
export type { H5Datatype } from './types.js';
export { describeDatatype } from './types.js';

export const HDF5_SIGNATURE = [0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a];

/** An attribute value: a scalar or a flat array (row-major) of numbers or strings. */
export type H5Value = string | number | bigint | Array<string | number | bigint> | null;

export function isHdf5(bytes: Uint8Array): boolean {
  return HDF5_SIGNATURE.every((v, i) => bytes[i] === v);
}

/** Where the superblock starts: 0, 512, 1024, 2048, … (a user block may precede it). */
function findSuperblock(u8: Uint8Array): number {
  for (let pos = 0; pos + 8 <= u8.length; pos = pos === 0 ? 512 : pos * 2) {
    if (HDF5_SIGNATURE.every((v, i) => u8[pos + i] === v)) return pos;
  }
  throw new Hdf5Error('corrupt', 'no HDF5 signature found; this is not an HDF5 file.');
}

class Context {
  readonly globalHeaps: GlobalHeaps;
  constructor(
    readonly b: Bytes,
    readonly baseAddress: number,
  ) {
    this.globalHeaps = new GlobalHeaps(b);
  }
}

export class H5File {
  readonly root: H5Group;
  readonly superblockVersion: number;

  constructor(
    bytes: Uint8Array,
    readonly name = 'file',
  ) {
    const start = findSuperblock(bytes);
    const probe = new Bytes(bytes);
    const version = probe.u8At(start + 8);
    this.superblockVersion = version;
    let offsetSize: number;
    let lengthSize: number;
    let rootAddress: number;
    let base: number;
    let eof: number;
    if (version === 0 || version === 1) {
      offsetSize = probe.u8At(start + 13);
      lengthSize = probe.u8At(start + 14);
      checkSizes(offsetSize, lengthSize);
      const b = new Bytes(bytes, offsetSize, lengthSize);
      let p = start + 24 + (version === 1 ? 4 : 0);
      base = b.offset(p);
      eof = b.offset(p + 2 * offsetSize);
      p += 4 * offsetSize; // base, free space, eof, driver info
      rootAddress = b.offset(p + offsetSize); // root symbol table entry: link name offset, object header address
    } else if (version === 2 || version === 3) {
      offsetSize = probe.u8At(start + 9);
      lengthSize = probe.u8At(start + 10);
      checkSizes(offsetSize, lengthSize);
      const b = new Bytes(bytes, offsetSize, lengthSize);
      base = b.offset(start + 12);
      eof = b.offset(start + 12 + 2 * offsetSize);
      rootAddress = b.offset(start + 12 + 3 * offsetSize);
    } else {
      throw new Hdf5Error('unsupported', `HDF5 superblock version ${version} is not supported.`);
    }
    if (eof !== UNDEFINED_ADDRESS && (base === UNDEFINED_ADDRESS ? 0 : base) + eof > bytes.length) {
      throw new Hdf5Error('corrupt', `the file is truncated: the HDF5 header says it is ${eof} bytes long, but it has ${bytes.length}.`);
    }
    // Addresses are relative to the base address (the superblock position unless stated otherwise).
    const baseAddress = base === UNDEFINED_ADDRESS ? start : base;
    const view = baseAddress === 0 ? bytes : bytes.subarray(baseAddress);
    const ctx = new Context(new Bytes(view, offsetSize, lengthSize), baseAddress);
    this.root = new H5Group(ctx, '/', rootAddress);
  }

  /** A group or dataset by absolute or root-relative path (`model_weights/dense/dense/kernel:0`). */
  get(path: string): H5Group | H5Dataset | undefined {
    return this.root.get(path);
  }
}

function checkSizes(o: number, l: number): void {
  if (![2, 4, 8].includes(o) || ![2, 4, 8].includes(l)) {
    throw new Hdf5Error('corrupt', `the HDF5 superblock declares offset size ${o} and length size ${l}; the file is damaged.`);
  }
}

abstract class H5Object {
  private messagesCache?: RawMessage[];
  private attrsCache?: Map<string, H5Attribute>;

  constructor(
    protected readonly ctx: Context,
    readonly path: string,
    readonly address: number,
  ) {}

  protected get messages(): RawMessage[] {
    this.messagesCache ??= readObjectHeader(this.ctx.b, this.address);
    return this.messagesCache;
  }

  /** Attributes by name (compact and dense storage). Values are decoded when read. */
  get attrs(): Map<string, H5Attribute> {
    if (this.attrsCache) return this.attrsCache;
    const out = new Map<string, H5Attribute>();
    const b = this.ctx.b;
    for (const m of this.messages) {
      if (m.type === MSG.ATTRIBUTE) {
        const a = parseAttribute(this.ctx, m.pos, this.path);
        out.set(a.name, a);
      } else if (m.type === MSG.ATTRIBUTE_INFO) {
        const flags = b.u8At(m.pos + 1);
        const p = m.pos + 2 + (flags & 0x01 ? 2 : 0);
        const heapAddr = b.offset(p);
        const nameIndex = b.offset(p + b.offsetSize);
        if (heapAddr === UNDEFINED_ADDRESS || nameIndex === UNDEFINED_ADDRESS) continue;
        const heap = new FractalHeap(b, heapAddr);
        for (const rec of v2BtreeRecords(b, nameIndex)) {
          // Attribute name index record: heap id (8), message flags (1), creation order (4), hash (4).
          const msg = heap.object(rec.subarray(0, 8));
          const sub = new Bytes(msg, b.offsetSize, b.lengthSize);
          const a = parseAttribute(new Context(sub, 0), 0, this.path, this.ctx);
          out.set(a.name, a);
        }
      }
    }
    this.attrsCache = out;
    return out;
  }

  /** Decoded attribute value, or undefined when absent. */
  attr(name: string): H5Value | undefined {
    return this.attrs.get(name)?.value;
  }
}

export class H5Group extends H5Object {
  readonly kind = 'group' as const;
  private linksCache?: Map<string, number>;

  /** Child names → object header addresses (hard links only; soft and external links are not followed). */
  get links(): Map<string, number> {
    if (this.linksCache) return this.linksCache;
    const b = this.ctx.b;
    const links = new Map<string, number>();
    for (const m of this.messages) {
      if (m.type === MSG.SYMBOL_TABLE) {
        const btree = b.offset(m.pos);
        const heap = readLocalHeap(b, b.offset(m.pos + b.offsetSize));
        for (const snod of v1GroupLeaves(b, btree)) {
          b.signature(snod, 'SNOD', 'symbol table node');
          const n = b.u16(snod + 6);
          const entrySize = 2 * b.offsetSize + 4 + 4 + 16;
          for (let i = 0; i < n; i++) {
            const e = snod + 8 + i * entrySize;
            links.set(localHeapString(b, heap, b.offset(e)), b.offset(e + b.offsetSize));
          }
        }
      } else if (m.type === MSG.LINK) {
        const l = parseLink(b, m.pos);
        if (l.address !== undefined) links.set(l.name, l.address);
      } else if (m.type === MSG.LINK_INFO) {
        const flags = b.u8At(m.pos + 1);
        const p = m.pos + 2 + (flags & 0x01 ? 8 : 0);
        const heapAddr = b.offset(p);
        const nameIndex = b.offset(p + b.offsetSize);
        if (heapAddr === UNDEFINED_ADDRESS || nameIndex === UNDEFINED_ADDRESS) continue;
        const heap = new FractalHeap(b, heapAddr);
        for (const rec of v2BtreeRecords(b, nameIndex)) {
          // Link name index record: hash (4), heap id (rest).
          const msg = heap.object(rec.subarray(4));
          const l = parseLink(new Bytes(msg, b.offsetSize, b.lengthSize), 0);
          if (l.address !== undefined) links.set(l.name, l.address);
        }
      }
    }
    this.linksCache = links;
    return links;
  }

  /** Child names in alphabetical order (as h5py lists them). Never rely on this order for meaning. */
  keys(): string[] {
    return [...this.links.keys()].sort();
  }

  has(name: string): boolean {
    return this.get(name) !== undefined;
  }

  get(path: string): H5Group | H5Dataset | undefined {
    const parts = path.split('/').filter((p) => p !== '' && p !== '.');
    let node: H5Group | H5Dataset = this;
    let depth = 0;
    for (const part of parts) {
      if (!(node instanceof H5Group)) return undefined;
      const address = node.links.get(part);
      if (address === undefined) return undefined;
      if (++depth > 256) throw new Hdf5Error('corrupt', 'group nesting is too deep.');
      node = openObject(this.ctx, `${node.path === '/' ? '' : node.path}/${part}`, address);
    }
    return node;
  }

  group(path: string): H5Group | undefined {
    const g = this.get(path);
    return g instanceof H5Group ? g : undefined;
  }

  dataset(path: string): H5Dataset | undefined {
    const d = this.get(path);
    return d instanceof H5Dataset ? d : undefined;
  }
}

export class H5Dataset extends H5Object {
  readonly kind = 'dataset' as const;
  private infoCache?: { type: H5Datatype; space: H5Dataspace; layout: Layout; filters: Filter[] };

  private get info() {
    if (this.infoCache) return this.infoCache;
    let type: H5Datatype | undefined;
    let space: H5Dataspace | undefined;
    let layout: Layout | undefined;
    let filters: Filter[] = [];
    const b = this.ctx.b;
    for (const m of this.messages) {
      if (m.type === MSG.DATATYPE) type = parseDatatype(b, m.pos).type;
      else if (m.type === MSG.DATASPACE) space = parseDataspace(b, m.pos);
      else if (m.type === MSG.LAYOUT) layout = parseLayout(b, m.pos);
      else if (m.type === MSG.FILTER_PIPELINE) filters = parseFilterPipeline(b, m.pos);
      else if (m.type === MSG.EXTERNAL_FILES) throw new Hdf5Error('unsupported', `${this.path} stores its data in an external file.`);
    }
    if (!type || !space || !layout) throw new Hdf5Error('corrupt', `the dataset ${this.path} lacks a datatype, dataspace or layout.`);
    this.infoCache = { type, space, layout, filters };
    return this.infoCache;
  }

  get shape(): number[] {
    return [...this.info.space.shape];
  }
  get dtype(): H5Datatype {
    return this.info.type;
  }
  get dtypeName(): string {
    return describeDatatype(this.info.type);
  }
  get filters(): readonly Filter[] {
    return this.info.filters;
  }
  get size(): number {
    return this.info.space.isNull ? 0 : elementCount(this.info.space.shape);
  }
  /** Declared bytes (elements × element size). */
  get byteLength(): number {
    const t = this.info.type;
    return t.kind === 'vlen-string' ? this.size * 16 : this.size * t.size;
  }

  /** Raw element bytes in file byte order. */
  raw(): Uint8Array {
    const { type, space, layout, filters } = this.info;
    if (type.kind === 'vlen-string' || type.kind === 'other') {
      throw new Hdf5Error('unsupported', `${this.path} holds ${describeDatatype(type)} data, not numbers.`);
    }
    if (space.isNull) return new Uint8Array(0);
    return readRawData(this.ctx.b, layout, filters, space.shape, type.size, this.path);
  }

  /** Numeric data as a typed array; float16 and bfloat16 are widened to float32. */
  read(): NumericArray {
    const t = this.info.type;
    if (t.kind !== 'int' && t.kind !== 'float' && t.kind !== 'enum') {
      throw new Hdf5Error('unsupported', `${this.path} holds ${describeDatatype(t)} data, not numbers.`);
    }
    return decodeNumbers(this.raw(), t.kind === 'enum' ? t.base : t, this.size);
  }

  /** String or numeric values (for small datasets such as vocabularies). */
  values(): H5Value {
    const { type, space, layout, filters } = this.info;
    if (type.kind === 'vlen-string') {
      const raw = readRawData(this.ctx.b, layout, filters, space.shape, 4 + this.ctx.b.offsetSize + 4, this.path);
      return decodeValue(this.ctx, raw, type, space, this.path);
    }
    return decodeValue(this.ctx, this.raw(), type, space, this.path);
  }
}

export type NumericArray =
  | Float32Array
  | Float64Array
  | Int8Array
  | Uint8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array;

function openObject(ctx: Context, path: string, address: number): H5Group | H5Dataset {
  const messages = readObjectHeader(ctx.b, address);
  const isDataset = messages.some((m) => m.type === MSG.LAYOUT);
  return isDataset ? new H5Dataset(ctx, path, address) : new H5Group(ctx, path, address);
}

interface ParsedLink {
  name: string;
  address?: number;
}

function parseLink(b: Bytes, pos: number): ParsedLink {
  const version = b.u8At(pos);
  if (version !== 1) throw new Hdf5Error('unsupported', `link message version ${version} is not supported.`);
  const flags = b.u8At(pos + 1);
  let p = pos + 2;
  let linkType = 0;
  if (flags & 0x08) linkType = b.u8At(p++);
  if (flags & 0x04) p += 8; // creation order
  if (flags & 0x10) p += 1; // charset
  const lenSize = 1 << (flags & 0x03);
  const nameLen = b.uint(p, lenSize);
  p += lenSize;
  const name = utf8(b.slice(p, nameLen, 'a link name'));
  p += nameLen;
  if (linkType === 0) return { name, address: b.offset(p) };
  return { name }; // soft or external link: not followed
}

export interface H5Attribute {
  name: string;
  type: H5Datatype;
  shape: number[];
  readonly value: H5Value;
}

function parseAttribute(ctx: Context, pos: number, owner: string, fileCtx: Context = ctx): H5Attribute {
  const b = ctx.b;
  const version = b.u8At(pos);
  const flags = b.u8At(pos + 1);
  const nameSize = b.u16(pos + 2);
  const typeSize = b.u16(pos + 4);
  const spaceSize = b.u16(pos + 6);
  if (flags & 0x03) throw new Hdf5Error('unsupported', `attribute of ${owner} uses a shared datatype or dataspace.`);
  let p: number;
  const pad = (n: number) => (version === 1 ? Math.ceil(n / 8) * 8 : n);
  if (version === 1 || version === 2) p = pos + 8;
  else if (version === 3) p = pos + 9;
  else throw new Hdf5Error('unsupported', `attribute message version ${version} is not supported.`);
  const name = utf8(b.slice(p, Math.max(0, nameSize - 1), 'an attribute name'));
  p += pad(nameSize);
  const type = parseDatatype(b, p).type;
  p += pad(typeSize);
  const space = parseDataspace(b, p);
  p += pad(spaceSize);
  const dataPos = p;
  let cached: { v: H5Value } | undefined;
  return {
    name,
    type,
    shape: space.shape,
    get value(): H5Value {
      if (!cached) {
        const count = space.isNull ? 0 : elementCount(space.shape);
        const es = type.kind === 'vlen-string' ? 4 + fileCtx.b.offsetSize + 4 : type.kind === 'other' ? type.size : type.size;
        const raw = b.slice(dataPos, count * es, `the value of attribute '${name}' of ${owner}`);
        cached = { v: decodeValue(fileCtx, raw, type, space, `${owner}@${name}`) };
      }
      return cached.v;
    },
  };
}

function decodeValue(ctx: Context, raw: Uint8Array, type: H5Datatype, space: H5Dataspace, where: string): H5Value {
  if (space.isNull) return null;
  const count = elementCount(space.shape);
  const scalar = space.shape.length === 0;
  let values: Array<string | number | bigint>;
  if (type.kind === 'string') {
    values = [];
    for (let i = 0; i < count; i++) values.push(decodeFixedString(raw.subarray(i * type.size, (i + 1) * type.size), type.padding));
  } else if (type.kind === 'vlen-string') {
    values = [];
    const es = 4 + ctx.b.offsetSize + 4;
    const rb = new Bytes(raw, ctx.b.offsetSize, ctx.b.lengthSize);
    for (let i = 0; i < count; i++) {
      const len = rb.u32(i * es);
      const collection = rb.offset(i * es + 4);
      const index = rb.u32(i * es + 4 + ctx.b.offsetSize);
      if (len === 0 || collection === 0 || collection === UNDEFINED_ADDRESS) {
        values.push('');
        continue;
      }
      const obj = ctx.globalHeaps.object(collection, index);
      if (obj.length < len) throw new Hdf5Error('corrupt', `${where}: a string is shorter than its declared length.`);
      values.push(utf8(obj.subarray(0, len)).replace(/\0+$/, ''));
    }
  } else if (type.kind === 'int' || type.kind === 'float' || type.kind === 'enum') {
    const arr = decodeNumbers(raw, type.kind === 'enum' ? type.base : type, count);
    values = Array.from(arr as ArrayLike<number | bigint>, (v) => (typeof v === 'bigint' && v >= -(2n ** 53n) && v <= 2n ** 53n ? Number(v) : v));
  } else {
    throw new Hdf5Error('unsupported', `${where} holds ${describeDatatype(type)} data, which am-ml does not read.`);
  }
  return scalar ? values[0] : values;
}

/** Fixed-length strings keep their padding on disk: strip NULs (and spaces for space-padded types). */
function decodeFixedString(bytes: Uint8Array, padding: 'nullterm' | 'nullpad' | 'spacepad'): string {
  let end = bytes.length;
  if (padding === 'nullterm') {
    const z = bytes.indexOf(0);
    if (z >= 0) end = z;
  } else {
    while (end > 0 && (bytes[end - 1] === 0 || (padding === 'spacepad' && bytes[end - 1] === 0x20))) end--;
  }
  return utf8(bytes.subarray(0, end));
}

const f16Table = (() => {
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const s = h & 0x8000 ? -1 : 1;
    const e = (h >> 10) & 0x1f;
    const m = h & 0x3ff;
    t[h] = e === 0 ? s * m * 2 ** -24 : e === 31 ? (m ? NaN : s * Infinity) : s * (1 + m / 1024) * 2 ** (e - 15);
  }
  return t;
})();

/** Decode `count` numbers of `type` from raw bytes (any byte order); float16/bfloat16 → Float32Array. */
export function decodeNumbers(raw: Uint8Array, type: H5Datatype, count: number): NumericArray {
  if (type.kind !== 'int' && type.kind !== 'float') throw new Hdf5Error('unsupported', `cannot decode ${describeDatatype(type)} as numbers.`);
  const size = type.size;
  if (raw.length < count * size) throw new Hdf5Error('corrupt', `numeric data holds ${raw.length} bytes, ${count * size} expected.`);
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const le = type.littleEndian;
  if (type.kind === 'float') {
    if (size === 2) {
      const out = new Float32Array(count);
      if (type.bfloat16) {
        const u32 = new Uint32Array(out.buffer);
        for (let i = 0; i < count; i++) u32[i] = dv.getUint16(i * 2, le) << 16;
      } else {
        for (let i = 0; i < count; i++) out[i] = f16Table[dv.getUint16(i * 2, le)];
      }
      return out;
    }
    if (size === 4) {
      if (le && raw.byteOffset % 4 === 0) return new Float32Array(raw.buffer, raw.byteOffset, count);
      // HDF5 does not align data: an unaligned little-endian block is copied (memcpy speed) rather than decoded.
      if (le) return new Float32Array(raw.slice(0, count * 4).buffer);
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = dv.getFloat32(i * 4, le);
      return out;
    }
    if (le && raw.byteOffset % 8 === 0) return new Float64Array(raw.buffer, raw.byteOffset, count);
    if (le) return new Float64Array(raw.slice(0, count * 8).buffer);
    const out = new Float64Array(count);
    for (let i = 0; i < count; i++) out[i] = dv.getFloat64(i * 8, le);
    return out;
  }
  const s = type.signed;
  switch (size) {
    case 1:
      return s ? new Int8Array(raw.slice(0, count).buffer) : raw.slice(0, count);
    case 2: {
      const out = s ? new Int16Array(count) : new Uint16Array(count);
      for (let i = 0; i < count; i++) out[i] = s ? dv.getInt16(i * 2, le) : dv.getUint16(i * 2, le);
      return out;
    }
    case 4: {
      const out = s ? new Int32Array(count) : new Uint32Array(count);
      for (let i = 0; i < count; i++) out[i] = s ? dv.getInt32(i * 4, le) : dv.getUint32(i * 4, le);
      return out;
    }
    case 8: {
      const out = s ? new BigInt64Array(count) : new BigUint64Array(count);
      for (let i = 0; i < count; i++) out[i] = s ? dv.getBigInt64(i * 8, le) : dv.getBigUint64(i * 8, le);
      return out;
    }
    default:
      throw new Hdf5Error('unsupported', `${size * 8}-bit integers are not supported.`);
  }
}

/** Open an HDF5 file held in memory. Throws `Hdf5Error` for files it cannot read. */
export function openHdf5(bytes: Uint8Array, name?: string): H5File {
  return new H5File(bytes, name);
}
