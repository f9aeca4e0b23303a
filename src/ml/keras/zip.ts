/**
 * Reading `.keras` archives safely. The central directory is checked before anything is inflated: member names must
 * be plain relative paths (no `..`, no absolute or drive paths, no backslashes, no duplicates), and declared sizes
 * must be plausible (per-member and total caps, a compression-ratio cap against deflate bombs). fflate then inflates
 * only the members we need into buffers of the declared size, so a lying header cannot grow memory.
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
        // Inflate nothing until every header has been checked: a problem anywhere stops the whole read.
        return want && problems.length === 0;
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
  for (const [name, data] of Object.entries(files)) {
    const info = entries.find((e) => e.name === name);
    if (info && data.length !== info.size) {
      throw unreadableInput(`${file}: member ${name} inflates to ${data.length} bytes, its header says ${info.size}.`, 'The archive is damaged.');
    }
    out.set(name, data);
  }
  return { entries, files: out };
}
