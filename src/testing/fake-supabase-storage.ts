/**
 * A loopback Supabase server for tests: the Storage API endpoints `@supabase/storage-js` calls and the Edge
 * Functions invoke endpoint, in memory, on 127.0.0.1 (started and stopped inside the test process). Point the real
 * `@supabase/supabase-js` client at `fake.url` with `fake.key`.
 *
 * Behaviour follows the Storage server (supabase/storage):
 * - `POST /storage/v1/object/<bucket>/<path>` uploads the raw body; `x-upsert: true` replaces, otherwise an
 *   existing key is refused. Errors are JSON `{statusCode, code, error, message}` where `statusCode` is the real
 *   status as a string and the HTTP status is 400 (500 for server faults), as the server's error handler does.
 *   An upload is stored only once its whole body has arrived (a dropped upload stores nothing).
 * - `PUT …/object/<bucket>/<path>` replaces an existing object.
 * - `GET …/object/<bucket>/<path>` (and `/object/authenticated/…`) downloads; `HEAD` answers existence;
 *   `GET …/object/info/<bucket>/<path>` returns `{id, name, version, bucket_id, size, content_type, cache_control,
 *   etag, metadata, last_modified, created_at}`.
 * - `POST …/object/list/<bucket>` with `{prefix, limit, offset, sortBy, search}` lists the direct children of the
 *   folder `prefix` (a trailing `/` is implied): files with `id` and `metadata.size`, folders with `id: null`.
 * - `DELETE …/object/<bucket>` with `{prefixes: [...]}` removes exact keys and returns the removed objects.
 * - `GET/POST/DELETE …/bucket…` for bucket management (create, get, empty, delete).
 * - `POST /functions/v1/<name>` calls a handler registered with `setFunction` (404 otherwise).
 * Requests must carry `Authorization: Bearer <key>`. Faults can be injected per request: an error status, a
 * connection dropped before or after the object is stored, a request stalled forever (kill the client in the
 * middle of an upload), or held until released (order two clients deterministically).
 */
