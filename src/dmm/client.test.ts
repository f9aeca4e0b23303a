import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { InterruptedError } from '../errors.js';
import { fixtureCatalog, generateDmmCatalog, type RawItem } from '../testing/dmm-catalog.js';
import { type FakeDmmServer, startFakeDmmServer } from '../testing/fake-dmm-server.js';
import { instantClock } from '../testing/fake-clock.js';
import { FIXTURES_DIR } from '../testing/tmp-dir.js';
import { createDmmClient, type DmmClientOptions, DmmRequestError, parseRetryAfter, type RetryEvent } from './client.js';

const fixtureItem = (): RawItem =>
  JSON.parse(readFileSync(path.join(FIXTURES_DIR, 'dmm', 'richardnguyen99_py-dmmjp__ItemList_videoa_mide00799.json'), 'utf8'))
    .result.items[0];

const VIDEOA = { service: 'digital', floor: 'videoa' } as const;
const SECRET_ID = 'client-test-secret-api-id';
const SECRET_AFF = 'client-test-secret-990';

let server: FakeDmmServer;
beforeAll(async () => {
  server = await startFakeDmmServer({
    catalog: generateDmmCatalog({ seed: 3, items: 250, from: '2024-01-01', to: '2024-01-10' }),
    apiId: SECRET_ID,
    affiliateId: SECRET_AFF,
  });
});
afterAll(() => server.close());
afterEach(() => {
  expect(server.pendingFaults()).toBe(0);
  server.requests.length = 0;
});

function client(over: Partial<DmmClientOptions> = {}) {
  const retries: RetryEvent[] = [];
  const clock = instantClock();
  const c = createDmmClient({
    baseUrl: server.url,
    apiId: SECRET_ID,
    affiliateId: SECRET_AFF,
    clock,
    rps: 1000,
    // Generous: a loaded machine must not turn a slow answer into a timeout (hang tests pass their own).
    timeoutMs: 10_000,
    maxRetries: 3,
    random: () => 0.5,
    onRetry: (e) => retries.push(e),
    ...over,
  });
  return { c, retries, clock };
}

/** No secret in anything a user could see. */
function expectNoSecrets(...texts: unknown[]) {
  for (const t of texts) {
    const s = typeof t === 'string' ? t : JSON.stringify(t);
    expect(s).not.toContain(SECRET_ID);
    expect(s).not.toContain(SECRET_AFF);
  }
}

async function failure(p: Promise<unknown>): Promise<DmmRequestError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(DmmRequestError);
    return err as DmmRequestError;
  }
  throw new Error('expected the request to fail');
}

describe('DMM client: requests', () => {
  it('sends the documented parameters and reads a page', async () => {
    const { c } = client();
    const page = await c.itemList({ ...VIDEOA, gteDate: '2024-01-01T00:00:00', lteDate: '2024-01-10T23:59:59', sort: 'date', offset: 101, hits: 100 });
    expect(page).toMatchObject({ status: 200, totalCount: 250, firstPosition: 101, resultCount: 100 });
    expect(page.items).toHaveLength(100);
    expect(server.requests[0].params).toEqual({
      api_id: SECRET_ID,
      affiliate_id: SECRET_AFF,
      site: 'FANZA',
      service: 'digital',
      floor: 'videoa',
      hits: '100',
      offset: '101',
      output: 'json',
      sort: 'date',
      gte_date: '2024-01-01T00:00:00',
      lte_date: '2024-01-10T23:59:59',
    });
    expect(c.stats).toMatchObject({ requests: 1, retries: 0 });
    expectNoSecrets(c.displayUrl({ ...VIDEOA }));
  });

  it('reads an empty result (no items key) as an empty page, not an error', async () => {
    const { c } = client();
    const page = await c.itemList({ ...VIDEOA, gteDate: '2030-01-01T00:00:00', lteDate: '2030-01-01T23:59:59' });
    expect(page).toMatchObject({ totalCount: 0, resultCount: 0, items: [] });
  });

  it('re-fetches one item by cid', async () => {
    const s = await startFakeDmmServer({ catalog: fixtureCatalog([fixtureItem()]) });
    try {
      const c = createDmmClient({ baseUrl: s.url, apiId: s.env.DMM_API_ID, affiliateId: s.env.DMM_AFFILIATE_ID, rps: 100 });
      const page = await c.itemList({ ...VIDEOA, cid: 'mide00799', hits: 1 });
      expect((page.items[0] as RawItem).content_id).toBe('mide00799');
      expect(s.requests[0].params.cid).toBe('mide00799');
    } finally {
      await s.close();
    }
  });

  it('accepts counts sent as strings', async () => {
    const s = await startFakeDmmServer({ catalog: fixtureCatalog([fixtureItem()]), stringCounts: true });
    try {
      const c = createDmmClient({ baseUrl: s.url, apiId: s.env.DMM_API_ID, affiliateId: s.env.DMM_AFFILIATE_ID, rps: 100 });
      const page = await c.itemList({ ...VIDEOA });
      expect(page).toMatchObject({ status: 200, totalCount: 1, resultCount: 1, firstPosition: 1 });
    } finally {
      await s.close();
    }
  });
});

