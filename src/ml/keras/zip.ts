/**
 * Reading `.keras` archives safely. The central directory is checked before anything is inflated: member names must
 * be plain relative paths (no `..`, no absolute or drive paths, no backslashes, no duplicates), and declared sizes
 * must be plausible (per-member and total caps, a compression-ratio cap against deflate bombs). fflate then inflates
 * only the members we need into buffers of the declared size, so a lying header cannot grow memory. Stored members
 * (Keras writes `.keras` archives uncompressed) are not copied at all: they are views of the archive's bytes, found
 * through the central directory, so a large model.weights.h5 costs no second copy and stays in shared memory.
 */
import { unzipSync } from 'fflate';
import { unreadableInput, invalidModel } from './errors.js';

export const ZIP_MAGIC = [0x50, 0x4b, 0x03, 0x04];

/** Largest member we inflate (the weights file of a very large model). */
export const MAX_ZIP_MEMBER_BYTES = 2 ** 31 - 1;
/** A deflated member may expand at most this many times (weights compress ~1.1×, JSON ~10×). */
export const MAX_COMPRESSION_RATIO = 200;

export interface ZipEntryInfo {
  name: string;
  compressedSize: number;
  size: number;
  compression: number;
}

export function isZip(bytes: Uint8Array): boolean {
  return ZIP_MAGIC.every((v, i) => bytes[i] === v);
}

function unsafeName(name: string): string | undefined {
  if (name.length === 0) return 'an empty name';
  if (name.includes('\\')) return 'a backslash';
  if (name.startsWith('/') || /^[A-Za-z]:/.test(name)) return 'an absolute path';
  if (name.split('/').some((p) => p === '..')) return "a '..' component";
  if (name.includes('\0')) return 'a NUL character';
  return undefined;
}

/**
 * List every member (checking names and sizes) and inflate the wanted ones.
 * @throws UsageError for damaged or unsafe archives, ValidationFailedError for size-limit violations.
 */
export function readZip(bytes: Uint8Array, file: string, wanted: (name: string) => boolean): { entries: ZipEntryInfo[]; files: Map<string, Uint8Array> } {
  const entries: ZipEntryInfo[] = [];
  const problems: string[] = [];
  const seen = new Set<string>();
  const stored = new Set<string>();
  let total = 0;
  let files: Record<string, Uint8Array>;
  try {
    files = unzipSync(bytes, {
      filter: (f) => {
        const info = { name: f.name, compressedSize: f.size, size: f.originalSize, compression: f.compression };
        entries.push(info);
        const bad = unsafeName(f.name);
        if (bad) problems.push(`member ${JSON.stringify(f.name)} has ${bad}`);
        if (seen.has(f.name)) problems.push(`member ${JSON.stringify(f.name)} appears twice`);
        seen.add(f.name);
        if (f.compression !== 0 && f.compression !== 8) problems.push(`member ${JSON.stringify(f.name)} uses compression method ${f.compression}`);
        total += f.originalSize;
        const want = !bad && wanted(f.name);
        if (want) {
          if (f.originalSize > MAX_ZIP_MEMBER_BYTES) problems.push(`member ${f.name} declares ${f.originalSize} bytes (limit ${MAX_ZIP_MEMBER_BYTES})`);
          if (f.compression === 0 && f.originalSize !== f.size) problems.push(`stored member ${f.name} declares ${f.originalSize} bytes but occupies ${f.size}`);
          if (f.compression === 8 && f.originalSize > Math.max(1 << 20, f.size * MAX_COMPRESSION_RATIO)) {
            problems.push(`member ${f.name} would expand ${Math.round(f.originalSize / Math.max(1, f.size))}× (${f.originalSize} bytes)`);
          }
        }
        if (want && f.compression === 0) stored.add(f.name);
        // Inflate nothing until every header has been checked: a problem anywhere stops the whole read.
        return want && problems.length === 0 && f.compression !== 0;
      },
    });
  } catch (err) {
    throw unreadableInput(`${file} is not a readable zip archive: ${(err as Error).message}.`, 'The file is damaged or truncated; copy it again from its source.', err);
  }
  if (problems.length) {
    const sizeOnly = problems.every((p) => /declares|expand/.test(p));
    const message = `${file} is not a safe .keras archive: ${problems.join('; ')}.`;
    if (sizeOnly) throw invalidModel(message, { code: 'KERAS_SIZE_LIMIT', hint: 'The archive declares sizes no real model has; it is damaged or hostile.' });
    throw unreadableInput(message, 'A .keras file written by Keras only holds metadata.json, config.json, model.weights.h5 and assets/.');
  }
  if (total > Number.MAX_SAFE_INTEGER) throw invalidModel(`${file} declares an impossible total size.`, { code: 'KERAS_SIZE_LIMIT' });
  const out = new Map<string, Uint8Array>();
  if (stored.size) for (const [name, data] of storedMembers(bytes, file, stored)) files[name] = data;
  for (const [name, data] of Object.entries(files)) {
    const info = entries.find((e) => e.name === name);
    if (info && data.length !== info.size) {
      throw unreadableInput(`${file}: member ${name} inflates to ${data.length} bytes, its header says ${info.size}.`, 'The archive is damaged.');
    }
    out.set(name, data);
  }
  return { entries, files: out };
}