import { createHash, randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export type FaultAction =
  | { kind: 'status'; status: number; message?: string }
  | { kind: 'drop' }
  | { kind: 'drop-after-commit' }
  /** Hold the request open, unanswered, until stop() (a client killed mid-upload). */
  | { kind: 'stall' }
  /** Hold the request until releaseHeld(), then serve it normally (to order two clients deterministically). */
  | { kind: 'hold' };

export interface Fault {
  method?: string;
  /** Substring of (or pattern for) the request path, e.g. `/object/models/two_tower/`. */
  path?: string | RegExp;
  /** How many matching requests it hits. @default 1 */
  times?: number;
  action: FaultAction;
}

export interface RecordedRequest {
  method: string;
  path: string;
  upsert?: string;
  status: number;
  fault?: FaultAction['kind'];
}

export interface FunctionInvocation {
  name: string;
  body: unknown;
  authorized: boolean;
}

export type FunctionHandler = (body: unknown) => { status: number; body: unknown };

interface StoredObjectRecord {
  id: string;
  data: Buffer;
  contentType: string;
  cacheControl: string;
  createdAt: string;
  updatedAt: string;
  etag: string;
}

export interface FakeSupabaseOptions {
  /** Buckets that exist at start. @default ['models'] */
  buckets?: string[];
  /** The service key clients must send. @default a random `sb_secret_…` value */
  key?: string;
  /** The project's per-object upload limit. @default 50 MiB */
  maxObjectBytes?: number;
}

export interface FakeSupabase {
  /** Base URL to pass to createClient (`http://127.0.0.1:<port>`). */
  url: string;
  key: string;
  requests: RecordedRequest[];
  invocations: FunctionInvocation[];
  inject(fault: Fault): void;
  /** Resolves when a `stall` or `hold` fault catches a request. */
  nextHeld(): Promise<RecordedRequest>;
  /** Serve every request a `hold` fault is holding. */
  releaseHeld(): void;
  setFunction(name: string, handler: FunctionHandler): void;
  getObject(bucket: string, path: string): Buffer | undefined;
  /** Write an object directly (tests use it to damage a stored file). */
  putObject(bucket: string, path: string, data: Uint8Array): void;
  objectNames(bucket: string): string[];
  stop(): Promise<void>;
}

const STORAGE = '/storage/v1';
const FUNCTIONS = '/functions/v1';

export async function startFakeSupabase(opts: FakeSupabaseOptions = {}): Promise<FakeSupabase> {
  const key = opts.key ?? `sb_secret_${randomUUID().replace(/-/g, '')}`;
  const maxObjectBytes = opts.maxObjectBytes ?? 50 * 1024 * 1024;
  const buckets = new Map<string, Map<string, StoredObjectRecord>>();
  for (const b of opts.buckets ?? ['models']) buckets.set(b, new Map());
  const faults: (Fault & { left: number })[] = [];
  const functions = new Map<string, FunctionHandler>();
  const requests: RecordedRequest[] = [];
  const invocations: FunctionInvocation[] = [];
  const held = new Set<Socket>();
  const heldWaiters: ((r: RecordedRequest) => void)[] = [];
  const heldQueue: RecordedRequest[] = [];
  const onHold: (() => void)[] = [];
  const announceHeld = (r: RecordedRequest) => {
    const waiter = heldWaiters.shift();
    if (waiter) waiter(r);
    else heldQueue.push(r);
  };

  const putRecord = (bucket: Map<string, StoredObjectRecord>, name: string, data: Buffer, contentType: string, cacheControl: string) => {
    const now = new Date().toISOString();
    const old = bucket.get(name);
    const rec: StoredObjectRecord = {
      id: old?.id ?? randomUUID(),
      data,
      contentType,
      cacheControl,
      createdAt: old?.createdAt ?? now,
      updatedAt: now,
      etag: `"${createHash('md5').update(data).digest('hex')}"`,
    };
    bucket.set(name, rec);
    return rec;
  };

  const metadataOf = (r: StoredObjectRecord) => ({
    eTag: r.etag,
    size: r.data.byteLength,
    mimetype: r.contentType,
    cacheControl: r.cacheControl,
    lastModified: r.updatedAt,
    contentLength: r.data.byteLength,
    httpStatusCode: 200,
  });

  const takeFault = (method: string, path: string): FaultAction | undefined => {
    for (const f of faults) {
      if (f.left <= 0) continue;
      if (f.method && f.method.toUpperCase() !== method) continue;
      if (f.path && !(typeof f.path === 'string' ? path.includes(f.path) : f.path.test(path))) continue;
      f.left--;
      return f.action;
    }
    return undefined;
  };

  const server = http.createServer((req, res) => {
    const method = (req.method ?? 'GET').toUpperCase();
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const rec: RecordedRequest = { method, path: url.pathname, status: 0 };
    if (req.headers['x-upsert'] !== undefined) rec.upsert = String(req.headers['x-upsert']);
    requests.push(rec);

    const send = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      rec.status = status;
      const text = body === undefined ? '' : typeof body === 'string' ? body : JSON.stringify(body);
      res.writeHead(status, { 'content-type': typeof body === 'string' ? 'text/plain' : 'application/json', ...headers });
      res.end(method === 'HEAD' ? undefined : text);
    };
    // The Storage server's error shape: real status in the body, HTTP 400 (or 500 for server faults).
    const fail = (status: number, code: string, error: string, message: string) =>
      send(status >= 500 ? 500 : 400, { statusCode: String(status), code, error, message });

    const fault = takeFault(method, url.pathname);
    if (fault) rec.fault = fault.kind;
    if (fault?.kind === 'drop') {
      req.socket.destroy();
      return;
    }
    if (fault?.kind === 'status') {
      req.resume();
      return req.on('end', () => fail(fault.status, 'InternalError', 'Injected', fault.message ?? `injected ${fault.status}`));
    }
    if (fault?.kind === 'stall') {
      held.add(req.socket);
      req.pause();
      announceHeld(rec);
      return;
    }

    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    const proceed = () => {
      req.on('data', (c: Buffer) => {
        size += c.byteLength;
        if (size > maxObjectBytes) tooLarge = true;
        else chunks.push(c);
      });
      req.on('end', () => {
        try {
          handle(Buffer.concat(chunks));
        } catch (err) {
          fail(500, 'InternalError', 'Internal', (err as Error).message);
        }
      });
    };
    if (fault?.kind === 'hold') {
      req.pause();
      onHold.push(() => {
        proceed();
        req.resume();
      });
      announceHeld(rec);
      return;
    }
    proceed();

    function handle(body: Buffer) {
      const authorized = req.headers.authorization === `Bearer ${key}`;
      if (url.pathname.startsWith(`${FUNCTIONS}/`)) {
        const name = decodeURIComponent(url.pathname.slice(FUNCTIONS.length + 1));
        let parsed: unknown = body.toString('utf8');
        try {
          parsed = JSON.parse(String(parsed));
        } catch {
          // keep text bodies as text
        }
        invocations.push({ name, body: parsed, authorized });
        if (!authorized) return send(401, { msg: 'Invalid JWT' });
        const h = functions.get(name);
        if (!h) return send(404, { code: 'NOT_FOUND', message: 'Requested function was not found' });
        const out = h(parsed);
        return send(out.status, out.body);
      }
      if (!url.pathname.startsWith(`${STORAGE}/`)) return send(404, { message: 'no route' });
      if (!authorized) return fail(403, 'AccessDenied', 'Unauthorized', 'invalid signature');
      const parts = url.pathname.slice(STORAGE.length + 1).split('/').map(decodeURIComponent);
      const json = () => (body.byteLength ? JSON.parse(body.toString('utf8')) : {});

      if (parts[0] === 'bucket') return bucketRoute(parts.slice(1), json);
      if (parts[0] !== 'object') return send(404, { message: 'no route' });

      // POST /object/list/<bucket>
      if (method === 'POST' && parts[1] === 'list' && parts.length === 3) {
        const bucket = buckets.get(parts[2]);
        if (!bucket) return fail(404, 'NoSuchBucket', 'Bucket not found', 'Bucket not found');
        const q = json() as { prefix?: string; limit?: number; offset?: number; search?: string; sortBy?: { column?: string; order?: string } };
        return send(200, listFolder(bucket, q));
      }
      // DELETE /object/<bucket> {prefixes}
      if (method === 'DELETE' && parts.length === 2) {
        const bucket = buckets.get(parts[1]);
        if (!bucket) return fail(404, 'NoSuchBucket', 'Bucket not found', 'Bucket not found');
        const removed = [];
        for (const p of (json() as { prefixes?: string[] }).prefixes ?? []) {
          const r = bucket.get(p);
          if (!r) continue;
          bucket.delete(p);
          removed.push({ name: p, id: r.id, bucket_id: parts[1], updated_at: r.updatedAt, created_at: r.createdAt, last_accessed_at: r.updatedAt, metadata: metadataOf(r) });
        }
        return send(200, removed);
      }
      let rest = parts.slice(1);
      let info = false;
      if (rest[0] === 'info') {
        info = true;
        rest = rest.slice(1);
      }
      if (rest[0] === 'authenticated') rest = rest.slice(1);
      const [bucketName, ...keyParts] = rest;
      const name = keyParts.join('/');
      const bucket = buckets.get(bucketName ?? '');
      if (!bucket) return fail(404, 'NoSuchBucket', 'Bucket not found', 'Bucket not found');
      if (!name) return fail(400, 'InvalidKey', 'Invalid Input', 'Invalid key');

      if (method === 'POST' || method === 'PUT') {
        if (tooLarge) return fail(413, 'EntityTooLarge', 'Payload too large', 'The object exceeded the maximum allowed size');
        const exists = bucket.has(name);
        const upsert = method === 'POST' && req.headers['x-upsert'] === 'true';
        if (method === 'POST' && exists && !upsert) return fail(409, 'KeyAlreadyExists', 'Duplicate', 'The resource already exists');
        if (method === 'PUT' && !exists) return fail(404, 'NoSuchKey', 'not_found', 'Object not found');
        const cache = String(req.headers['cache-control'] ?? 'max-age=3600');
        const r = putRecord(bucket, name, body, String(req.headers['content-type'] ?? 'application/octet-stream'), cache);
        if (fault?.kind === 'drop-after-commit') {
          req.socket.destroy();
          return;
        }
        return send(200, { Id: r.id, Key: `${bucketName}/${name}` });
      }
      const r = bucket.get(name);
      if (method === 'HEAD') {
        if (!r) return send(400, undefined);
        return send(200, undefined, { etag: r.etag, 'content-length': String(r.data.byteLength), 'content-type': r.contentType });
      }
      if (method === 'GET') {
        if (!r) return fail(404, 'NoSuchKey', 'not_found', 'Object not found');
        if (info) {
          return send(200, {
            id: r.id,
            name,
            version: r.etag.slice(1, 9),
            bucket_id: bucketName,
            size: r.data.byteLength,
            content_type: r.contentType,
            cache_control: r.cacheControl,
            etag: r.etag,
            metadata: {},
            last_modified: r.updatedAt,
            created_at: r.createdAt,
          });
        }
        rec.status = 200;
        res.writeHead(200, { 'content-type': r.contentType, 'content-length': String(r.data.byteLength), etag: r.etag, 'cache-control': r.cacheControl });
        return res.end(r.data);
      }
      if (method === 'DELETE') {
        if (!r) return fail(404, 'NoSuchKey', 'not_found', 'Object not found');
        bucket.delete(name);
        return send(200, { message: 'Successfully deleted' });
      }
      return fail(405, 'InvalidRequest', 'Method not allowed', `${method} is not supported here`);
    }

    function bucketRoute(rest: string[], json: () => unknown) {
      if (method === 'GET' && rest.length === 0) {
        return send(200, [...buckets.keys()].map((id) => ({ id, name: id, public: false })));
      }
      if (method === 'POST' && rest.length === 0) {
        const { id } = json() as { id?: string };
        if (!id) return fail(400, 'InvalidBucketName', 'Invalid Input', 'Bucket name invalid');
        if (buckets.has(id)) return fail(409, 'BucketAlreadyExists', 'Duplicate', 'The resource already exists');
        buckets.set(id, new Map());
        return send(200, { name: id });
      }
      const b = buckets.get(rest[0] ?? '');
      if (!b) return fail(404, 'NoSuchBucket', 'Bucket not found', 'Bucket not found');
      if (method === 'GET') return send(200, { id: rest[0], name: rest[0], public: false, file_size_limit: maxObjectBytes });
      if (method === 'POST' && rest[1] === 'empty') {
        b.clear();
        return send(200, { message: 'Successfully emptied' });
      }
      if (method === 'DELETE') {
        if (b.size) return fail(409, 'InvalidRequest', 'Bucket not empty', 'The bucket you tried to delete is not empty');
        buckets.delete(rest[0]);
        return send(200, { message: 'Successfully deleted' });
      }
      return fail(405, 'InvalidRequest', 'Method not allowed', `${method} is not supported here`);
    }
  });

  function listFolder(
    bucket: Map<string, StoredObjectRecord>,
    q: { prefix?: string; limit?: number; offset?: number; search?: string; sortBy?: { column?: string; order?: string } },
  ) {
    let folder = q.prefix ?? '';
    if (folder && !folder.endsWith('/')) folder += '/';
    const files = new Map<string, StoredObjectRecord>();
    const folders = new Set<string>();
    for (const [name, r] of bucket) {
      if (!name.startsWith(folder)) continue;
      const rest = name.slice(folder.length);
      const slash = rest.indexOf('/');
      if (slash >= 0) folders.add(rest.slice(0, slash));
      else files.set(rest, r);
    }
    const search = (q.search ?? '').toLowerCase();
    const entries = [
      ...[...folders].map((n) => ({ name: n, id: null, updated_at: null, created_at: null, last_accessed_at: null, metadata: null })),
      ...[...files].map(([n, r]) => ({ name: n, id: r.id, updated_at: r.updatedAt, created_at: r.createdAt, last_accessed_at: r.updatedAt, metadata: metadataOf(r) })),
    ]
      .filter((e) => e.name.toLowerCase().startsWith(search))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    if (q.sortBy?.order === 'desc') entries.reverse();
    const offset = q.offset ?? 0;
    return entries.slice(offset, offset + (q.limit ?? 100));
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    key,
    requests,
    invocations,
    inject: (f) => faults.push({ ...f, left: f.times ?? 1 }),
    nextHeld: () =>
      new Promise((resolve) => {
        const queued = heldQueue.shift();
        if (queued) resolve(queued);
        else heldWaiters.push(resolve);
      }),
    releaseHeld: () => {
      for (const go of onHold.splice(0)) go();
    },
    setFunction: (name, handler) => functions.set(name, handler),
    getObject: (bucket, p) => buckets.get(bucket)?.get(p)?.data,
    putObject: (bucket, p, data) => {
      const b = buckets.get(bucket);
      if (!b) throw new Error(`no bucket ${bucket}`);
      putRecord(b, p, Buffer.from(data), 'application/octet-stream', 'max-age=3600');
    },
    objectNames: (bucket) => [...(buckets.get(bucket)?.keys() ?? [])].sort(),
    stop: async () => {
      for (const s of held) s.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
