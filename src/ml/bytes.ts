/** Byte helpers with no Node APIs (shared with the Edge runtime). */

/** The views concatenated into one new buffer of exactly their total length. */
export function concatBytes(parts: readonly ArrayBufferView[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.byteLength, 0));
  let o = 0;
  for (const p of parts) {
    out.set(new Uint8Array(p.buffer, p.byteOffset, p.byteLength), o);
    o += p.byteLength;
  }
  return out;
}
