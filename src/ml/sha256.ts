/**
 * sha256 without Node APIs (Web Crypto), for code shared with the Deno Edge runtime: verifying model files and the
 * feature spec against the manifest. Node 20 and Deno both provide `globalThis.crypto.subtle`.
 */

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

export async function sha256Hex(data: Uint8Array | string): Promise<string> {
  const bytes = typeof data === 'string' ? new TextEncoder().encode(data) : data;
  const digest = new Uint8Array(await globalThis.crypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>));
  let out = '';
  for (const b of digest) out += HEX[b];
  return out;
}
