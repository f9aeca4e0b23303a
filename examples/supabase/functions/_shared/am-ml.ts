// What both functions share: the settings, the embedder of this worker, JSON answers and the caller check.
// (Underscore folders are not deployed as functions; the Supabase CLI bundles them into each function that
// imports them.)
import { createClient, type SupabaseClient } from '@supabase/supabase-js';
import { createEdgeEmbedder, type EdgeSettings, edgeSettingsFromEnv, type HolderEvent, type UserEmbedder } from 'am-ml/edge';
import { lookupItemEmbeddings } from './app-db.ts';

export interface App {
  settings: EdgeSettings;
  /** Service-role client for the database (history RPC, stored embeddings) and auth checks. */
  db: SupabaseClient;
  embedder: UserEmbedder;
}

/** Settings problems are answered on every request (500, with the message), not thrown at boot. */
export function createApp(): App | { error: string } {
  try {
    const settings = edgeSettingsFromEnv((k) => Deno.env.get(k));
    const db = createClient(Deno.env.get('SUPABASE_URL')!, Deno.env.get('SUPABASE_SERVICE_ROLE_KEY')!, {
      auth: { persistSession: false, autoRefreshToken: false },
    });
    const embedder = createEdgeEmbedder({ ...settings, lookupItemEmbeddings: (ids) => lookupItemEmbeddings(db, ids), onEvent: log });
    return { settings, db, embedder };
  } catch (err) {
    return { error: (err as Error).message };
  }
}

function log(e: HolderEvent): void {
  // One JSON line per model event in the function's logs (Supabase dashboard → Edge Functions → Logs).
  console.log(JSON.stringify({ amMl: e }));
}

export function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });
}

export function bearer(req: Request): string | null {
  const h = req.headers.get('authorization') ?? '';
  return h.toLowerCase().startsWith('bearer ') ? h.slice(7).trim() : null;
}

/** True when the caller sent the service-role key (am-ml publish/rollback, or the app's backend). */
export function isServiceCaller(req: Request): boolean {
  const key = Deno.env.get('SUPABASE_SERVICE_ROLE_KEY');
  return Boolean(key) && bearer(req) === key;
}

export async function readJson(req: Request): Promise<{ ok: true; body: unknown } | { ok: false; response: Response }> {
  try {
    const text = await req.text();
    return { ok: true, body: text ? JSON.parse(text) : {} };
  } catch (err) {
    return { ok: false, response: json(400, { error: `The body is not JSON: ${(err as Error).message}` }) };
  }
}
