/**
 * Request pacing for the DMM client: a token bucket (`rps` tokens per second, at most `burst` saved up) with an
 * injected clock, plus a shared pause that a 429's `Retry-After` sets for every caller at once.
 *
 * Callers reserve a token when they ask (the balance may go negative) and sleep until it is theirs, so concurrent
 * callers are served in order and the long-run rate never exceeds `rps`. The burst lets the sync catch up after the
 * event loop was busy (a database write) without exceeding `rps` on average.
 */
import { InterruptedError } from '../errors.js';

/** Time source and sleep, injected so tests run without waiting. */
export interface Clock {
  /** Milliseconds (monotonic enough for pacing). */
  now(): number;
  /** Resolve after `ms`; reject with InterruptedError when `signal` aborts. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export const systemClock: Clock = {
  now: () => performance.now(),
  sleep: (ms, signal) =>
    new Promise<void>((resolve, reject) => {
      if (signal?.aborted) return reject(new InterruptedError());
      if (ms <= 0) return resolve();
      const onAbort = () => {
        clearTimeout(timer);
        reject(new InterruptedError());
      };
      const timer = setTimeout(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      signal?.addEventListener('abort', onAbort, { once: true });
    }),
};

export interface TokenBucketOptions {
  /** Tokens added per second (requests per second). */
  ratePerSec: number;
  /** Most tokens saved up; also the starting balance. @default max(1, ratePerSec) */
  burst?: number;
  clock?: Clock;
}

export class TokenBucket {
  readonly ratePerSec: number;
  readonly burst: number;
  private readonly clock: Clock;
  private tokens: number;
  private last: number;
  private pausedUntil = 0;

  constructor(opts: TokenBucketOptions) {
    if (!(opts.ratePerSec > 0) || !Number.isFinite(opts.ratePerSec)) {
      throw new RangeError(`ratePerSec must be a positive number, got ${opts.ratePerSec}`);
    }
    this.ratePerSec = opts.ratePerSec;
    this.burst = Math.max(1, opts.burst ?? Math.max(1, opts.ratePerSec));
    this.clock = opts.clock ?? systemClock;
    this.tokens = this.burst;
    this.last = this.clock.now();
  }

  private refill(now: number): void {
    // `last` may lie in the future after a pause: nothing accrues until then.
    if (now <= this.last) return;
    const elapsed = (now - this.last) / 1000;
    this.tokens = Math.min(this.burst, this.tokens + elapsed * this.ratePerSec);
    this.last = now;
  }

  /** Wait until a request may be sent. */
  async take(signal?: AbortSignal): Promise<void> {
    const now = this.clock.now();
    this.refill(now);
    this.tokens -= 1;
    // A negative balance is a queue of reservations: ours is ready when the balance climbs back to zero.
    const readyAt = this.tokens >= 0 ? now : Math.max(now, this.last) + (-this.tokens / this.ratePerSec) * 1000;
    const wait = Math.max(readyAt, this.pausedUntil) - now;
    if (wait <= 0) return;
    try {
      await this.clock.sleep(wait, signal);
    } catch (err) {
      this.tokens += 1; // the reservation was not used
      throw err;
    }
    // A pause set while we slept (another request got a 429) applies to us too.
    const left = this.pausedUntil - this.clock.now();
    if (left > 0) await this.clock.sleep(left, signal);
  }

  /** Hold every caller until `ms` from now (Retry-After). */
  pauseFor(ms: number): void {
    const now = this.clock.now();
    this.refill(now);
    this.pausedUntil = Math.max(this.pausedUntil, now + ms);
    // After the pause: one request at once, then the plain rate (no saved-up burst hitting a throttled API).
    this.tokens = Math.min(this.tokens, 1);
    this.last = Math.max(this.last, this.pausedUntil);
  }
}
