// embed-user: the user's embedding, computed now from their recent likes and nopes with the published model.
//
// POST /functions/v1/embed-user
//   {"user_id": "<uuid>"}                      history read from the database (am_ml_user_history)
//   {"likes": [item, ...], "nopes": [...]}     history given by the caller, newest first (items.jsonl shape;
//                                             an item may carry its stored "embedding" for the fallback)
// A signed-in user may embed only themselves (user_id defaults to the caller); the service role may embed anyone.
// 200 → {user_id, embedding, dim, source, model, fallbackReason?, warning?, history, fallbackItems?, featureStats?}
//   source: "model" | "liked-items-mean" | "stored-user" | "none" (see README: fallback)
// 400 bad body · 401/403 caller · 405 method · 500 settings or database trouble (message in "error")
import { type EdgeItem, parseEmbedUserRequest } from 'am-ml/edge';
import { bearer, createApp, isServiceCaller, json, readJson } from '../_shared/am-ml.ts';
import { readUserHistory } from '../_shared/app-db.ts';

const app = createApp();

Deno.serve(async (req: Request): Promise<Response> => {
  if ('error' in app) return json(500, { error: app.error });
  if (req.method !== 'POST') return json(405, { error: 'Use POST with a JSON body.' });
  const read = await readJson(req);
  if (!read.ok) return read.response;
  const parsed = parseEmbedUserRequest(read.body);
  if (!parsed.ok) return json(400, { error: parsed.error });
  const body = parsed.value;

  let userId = body.user_id ?? null;
  if (!isServiceCaller(req)) {
    const token = bearer(req);
    const { data, error } = token ? await app.db.auth.getUser(token) : { data: null, error: new Error('no token') };
    if (error || !data?.user) return json(401, { error: 'Sign in first: the function needs the caller\'s access token.' });
    if (userId !== null && userId !== data.user.id) return json(403, { error: 'A user may only embed themselves.' });
    userId = data.user.id;
  }

  if (userId === null && body.likes === undefined && body.nopes === undefined) {
    return json(400, { error: 'Give the history (likes, nopes) or a user_id.' });
  }
  let likes: readonly EdgeItem[] = body.likes ?? [];
  let nopes: readonly EdgeItem[] = body.nopes ?? [];
  let stored: readonly number[] | null = body.stored_embedding ?? null;
  if (body.likes === undefined && body.nopes === undefined && userId !== null) {
    try {
      const h = await readUserHistory(app.db, userId, app.embedder.historyCaps());
      likes = h.likes;
      nopes = h.nopes;
      stored = h.user_embedding;
    } catch (err) {
      return json(500, { error: (err as Error).message });
    }
  }
  const result = await app.embedder.embed({ likes, nopes, storedEmbedding: stored });
  return json(200, { user_id: userId, ...result });
});
