import { ConfigError } from '../errors.js';
import path from 'node:path';
import { openPglite, PGLITE_MEMORY } from './pglite.js';
import { openPgliteWorker } from './pglite-worker.js';
import { openPostgres } from './postgres.js';
import type { Db } from './types.js';

export interface OpenDbOptions {
  /** `pglite://<dir>`, `pglite://:memory:`, `postgres://…` or `postgresql://…`. */
  url: string;
  /** Relative pglite directories resolve against this. */
  cwd: string;
  caFile?: string;
  poolMax?: number;
  /**
   * Run an embedded (pglite://) database on a worker thread, so the caller's event loop stays free while it works
   * (commands that overlap network I/O with writes, like sync-dmm). Ignored for postgres://. @default false
   */
  pgliteWorker?: boolean;
}

/** Open the database named by a URL; the scheme picks the driver. */
export async function openDb(opts: OpenDbOptions): Promise<Db> {
  const scheme = /^([a-z]+):\/\//i.exec(opts.url)?.[1]?.toLowerCase();
  if (scheme === 'pglite') {
    const rest = opts.url.slice('pglite://'.length);
    const dir = rest === PGLITE_MEMORY ? PGLITE_MEMORY : path.resolve(opts.cwd, decodeURIComponent(rest) || '.');
    return opts.pgliteWorker ? openPgliteWorker({ dir }) : openPglite({ dir });
  }
  if (scheme === 'postgres' || scheme === 'postgresql') {
    return openPostgres({ url: opts.url, caFile: opts.caFile, poolMax: opts.poolMax });
  }
  throw new ConfigError('Unknown database URL scheme.', [
    { key: 'AMML_DATABASE_URL', message: `expected pglite://<dir> or postgres://…, found ${scheme ?? 'no scheme'}://` },
  ]);
}
