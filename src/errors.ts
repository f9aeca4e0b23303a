/**
 * The error hierarchy and the exit-code table. Every failure a user can act on is an `AmMlError` with a stable
 * `code` (for `--json`), an `exitCode` and an optional `hint` naming the next step. Only `src/cli.ts` catches at
 * the top; everything else throws (wrapping lower-level errors in `cause`).
 */

/** Documented exit codes (README "Exit codes"). */
export const EXIT = {
  OK: 0,
  INTERNAL: 1,
  USAGE: 2,
  CONFIG: 3,
  VALIDATION: 4,
  EXTERNAL: 5,
  CONFLICT: 6,
  INTERRUPTED: 130,
} as const;
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

export interface AmMlErrorOptions {
  hint?: string;
  cause?: unknown;
  /** Structured facts for `--json` (expected vs found, failing index, ...). Never put secrets here. */
  details?: Record<string, unknown>;
}

export class AmMlError extends Error {
  readonly code: string;
  readonly exitCode: ExitCode;
  readonly hint?: string;
  readonly details?: Record<string, unknown>;

  constructor(code: string, exitCode: ExitCode, message: string, opts: AmMlErrorOptions = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = new.target.name;
    this.code = code;
    this.exitCode = exitCode;
    this.hint = opts.hint;
    this.details = opts.details;
  }
}

/** A bug or a broken invariant. */
export class InternalError extends AmMlError {
  constructor(message: string, opts: AmMlErrorOptions = {}) {
    super('INTERNAL', EXIT.INTERNAL, message, opts);
  }
}

/** Bad flags or flag combinations. */
export class UsageError extends AmMlError {
  constructor(message: string, opts: AmMlErrorOptions & { code?: string } = {}) {
    super(opts.code ?? 'USAGE', EXIT.USAGE, message, opts);
  }
}

/** One problem in env, config file, or an artifact's manifest: `key` and what is wrong with it. */
export interface ConfigIssue {
  key: string;
  message: string;
  /** Where the value came from / where to set it (`env AMML_DATABASE_URL`, `am-ml.config.json`, `--db`). */
  source?: string;
}

/** Configuration problems; lists every issue at once. */
export class ConfigError extends AmMlError {
  readonly issues: ConfigIssue[];
  constructor(message: string, issues: ConfigIssue[] = [], opts: AmMlErrorOptions & { code?: string } = {}) {
    const body = issues.length
      ? `${message}\n${issues.map((i) => `  - ${i.key}: ${i.message}${i.source ? ` (${i.source})` : ''}`).join('\n')}`
      : message;
    super(opts.code ?? 'CONFIG', EXIT.CONFIG, body, {
      ...opts,
      details: { ...(opts.details ?? {}), issues },
    });
    this.issues = issues;
  }
}

/** Golden mismatch, shape/dtype/dimension mismatch, tensor leak, schema drift, refused quality gate. */
export class ValidationFailedError extends AmMlError {
  constructor(message: string, opts: AmMlErrorOptions & { code?: string } = {}) {
    super(opts.code ?? 'VALIDATION_FAILED', EXIT.VALIDATION, message, opts);
  }
}

export interface ExternalServiceErrorOptions extends AmMlErrorOptions {
  code?: string;
  service: string;
  /** Already-redacted URL, bucket/path or host. */
  target?: string;
  status?: number;
  /** SQLSTATE for database errors. */
  sqlState?: string;
  requestId?: string;
}

/** DMM, Supabase or Postgres failures after retries. */
export class ExternalServiceError extends AmMlError {
  readonly service: string;
  readonly target?: string;
  readonly status?: number;
  readonly sqlState?: string;
  readonly requestId?: string;
  constructor(message: string, opts: ExternalServiceErrorOptions) {
    super(opts.code ?? 'EXTERNAL_SERVICE', EXIT.EXTERNAL, message, {
      ...opts,
      details: {
        ...(opts.details ?? {}),
        service: opts.service,
        ...(opts.target !== undefined ? { target: redact(opts.target) } : {}),
        ...(opts.status !== undefined ? { status: opts.status } : {}),
        ...(opts.sqlState !== undefined ? { sqlState: opts.sqlState } : {}),
        ...(opts.requestId !== undefined ? { requestId: opts.requestId } : {}),
      },
    });
    this.service = opts.service;
    this.target = opts.target === undefined ? undefined : redact(opts.target);
    this.status = opts.status;
    this.sqlState = opts.sqlState;
    this.requestId = opts.requestId;
  }
}

export class RateLimitError extends ExternalServiceError {
  constructor(message: string, opts: Omit<ExternalServiceErrorOptions, 'code'>) {
    super(message, { ...opts, code: 'DMM_RATE_LIMITED' });
  }
}

export class StorageError extends ExternalServiceError {
  constructor(message: string, opts: Omit<ExternalServiceErrorOptions, 'service'> & { service?: string }) {
    super(message, { code: 'STORAGE', service: 'storage', ...opts });
  }
}

