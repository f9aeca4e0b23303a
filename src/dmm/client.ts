/**
 * Typed client for the DMM Affiliate API v3 ItemList operation (specs/dmm-api.md §1–§6).
 *
 * - `fetch` and the clock are injected; nothing here reads env or prints.
 * - Pacing: a token bucket at `rps` requests per second and at most `maxConcurrent` requests in flight.
 * - Every request has a timeout. 429, 5xx, timeouts, connection errors and unreadable bodies are retried with capped
 *   exponential backoff and jitter; a `Retry-After` is honoured (and pauses every caller). 400 is a caller bug and is
 *   never retried. When the retry budget is spent the error is thrown: an error is never read as "no more items".
 * - `api_id` and `affiliate_id` travel in the query string and are echoed in bodies, so they are registered for
 *   redaction, and every URL in a message or event is redacted.
 */
import { ExternalServiceError, InterruptedError, redact, registerSecret } from '../errors.js';
import { type Clock, systemClock, TokenBucket } from './rate-limit.js';
import { type ApiErrorResult, type ItemListPage, parseItemListBody } from './schema.js';

/** ItemList's maximum page size (`hits`). */
export const DMM_MAX_HITS = 100;
/** ItemList's maximum `offset` (1-based): a query reaches at most its first 50,000 results. */
export const DMM_MAX_OFFSET = 50_000;
/** Default pace: the spec's policy is about 1–2 requests/s; no quota is documented (§6.1). */
export const DEFAULT_RPS = 1;
/** Highest `--rps` accepted (a typo like 1000 would hammer the API). */
export const MAX_RPS = 100;
/** Requests in flight at once; pages of one window are prefetched in order up to this. */
export const MAX_CONCURRENT_REQUESTS = 4;
/** Per-request timeout, body included. */
export const REQUEST_TIMEOUT_MS = 30_000;
/** Retries after the first attempt (so at most 1 + this many requests per page). */
export const MAX_RETRIES = 6;
export const BACKOFF_BASE_MS = 1_000;
export const BACKOFF_MAX_MS = 60_000;
/** Longest Retry-After honoured as given; longer ones are capped (the run fails later rather than sleeping for hours). */
export const RETRY_AFTER_MAX_MS = 10 * 60_000;
export const DMM_SITE = 'FANZA';
const SERVICE = 'DMM API';

export interface ItemListQuery {
  service: string;
  floor: string;
  /** `YYYY-MM-DDTHH:MM:SS`, JST wall clock, inclusive. */
  gteDate?: string;
  lteDate?: string;
  sort?: 'date' | 'rank';
  /** 1-based. @default 1 */
  offset?: number;
  /** @default 100 */
  hits?: number;
  /** Re-fetch one item by content id. */
  cid?: string;
}

export type DmmErrorKind = 'bad-request' | 'rate-limited' | 'server' | 'timeout' | 'network' | 'malformed' | 'http';

/** A failed DMM request (after retries when retryable). The URL in it is redacted. */
export class DmmRequestError extends ExternalServiceError {
  readonly kind: DmmErrorKind;
  readonly retryable: boolean;
  readonly attempts: number;
  /** From a 429's Retry-After header. */
  readonly retryAfterMs?: number;
  constructor(
    message: string,
    opts: { kind: DmmErrorKind; retryable: boolean; url: string; status?: number; attempts?: number; hint?: string; cause?: unknown; retryAfterMs?: number },
  ) {
    const init = {
      service: SERVICE,
      target: opts.url,
      status: opts.status,
      hint: opts.hint,
      cause: opts.cause,
      details: { kind: opts.kind, attempts: opts.attempts ?? 1 },
    };
    super(redact(message), { ...init, code: `DMM_${opts.kind.toUpperCase().replace('-', '_')}` });
    this.kind = opts.kind;
    this.retryable = opts.retryable;
    this.attempts = opts.attempts ?? 1;
    this.retryAfterMs = opts.retryAfterMs;
  }
}

export interface RetryEvent {
  kind: DmmErrorKind;
  /** 1-based number of the retry about to happen. */
  attempt: number;
  delayMs: number;
  /** Redacted URL and the reason. */
  url: string;
  reason: string;
}

export interface DmmClientStats {
  requests: number;
  retries: number;
  /** Failed attempts by kind (retried or not). */
  errors: Record<DmmErrorKind, number>;
}

export interface DmmClientOptions {
  /** `https://api.dmm.com/affiliate/v3` or a replay server. */
  baseUrl: string;
  apiId: string;
  affiliateId: string;
  fetch?: typeof fetch;
  clock?: Clock;
  /** @default DEFAULT_RPS */
  rps?: number;
  /** Requests saved up by the bucket. @default max(1, rps) */
  burst?: number;
  /** @default MAX_CONCURRENT_REQUESTS */
  maxConcurrent?: number;
  /** @default REQUEST_TIMEOUT_MS */
  timeoutMs?: number;
  /** @default MAX_RETRIES */
  maxRetries?: number;
  /** @default BACKOFF_BASE_MS */
  backoffBaseMs?: number;
  /** @default BACKOFF_MAX_MS */
  backoffMaxMs?: number;
  /** [0, 1) source for jitter. @default Math.random */
  random?: () => number;
  onRetry?: (e: RetryEvent) => void;
}

