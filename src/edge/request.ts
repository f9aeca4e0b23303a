/**
 * The request shapes the Edge Functions accept, parsed at the edge with zod (a bad body is a 400 with every
 * problem named, never an exception inside the function).
 *
 * An item is the `items.jsonl` shape the feature code reads (`ItemAttributes`: item_id, tags, performers, maker,
 * series, label, source, price, released_at, duration_seconds; odd values are counted by the feature code, not
 * rejected here), plus the item's stored embedding for the fallback.
 */
import { z } from 'zod';
import type { ItemAttributes } from '../ml/features/index.js';

/** More history than any feature spec reads (`maxLikes`/`maxNopes` are at most 1023). */
export const MAX_HISTORY_ITEMS = 1023;

export interface EdgeItem extends ItemAttributes {
  /** The item's stored embedding (`video_embeddings.embedding`), used only by the fallback. */
  embedding?: readonly number[] | null;
}

const Token = z.union([z.string(), z.number(), z.null()]);
const Tokens = z.union([z.array(Token), Token]).optional();

export const EdgeItemSchema = z.looseObject({
  item_id: z.string().min(1),
  tags: Tokens,
  performers: Tokens,
  maker: Tokens,
  series: Tokens,
  label: Tokens,
  source: Tokens,
  price: z.union([z.number(), z.string(), z.null()]).optional(),
  released_at: z.union([z.number(), z.string(), z.null()]).optional(),
  duration_seconds: z.union([z.number(), z.string(), z.null()]).optional(),
  embedding: z.array(z.number()).nullable().optional(),
});

const History = z.array(EdgeItemSchema).max(MAX_HISTORY_ITEMS);

/**
 * `embed-user` body: the history itself (`likes`/`nopes`, newest first), or a `user_id` whose history the function
 * reads from the database (a signed-in caller may omit it: it is then the caller). `stored_embedding`: the user's
 * `user_embeddings` row, a last-resort fallback.
 */
export const EmbedUserRequestSchema = z.object({
  user_id: z.string().min(1).optional(),
  likes: History.optional(),
  nopes: History.optional(),
  stored_embedding: z.array(z.number()).nullable().optional(),
});
export type EmbedUserRequest = z.infer<typeof EmbedUserRequestSchema>;

/** `reload_models` body, as `am-ml publish` / `rollback` send it: `{version, name}`. */
export const ReloadRequestSchema = z.object({ version: z.string().min(1).optional(), name: z.string().min(1).optional() });

export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

function parseWith<T>(schema: z.ZodType<T>, body: unknown): Parsed<T> {
  const r = schema.safeParse(body);
  if (r.success) return { ok: true, value: r.data };
  return { ok: false, error: r.error.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`).join('; ') };
}

export const parseEmbedUserRequest = (body: unknown): Parsed<EmbedUserRequest> => parseWith(EmbedUserRequestSchema, body);
export const parseReloadRequest = (body: unknown): Parsed<z.infer<typeof ReloadRequestSchema>> => parseWith(ReloadRequestSchema, body ?? {});
