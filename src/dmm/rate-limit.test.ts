import { describe, expect, it } from 'vitest';
import { InterruptedError } from '../errors.js';
import { fakeClock } from '../testing/fake-clock.js';
import { TokenBucket } from './rate-limit.js';

/** Start `n` takes at once and record the virtual time each one is released. */
async function releaseTimes(bucket: TokenBucket, clock: ReturnType<typeof fakeClock>, n: number, runMs: number) {
  const times: number[] = [];
  const all = Array.from({ length: n }, () => bucket.take().then(() => times.push(clock.now())));
  await clock.advance(runMs);
  await Promise.all(all);
  return times;
}

describe('TokenBucket', () => {
  it('releases one request per 1/rps seconds after the burst is spent', async () => {
    const clock = fakeClock();
    const bucket = new TokenBucket({ ratePerSec: 2, burst: 1, clock });
    const times = await releaseTimes(bucket, clock, 5, 10_000);
    expect(times).toEqual([0, 500, 1000, 1500, 2000]);
  });

  it('lets a saved-up burst go at once, then paces', async () => {
    const clock = fakeClock();
    const bucket = new TokenBucket({ ratePerSec: 10, burst: 3, clock });
    const times = await releaseTimes(bucket, clock, 6, 10_000);
    expect(times).toEqual([0, 0, 0, 100, 200, 300]);
  });

  it('never exceeds the rate over a long run, whatever the burst', async () => {
    const clock = fakeClock();
    const bucket = new TokenBucket({ ratePerSec: 20, clock }); // burst defaults to 20
    const times = await releaseTimes(bucket, clock, 220, 60_000);
    // 20 saved up + 20 per second: the 220th request goes at 10 s.
    expect(times[219]).toBe(10_000);
    for (let i = 20; i < times.length; i++) expect(times[i] - times[i - 1]).toBeCloseTo(50, 6);
  });

  it('refills while idle, capped at the burst', async () => {
    const clock = fakeClock();
    const bucket = new TokenBucket({ ratePerSec: 1, burst: 2, clock });
    await releaseTimes(bucket, clock, 2, 0);
    await clock.advance(60_000); // idle for a minute: still only 2 saved
    const start = clock.now();
    const times = await releaseTimes(bucket, clock, 3, 5_000);
    expect(times.map((t) => t - start)).toEqual([0, 0, 1000]);
  });

  it('pauseFor holds every caller (Retry-After) and resumes gently', async () => {
    const clock = fakeClock();
    const bucket = new TokenBucket({ ratePerSec: 10, burst: 5, clock });
    bucket.pauseFor(3_000);
    const times = await releaseTimes(bucket, clock, 3, 10_000);
    expect(times).toEqual([3000, 3100, 3200]);
  });

  it('gives the token back when the wait is aborted', async () => {
    const clock = fakeClock();
    const bucket = new TokenBucket({ ratePerSec: 1, burst: 1, clock });
    await bucket.take();
    const ac = new AbortController();
    const waiting = bucket.take(ac.signal);
    ac.abort();
    await expect(waiting).rejects.toBeInstanceOf(InterruptedError);
    // The aborted reservation is returned: the next caller waits one interval, not two.
    const times = await releaseTimes(bucket, clock, 1, 5_000);
    expect(times).toEqual([1000]);
  });

  it('refuses a non-positive rate', () => {
    expect(() => new TokenBucket({ ratePerSec: 0 })).toThrow(/positive/);
  });
});
