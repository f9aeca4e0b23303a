/**
 * Worker-thread entry of the parallel sha256 helper (see parallel-sha256.ts). It hashes bytes that live in
 * SharedArrayBuffers, so nothing is copied between the threads: the source file while it is still being read
 * (following the reader's progress counter), and shard hash jobs that it claims from a counter it shares with the
 * main thread. Errors are sent back, never printed.
 */
import { createHash } from 'node:crypto';
import { parentPort } from 'node:worker_threads';
import type { HashRequest, HashResponse, SharedRange } from './parallel-sha256.js';

/** Hash [0, total) of `bytes` as the reader publishes progress; -1 in the counter means the read failed. */
function followRead(bytes: Uint8Array, total: number, progress: Int32Array): string | null {
  const hash = createHash('sha256');
  let done = 0;
  while (done < total) {
    const ready = Atomics.load(progress, 0);
    if (ready < 0) return null;
    if (ready > done) {
      hash.update(bytes.subarray(done, ready));
      done = ready;
    } else {
      Atomics.wait(progress, 0, ready);
    }
  }
  return hash.digest('hex');
}

function hashRanges(ranges: readonly SharedRange[]): string {
  const hash = createHash('sha256');
  for (const r of ranges) hash.update(new Uint8Array(r.buffer, r.offset, r.length));
  return hash.digest('hex');
}

function handle(req: HashRequest): HashResponse {
  if (req.op === 'follow') {
    const hex = followRead(new Uint8Array(req.buffer, 0, req.total), req.total, req.progress);
    return hex === null ? { id: req.id, ok: false, message: 'the read was abandoned' } : { id: req.id, ok: true, hex };
  }
  const results: Array<[number, string]> = [];
  for (let i = Atomics.add(req.counter, 0, 1); i < req.jobs.length; i = Atomics.add(req.counter, 0, 1)) results.push([i, hashRanges(req.jobs[i])]);
  return { id: req.id, ok: true, results };
}

parentPort!.on('message', (req: HashRequest) => {
  let res: HashResponse;
  try {
    res = handle(req);
  } catch (err) {
    res = { id: req.id, ok: false, message: (err as Error).message };
  }
  parentPort!.postMessage(res);
});