export interface DmmClient {
  /**
   * One ItemList page, retried per the policy above.
   * @throws DmmRequestError (after the retry budget, or at once when not retryable); InterruptedError on abort
   */
  itemList(query: ItemListQuery, signal?: AbortSignal): Promise<ItemListPage>;
  /** The request URL of a query with credentials redacted (for messages and events). */
  displayUrl(query: ItemListQuery): string;
  readonly stats: DmmClientStats;
  readonly rps: number;
}

/** Seconds or an HTTP date → milliseconds to wait, or undefined. */
export function parseRetryAfter(value: string | null, nowMs = Date.now()): number | undefined {
  if (!value) return undefined;
  const v = value.trim();
  if (/^\d+(\.\d+)?$/.test(v)) return Math.round(Number(v) * 1000);
  const at = Date.parse(v);
  return Number.isFinite(at) ? Math.max(0, at - nowMs) : undefined;
}

/** A tiny counting semaphore: at most `n` holders, FIFO. */
function semaphore(n: number) {
  let active = 0;
  const waiting: (() => void)[] = [];
  return {
    async acquire(): Promise<void> {
      if (active < n) {
        active++;
        return;
      }
      await new Promise<void>((resolve) => waiting.push(resolve));
    },
    release(): void {
      const next = waiting.shift();
      if (next) next();
      else active--;
    },
  };
}

function describeApiError(e: ApiErrorResult): string {
  const fields = e.errors ? Object.entries(e.errors).map(([k, v]) => `${k}: ${String(v)}`) : [];
  return [e.message ?? `status ${e.status}`, ...fields].join('; ');
}

function hintForBadRequest(e: ApiErrorResult): string {
  const keys = Object.keys(e.errors ?? {});
  if (keys.includes('api_id') || keys.includes('affiliate_id')) {
    return 'Check DMM_API_ID and DMM_AFFILIATE_ID (the API affiliate id ends in -990 … -999).';
  }
  return 'A 400 means the request itself is wrong (a parameter am-ml sent); it is not retried. Check --floor and the dates.';
}

