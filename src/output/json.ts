import { type AmMlError, redactValue } from '../errors.js';

/** Bump when the shape of the `--json` document changes. */
export const JSON_SCHEMA_VERSION = 1;

export interface JsonSuccess<R> {
  schemaVersion: number;
  command: string;
  ok: true;
  result: R;
}

export interface JsonFailure {
  schemaVersion: number;
  command: string;
  ok: false;
  error: { code: string; message: string; exitCode: number; hint?: string; details?: Record<string, unknown> };
}

export function jsonSuccess<R>(command: string, result: R): JsonSuccess<R> {
  return { schemaVersion: JSON_SCHEMA_VERSION, command, ok: true, result: redactValue(result) };
}

export function jsonFailure(command: string, err: AmMlError): JsonFailure {
  return {
    schemaVersion: JSON_SCHEMA_VERSION,
    command,
    ok: false,
    error: redactValue({
      code: err.code,
      message: err.message,
      exitCode: err.exitCode,
      ...(err.hint ? { hint: err.hint } : {}),
      ...(err.details ? { details: err.details } : {}),
    }),
  };
}

/** The one JSON document printed at exit. */
export function emitJson(doc: JsonSuccess<unknown> | JsonFailure, out: NodeJS.WritableStream = process.stdout): void {
  out.write(`${JSON.stringify(doc)}\n`);
}