describe('DMM client: faults', () => {
  it.each([
    ['429', 'rate-limited'],
    ['500', 'server'],
    ['503', 'server'],
    ['hang', 'timeout'],
    ['reset', 'network'],
    ['malformed-json', 'malformed'],
    ['bad-envelope', 'malformed'],
  ] as const)('retries a %s and then succeeds', async (fault, kind) => {
    server.inject({ kind: fault, times: 2 });
    const { c, retries, clock } = client(fault === 'hang' ? { timeoutMs: 1000 } : {});
    const page = await c.itemList({ ...VIDEOA, hits: 10 });
    expect(page.items).toHaveLength(10);
    expect(retries.map((r) => r.kind)).toEqual([kind, kind]);
    // Capped exponential backoff with jitter: base 1 s × 2^n × (0.5 + 0.5·random) with random = 0.5.
    expect(clock.sleeps.filter((s) => s >= 1)).toEqual([750, 1500]);
    expect(c.stats).toMatchObject({ requests: 3, retries: 2 });
    expect(c.stats.errors[kind]).toBe(2);
    expectNoSecrets(retries);
  });

  it('honours Retry-After and pauses other requests', async () => {
    server.inject({ kind: '429-retry-after', retryAfterSec: 7 });
    const { c, retries, clock } = client();
    await c.itemList({ ...VIDEOA, hits: 1 });
    expect(retries).toHaveLength(1);
    expect(retries[0].delayMs).toBeGreaterThanOrEqual(7000);
    expect(retries[0].delayMs).toBeLessThanOrEqual(7700);
    expect(clock.elapsed()).toBeGreaterThanOrEqual(7000);
  });

  it('caps the backoff', async () => {
    server.inject({ kind: '503', times: 3 });
    const { c, clock } = client({ backoffBaseMs: 1000, backoffMaxMs: 2500, random: () => 0.999 });
    await c.itemList({ ...VIDEOA, hits: 1 });
    expect(clock.sleeps.filter((s) => s >= 1).map(Math.round)).toEqual([1000, 1999, 2499]);
  });

  it('gives up after the retry budget with a clear, redacted error (never an empty page)', async () => {
    server.inject({ kind: '503', times: 4 });
    const { c } = client({ maxRetries: 3 });
    const err = await failure(c.itemList({ ...VIDEOA }));
    expect(err.kind).toBe('server');
    expect(err.attempts).toBe(4);
    expect(err.code).toBe('DMM_SERVER');
    expect(err.exitCode).toBe(5);
    expect(err.message).toMatch(/server error \(HTTP 503\).*gave up after 4 attempts/);
    expect(err.message).toContain('api_id=***');
    expect(err.hint).toMatch(/resumes from its checkpoint/);
    expectNoSecrets(err.message, err.details, err.target);
  });

  it('never retries a 400 and explains it', async () => {
    const { c, retries } = client();
    const err = await failure(c.itemList({ ...VIDEOA, hits: 101 }));
    expect(err.kind).toBe('bad-request');
    expect(err.status).toBe(400);
    expect(err.message).toMatch(/rejected the request \(400: BAD REQUEST; hits: Invalid Request Error\)/);
    expect(retries).toHaveLength(0);
    expect(server.requests).toHaveLength(1);
  });

  it('names the credentials on a 400 about them, without showing them', async () => {
    const { c } = client({ apiId: 'wrong-api-id-123', affiliateId: 'wrong-990' });
    const err = await failure(c.itemList({ ...VIDEOA }));
    expect(err.message).toMatch(/api_id: Invalid Request Error; affiliate_id: Invalid Request Error/);
    expect(err.hint).toMatch(/DMM_API_ID and DMM_AFFILIATE_ID/);
    expect(err.message).not.toContain('wrong-api-id-123');
    expect(err.message).not.toContain('wrong-990');
  });

  it('rejects an unknown floor with 400 (not an empty sync)', async () => {
    const { c } = client();
    const err = await failure(c.itemList({ service: 'digital', floor: 'nosuchfloor' }));
    expect(err.message).toMatch(/floor: Invalid Request Error/);
  });

  it('stops waiting when the signal aborts', async () => {
    server.inject({ kind: 'hang' });
    const { c } = client({ timeoutMs: 30_000 });
    const ac = new AbortController();
    const p = c.itemList({ ...VIDEOA }, ac.signal);
    setTimeout(() => ac.abort(), 50);
    await expect(p).rejects.toBeInstanceOf(InterruptedError);
  });
});

describe('parseRetryAfter', () => {
  it('reads seconds and HTTP dates', () => {
    expect(parseRetryAfter('120')).toBe(120_000);
    expect(parseRetryAfter('1.5')).toBe(1500);
    expect(parseRetryAfter('Wed, 21 Oct 2015 07:28:10 GMT', Date.parse('Wed, 21 Oct 2015 07:28:00 GMT'))).toBe(10_000);
    expect(parseRetryAfter('soon')).toBeUndefined();
    expect(parseRetryAfter(null)).toBeUndefined();
  });
});
