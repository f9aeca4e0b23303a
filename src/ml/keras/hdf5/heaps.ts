/**
 * The three HDF5 heaps Keras files can use: the local heap (link names of old-style groups), global heap
 * collections (variable-length strings such as `model_config`), and fractal heaps (links and attributes of
 * new-style groups in "dense" storage). Plus the version-1 and version-2 B-trees that index them.
 */
import { Bytes, Hdf5Error, UNDEFINED_ADDRESS } from './bytes.js';

// ---------------------------------------------------------------------------------------------------------------
// Local heap
// ---------------------------------------------------------------------------------------------------------------

export interface LocalHeap {
  dataAddress: number;
  dataSize: number;
}

export function readLocalHeap(b: Bytes, address: number): LocalHeap {
  b.signature(address, 'HEAP', 'local heap');
  const dataSize = b.len(address + 8);
  const dataAddress = b.offset(address + 8 + 2 * b.lengthSize);
  b.check(dataAddress, dataSize, 'the local heap data');
  return { dataAddress, dataSize };
}

export function localHeapString(b: Bytes, heap: LocalHeap, offset: number): string {
  if (offset >= heap.dataSize) throw new Hdf5Error('corrupt', `a name offset ${offset} lies outside its local heap.`);
  return b.cstring(heap.dataAddress + offset, heap.dataSize - offset);
}

// ---------------------------------------------------------------------------------------------------------------
// Global heap (variable-length data)
// ---------------------------------------------------------------------------------------------------------------

export class GlobalHeaps {
  private readonly collections = new Map<number, Map<number, { pos: number; size: number }>>();
  constructor(private readonly b: Bytes) {}

  object(collection: number, index: number): Uint8Array {
    let objs = this.collections.get(collection);
    if (!objs) {
      objs = this.parse(collection);
      this.collections.set(collection, objs);
    }
    const o = objs.get(index);
    if (!o) throw new Hdf5Error('corrupt', `global heap object ${index} is missing from the collection at byte ${collection}.`);
    return this.b.slice(o.pos, o.size, 'a global heap object');
  }

