/**
 * Tell the Edge Functions that the pointer moved: `supabase.functions.invoke(<function>, {body: {version, name}})`
 * (default function `reload_models`). A reload never throws: the pointer has already moved, so the command reports
 * a failed reload (exit 5) while saying the publish or rollback itself is done.
 */
import { DEFAULT_RETRY_POLICY, type RetryPolicy, type Sleep, withRetry } from './retry.js';

export const DEFAULT_RELOAD_FUNCTION = 'reload_models';
const MAX_RESPONSE_CHARS = 500;

/** The part of `SupabaseClient['functions']` used here. */
export interface FunctionsInvoker {
  invoke(name: string, options: { body: Record<string, unknown>; signal?: AbortSignal }): Promise<{ data: unknown; error: unknown }>;
}

export interface ReloadOptions {
  functionName: string;
  name: string;
  version: string;
  retry?: RetryPolicy;
  sleep?: Sleep;
  signal?: AbortSignal;
  onRetry?: (attempt: number, delayMs: number, reason: string) => void;
}

export interface ReloadResult {
  function: string;
  version: string;
  ok: boolean;
  attempts: number;
  status?: number;
  error?: string;
  response?: unknown;
}

class InvokeFailure extends Error {
  constructor(
    message: string,
    readonly status: number | undefined,
    readonly retryable: boolean,
  ) {
    super(message);
  }
}

async function failureOf(error: unknown): Promise<InvokeFailure> {
  const e = error as { name?: string; message?: string; context?: { status?: number; text?: () => Promise<string> } };
  if (e?.name === 'FunctionsHttpError' || e?.name === 'FunctionsRelayError') {
    const status = e.context?.status;
    let body = '';
    try {
      body = (await e.context?.text?.())?.slice(0, MAX_RESPONSE_CHARS) ?? '';
    } catch {
      // the body is only decoration for the message
    }
    const retryable = status === undefined || status === 408 || status === 429 || status >= 500;
    return new InvokeFailure(`HTTP ${status ?? '?'}${body ? `: ${body}` : ''}`, status, retryable);
  }
  return new InvokeFailure(e?.message ?? String(error), undefined, true);
}

function trimmed(data: unknown): unknown {
  if (typeof data === 'string') return data.slice(0, MAX_RESPONSE_CHARS);
  if (data && typeof data === 'object' && JSON.stringify(data).length <= MAX_RESPONSE_CHARS) return data;
  return data === null || data === undefined ? undefined : '(response omitted)';
}

export async function triggerReload(invoker: FunctionsInvoker, opts: ReloadOptions): Promise<ReloadResult> {
  let attempts = 0;
  try {
    const data = await withRetry(
      async () => {
        attempts++;
        const { data, error } = await invoker.invoke(opts.functionName, { body: { version: opts.version, name: opts.name }, signal: opts.signal });
        if (error) throw await failureOf(error);
        return data;
      },
      {
        policy: opts.retry ?? { ...DEFAULT_RETRY_POLICY, attempts: 3 },
        sleep: opts.sleep,
        signal: opts.signal,
        classify: (err) => (err instanceof InvokeFailure ? { retry: err.retryable, reason: err.message } : { retry: false, reason: '' }),
        onRetry: opts.onRetry,
      },
    );
    return { function: opts.functionName, version: opts.version, ok: true, attempts, response: trimmed(data) };
  } catch (err) {
    const f = err instanceof InvokeFailure ? err : new InvokeFailure((err as Error).message, undefined, false);
    return { function: opts.functionName, version: opts.version, ok: false, attempts, status: f.status, error: f.message };
  }
}
