export type EmbeddingType = 'vector' | 'halfvec';

export interface MigrationContext {
  /** Column type for embedding tables created by this migration (existing tables keep theirs). */
  embeddingType: EmbeddingType;
  dim: number;
  /**
   * Create the HNSW index on video_embeddings (production has one). PGlite builds and maintains it single-threaded
   * in WebAssembly, measured ~18 s per 5,000 halfvec(128) rows, and the serving query (L2 order) does not use it, so
   * the embedded database leaves it out unless asked.
   */
  annIndex: boolean;
}

/**
 * A versioned, idempotent schema step. Ids are allocated by area so parallel work never collides:
 * 1–99 foundation, 100–199 sync-dmm, 200–299 embed, 300–399 train, 400–499 registry.
 */
export interface Migration {
  id: number;
  name: string;
  sql(ctx: MigrationContext): string;
}
