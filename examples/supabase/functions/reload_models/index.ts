// reload_models: what `am-ml publish` and `am-ml rollback` call after moving the pointer
// (`supabase.functions.invoke('reload_models', {body: {version, name}})`).
//
// It reads the pointer and loads the version it names in this worker, fully verified (every file's sha256, strict
// weights, the probe), so a version the Edge runtime cannot serve is reported to the publisher at once: the answer
// is 200 with {ok: true, version, runId, previous, changed} or 500 with {ok: false, error} (publish then exits 5,
// keeping the new pointer). Other functions' workers (embed-user) pick the new version up within
// AMML_POINTER_MAX_AGE_SECONDS, since one call reaches one worker of one function.
// Only the service role may call it.
import { parseReloadRequest } from 'am-ml/edge';
import { createApp, isServiceCaller, json, readJson } from '../_shared/am-ml.ts';

const app = createApp();

Deno.serve(async (req: Request): Promise<Response> => {
  if ('error' in app) return json(500, { ok: false, error: app.error });
  if (req.method !== 'POST') return json(405, { ok: false, error: 'Use POST with {"version", "name"}.' });
  if (!isServiceCaller(req)) return json(403, { ok: false, error: 'Only the service role may reload models.' });
  const read = await readJson(req);
  if (!read.ok) return read.response;
  const parsed = parseReloadRequest(read.body);
  if (!parsed.ok) return json(400, { ok: false, error: parsed.error });
  const outcome = await app.embedder.reload(parsed.value);
  return json(outcome.ok ? 200 : 500, outcome);
});