  private parse(address: number): Map<number, { pos: number; size: number }> {
    const b = this.b;
    b.signature(address, 'GCOL', 'global heap');
    const size = b.len(address + 8);
    b.check(address, size, 'a global heap collection');
    const end = address + size;
    const objs = new Map<number, { pos: number; size: number }>();
    let p = address + 8 + b.lengthSize;
    while (p + 8 + b.lengthSize <= end) {
      const index = b.u16(p);
      if (index === 0) break; // free space runs to the end of the collection
      const objSize = b.len(p + 8);
      const data = p + 8 + b.lengthSize;
      if (data + objSize > end) throw new Hdf5Error('corrupt', `a global heap object at byte ${p} runs past its collection.`);
      objs.set(index, { pos: data, size: objSize });
      p = data + Math.ceil(objSize / 8) * 8;
    }
    return objs;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Version-1 B-trees: group nodes (type 0) and raw-data chunk nodes (type 1)
// ---------------------------------------------------------------------------------------------------------------

const MAX_NODES = 1_000_000;

/** Addresses of the symbol-table nodes (SNOD) of an old-style group. */
export function v1GroupLeaves(b: Bytes, root: number): number[] {
  const out: number[] = [];
  const stack = [root];
  const seen = new Set<number>();
  while (stack.length) {
    const addr = stack.pop()!;
    if (seen.has(addr) || seen.size > MAX_NODES) throw new Hdf5Error('corrupt', 'a group B-tree has a cycle.');
    seen.add(addr);
    b.signature(addr, 'TREE', 'B-tree node');
    const type = b.u8At(addr + 4);
    if (type !== 0) throw new Hdf5Error('corrupt', `expected a group B-tree node at byte ${addr}, found type ${type}.`);
    const level = b.u8At(addr + 5);
    const entries = b.u16(addr + 6);
    let p = addr + 8 + 2 * b.offsetSize;
    p += b.lengthSize; // key 0
    for (let i = 0; i < entries; i++) {
      const child = b.offset(p);
      p += b.offsetSize + b.lengthSize;
      if (level === 0) out.push(child);
      else stack.push(child);
    }
  }
  return out;
}

export interface ChunkRef {
  address: number;
  /** Stored (possibly filtered) size in bytes. */
  size: number;
  filterMask: number;
  /** Element offsets of the chunk's first element, one per dataset dimension. */
  offsets: number[];
}

/** Chunks of a dataset indexed by a version-1 B-tree (layout message version 3). `rank` excludes the element dim. */
export function v1ChunkRefs(b: Bytes, root: number, rank: number): ChunkRef[] {
  const out: ChunkRef[] = [];
  const stack = [root];
  const seen = new Set<number>();
  const keySize = 8 + 8 * (rank + 1);
  while (stack.length) {
    const addr = stack.pop()!;
    if (seen.has(addr) || seen.size > MAX_NODES) throw new Hdf5Error('corrupt', 'a chunk B-tree has a cycle.');
    seen.add(addr);
    b.signature(addr, 'TREE', 'B-tree node');
    const type = b.u8At(addr + 4);
    if (type !== 1) throw new Hdf5Error('corrupt', `expected a chunk B-tree node at byte ${addr}, found type ${type}.`);
    const level = b.u8At(addr + 5);
    const entries = b.u16(addr + 6);
    let p = addr + 8 + 2 * b.offsetSize;
    for (let i = 0; i < entries; i++) {
      const size = b.u32(p);
      const filterMask = b.u32(p + 4);
      const offsets: number[] = [];
      for (let d = 0; d < rank; d++) offsets.push(b.u64(p + 8 + d * 8));
      const child = b.offset(p + keySize);
      if (level === 0) out.push({ address: child, size, filterMask, offsets });
      else stack.push(child);
      p += keySize + b.offsetSize;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Version-2 B-trees: we only need to enumerate every record
// ---------------------------------------------------------------------------------------------------------------

function bytesFor(n: number): number {
  // H5VM_limit_enc_size: (log2(n) / 8) + 1
  return Math.floor(Math.floor(Math.log2(Math.max(1, n))) / 8) + 1;
}

/** Every record (raw bytes) of a version-2 B-tree. */
export function v2BtreeRecords(b: Bytes, address: number): Uint8Array[] {
  b.signature(address, 'BTHD', 'v2 B-tree header');
  const nodeSize = b.u32(address + 6);
  const recordSize = b.u16(address + 10);
  const depth = b.u16(address + 12);
  const root = b.offset(address + 16);
  const rootRecords = b.u16(address + 16 + b.offsetSize);
  if (recordSize === 0 || nodeSize < 16 || depth > 64) throw new Hdf5Error('corrupt', `a v2 B-tree at byte ${address} has invalid sizes.`);
  if (root === UNDEFINED_ADDRESS || rootRecords === 0) return [];
  // Field sizes as H5B2__hdr_init computes them: the per-child record count is sized by the leaf capacity at
  // every depth; the cumulative count (depth > 1 only) by the capacity of the level below.
  const leafMax = Math.floor((nodeSize - 10) / recordSize);
  const maxNrecSize = bytesFor(leafMax);
  const cumMax = [leafMax];
  const cumSize = [0];
  for (let d = 1; d <= depth; d++) {
    const ptrSize = b.offsetSize + maxNrecSize + (d > 1 ? cumSize[d - 1] : 0);
    const m = Math.floor((nodeSize - 10) / (recordSize + ptrSize));
    cumMax.push((m + 1) * cumMax[d - 1] + m);
    cumSize.push(bytesFor(cumMax[d]));
  }
  const out: Uint8Array[] = [];
  let visited = 0;
  const walk = (addr: number, nrec: number, d: number) => {
    if (++visited > MAX_NODES) throw new Hdf5Error('corrupt', 'a v2 B-tree is too large or has a cycle.');
    b.signature(addr, d === 0 ? 'BTLF' : 'BTIN', d === 0 ? 'v2 B-tree leaf' : 'v2 B-tree internal node');
    let p = addr + 6;
    for (let i = 0; i < nrec; i++) out.push(b.slice(p + i * recordSize, recordSize, 'a v2 B-tree record'));
    if (d === 0) return;
    p += nrec * recordSize;
    for (let i = 0; i <= nrec; i++) {
      const child = b.offset(p);
      p += b.offsetSize;
      const childNrec = b.uint(p, maxNrecSize);
      p += maxNrecSize;
      if (d > 1) p += cumSize[d - 1];
      walk(child, childNrec, d - 1);
    }
  };
  walk(root, rootRecords, depth);
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Fractal heap: look up managed and tiny objects by heap id
// ---------------------------------------------------------------------------------------------------------------

export class FractalHeap {
  private readonly maxDirectBlockSize: number;
  private readonly startBlockSize: number;
  private readonly tableWidth: number;
  private readonly maxHeapSizeBits: number;
  private readonly rootAddress: number;
  private readonly rootRows: number;
  private readonly hasFilters: boolean;
  private readonly offsetBytes: number;
  private readonly lengthBytes: number;

  constructor(
    private readonly b: Bytes,
    private readonly address: number,
  ) {
    b.signature(address, 'FRHP', 'fractal heap header');
    let p = address + 5;
    const filterLen = b.u16(p + 2);
    p += 5;
    const maxManaged = b.u32(p);
    p += 4;
    p += b.lengthSize + b.offsetSize; // next huge id, huge-object B-tree
    p += b.lengthSize + b.offsetSize; // free space, free-space manager
    p += 4 * b.lengthSize; // managed space, allocated, iterator offset, managed object count
    p += 4 * b.lengthSize; // huge size/count, tiny size/count
    this.tableWidth = b.u16(p);
    this.startBlockSize = b.len(p + 2);
    this.maxDirectBlockSize = b.len(p + 2 + b.lengthSize);
    this.maxHeapSizeBits = b.u16(p + 2 + 2 * b.lengthSize);
    p += 2 + 2 * b.lengthSize + 2;
    p += 2; // starting rows in root indirect block
    this.rootAddress = b.offset(p);
    this.rootRows = b.u16(p + b.offsetSize);
    this.hasFilters = filterLen > 0;
    if (this.tableWidth === 0 || this.startBlockSize === 0 || this.maxHeapSizeBits > 64) {
      throw new Hdf5Error('corrupt', `the fractal heap at byte ${address} has invalid table parameters.`);
    }
    this.offsetBytes = Math.ceil(this.maxHeapSizeBits / 8);
    // H5HF hdr: heap_len_size = min(bytes to hold log2(max direct block size) bits, enc size of max managed size).
    this.lengthBytes = Math.min(Math.ceil(Math.log2(this.maxDirectBlockSize) / 8), bytesFor(maxManaged));
  }

  /** The bytes of the object with this heap id. */
  object(id: Uint8Array): Uint8Array {
    const first = id[0];
    const type = (first >> 4) & 0x03;
    if (type === 2) {
      // Tiny object: stored in the id itself.
      const len = (first & 0x0f) + 1;
      if (1 + len > id.length) throw new Hdf5Error('corrupt', 'a tiny fractal heap object is longer than its id.');
      return id.subarray(1, 1 + len);
    }
    if (type !== 0) throw new Hdf5Error('unsupported', 'huge fractal heap objects (over 64 KiB in one attribute or link) are not supported.');
    const idBytes = new Bytes(id, this.b.offsetSize, this.b.lengthSize);
    const offset = idBytes.uint(1, this.offsetBytes);
    const length = idBytes.uint(1 + this.offsetBytes, this.lengthBytes);
    return this.b.slice(this.locate(offset, length), length, 'a fractal heap object');
  }

  private rowBlockSize(row: number): number {
    return row === 0 ? this.startBlockSize : this.startBlockSize * 2 ** (row - 1);
  }

  private get maxDirectRows(): number {
    return Math.log2(this.maxDirectBlockSize) - Math.log2(this.startBlockSize) + 2;
  }

  /** File position of heap offset `offset`. */
  private locate(offset: number, length: number): number {
    if (this.rootRows === 0) return this.inDirect(this.rootAddress, 0, this.startBlockSize, offset, length);
    return this.inIndirect(this.rootAddress, this.rootRows, 0, offset, length, 0);
  }

  private inDirect(address: number, blockOffset: number, blockSize: number, offset: number, length: number): number {
    const b = this.b;
    b.signature(address, 'FHDB', 'fractal heap direct block');
    const rel = offset - blockOffset;
    if (rel < 0 || rel + length > blockSize) throw new Hdf5Error('corrupt', `a fractal heap object at offset ${offset} lies outside its block.`);
    return address + rel;
  }

  private inIndirect(address: number, rows: number, blockOffset: number, offset: number, length: number, depth: number): number {
    if (depth > 16) throw new Hdf5Error('corrupt', 'fractal heap indirect blocks nest too deeply.');
    const b = this.b;
    b.signature(address, 'FHIB', 'fractal heap indirect block');
    let p = address + 5 + b.offsetSize + this.offsetBytes;
    let cursor = blockOffset;
    const directRows = Math.min(rows, this.maxDirectRows);
    for (let r = 0; r < rows; r++) {
      const size = this.rowBlockSize(r);
      for (let c = 0; c < this.tableWidth; c++) {
        const child = b.offset(p);
        p += b.offsetSize;
        if (r < directRows && this.hasFilters) p += b.lengthSize + 4;
        if (offset >= cursor && offset < cursor + size) {
          if (child === UNDEFINED_ADDRESS) throw new Hdf5Error('corrupt', `fractal heap offset ${offset} points into an unallocated block.`);
          if (r < directRows) return this.inDirect(child, cursor, size, offset, length);
          const childRows = Math.log2(size) - Math.log2(this.startBlockSize * this.tableWidth) + 1;
          return this.inIndirect(child, childRows, cursor, offset, length, depth + 1);
        }
        cursor += size;
      }
    }
    throw new Hdf5Error('corrupt', `fractal heap offset ${offset} is beyond the heap.`);
  }
}
