// The app database as the embed-user function reads it, through supabase-js with the service role:
// - the user's history: the RPC public.am_ml_user_history (migrations/20261122000000_am_ml_user_history.sql),
//   which applies am-ml's rules (latest decision per video, newest first, training tags, performer ids);
// - stored item embeddings for the fallback, when the history came in the request without them.
import type { SupabaseClient } from '@supabase/supabase-js';
import type { EdgeItem } from 'am-ml/edge';

export interface StoredHistory {
  likes: EdgeItem[];
  nopes: EdgeItem[];
  user_embedding: number[] | null;
}

export async function readUserHistory(db: SupabaseClient, userId: string, caps: { maxLikes: number; maxNopes: number }): Promise<StoredHistory> {
  const { data, error } = await db.rpc('am_ml_user_history', { p_user_id: userId, p_max_likes: caps.maxLikes, p_max_nopes: caps.maxNopes });
  if (error) throw new Error(`am_ml_user_history failed: ${error.message}`);
  const h = (data ?? {}) as Partial<StoredHistory>;
  return { likes: h.likes ?? [], nopes: h.nopes ?? [], user_embedding: h.user_embedding ?? null };
}

/** `video_embeddings` rows by video id; vectors arrive as pgvector text ('[0.1,...]'). */
export async function lookupItemEmbeddings(db: SupabaseClient, ids: readonly string[]): Promise<Map<string, number[]>> {
  const out = new Map<string, number[]>();
  if (ids.length === 0) return out;
  const { data, error } = await db.from('video_embeddings').select('video_id, embedding').in('video_id', [...ids]);
  if (error) throw new Error(`video_embeddings: ${error.message}`);
  for (const row of (data ?? []) as { video_id: string; embedding: string | number[] }[]) {
    out.set(row.video_id, typeof row.embedding === 'string' ? (JSON.parse(row.embedding) as number[]) : row.embedding);
  }
  return out;
}
