/**
 * A DMM ItemList replay server on 127.0.0.1 (specs/dmm-api.md §8.5), started and stopped inside the process that
 * uses it (tests, the benchmark, the quickstart).
 *
 * It serves a `ReplayCatalog` (real fixtures or a generated catalog of any size) and behaves like the API where
 * the sync depends on it: honours site, service, floor, gte_date/lte_date (inclusive, on the release date), sort,
 * offset (1-based) and hits; re-fetch by cid; echoes parameters as strings; clamps total_count at 50,000; omits
 * `items` on an empty result; answers the §6 400 body for bad parameters (hits > 100, offset > 50,000, unknown
 * floor, bad dates, missing or wrong credentials). `sort=date` returns the newest items first.
 *
 * Faults on demand (`inject`) or at random (`chaos`): 429 with and without Retry-After, 500, 503, hangs past the
 * client's timeout, connection resets, malformed JSON, an envelope without counts; invalid items through
 * `setItemOverride`. Every request is recorded.
 */
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { parseDmmDate } from '../dmm/schema.js';
import { type RawItem, type ReplayCatalog, type ReplayFloor, seededRandom } from './dmm-catalog.js';

export const FAKE_DMM_API_ID = 'replay-api-id-0001';
export const FAKE_DMM_AFFILIATE_ID = 'replay-990';
const MAX_HITS = 100;
const MAX_OFFSET = 50_000;
const SORTS = new Set(['rank', 'price', '-price', 'date', 'review', 'match']);
const DATE_PARAM_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$/;

export type FaultKind = '429' | '429-retry-after' | '500' | '503' | 'hang' | 'reset' | 'malformed-json' | 'bad-envelope';

export interface FaultRule {
  kind: FaultKind;
  /** How many matching requests get this fault. @default 1 */
  times?: number;
  /** For 429-retry-after. @default 1 */
  retryAfterSec?: number;
  /** Which requests; default every ItemList request. */
  match?: (req: RecordedRequest) => boolean;
}

export interface RecordedRequest {
  path: string;
  params: Record<string, string>;
  status: number;
  fault?: FaultKind;
  /** Items in the response. */
  items: number;
}

export interface ItemOverrideContext {
  floor: string;
  /** Index of the item in its floor. */
  index: number;
}

export interface FakeDmmServerOptions {
  catalog: ReplayCatalog;
  /** Credentials the server accepts. @default FAKE_DMM_API_ID / FAKE_DMM_AFFILIATE_ID */
  apiId?: string;
  affiliateId?: string;
  /** @default 50000 */
  totalCountCap?: number;
  /** Send counts and status as strings (the Search operations do; ItemList might). @default false */
  stringCounts?: boolean;
  /** How an empty result looks: `items` left out (default, as clients expect) or `[]` (seen once live). */
  emptyItems?: 'omit' | 'empty-array';
  /** Random faults: each ItemList request fails with probability `rate`, with a kind drawn from `kinds`. */
  chaos?: { rate: number; kinds: FaultKind[]; seed?: number; retryAfterSec?: number };
  /** Keep the last served JSON of every item, by content id (tests compare stored rows with it). @default false */
  recordServedItems?: boolean;
  /** Change items as they are served (return the item to serve; invalid items for tests). */
  itemOverride?: (item: RawItem, ctx: ItemOverrideContext) => unknown;
}

export interface FakeDmmServer {
  /** Base URL to use as DMM_API_BASE_URL (`…/affiliate/v3`). */
  url: string;
  /** DMM_API_BASE_URL, DMM_API_ID, DMM_AFFILIATE_ID for a sync against this server. */
  env: { DMM_API_BASE_URL: string; DMM_API_ID: string; DMM_AFFILIATE_ID: string };
  requests: RecordedRequest[];
  /** Last served item JSON by content id (with `recordServedItems`). */
  served: Map<string, unknown>;
  inject(...rules: FaultRule[]): void;
  /** Faults still queued. */
  pendingFaults(): number;
  setItemOverride(fn: FakeDmmServerOptions['itemOverride'] | undefined): void;
  setChaos(chaos: FakeDmmServerOptions['chaos'] | undefined): void;
  /** Called for every request after it is recorded (kill-at-request-N tests). */
  onRequest?: (req: RecordedRequest) => void;
  close(): Promise<void>;
}

