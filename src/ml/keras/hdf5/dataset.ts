/**
 * Dataset storage: the data layout message (compact, contiguous, chunked), the chunk indexes Keras-era writers
 * produce (version-1 B-tree, single chunk, implicit, fixed array), and the filter pipeline (deflate, shuffle,
 * fletcher32). Declared sizes are checked against the file before anything is allocated.
 */
import { unzlibSync } from 'fflate';
import { Bytes, Hdf5Error, UNDEFINED_ADDRESS } from './bytes.js';
import { type ChunkRef, v1ChunkRefs } from './heaps.js';
import { elementCount } from './types.js';

/** Largest dataset assembled from chunks (a 2 GiB weight tensor). */
export const MAX_DATASET_BYTES = 2 ** 31 - 1;

export type Layout =
  | { kind: 'compact'; pos: number; size: number }
  | { kind: 'contiguous'; address: number; size: number }
  | {
      kind: 'chunked';
      /** Chunk shape, one entry per dataset dimension. */
      chunk: number[];
      index: 'btree1' | 'single' | 'implicit' | 'fixed-array' | 'extensible-array' | 'btree2';
      address: number;
      filteredSingleSize?: number;
      filteredSingleMask?: number;
    };

export function parseLayout(b: Bytes, pos: number): Layout {
  const version = b.u8At(pos);
  const cls = b.u8At(pos + 1);
  if (version < 3 || version > 5) throw new Hdf5Error('unsupported', `data layout message version ${version} is not supported.`);
  if (cls === 0) return { kind: 'compact', pos: pos + 4, size: b.u16(pos + 2) };
  if (cls === 1) return { kind: 'contiguous', address: b.offset(pos + 2), size: b.len(pos + 2 + b.offsetSize) };
  if (cls !== 2) throw new Hdf5Error('unsupported', `data layout class ${cls} (virtual datasets) is not supported.`);
  if (version === 3) {
    const ndims = b.u8At(pos + 2);
    if (ndims < 1 || ndims > 33) throw new Hdf5Error('corrupt', `a chunked layout declares ${ndims} dimensions.`);
    const address = b.offset(pos + 3);
    const dims: number[] = [];
    for (let i = 0; i < ndims; i++) dims.push(b.u32(pos + 3 + b.offsetSize + 4 * i));
    return { kind: 'chunked', chunk: dims.slice(0, -1), index: 'btree1', address };
  }
  const flags = b.u8At(pos + 2);
  const ndims = b.u8At(pos + 3);
  const encLen = b.u8At(pos + 4);
  if (ndims < 1 || ndims > 33 || encLen < 1 || encLen > 8) throw new Hdf5Error('corrupt', 'a chunked layout has invalid dimensions.');
  let p = pos + 5;
  const dims: number[] = [];
  for (let i = 0; i < ndims; i++, p += encLen) dims.push(b.uint(p, encLen));
  const indexType = b.u8At(p++);
  const chunk = dims.slice(0, -1);
  switch (indexType) {
    case 1: {
      let filteredSingleSize: number | undefined;
      let filteredSingleMask: number | undefined;
      if (flags & 0x02) {
        filteredSingleSize = b.len(p);
        filteredSingleMask = b.u32(p + b.lengthSize);
        p += b.lengthSize + 4;
      }
      return { kind: 'chunked', chunk, index: 'single', address: b.offset(p), filteredSingleSize, filteredSingleMask };
    }
    case 2:
      return { kind: 'chunked', chunk, index: 'implicit', address: b.offset(p) };
    case 3:
      return { kind: 'chunked', chunk, index: 'fixed-array', address: b.offset(p + 1) };
    case 4:
      return { kind: 'chunked', chunk, index: 'extensible-array', address: b.offset(p + 5) };
    case 5:
      return { kind: 'chunked', chunk, index: 'btree2', address: b.offset(p + 6) };
    default:
      throw new Hdf5Error('corrupt', `unknown chunk index type ${indexType}.`);
  }
}

export interface Filter {
  id: number;
  name: string;
  optional: boolean;
  values: number[];
}

export function parseFilterPipeline(b: Bytes, pos: number): Filter[] {
  const version = b.u8At(pos);
  const n = b.u8At(pos + 1);
  const filters: Filter[] = [];
  let p = version === 1 ? pos + 8 : pos + 2;
  for (let i = 0; i < n; i++) {
    const id = b.u16(p);
    let nameLen = 0;
    if (version === 1 || id >= 256) {
      nameLen = b.u16(p + 2);
      p += 2;
    }
    const flags = b.u16(p + 2);
    const nValues = b.u16(p + 4);
    p += 6;
    let name = '';
    if (nameLen > 0) {
      name = b.cstring(p, nameLen);
      p += version === 1 ? Math.ceil(nameLen / 8) * 8 : nameLen;
    }
    const values: number[] = [];
    for (let v = 0; v < nValues; v++) values.push(b.u32(p + 4 * v));
    p += 4 * nValues;
    if (version === 1 && nValues % 2 === 1) p += 4;
    filters.push({ id, name, optional: (flags & 1) !== 0, values });
  }
  return filters;
}

