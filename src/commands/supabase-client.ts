/**
 * Build the real Supabase client for the model store and the Edge Function reload. Commands are the only place
 * clients are constructed (STYLE.md §2). On Node 20, supabase-js 2.109's realtime client needs a WebSocket
 * implementation even when no channel is opened, so `ws` is passed as the transport (platform-notes.md).
 */
import { createClient, type SupabaseClient } from '@supabase/supabase-js';
import WebSocket from 'ws';

export function createSupabaseClient(url: string, serviceRoleKey: string): SupabaseClient {
  return createClient(url, serviceRoleKey, {
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
    realtime: { transport: WebSocket as never },
  });
}
