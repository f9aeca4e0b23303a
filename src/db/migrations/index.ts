import { appSchema } from './0001-app-schema.js';
import { amMlBookkeeping } from './0002-am-ml-bookkeeping.js';
import { embeddingStaging } from './0200-embedding-staging.js';
import type { Migration } from './types.js';

/** Every migration, in id order. Add new ones in the id range of their area (see types.ts). */
export const MIGRATIONS: readonly Migration[] = [appSchema, amMlBookkeeping, embeddingStaging].sort((a, b) => a.id - b.id);

export type { EmbeddingType, Migration, MigrationContext } from './types.js';