export function createDmmClient(opts: DmmClientOptions): DmmClient {
  registerSecret(opts.apiId);
  registerSecret(opts.affiliateId);
  const fetchFn = opts.fetch ?? fetch;
  const clock = opts.clock ?? systemClock;
  const rps = opts.rps ?? DEFAULT_RPS;
  const bucket = new TokenBucket({ ratePerSec: rps, burst: opts.burst, clock });
  const slots = semaphore(opts.maxConcurrent ?? MAX_CONCURRENT_REQUESTS);
  const timeoutMs = opts.timeoutMs ?? REQUEST_TIMEOUT_MS;
  const maxRetries = opts.maxRetries ?? MAX_RETRIES;
  const baseMs = opts.backoffBaseMs ?? BACKOFF_BASE_MS;
  const maxMs = opts.backoffMaxMs ?? BACKOFF_MAX_MS;
  const random = opts.random ?? Math.random;
  const base = opts.baseUrl.replace(/\/+$/, '');
  const stats: DmmClientStats = {
    requests: 0,
    retries: 0,
    errors: { 'bad-request': 0, 'rate-limited': 0, server: 0, timeout: 0, network: 0, malformed: 0, http: 0 },
  };

  function urlOf(q: ItemListQuery): string {
    const p = new URLSearchParams({
      api_id: opts.apiId,
      affiliate_id: opts.affiliateId,
      site: DMM_SITE,
      service: q.service,
      floor: q.floor,
      hits: String(q.hits ?? DMM_MAX_HITS),
      offset: String(q.offset ?? 1),
      output: 'json',
    });
    if (q.sort) p.set('sort', q.sort);
    if (q.gteDate) p.set('gte_date', q.gteDate);
    if (q.lteDate) p.set('lte_date', q.lteDate);
    if (q.cid) p.set('cid', q.cid);
    return `${base}/ItemList?${p.toString()}`;
  }

  /** One attempt; throws DmmRequestError (retryable or not). */
  async function attempt(url: string, shown: string, signal: AbortSignal | undefined): Promise<ItemListPage> {
    const timeout = AbortSignal.timeout(timeoutMs);
    const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
    let res: Response;
    let text: string;
    try {
      res = await fetchFn(url, { signal: combined, headers: { accept: 'application/json' } });
      text = await res.text();
    } catch (err) {
      if (signal?.aborted) throw new InterruptedError('Interrupted while waiting for the DMM API.', { cause: err });
      if (timeout.aborted) {
        throw new DmmRequestError(`DMM API request timed out after ${timeoutMs} ms: ${shown}`, {
          kind: 'timeout',
          retryable: true,
          url: shown,
        });
      }
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      const why = cause?.code ?? cause?.message ?? (err as Error).message;
      throw new DmmRequestError(`Could not reach the DMM API (${redact(String(why))}): ${shown}`, {
        kind: 'network',
        retryable: true,
        url: shown,
        cause: err,
      });
    }
    const status = res.status;
    let body: unknown;
    let bodyOk = true;
    try {
      body = JSON.parse(text);
    } catch {
      bodyOk = false;
    }
    const parsed = bodyOk ? parseItemListBody(body) : undefined;
    if (status === 429 || (parsed && !parsed.ok && 'apiError' in parsed && parsed.apiError.status === 429)) {
      const retryAfterMs = parseRetryAfter(res.headers.get('retry-after'));
      throw new DmmRequestError(`DMM API rate limit (HTTP ${status}): ${shown}`, {
        kind: 'rate-limited',
        retryable: true,
        url: shown,
        status,
        retryAfterMs,
      });
    }
    if (status >= 500) {
      throw new DmmRequestError(`DMM API server error (HTTP ${status}): ${shown}`, { kind: 'server', retryable: true, url: shown, status });
    }
    if (status === 400 || (parsed && !parsed.ok && 'apiError' in parsed && parsed.apiError.status === 400)) {
      const apiError = parsed && !parsed.ok && 'apiError' in parsed ? parsed.apiError : undefined;
      throw new DmmRequestError(
        `DMM API rejected the request (400${apiError ? `: ${describeApiError(apiError)}` : ''}): ${shown}`,
        { kind: 'bad-request', retryable: false, url: shown, status: 400, hint: apiError ? hintForBadRequest(apiError) : undefined },
      );
    }
    if (status !== 200) {
      throw new DmmRequestError(`DMM API answered HTTP ${status}: ${shown}`, {
        kind: 'http',
        retryable: false,
        url: shown,
        status,
        hint: status === 401 || status === 403 ? 'Check DMM_API_ID and DMM_AFFILIATE_ID.' : undefined,
      });
    }
    if (!parsed) {
      throw new DmmRequestError(`DMM API sent a body that is not JSON (${text.length} bytes): ${shown}`, {
        kind: 'malformed',
        retryable: true,
        url: shown,
        status,
      });
    }
    if (!parsed.ok) {
      if ('apiError' in parsed) {
        const s = parsed.apiError.status;
        throw new DmmRequestError(`DMM API error (result.status ${s}: ${describeApiError(parsed.apiError)}): ${shown}`, {
          kind: s >= 500 ? 'server' : 'http',
          retryable: s >= 500,
          url: shown,
          status: s,
        });
      }
      throw new DmmRequestError(`DMM API sent an unreadable ItemList body (${parsed.problem}): ${shown}`, {
        kind: 'malformed',
        retryable: true,
        url: shown,
        status,
      });
    }
    return parsed.page;
  }

  async function itemList(q: ItemListQuery, signal?: AbortSignal): Promise<ItemListPage> {
    const url = urlOf(q);
    const shown = redact(url);
    for (let n = 0; ; n++) {
      await slots.acquire();
      let failure: DmmRequestError;
      try {
        await bucket.take(signal);
        stats.requests++;
        return await attempt(url, shown, signal);
      } catch (err) {
        if (!(err instanceof DmmRequestError)) throw err;
        failure = err;
        stats.errors[err.kind]++;
      } finally {
        slots.release();
      }
      if (!failure.retryable || n >= maxRetries) {
        if (!failure.retryable) throw failure;
        throw new DmmRequestError(`${failure.message} (gave up after ${n + 1} attempts)`, {
          kind: failure.kind,
          retryable: true,
          url: shown,
          status: failure.status,
          attempts: n + 1,
          hint:
            failure.kind === 'rate-limited'
              ? 'The API kept asking to slow down: lower --rps and run again; the sync resumes from its checkpoint.'
              : 'Run again later: the sync resumes from its checkpoint and retries failed pages first.',
        });
      }
      let delay = Math.min(maxMs, baseMs * 2 ** n) * (0.5 + random() * 0.5);
      if (failure.retryAfterMs !== undefined) {
        const honoured = Math.min(failure.retryAfterMs, RETRY_AFTER_MAX_MS);
        delay = honoured + random() * Math.min(1000, honoured * 0.1);
        bucket.pauseFor(delay);
      }
      stats.retries++;
      opts.onRetry?.({ kind: failure.kind, attempt: n + 1, delayMs: Math.round(delay), url: shown, reason: failure.message });
      await clock.sleep(delay, signal);
    }
  }

  return { itemList, displayUrl: (q) => redact(urlOf(q)), stats, rps };
}
