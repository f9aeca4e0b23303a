/**
 * One loopback URL standing in for a Supabase project, the way the app's clients see it: `/functions/v1/*` goes to
 * the functions (Deno, started later: `setFunctionsUrl`), `/rest/v1/rpc/<name>` to RPC handlers and
 * `GET /rest/v1/<table>` to table handlers (tests run the real SQL on PGlite; the handler gets PostgREST's query), `/auth/v1/user` answers for tokens the test registered, and everything else (Storage) goes to
 * the fake Supabase server. Requests are forwarded with their headers and bodies; answers come back unchanged.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export type RpcHandler = (args: Record<string, unknown>) => Promise<unknown>;
export type TableHandler = (query: URLSearchParams) => Promise<unknown[]>;

export interface SupabaseGateway {
  url: string;
  setFunctionsUrl(url: string): void;
  setRpc(name: string, handler: RpcHandler): void;
  setTable(name: string, handler: TableHandler): void;
  /** `auth.getUser(token)` answers with this user id. */
  addUserToken(token: string, userId: string): void;
  stop(): Promise<void>;
}

export async function startSupabaseGateway(storageUrl: string): Promise<SupabaseGateway> {
  let functionsUrl: string | null = null;
  const rpcs = new Map<string, RpcHandler>();
  const tables = new Map<string, TableHandler>();
  const users = new Map<string, string>();

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      void (async () => {
        const url = new URL(req.url ?? '/', 'http://127.0.0.1');
        const body = Buffer.concat(chunks);
        const send = (status: number, payload: unknown) => {
          res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(payload));
        };
        try {
          const rpc = /^\/rest\/v1\/rpc\/([^/]+)$/.exec(url.pathname);
          if (rpc && req.method === 'POST') {
            const handler = rpcs.get(rpc[1]);
            if (!handler) return send(404, { code: 'PGRST202', message: `Could not find the function public.${rpc[1]}` });
            return send(200, await handler(body.length ? JSON.parse(body.toString('utf8')) : {}));
          }
          const table = /^\/rest\/v1\/([^/]+)$/.exec(url.pathname);
          if (table && !rpc && req.method === 'GET') {
            const handler = tables.get(table[1]);
            if (!handler) return send(404, { code: '42P01', message: `relation "public.${table[1]}" does not exist` });
            return send(200, await handler(url.searchParams));
          }
          if (url.pathname === '/auth/v1/user') {
            const token = (req.headers.authorization ?? '').replace(/^Bearer /i, '');
            const id = users.get(token);
            if (!id) return send(403, { code: 403, error_code: 'bad_jwt', msg: 'invalid JWT' });
            return send(200, { id, aud: 'authenticated', role: 'authenticated', app_metadata: {}, user_metadata: {}, created_at: new Date(0).toISOString() });
          }
          const target = url.pathname.startsWith('/functions/') ? functionsUrl : storageUrl;
          if (!target) return send(503, { error: 'functions are not running' });
          const headers = Object.fromEntries(Object.entries(req.headers).filter(([k]) => !['host', 'connection', 'content-length'].includes(k))) as Record<string, string>;
          const upstream = await fetch(`${target}${url.pathname}${url.search}`, { method: req.method, headers, body: ['GET', 'HEAD'].includes(req.method ?? 'GET') ? undefined : body });
          const out = Buffer.from(await upstream.arrayBuffer());
          res.writeHead(upstream.status, { 'content-type': upstream.headers.get('content-type') ?? 'application/octet-stream' }).end(out);
        } catch (err) {
          send(500, { error: (err as Error).message });
        }
      })();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    setFunctionsUrl: (u) => {
      functionsUrl = u;
    },
    setRpc: (name, h) => rpcs.set(name, h),
    setTable: (name, h) => tables.set(name, h),
    addUserToken: (t, id) => users.set(t, id),
    stop: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
