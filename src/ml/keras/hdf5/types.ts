/**
 * HDF5 datatype and dataspace messages, decoded into the small set of types Keras files use: integers, IEEE floats
 * (16/32/64-bit, and bfloat16), fixed-length and variable-length strings, and enums (h5py stores bool as an enum).
 */
import { Bytes, Hdf5Error } from './bytes.js';

export type H5Datatype =
  | { kind: 'int'; size: number; signed: boolean; littleEndian: boolean }
  | { kind: 'float'; size: number; littleEndian: boolean; bfloat16: boolean }
  | { kind: 'string'; size: number; padding: 'nullterm' | 'nullpad' | 'spacepad'; utf8: boolean }
  | { kind: 'vlen-string'; utf8: boolean }
  | { kind: 'enum'; size: number; base: H5Datatype }
  | { kind: 'other'; size: number; hdf5Class: number };

const CLASS_NAMES = ['fixed-point', 'floating-point', 'time', 'string', 'bitfield', 'opaque', 'compound', 'reference', 'enum', 'variable-length', 'array'];

export function describeDatatype(t: H5Datatype): string {
  switch (t.kind) {
    case 'int':
      return `${t.signed ? 'int' : 'uint'}${t.size * 8}`;
    case 'float':
      return t.bfloat16 ? 'bfloat16' : `float${t.size * 8}`;
    case 'string':
      return `fixed string(${t.size})`;
    case 'vlen-string':
      return 'variable-length string';
    case 'enum':
      return `enum(${describeDatatype(t.base)})`;
    default:
      return `HDF5 ${CLASS_NAMES[t.hdf5Class] ?? `class ${t.hdf5Class}`}`;
  }
}

/** Parse a datatype message at `pos`; returns the type and the number of bytes it used. */
export function parseDatatype(b: Bytes, pos: number, depth = 0): { type: H5Datatype; used: number } {
  if (depth > 8) throw new Hdf5Error('corrupt', `datatypes nest too deeply at byte ${pos}.`);
  const classAndVersion = b.u8At(pos);
  const cls = classAndVersion & 0x0f;
  const bits0 = b.u8At(pos + 1);
  const bits1 = b.u8At(pos + 2);
  const size = b.u32(pos + 4);
  if (size === 0 || size > 1 << 20) throw new Hdf5Error('corrupt', `a datatype at byte ${pos} declares element size ${size}.`);
  switch (cls) {
    case 0: // fixed-point: byte order bit 0, signed bit 3; properties: bit offset (2), precision (2)
      return { type: { kind: 'int', size, signed: (bits0 & 0x08) !== 0, littleEndian: (bits0 & 0x01) === 0 }, used: 12 };
    case 1: {
      // floating-point: properties bit offset (2), precision (2), exp location, exp size, mantissa location, size, bias (4)
      const expSize = b.u8At(pos + 8 + 5);
      const mantSize = b.u8At(pos + 8 + 7);
      const littleEndian = (bits0 & 0x01) === 0 && (bits0 & 0x40) === 0;
      const bfloat16 = size === 2 && expSize === 8 && mantSize === 7;
      if (![2, 4, 8].includes(size)) throw new Hdf5Error('unsupported', `a ${size * 8}-bit floating-point type is not supported.`);
      return { type: { kind: 'float', size, littleEndian, bfloat16 }, used: 20 };
    }
    case 3: {
      const pad = bits0 & 0x0f;
      return {
        type: { kind: 'string', size, padding: pad === 0 ? 'nullterm' : pad === 1 ? 'nullpad' : 'spacepad', utf8: (bits0 & 0xf0) === 0x10 },
        used: 8,
      };
    }
    case 8: {
      // enum: base type, then names and values (we only need the base type to read the numbers)
      const base = parseDatatype(b, pos + 8, depth + 1);
      const members = bits0 | (bits1 << 8);
      return { type: { kind: 'enum', size, base: base.type }, used: 8 + base.used + enumNamesLength(b, pos + 8 + base.used, members, classAndVersion >> 4) + members * size };
    }
    case 9: {
      const vlenType = bits0 & 0x0f;
      const base = parseDatatype(b, pos + 8, depth + 1);
      if (vlenType === 1) return { type: { kind: 'vlen-string', utf8: ((bits1 & 0x0f) === 1) }, used: 8 + base.used };
      return { type: { kind: 'other', size, hdf5Class: cls }, used: 8 + base.used };
    }
    default:
      // Compound, array, reference, opaque...: never used by Keras for weights or the attributes we read.
      return { type: { kind: 'other', size, hdf5Class: cls }, used: 8 };
  }
}

function enumNamesLength(b: Bytes, pos: number, members: number, version: number): number {
  let p = pos;
  for (let i = 0; i < members; i++) {
    const name = b.cstring(p, 4096);
    const raw = new TextEncoder().encode(name).length + 1;
    p += version >= 3 ? raw : Math.ceil(raw / 8) * 8;
  }
  return p - pos;
}

export interface H5Dataspace {
  /** Empty for scalars. */
  shape: number[];
  /** HDF5 "null" dataspace: no elements at all. */
  isNull: boolean;
}

/** Refuse declared element counts beyond this before any allocation (2^31 elements is 8 GiB of float32). */
export const MAX_ELEMENTS = 2 ** 31;

export function parseDataspace(b: Bytes, pos: number): H5Dataspace {
  const version = b.u8At(pos);
  const rank = b.u8At(pos + 1);
  const flags = b.u8At(pos + 2);
  if (rank > 32) throw new Hdf5Error('corrupt', `a dataspace at byte ${pos} declares ${rank} dimensions.`);
  let p: number;
  let isNull = false;
  if (version === 1) p = pos + 8;
  else if (version === 2) {
    isNull = b.u8At(pos + 3) === 2;
    p = pos + 4;
  } else throw new Hdf5Error('unsupported', `dataspace message version ${version} is not supported.`);
  const shape: number[] = [];
  let count = 1;
  for (let i = 0; i < rank; i++) {
    const d = b.len(p + i * b.lengthSize);
    shape.push(d);
    count *= d;
  }
  void flags;
  if (count > MAX_ELEMENTS) {
    throw new Hdf5Error('limit', `a dataspace declares shape [${shape.join(', ')}] (${count} elements), more than the limit of ${MAX_ELEMENTS}.`);
  }
  return { shape, isNull };
}

export function elementCount(shape: readonly number[]): number {
  return shape.reduce((a, d) => a * d, 1);
}
