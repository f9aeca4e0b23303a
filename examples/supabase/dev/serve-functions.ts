// A local stand-in for `supabase functions serve`, on plain Deno: loads each named function folder
// (../functions/<name>/index.ts) and serves it at /functions/v1/<name> on 127.0.0.1. am-ml's tests run the
// example functions with it against loopback servers; it also works by hand:
//
//   node scripts/vendor-edge.mjs
//   SUPABASE_URL=... SUPABASE_SERVICE_ROLE_KEY=... npx deno run --node-modules-dir=manual \
//     --config examples/supabase/functions/embed-user/deno.json --allow-env --allow-net --allow-read \
//     examples/supabase/dev/serve-functions.ts embed-user reload_models
//
// Each function module creates its own embedder, as each Supabase function runs in its own workers. Prints one
// JSON line {"listening": <port>} when ready (PORT picks the port; default: any free one).
type Handler = (req: Request) => Response | Promise<Response>;

const names = Deno.args;
if (names.length === 0) {
  console.error('usage: serve-functions.ts <function-name>...');
  Deno.exit(2);
}

const handlers = new Map<string, Handler>();
const realServe = Deno.serve;
let loading = '';
// Functions call Deno.serve(handler) at module level: take the handler instead of opening a port per function.
(Deno as unknown as { serve: unknown }).serve = (a: unknown, b?: unknown) => {
  const handler = (typeof a === 'function' ? a : typeof b === 'function' ? b : (a as { handler: Handler }).handler) as Handler;
  handlers.set(loading, handler);
  return { finished: new Promise(() => {}), shutdown: async () => {}, ref() {}, unref() {}, addr: { transport: 'tcp', hostname: '127.0.0.1', port: 0 } };
};
for (const name of names) {
  loading = name;
  await import(new URL(`../functions/${name}/index.ts`, import.meta.url).href);
  if (!handlers.has(name)) throw new Error(`${name}/index.ts did not call Deno.serve`);
}
(Deno as unknown as { serve: unknown }).serve = realServe;

Deno.serve(
  {
    hostname: '127.0.0.1',
    port: Number(Deno.env.get('PORT') ?? 0),
    onListen: ({ port }) => console.log(JSON.stringify({ listening: port })),
  },
  async (req) => {
    const m = /^\/functions\/v1\/([^/?]+)/.exec(new URL(req.url).pathname);
    const handler = m ? handlers.get(decodeURIComponent(m[1])) : undefined;
    if (!handler) return new Response(JSON.stringify({ error: 'Requested function was not found' }), { status: 404 });
    try {
      return await handler(req);
    } catch (err) {
      // A function that throws is a bug the tests must see; Supabase answers 500 too.
      console.error(`unhandled error in ${m![1]}:`, err);
      return new Response(JSON.stringify({ error: 'unhandled error', unhandled: true }), { status: 500 });
    }
  },
);