const FILTER_NAMES: Record<number, string> = { 1: 'deflate', 2: 'shuffle', 3: 'fletcher32', 4: 'szip', 5: 'nbit', 6: 'scaleoffset', 32000: 'lzf', 32001: 'blosc', 32004: 'lz4', 32015: 'zstd' };

export function checkFiltersSupported(filters: readonly Filter[], where: string): void {
  for (const f of filters) {
    if (f.id < 1 || f.id > 3) {
      throw new Hdf5Error(
        'unsupported',
        `${where} is compressed with the ${FILTER_NAMES[f.id] ?? f.name ?? `#${f.id}`} filter, which am-ml does not read; re-save the model without that compression (Keras' default settings use none).`,
      );
    }
  }
}

function applyFilters(data: Uint8Array, filters: readonly Filter[], mask: number, elementSize: number, maxBytes: number): Uint8Array {
  let out = data;
  for (let i = filters.length - 1; i >= 0; i--) {
    if (mask & (1 << i)) continue;
    const f = filters[i];
    if (f.id === 1) {
      // Decompress into a buffer of the declared chunk size (+ a fletcher32 tail): a deflate bomb cannot grow it.
      try {
        out = unzlibSync(out, { out: new Uint8Array(maxBytes + 4) });
      } catch (err) {
        throw new Hdf5Error('corrupt', `a deflate-compressed chunk does not decompress: ${(err as Error).message}.`);
      }
    } else if (f.id === 2) {
      out = unshuffle(out, f.values[0] ?? elementSize);
    } else if (f.id === 3) {
      if (out.length < 4) throw new Hdf5Error('corrupt', 'a fletcher32 chunk is shorter than its checksum.');
      out = out.subarray(0, out.length - 4);
    }
  }
  return out;
}

function unshuffle(data: Uint8Array, size: number): Uint8Array {
  if (size <= 1) return data;
  const n = Math.floor(data.length / size);
  const out = new Uint8Array(data.length);
  for (let byte = 0; byte < size; byte++) {
    const src = byte * n;
    for (let e = 0; e < n; e++) out[e * size + byte] = data[src + e];
  }
  out.set(data.subarray(n * size), n * size); // leftover bytes are stored as is
  return out;
}

/**
 * Read a dataset's raw bytes (file byte order), `count * elementSize` long. `shape` is the dataspace shape.
 */
export function readRawData(
  b: Bytes,
  layout: Layout,
  filters: readonly Filter[],
  shape: readonly number[],
  elementSize: number,
  where: string,
): Uint8Array {
  const count = elementCount(shape);
  const total = count * elementSize;
  if (layout.kind === 'compact') {
    if (layout.size < total) throw new Hdf5Error('corrupt', `${where}: compact data holds ${layout.size} bytes, the shape needs ${total}.`);
    return b.slice(layout.pos, total, where);
  }
  if (layout.kind === 'contiguous') {
    if (total === 0) return new Uint8Array(0);
    if (layout.address === UNDEFINED_ADDRESS) return new Uint8Array(total); // never written: fill value (zeros)
    if (layout.size < total) {
      throw new Hdf5Error('corrupt', `${where}: its shape [${shape.join(', ')}] needs ${total} bytes but only ${layout.size} are stored.`);
    }
    return b.slice(layout.address, total, where);
  }
  checkFiltersSupported(filters, where);
  // Chunked data is assembled in memory: refuse declared sizes no weight tensor has before allocating them.
  if (total > MAX_DATASET_BYTES) throw new Hdf5Error('limit', `${where}: its shape [${shape.join(', ')}] declares ${total} bytes, more than the limit of ${MAX_DATASET_BYTES}.`);
  const rank = shape.length;
  const chunk = layout.chunk;
  if (chunk.length !== rank || chunk.some((c) => c <= 0)) throw new Hdf5Error('corrupt', `${where}: chunk shape [${chunk.join(', ')}] does not fit the dataset shape.`);
  const chunkElems = elementCount(chunk);
  const chunkBytes = chunkElems * elementSize;
  if (chunkBytes > 2 ** 31) throw new Hdf5Error('limit', `${where}: chunks of ${chunkBytes} bytes are too large.`);
  const refs = chunkRefs(b, layout, shape, chunkBytes, where);
  const out = new Uint8Array(total);
  for (const ref of refs) {
    for (let d = 0; d < rank; d++) {
      if (ref.offsets[d] % chunk[d] !== 0 || ref.offsets[d] >= Math.max(1, shape[d])) {
        throw new Hdf5Error('corrupt', `${where}: a chunk sits at an invalid position [${ref.offsets.join(', ')}].`);
      }
    }
    let data = b.slice(ref.address, ref.size, `${where} chunk`);
    if (filters.length) data = applyFilters(data, filters, ref.filterMask, elementSize, chunkBytes);
    if (data.length < chunkBytes) throw new Hdf5Error('corrupt', `${where}: a chunk holds ${data.length} bytes, expected ${chunkBytes}.`);
    copyChunk(out, data, shape, chunk, ref.offsets, elementSize);
  }
  return out;
}

