/**
 * PGlite harness for tests: a fresh in-memory database with pgvector and the real migrations applied, and a
 * wire-protocol server over it for code that takes a `postgres://` URL (PGlite is single-connection: pools use
 * max 1, and COPY FROM STDIN through the socket wedges it, so bulk COPY is tested on PGlite directly and on the
 * native cluster in native-postgres.ts).
 */
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';
import type { PGlite } from '@electric-sql/pglite';
import { migrate } from '../db/migrate.js';
import type { EmbeddingType } from '../db/migrations/index.js';
import { openPglite, PGLITE_MEMORY, type PgliteDb } from '../db/pglite.js';

export interface TestDbOptions {
  embeddingType?: EmbeddingType;
  dim?: number;
  /** Apply migrations (default true). */
  migrate?: boolean;
  /** Create the HNSW index on video_embeddings (default false, as on the embedded default). */
  annIndex?: boolean;
}

/** In-memory PGlite with the schema applied. Close it in afterAll. */
export async function createTestDb(opts: TestDbOptions = {}): Promise<PgliteDb> {
  const db = await openPglite({ dir: PGLITE_MEMORY });
  if (opts.migrate !== false) {
    await migrate(db, { embeddingType: opts.embeddingType ?? 'halfvec', dim: opts.dim ?? 128, annIndex: opts.annIndex ?? false });
  }
  return db;
}

export interface PgliteSocket {
  /** postgres://… URL for the pg driver (use poolMax 1). */
  url: string;
  stop(): Promise<void>;
}

/** Serve a PGlite instance on 127.0.0.1 (random port) over the Postgres wire protocol. */
export async function startPgliteSocket(pglite: PGlite): Promise<PgliteSocket> {
  const server = new PGLiteSocketServer({ db: pglite, host: '127.0.0.1', port: 0, maxConnections: 1 });
  await server.start();
  const conn = server.getServerConn(); // host:port
  return {
    url: `postgres://postgres:postgres@${conn}/postgres?sslmode=disable`,
    stop: () => server.stop(),
  };
}
