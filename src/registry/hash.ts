/**
 * sha256 helpers for the registry. `ml/artifacts-fs.ts` has the same two functions, but the registry may not import
 * ml values (STYLE.md §2); they are four lines of node:crypto, not worth a shared module across the boundary.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';

export function sha256Hex(bytes: Uint8Array | string): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** sha256 of a file, streamed. */
export async function sha256OfFile(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
