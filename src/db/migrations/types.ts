export type EmbeddingType = 'vector' | 'halfvec';

export interface MigrationContext {
  /** Column type for embedding tables created by this migration (existing tables keep theirs). */
  embeddingType: EmbeddingType;
  dim: number;
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
