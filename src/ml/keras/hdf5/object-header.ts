/**
 * Object headers (version 1 and version 2 "OHDR"), followed through continuation blocks, as a flat list of raw
 * messages. Loops and runaway chains are bounded so a hostile file cannot make the reader spin.
 */
import { Bytes, Hdf5Error, lookup3, UNDEFINED_ADDRESS } from './bytes.js';

export const MSG = {
  NIL: 0x0,
  DATASPACE: 0x1,
  LINK_INFO: 0x2,
  DATATYPE: 0x3,
  FILL_VALUE_OLD: 0x4,
  FILL_VALUE: 0x5,
  LINK: 0x6,
  EXTERNAL_FILES: 0x7,
  LAYOUT: 0x8,
  GROUP_INFO: 0xa,
  FILTER_PIPELINE: 0xb,
  ATTRIBUTE: 0xc,
  CONTINUATION: 0x10,
  SYMBOL_TABLE: 0x11,
  ATTRIBUTE_INFO: 0x15,
} as const;

export interface RawMessage {
  type: number;
  /** Absolute position of the message data in the file. */
  pos: number;
  size: number;
  flags: number;
}

const MAX_CONTINUATIONS = 10_000;

export function readObjectHeader(b: Bytes, address: number): RawMessage[] {
  if (address === UNDEFINED_ADDRESS) throw new Hdf5Error('corrupt', 'an object header address is undefined.');
  b.check(address, 16, 'an object header');
  const isV2 = b.ascii(address, 4) === 'OHDR';
  const messages: RawMessage[] = [];
  const blocks: Array<{ pos: number; size: number; first: boolean }> = [];
  let creationOrder = false;
  if (isV2) {
    const version = b.u8At(address + 4);
    if (version !== 2) throw new Hdf5Error('unsupported', `object header version ${version} at byte ${address} is not supported.`);
    const flags = b.u8At(address + 5);
    let p = address + 6;
    if (flags & 0x20) p += 16; // access, modification, change, birth times
    if (flags & 0x10) p += 4; // max compact / min dense attribute counts
    const sizeBytes = 1 << (flags & 0x03);
    const chunkSize = b.uint(p, sizeBytes);
    p += sizeBytes;
    creationOrder = (flags & 0x04) !== 0;
    verifyChecksum(b, address, p + chunkSize - address, 'object header');
    blocks.push({ pos: p, size: chunkSize, first: true });
  } else {
    const version = b.u8At(address);
    if (version !== 1) {
      throw new Hdf5Error('corrupt', `no object header at byte ${address} (version byte ${version}); the file is damaged.`);
    }
    const headerSize = b.u32(address + 8);
    blocks.push({ pos: address + 16, size: headerSize, first: true });
  }
  const seen = new Set<number>();
  for (let bi = 0; bi < blocks.length; bi++) {
    if (bi > MAX_CONTINUATIONS) throw new Hdf5Error('corrupt', `the object header at byte ${address} has too many continuation blocks.`);
    const blk = blocks[bi];
    const firstMessage = messages.length;
    b.check(blk.pos, blk.size, 'an object header block');
    if (isV2) {
      let p = blk.pos;
      let end = blk.pos + blk.size;
      if (!blk.first) {
        b.signature(p, 'OCHK', 'object header continuation');
        verifyChecksum(b, blk.pos, blk.size - 4, 'object header continuation');
        p += 4;
        end -= 4; // checksum
      }
      const headerOverhead = 4 + (creationOrder ? 2 : 0);
      while (p + headerOverhead <= end) {
        const type = b.u8At(p);
        const size = b.u16(p + 1);
        const flags = b.u8At(p + 3);
        p += 4 + (creationOrder ? 2 : 0);
        if (p + size > end) throw new Hdf5Error('corrupt', `an object header message at byte ${p} runs past its block.`);
        messages.push({ type, pos: p, size, flags });
        p += size;
      }
    } else {
      let p = blk.pos;
      const end = blk.pos + blk.size;
      while (p + 8 <= end) {
        const type = b.u16(p);
        const size = b.u16(p + 2);
        const flags = b.u8At(p + 4);
        p += 8;
        if (p + size > end) throw new Hdf5Error('corrupt', `an object header message at byte ${p} runs past its block.`);
        messages.push({ type, pos: p, size, flags });
        p += size;
      }
    }
    // Continuations found in this block are appended to the work list.
    for (let mi = firstMessage; mi < messages.length; mi++) {
      const m = messages[mi];
      if (m.type !== MSG.CONTINUATION) continue;
      const off = b.offset(m.pos);
      const len = b.len(m.pos + b.offsetSize);
      if (seen.has(off)) throw new Hdf5Error('corrupt', `the object header at byte ${address} has a continuation loop.`);
      seen.add(off);
      blocks.push({ pos: off, size: len, first: false });
    }
  }
  for (const m of messages) {
    if (m.flags & 0x02 && (m.type === MSG.DATATYPE || m.type === MSG.DATASPACE || m.type === MSG.FILTER_PIPELINE)) {
      throw new Hdf5Error('unsupported', `shared (committed) ${m.type === MSG.DATATYPE ? 'datatypes' : 'object header messages'} are not supported.`);
    }
  }
  return messages;
}

/** Version-2 metadata blocks end in a lookup3 checksum of the bytes before it. */
function verifyChecksum(b: Bytes, start: number, length: number, what: string): void {
  if (length < 0) throw new Hdf5Error('corrupt', `a ${what} at byte ${start} has a negative size.`);
  const stored = b.u32(start + length);
  const computed = lookup3(b.slice(start, length, `a ${what}`));
  if (stored !== computed) throw new Hdf5Error('corrupt', `the ${what} at byte ${start} fails its checksum; the file is damaged.`);
}
