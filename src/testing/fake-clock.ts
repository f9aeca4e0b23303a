import { InterruptedError } from '../errors.js';
import type { Clock } from '../dmm/rate-limit.js';

/** Run every queued microtask (promise continuations) before going on. */
const flush = () => new Promise<void>((resolve) => setImmediate(resolve));

/** A manual clock for pacing tests: time moves only with `advance`, and sleepers wake in time order. */
export interface FakeClock extends Clock {
  advance(ms: number): Promise<void>;
  /** Every sleep requested, in ms (backoff and pacing assertions). */
  sleeps: number[];
  /** Sleepers not yet woken. */
  pending(): number;
}

export function fakeClock(start = 0): FakeClock {
  let t = start;
  const sleepers: { until: number; resolve: () => void }[] = [];
  const sleeps: number[] = [];
  return {
    sleeps,
    now: () => t,
    sleep(ms, signal) {
      sleeps.push(ms);
      if (signal?.aborted) return Promise.reject(new InterruptedError());
      if (ms <= 0) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        const s = { until: t + ms, resolve };
        sleepers.push(s);
        signal?.addEventListener(
          'abort',
          () => {
            sleepers.splice(sleepers.indexOf(s), 1);
            reject(new InterruptedError());
          },
          { once: true },
        );
      });
    },
    async advance(ms) {
      const target = t + ms;
      await flush(); // let callers that need no sleep finish at the current time
      for (;;) {
        sleepers.sort((a, b) => a.until - b.until);
        const next = sleepers[0];
        if (!next || next.until > target) break;
        sleepers.shift();
        t = next.until;
        next.resolve();
        await flush(); // let the woken task run (it may sleep again before the target time)
      }
      t = target;
    },
    pending: () => sleepers.length,
  };
}

/**
 * A clock whose sleeps return at once and move virtual time forward: code that waits (backoff, Retry-After,
 * pacing) runs at full speed while tests assert how long it asked to wait.
 */
export function instantClock(start = 0): Clock & { sleeps: number[]; elapsed(): number } {
  let t = start;
  const sleeps: number[] = [];
  return {
    sleeps,
    now: () => t,
    async sleep(ms, signal) {
      if (signal?.aborted) throw new InterruptedError();
      sleeps.push(ms);
      t += Math.max(0, ms);
    },
    elapsed: () => t - start,
  };
}
