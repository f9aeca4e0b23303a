/**
 * The Edge Functions' settings, read from the function's environment by the function (`Deno.env.get`) and parsed
 * here, strictly, with every problem reported at once (app-schema §7.18). `SUPABASE_URL` and
 * `SUPABASE_SERVICE_ROLE_KEY` are set by the platform in every deployed function.
 *
 * | variable | default | meaning |
 * |---|---|---|
 * | `AMML_MODEL_STORE` | `supabase://models` | `supabase://<bucket>/<prefix>` (as for the CLI), or the http(s) URL of a bucket root |
 * | `AMML_MODEL_STORE_PREFIX` | '' | the store's folder inside an http(s) bucket root |
 * | `AMML_MODEL_NAME` | `two_tower` | the model name (`am-ml publish --name`) |
 * | `AMML_POINTER_MAX_AGE_SECONDS` | 60 | re-read `current.json` when the last read is older (0: every request) |
 * | `AMML_RETRY_AFTER_FAILURE_SECONDS` | 30 | after a failed load, wait this long before trying that version again |
 * | `AMML_TF_BACKEND` | `cpu` | `cpu` or `wasm` (wasm needs `@tensorflow/tfjs-backend-wasm` in the import map) |
 */
import { z } from 'zod';
import type { EdgeEmbedderConfig } from './index.js';

const seconds = (def: number) =>
  z
    .string()
    .regex(/^\d+(\.\d+)?$/, { message: 'must be a number of seconds' })
    .transform(Number)
    .default(def);

const EdgeEnvSchema = z.object({
  AMML_MODEL_STORE: z.string().regex(/^(supabase|https?):\/\//, { message: 'must be supabase://<bucket>/<prefix> or an http(s) URL' }).default('supabase://models'),
  AMML_MODEL_STORE_PREFIX: z.string().default(''),
  AMML_MODEL_NAME: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/, { message: 'is not a valid model name' }).default('two_tower'),
  AMML_POINTER_MAX_AGE_SECONDS: seconds(60),
  AMML_RETRY_AFTER_FAILURE_SECONDS: seconds(30),
  AMML_TF_BACKEND: z.enum(['cpu', 'wasm']).default('cpu'),
  SUPABASE_URL: z.string().regex(/^https?:\/\//, { message: 'must be the project URL (https://<ref>.supabase.co)' }).optional(),
  SUPABASE_SERVICE_ROLE_KEY: z.string().min(20, { message: 'looks too short for a service-role key' }).optional(),
});

const KEYS = Object.keys(EdgeEnvSchema.shape) as (keyof typeof EdgeEnvSchema.shape)[];

export type EdgeSettings = Omit<EdgeEmbedderConfig, 'fetch' | 'lookupItemEmbeddings' | 'onEvent'>;

/**
 * Settings from an env getter (`(k) => Deno.env.get(k)`).
 * @throws Error listing every `KEY: problem` (secrets are never echoed).
 */
export function edgeSettingsFromEnv(get: (key: string) => string | undefined): EdgeSettings {
  const raw: Record<string, string> = {};
  for (const k of KEYS) {
    const v = get(k);
    if (v !== undefined && v !== '') raw[k] = v;
  }
  const r = EdgeEnvSchema.safeParse(raw);
  const problems = r.success ? [] : r.error.issues.map((i) => `${String(i.path[0])}: ${i.message}`);
  if (r.success && r.data.AMML_MODEL_STORE.startsWith('supabase://')) {
    if (!r.data.SUPABASE_URL) problems.push('SUPABASE_URL: required for a supabase:// model store');
    if (!r.data.SUPABASE_SERVICE_ROLE_KEY) problems.push('SUPABASE_SERVICE_ROLE_KEY: required for a supabase:// model store');
  }
  if (!r.success || problems.length) throw new Error(`The function's settings are invalid: ${problems.join('; ')}.`);
  const e = r.data;
  return {
    store: e.AMML_MODEL_STORE,
    prefix: e.AMML_MODEL_STORE_PREFIX,
    supabaseUrl: e.SUPABASE_URL,
    key: e.SUPABASE_SERVICE_ROLE_KEY,
    name: e.AMML_MODEL_NAME,
    pointerMaxAgeMs: e.AMML_POINTER_MAX_AGE_SECONDS * 1000,
    retryAfterFailureMs: e.AMML_RETRY_AFTER_FAILURE_SECONDS * 1000,
    backend: e.AMML_TF_BACKEND,
  };
}