function chunkRefs(b: Bytes, layout: Extract<Layout, { kind: 'chunked' }>, shape: readonly number[], chunkBytes: number, where: string): ChunkRef[] {
  const rank = shape.length;
  const grid = shape.map((d, i) => Math.ceil(d / layout.chunk[i]));
  const gridCount = elementCount(grid);
  const gridOffsets = (i: number): number[] => {
    const offs = new Array<number>(rank);
    for (let d = rank - 1; d >= 0; d--) {
      offs[d] = (i % grid[d]) * layout.chunk[d];
      i = Math.floor(i / grid[d]);
    }
    return offs;
  };
  if (layout.address === UNDEFINED_ADDRESS) return [];
  switch (layout.index) {
    case 'btree1':
      return v1ChunkRefs(b, layout.address, rank);
    case 'single':
      return [{ address: layout.address, size: layout.filteredSingleSize ?? chunkBytes, filterMask: layout.filteredSingleMask ?? 0, offsets: new Array(rank).fill(0) }];
    case 'implicit':
      return Array.from({ length: gridCount }, (_, i) => ({ address: layout.address + i * chunkBytes, size: chunkBytes, filterMask: 0, offsets: gridOffsets(i) }));
    case 'fixed-array': {
      b.signature(layout.address, 'FAHD', 'fixed array header');
      const clientId = b.u8At(layout.address + 5);
      const entrySize = b.u8At(layout.address + 6);
      const pageBits = b.u8At(layout.address + 7);
      const entries = b.len(layout.address + 8);
      const dataBlock = b.offset(layout.address + 8 + b.lengthSize);
      if (entries !== gridCount) throw new Hdf5Error('corrupt', `${where}: the chunk index lists ${entries} chunks, the shape needs ${gridCount}.`);
      if (entries > 2 ** pageBits) throw new Hdf5Error('unsupported', `${where}: paged fixed-array chunk indexes are not supported.`);
      b.signature(dataBlock, 'FADB', 'fixed array data block');
      let p = dataBlock + 6 + b.offsetSize;
      const refs: ChunkRef[] = [];
      for (let i = 0; i < entries; i++, p += entrySize) {
        const address = b.offset(p);
        if (address === UNDEFINED_ADDRESS) continue;
        if (clientId === 1) {
          const sizeLen = entrySize - b.offsetSize - 4;
          refs.push({ address, size: b.uint(p + b.offsetSize, sizeLen), filterMask: b.u32(p + b.offsetSize + sizeLen), offsets: gridOffsets(i) });
        } else {
          refs.push({ address, size: chunkBytes, filterMask: 0, offsets: gridOffsets(i) });
        }
      }
      return refs;
    }
    default:
      throw new Hdf5Error(
        'unsupported',
        `${where} uses a ${layout.index} chunk index (a resizable dataset), which am-ml does not read; re-save the model with Keras' default settings.`,
      );
  }
}

/** Copy one chunk into the dataset buffer, clipping chunks that overhang the dataset edge. */
function copyChunk(out: Uint8Array, data: Uint8Array, shape: readonly number[], chunk: readonly number[], offsets: readonly number[], es: number): void {
  const rank = shape.length;
  if (rank === 0) {
    out.set(data.subarray(0, es));
    return;
  }
  const extent = chunk.map((c, d) => Math.min(c, shape[d] - offsets[d]));
  if (extent.some((e) => e <= 0)) return;
  // Strides in elements.
  const outStride = new Array<number>(rank);
  const inStride = new Array<number>(rank);
  outStride[rank - 1] = 1;
  inStride[rank - 1] = 1;
  for (let d = rank - 2; d >= 0; d--) {
    outStride[d] = outStride[d + 1] * shape[d + 1];
    inStride[d] = inStride[d + 1] * chunk[d + 1];
  }
  const rowBytes = extent[rank - 1] * es;
  const idx = new Array<number>(rank - 1).fill(0);
  for (;;) {
    let o = offsets[rank - 1];
    let i = 0;
    for (let d = 0; d < rank - 1; d++) {
      o += (offsets[d] + idx[d]) * outStride[d];
      i += idx[d] * inStride[d];
    }
    out.set(data.subarray(i * es, i * es + rowBytes), o * es);
    let d = rank - 2;
    while (d >= 0) {
      idx[d]++;
      if (idx[d] < extent[d]) break;
      idx[d] = 0;
      d--;
    }
    if (d < 0) break;
  }
}