function badRequest(params: Record<string, string>, errors: Record<string, string>) {
  return { request: { parameters: params }, result: { status: 400, message: 'BAD REQUEST', errors } };
}

/** First index in [0, size) whose date is >= t (dates are non-decreasing). */
function lowerBound(f: ReplayFloor, t: number): number {
  let lo = 0;
  let hi = f.size;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (f.dateAt(mid) < t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** JST wall-clock `YYYY-MM-DDTHH:MM:SS` → instant. */
function paramInstant(v: string): number | null {
  if (!DATE_PARAM_RE.test(v)) return null;
  return parseDmmDate(v.replace('T', ' '))?.getTime() ?? null;
}

export async function startFakeDmmServer(opts: FakeDmmServerOptions): Promise<FakeDmmServer> {
  const apiId = opts.apiId ?? FAKE_DMM_API_ID;
  const affiliateId = opts.affiliateId ?? FAKE_DMM_AFFILIATE_ID;
  const cap = opts.totalCountCap ?? MAX_OFFSET;
  const floors = new Map(opts.catalog.floors.map((f) => [`${f.service}/${f.floor}`, f]));
  const faults: (FaultRule & { left: number })[] = [];
  const requests: RecordedRequest[] = [];
  const served = new Map<string, unknown>();
  const sockets = new Set<Socket>();
  let itemOverride = opts.itemOverride;
  let chaos = opts.chaos;
  let chaosRandom = seededRandom(chaos?.seed ?? 1);

  const count = (n: number): number | string => (opts.stringCounts ? String(n) : n);

  function takeFault(rec: RecordedRequest): FaultRule | undefined {
    const i = faults.findIndex((f) => f.left > 0 && (!f.match || f.match(rec)));
    if (i >= 0) {
      const f = faults[i];
      f.left--;
      if (f.left === 0) faults.splice(i, 1);
      return f;
    }
    if (chaos && chaos.kinds.length && chaosRandom() < chaos.rate) {
      return { kind: chaos.kinds[Math.floor(chaosRandom() * chaos.kinds.length)], retryAfterSec: chaos.retryAfterSec };
    }
    return undefined;
  }

  function itemList(params: Record<string, string>): { status: number; body: unknown; items: number } {
    const errors: Record<string, string> = {};
    if (params.api_id !== apiId) errors.api_id = 'Invalid Request Error';
    if (params.affiliate_id !== affiliateId) errors.affiliate_id = 'Invalid Request Error';
    if (params.site !== 'FANZA') errors.site = 'Invalid Request Error';
    const hits = params.hits === undefined ? 20 : Number(params.hits);
    if (!Number.isInteger(hits) || hits < 1 || hits > MAX_HITS) errors.hits = 'Invalid Request Error';
    const offset = params.offset === undefined ? 1 : Number(params.offset);
    if (!Number.isInteger(offset) || offset < 1 || offset > MAX_OFFSET) errors.offset = 'Invalid Request Error';
    if (params.sort !== undefined && !SORTS.has(params.sort)) errors.sort = 'Invalid Request Error';
    const floor = floors.get(`${params.service}/${params.floor}`);
    if (!floor) errors.floor = 'Invalid Request Error';
    const gte = params.gte_date === undefined ? -Infinity : paramInstant(params.gte_date);
    const lte = params.lte_date === undefined ? Infinity : paramInstant(params.lte_date);
    if (gte === null) errors.gte_date = 'Invalid Request Error';
    if (lte === null) errors.lte_date = 'Invalid Request Error';
    if (Object.keys(errors).length || !floor || gte === null || lte === null) {
      return { status: 400, body: badRequest(params, errors), items: 0 };
    }

    let indexes: (pos: number) => number;
    let total: number;
    if (params.cid !== undefined) {
      const i = floor.indexOf(params.cid);
      total = i >= 0 ? 1 : 0;
      indexes = () => i;
    } else {
      const lo = lowerBound(floor, gte);
      const hi = lte === Infinity ? floor.size : lowerBound(floor, lte + 1);
      total = Math.max(0, hi - lo);
      // sort=date: newest first (what public clients report); other sorts: catalog order.
      indexes = params.sort === 'date' ? (pos) => hi - pos : (pos) => lo + pos - 1;
    }
    const reachable = Math.min(total, cap);
    const items: unknown[] = [];
    for (let pos = offset; pos < offset + hits && pos <= reachable; pos++) {
      const i = indexes(pos);
      let item: unknown = floor.itemAt(i);
      if (itemOverride) item = itemOverride(item as RawItem, { floor: `${floor.service}/${floor.floor}`, index: i });
      if (opts.recordServedItems) {
        const cid = (item as RawItem | null)?.content_id;
        if (typeof cid === 'string') served.set(cid, item);
      }
      items.push(item);
    }
    const result: Record<string, unknown> = {
      status: count(200),
      result_count: count(items.length),
      total_count: count(Math.min(total, cap)),
      first_position: count(offset),
    };
    if (items.length || opts.emptyItems === 'empty-array') result.items = items;
    return { status: 200, body: { request: { parameters: params }, result }, items: items.length };
  }

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const params = Object.fromEntries(url.searchParams);
    const rec: RecordedRequest = { path: url.pathname, params, status: 0, items: 0 };
    requests.push(rec);
    const send = (status: number, body: string, headers: Record<string, string> = {}) => {
      rec.status = status;
      res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers });
      res.end(body);
    };
    try {
      if (!url.pathname.endsWith('/ItemList')) {
        send(404, JSON.stringify({ result: { status: 404, message: 'NOT FOUND' } }));
        return;
      }
      const fault = takeFault(rec);
      if (fault) {
        rec.fault = fault.kind;
        switch (fault.kind) {
          case '429':
            return send(429, 'Too Many Requests', { 'content-type': 'text/plain' });
          case '429-retry-after':
            return send(429, 'Too Many Requests', { 'content-type': 'text/plain', 'retry-after': String(fault.retryAfterSec ?? 1) });
          case '500':
          case '503':
            return send(Number(fault.kind), '<html><body>Service Unavailable</body></html>', { 'content-type': 'text/html' });
          case 'hang':
            rec.status = -1; // never answered; the client's timeout ends it
            return;
          case 'reset':
            rec.status = -2;
            req.socket.destroy();
            return;
          case 'malformed-json': {
            const full = JSON.stringify(itemList(params).body);
            return send(200, full.slice(0, Math.max(1, Math.floor(full.length / 2))));
          }
          case 'bad-envelope':
            return send(200, JSON.stringify({ request: { parameters: params }, result: { status: 200 } }));
        }
      }
      const out = itemList(params);
      rec.items = out.items;
      send(out.status, JSON.stringify(out.body));
    } catch (err) {
      send(500, JSON.stringify({ result: { status: 500, message: `replay server error: ${(err as Error).message}` } }));
    } finally {
      if (rec.status !== 0) api.onRequest?.(rec);
    }
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const base = `http://127.0.0.1:${port}/affiliate/v3`;

  const api: FakeDmmServer = {
    url: base,
    env: { DMM_API_BASE_URL: base, DMM_API_ID: apiId, DMM_AFFILIATE_ID: affiliateId },
    requests,
    served,
    inject(...rules) {
      for (const r of rules) faults.push({ ...r, left: r.times ?? 1 });
    },
    pendingFaults: () => faults.reduce((n, f) => n + f.left, 0),
    setItemOverride(fn) {
      itemOverride = fn;
    },
    setChaos(c) {
      chaos = c;
      chaosRandom = seededRandom(c?.seed ?? 1);
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return api;
}
