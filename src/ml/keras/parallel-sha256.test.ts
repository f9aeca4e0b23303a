/**
 * The two-core sha256 helper must give exactly node:crypto's digests, whichever thread hashed what: a file read in
 * chunks while the worker follows it, jobs split between the worker and this thread (shared and unshared pieces
 * mixed), and a read that fails half-way must leave the worker free for the next file.
 */
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TmpDir, tmpDir } from '../../testing/tmp-dir.js';
import { PARALLEL_HASH_MIN_BYTES, readFileHashed, startHashJobs, stopHashWorker } from './parallel-sha256.js';

const sha = (...parts: Uint8Array[]) => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest('hex');
};

function pattern(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

let tmp: TmpDir;
beforeAll(() => {
  tmp = tmpDir('am-ml-sha-');
});
afterAll(() => tmp.remove());

describe('readFileHashed', () => {
  it('reads a large file into shared memory and hashes it while reading', async () => {
    const data = pattern(PARALLEL_HASH_MIN_BYTES + 3 * 1024 * 1024 + 17, 1);
    const file = tmp.join('large.bin');
    writeFileSync(file, data);
    const r = readFileHashed(file, data.length);
    expect(r.bytes.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(Buffer.compare(Buffer.from(r.bytes), Buffer.from(data))).toBe(0);
    expect(await r.sha256).toBe(sha(data));
  });

  it('reads a small file without the worker', async () => {
    const data = pattern(1000, 2);
    const file = tmp.join('small.bin');
    writeFileSync(file, data);
    const r = readFileHashed(file, data.length);
    expect(r.bytes.buffer).not.toBeInstanceOf(SharedArrayBuffer);
    expect(await r.sha256).toBe(sha(data));
  });

  it('fails a file shorter than announced, and the worker goes on to the next file', async () => {
    const data = pattern(PARALLEL_HASH_MIN_BYTES + 100, 3);
    const file = tmp.join('short.bin');
    writeFileSync(file, data);
    expect(() => readFileHashed(file, data.length + 4096)).toThrow(/ended after \d+ of \d+ bytes/);
    const again = readFileHashed(file, data.length);
    expect(await again.sha256).toBe(sha(data));
  });
});

describe('startHashJobs', () => {
  it('gives node:crypto digests for jobs split between the worker and this thread', async () => {
    const whole = new Uint8Array(new SharedArrayBuffer(PARALLEL_HASH_MIN_BYTES * 2));
    whole.set(pattern(whole.length, 4));
    const unshared = pattern(5000, 5);
    // 40 jobs of uneven sizes, pieces straddling, one job mixing shared and unshared pieces, one empty job.
    const jobs: Uint8Array[][] = [];
    let at = 0;
    for (let j = 0; j < 40; j++) {
      const len = 100_000 + j * 20_011;
      jobs.push([whole.subarray(at, at + len / 2), whole.subarray(at + len / 2, at + len)]);
      at += len;
    }
    jobs.push([whole.subarray(at, at + 10), unshared]);
    jobs.push([]);
    const hashes = await startHashJobs(jobs).finish();
    expect(hashes).toEqual(jobs.map((pieces) => sha(...pieces)));
  });

  it('falls back to this thread when the worker dies with jobs in hand, and starts a new worker afterwards', async () => {
    const whole = new Uint8Array(new SharedArrayBuffer(PARALLEL_HASH_MIN_BYTES * 2));
    whole.set(pattern(whole.length, 9));
    const jobs = Array.from({ length: 16 }, (_, j) => [whole.subarray(j * 1_000_000, (j + 1) * 1_000_000)]);
    const run = startHashJobs(jobs);
    await stopHashWorker(); // killed while it owns the job list
    expect(await run.finish()).toEqual(jobs.map((p) => sha(...p)));
    const file = tmp.join('after.bin');
    const data = pattern(PARALLEL_HASH_MIN_BYTES + 5, 10);
    writeFileSync(file, data);
    const r = readFileHashed(file, data.length);
    expect(r.bytes.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(await r.sha256).toBe(sha(data));
    expect(await startHashJobs(jobs).finish()).toEqual(jobs.map((p) => sha(...p)));
  });

  it('hashes small job lists on this thread', async () => {
    const jobs = [[pattern(10, 6)], [pattern(20, 7), pattern(30, 8)]];
    expect(await startHashJobs(jobs).finish()).toEqual(jobs.map((p) => sha(...p)));
  });
});