export class DbError extends ExternalServiceError {
  constructor(message: string, opts: Omit<ExternalServiceErrorOptions, 'service'> & { service?: string }) {
    super(message, { code: 'DB', service: 'postgres', ...opts });
  }
}

/** Pointer moved since read, version exists, rollback target missing, mixed versions. */
export class ConflictError extends AmMlError {
  constructor(message: string, opts: AmMlErrorOptions & { code?: string } = {}) {
    super(opts.code ?? 'CONFLICT', EXIT.CONFLICT, message, opts);
  }
}

/** SIGINT / AbortSignal: the message says what was left half-done and how to resume. */
export class InterruptedError extends AmMlError {
  constructor(message = 'Interrupted.', opts: AmMlErrorOptions = {}) {
    super('INTERRUPTED', EXIT.INTERRUPTED, message, opts);
  }
}

/** Throw `InterruptedError` if the signal fired; long loops call this between units of work. */
export function throwIfAborted(signal: AbortSignal | undefined, whatIsLeft?: string): void {
  if (signal?.aborted) {
    throw new InterruptedError(whatIsLeft ? `Interrupted. ${whatIsLeft}` : 'Interrupted.');
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Redaction. Secrets travel in query strings (DMM api_id), headers (service-role key), and connection strings
// (passwords). Everything that leaves the process through a message, a log line or `--json` passes `redact()`.
// ---------------------------------------------------------------------------------------------------------------

const REDACTED = '***';
const MIN_SECRET_LENGTH = 4;
const knownSecrets = new Set<string>();

/**
 * Remember a secret value so `redact()` removes it wherever it appears (also URL-encoded). Config loading
 * registers every secret it reads; short values are ignored to avoid shredding ordinary text.
 */
export function registerSecret(value: string | undefined | null): void {
  if (!value || value.length < MIN_SECRET_LENGTH) return;
  knownSecrets.add(value);
  const encoded = encodeURIComponent(value);
  if (encoded !== value) knownSecrets.add(encoded);
}

/** Query parameters and header-like keys whose values are always secret. */
const SECRET_PARAM_NAMES = [
  'api_id',
  'affiliate_id',
  'apikey',
  'api_key',
  'key',
  'token',
  'access_token',
  'password',
  'secret',
  'service_role_key',
];
const SECRET_PARAM_RE = new RegExp(`([?&;](?:${SECRET_PARAM_NAMES.join('|')})=)[^&#\\s"']*`, 'gi');
// JSON echoes such as DMM's `"api_id": "…"`.
const SECRET_JSON_RE = new RegExp(`("(?:${SECRET_PARAM_NAMES.join('|')})"\\s*:\\s*")[^"]*(")`, 'gi');
// user:password@host in connection strings.
const URL_PASSWORD_RE = /(\b[a-z][a-z0-9+.-]*:\/\/[^:/?#\s@]+:)[^@\s/]+(@)/gi;
// Bearer tokens and JWTs (Supabase keys are JWTs or `sb_secret_…`).
const BEARER_RE = /(\bBearer\s+)[A-Za-z0-9._~+/=-]+/g;
const JWT_RE = /\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}/g;
const SB_SECRET_RE = /\bsb_secret_[A-Za-z0-9_-]+/g;

/** Remove every known secret and every secret-shaped substring from `text`. */
export function redact(text: string): string {
  let out = text;
  // Longest first, so a secret that contains another is removed whole.
  for (const s of [...knownSecrets].sort((a, b) => b.length - a.length)) {
    out = out.split(s).join(REDACTED);
  }
  return out
    .replace(SECRET_PARAM_RE, `$1${REDACTED}`)
    .replace(SECRET_JSON_RE, `$1${REDACTED}$2`)
    .replace(URL_PASSWORD_RE, `$1${REDACTED}$2`)
    .replace(BEARER_RE, `$1${REDACTED}`)
    .replace(JWT_RE, REDACTED)
    .replace(SB_SECRET_RE, REDACTED);
}

/** Object keys whose string values are always blanked (narrower than the query-string list: `key` is common). */
const SECRET_OBJECT_KEYS = new Set([
  'api_id',
  'affiliate_id',
  'apikey',
  'api_key',
  'password',
  'secret',
  'service_role_key',
  'access_token',
  'authorization',
]);

/** Deep-redact a JSON-able value (strings only; keys named like secrets are blanked). */
export function redactValue<T>(value: T): T {
  if (typeof value === 'string') return redact(value) as T;
  if (Array.isArray(value)) return value.map((v) => redactValue(v)) as T;
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      out[k] = SECRET_OBJECT_KEYS.has(k.toLowerCase()) && typeof v === 'string' ? REDACTED : redactValue(v);
    }
    return out as T;
  }
  return value;
}

/** Turn anything thrown into an `AmMlError` (unknown errors become `InternalError`). */
export function toAmMlError(err: unknown): AmMlError {
  if (err instanceof AmMlError) return err;
  if (err instanceof Error) {
    if (err.name === 'AbortError') return new InterruptedError('Interrupted.', { cause: err });
    return new InternalError(err.message, { cause: err });
  }
  return new InternalError(String(err));
}