const u16 = (b: Uint8Array, o: number) => b[o] | (b[o + 1] << 8);
const u32 = (b: Uint8Array, o: number) => (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16)) + b[o + 3] * 2 ** 24;

/**
 * Views of the data of stored members, located through the central directory. Every offset is bounds-checked.
 * No zip64: Python's zipfile (which writes `.keras` files) only uses it past 2 GiB, beyond MAX_INPUT_BYTES.
 */
function storedMembers(bytes: Uint8Array, file: string, names: ReadonlySet<string>): Map<string, Uint8Array> {
  const damaged = (what: string) => unreadableInput(`${file} is not a readable zip archive: ${what}.`, 'The file is damaged or truncated; copy it again from its source.');
  const n = bytes.length;
  let eocd = -1;
  for (let i = n - 22; i >= Math.max(0, n - 22 - 0xffff); i--) {
    if (u32(bytes, i) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw damaged('no end of central directory');
  const entries = u16(bytes, eocd + 10);
  const cdOffset = u32(bytes, eocd + 16);
  const out = new Map<string, Uint8Array>();
  let p = cdOffset;
  for (let e = 0; e < entries; e++) {
    if (p + 46 > n || u32(bytes, p) !== 0x02014b50) throw damaged(`central directory entry ${e} is out of place`);
    const nameLen = u16(bytes, p + 28);
    const extraLen = u16(bytes, p + 30);
    const commentLen = u16(bytes, p + 32);
    if (p + 46 + nameLen + extraLen > n) throw damaged(`central directory entry ${e} runs past the end`);
    const name = new TextDecoder().decode(bytes.subarray(p + 46, p + 46 + nameLen));
    if (names.has(name)) {
      const compressed = u32(bytes, p + 20);
      const size = u32(bytes, p + 24);
      const local = u32(bytes, p + 42);
      if (compressed !== size) throw damaged(`stored member ${name} declares ${size} bytes but occupies ${compressed}`);
      if (local + 30 > n || u32(bytes, local) !== 0x04034b50) throw damaged(`the local header of ${name} is out of place`);
      const start = local + 30 + u16(bytes, local + 26) + u16(bytes, local + 28);
      if (start + size > n) throw damaged(`member ${name} runs past the end of the archive`);
      out.set(name, bytes.subarray(start, start + size));
    }
    p += 46 + nameLen + extraLen + commentLen;
  }
  for (const name of names) if (!out.has(name)) throw damaged(`member ${name} is missing from the central directory`);
  return out;
}
