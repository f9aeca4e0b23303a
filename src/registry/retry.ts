/**
 * Capped exponential backoff with jitter, for store and Edge Function calls. The sleep and the random source are
 * injected so tests run without waiting.
 */
import { InterruptedError, throwIfAborted } from '../errors.js';

export interface RetryPolicy {
  /** Total attempts, the first included. */
  attempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

/** Five attempts over about eight seconds rides out a restarting Storage node without stalling a CI job for long. */
export const DEFAULT_RETRY_POLICY: RetryPolicy = { attempts: 5, baseDelayMs: 250, maxDelayMs: 4000 };

export type Sleep = (ms: number, signal?: AbortSignal) => Promise<void>;

export const realSleep: Sleep = (ms, signal) =>
  new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new InterruptedError());
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(new InterruptedError());
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });

export interface Verdict {
  retry: boolean;
  /** Short reason for the retry event (`HTTP 503`, `connection reset`). */
  reason: string;
}

export interface WithRetryOptions {
  policy: RetryPolicy;
  classify: (err: unknown) => Verdict;
  onRetry?: (attempt: number, delayMs: number, reason: string) => void;
  signal?: AbortSignal;
  sleep?: Sleep;
  random?: () => number;
}

/** Delay before attempt `attempt + 1`: base·2^(attempt−1), capped, with ±50 % jitter so parallel uploads spread out. */
export function backoffDelayMs(policy: RetryPolicy, attempt: number, random: () => number = Math.random): number {
  const raw = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1));
  return Math.round(raw * (0.5 + random() * 0.5));
}

/** Run `fn(attempt)` until it succeeds, a non-retryable error occurs, or the attempts run out (the last error is thrown). */
export async function withRetry<T>(fn: (attempt: number) => Promise<T>, opts: WithRetryOptions): Promise<T> {
  const sleep = opts.sleep ?? realSleep;
  for (let attempt = 1; ; attempt++) {
    throwIfAborted(opts.signal);
    try {
      return await fn(attempt);
    } catch (err) {
      const verdict = opts.classify(err);
      if (!verdict.retry || attempt >= opts.policy.attempts) throw err;
      const delay = backoffDelayMs(opts.policy, attempt, opts.random);
      opts.onRetry?.(attempt, delay, verdict.reason);
      await sleep(delay, opts.signal);
    }
  }
}
