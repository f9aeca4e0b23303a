/** Stored members come back as views of the archive (no copy), deflated ones inflated; both byte-exact. */
import { strToU8, zipSync } from 'fflate';
import { describe, expect, it } from 'vitest';
import { readZip } from './zip.js';

describe('readZip', () => {
  it('returns stored members as views of the archive and inflates deflated ones', () => {
    const weights = new Uint8Array(5000).map((_, i) => (i * 7) & 0xff);
    const archive = zipSync(
      { 'config.json': [strToU8('{"a":1}'), { level: 6 }], 'model.weights.h5': [weights, { level: 0 }], 'assets/x': strToU8('skip') },
      { comment: 'a comment after the directory' },
    );
    const { entries, files } = readZip(archive, 'm.keras', (n) => n !== 'assets/x');
    expect(entries.map((e) => [e.name, e.compression])).toEqual([
      ['config.json', 8],
      ['model.weights.h5', 0],
      ['assets/x', 8],
    ]);
    const w = files.get('model.weights.h5')!;
    expect(w.buffer).toBe(archive.buffer);
    expect(Array.from(w)).toEqual(Array.from(weights));
    expect(new TextDecoder().decode(files.get('config.json'))).toBe('{"a":1}');
    expect(files.has('assets/x')).toBe(false);
  });
});
