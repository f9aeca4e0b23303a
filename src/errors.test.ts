import { describe, expect, it } from 'vitest';
import {
  AmMlError,
  ConfigError,
  ConflictError,
  DbError,
  EXIT,
  ExternalServiceError,
  InterruptedError,
  InternalError,
  RateLimitError,
  redact,
  redactValue,
  registerSecret,
  StorageError,
  toAmMlError,
  UsageError,
  ValidationFailedError,
} from './errors.js';

describe('exit codes', () => {
  it('maps every error class to its documented exit code', () => {
    const cases: [AmMlError, number][] = [
      [new InternalError('x'), 1],
      [new UsageError('x'), 2],
      [new ConfigError('x'), 3],
      [new ValidationFailedError('x'), 4],
      [new ExternalServiceError('x', { service: 'dmm' }), 5],
      [new RateLimitError('x', { service: 'dmm' }), 5],
      [new StorageError('x', {}), 5],
      [new DbError('x', {}), 5],
      [new ConflictError('x'), 6],
      [new InterruptedError(), 130],
    ];
    for (const [err, code] of cases) expect([err.name, err.exitCode]).toEqual([err.name, code]);
    expect(EXIT).toEqual({ OK: 0, INTERNAL: 1, USAGE: 2, CONFIG: 3, VALIDATION: 4, EXTERNAL: 5, CONFLICT: 6, INTERRUPTED: 130 });
  });

  it('wraps unknown throwables as internal errors and AbortError as interrupted', () => {
    expect(toAmMlError(new Error('boom')).exitCode).toBe(1);
    expect(toAmMlError('str').exitCode).toBe(1);
    const abort = Object.assign(new Error('aborted'), { name: 'AbortError' });
    expect(toAmMlError(abort).exitCode).toBe(130);
  });

  it('lists every config issue in the message', () => {
    const e = new ConfigError('Configuration has 2 problems:', [
      { key: 'A', message: 'is not set', source: 'set env A' },
      { key: 'B', message: 'bad' },
    ]);
    expect(e.message).toContain('  - A: is not set (set env A)');
    expect(e.message).toContain('  - B: bad');
    expect(e.details).toEqual({ issues: e.issues });
  });
});

describe('redact', () => {
  it('removes DMM credentials from query strings and JSON echoes', () => {
    const url = 'https://api.dmm.com/affiliate/v3/ItemList?api_id=SECRETAPI&affiliate_id=me-990&site=FANZA';
    expect(redact(url)).toBe('https://api.dmm.com/affiliate/v3/ItemList?api_id=***&affiliate_id=***&site=FANZA');
    expect(redact('{"api_id": "SECRETAPI", "site": "FANZA"}')).toBe('{"api_id": "***", "site": "FANZA"}');
  });

  it('removes passwords from connection strings, bearer tokens and JWT-shaped keys', () => {
    expect(redact('postgres://postgres.ref:hunter2@host:5432/db')).toBe('postgres://postgres.ref:***@host:5432/db');
    expect(redact('Authorization: Bearer abc.def-ghi')).toBe('Authorization: Bearer ***');
    const jwt = 'eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.c2lnbmF0dXJlLXNpZ25hdHVyZQ';
    expect(redact(`key=${jwt} end`)).not.toContain('eyJ');
    expect(redact('sb_secret_abcdef123')).toBe('***');
  });

  it('removes registered secrets wherever they appear, also URL-encoded', () => {
    registerSecret('my secret/value');
    expect(redact('a my secret/value b my%20secret%2Fvalue c')).toBe('a *** b *** c');
  });

  it('deep-redacts values and blanks secret-named keys', () => {
    const out = redactValue({ url: 'https://x?api_id=abc', nested: [{ password: 'pw', ok: 1 }] });
    expect(out).toEqual({ url: 'https://x?api_id=***', nested: [{ password: '***', ok: 1 }] });
  });

  it('redacts the target of external-service errors', () => {
    const e = new ExternalServiceError('failed', { service: 'dmm', target: 'https://x/ItemList?api_id=SECRET', status: 500 });
    expect(e.target).toBe('https://x/ItemList?api_id=***');
    expect(JSON.stringify(e.details)).not.toContain('SECRET');
  });
});
