/**
 * Embedding during `sync-dmm` (issue 7, item 6): each chunk's new and updated videos are embedded with the current
 * model inside the chunk's transaction, so new items are servable the moment they are committed.
 *
 * It only runs when it cannot mix versions: a model is published (the store's current pointer) AND the live tables
 * already serve exactly that version. Otherwise new items wait for the next `am-ml embed`, and the result says why.
 * `--embed require` turns "cannot" into an error (for CI jobs that must not leave items unembedded).
 */
import type { AfterChunkHook } from '../db/catalog-types.js';
import { readItemsByIds } from '../db/embed-source.js';
import { assertSingleVersion, servedVersion, writeLiveRows } from '../db/embedding-store.js';
import type { Db } from '../db/types.js';
import { ConflictError, ExternalServiceError } from '../errors.js';
import { embedItemRows } from '../ml/embed-batch.js';
import type { LoadedTwoTower } from '../ml/load-model.js';
import { readCurrent } from '../registry/registry.js';
import { type CommonOptions, reporterOf } from './common.js';
import { checkColumns } from './embed-run.js';
import { resolveModel } from './model-ref.js';
import { openModelStore, registryContext } from './store.js';

export type SyncEmbedMode = 'auto' | 'off' | 'require';

export interface SyncEmbedStatus {
  mode: SyncEmbedMode;
  enabled: boolean;
  version?: string;
  /** Why new items were not embedded (mode auto). */
  reason?: string;
  itemsEmbedded: number;
}

export interface ChunkEmbedder {
  hook?: AfterChunkHook;
  status: SyncEmbedStatus;
  dispose(): void;
}

/** Decide whether new items can be embedded during this sync, and build the hook that does it. */
export async function chunkEmbedder(opts: CommonOptions & { name?: string }, db: Db, mode: SyncEmbedMode): Promise<ChunkEmbedder> {
  const status: SyncEmbedStatus = { mode, enabled: false, itemsEmbedded: 0 };
  const off = (reason: string): ChunkEmbedder => {
    if (mode === 'require') {
      throw new ConflictError(`--embed require: new items cannot be embedded during this sync: ${reason}.`, {
        code: 'SYNC_EMBED_UNAVAILABLE',
        hint: 'Publish a model and run `am-ml embed` so the live tables serve the current version, or use --embed auto.',
      });
    }
    status.reason = reason;
    return { status, dispose() {} };
  };
  if (mode === 'off') return off('--embed off');

  let current: string | null;
  let storeUrl: string;
  try {
    const opened = await openModelStore(opts);
    storeUrl = opened.store.url;
    current = (await readCurrent(registryContext(opened, opts, opts.name))).pointer?.current.version ?? null;
  } catch (err) {
    // The catalog sync does not depend on the model store; an unreachable store only means no embedding now.
    if (mode === 'auto' && err instanceof ExternalServiceError) return off(`the model store could not be read (${err.message.split('\n')[0]})`);
    throw err;
  }
  if (!current) return off(`no model is published in ${storeUrl}`);
  const served = await servedVersion(db);
  if (served === null) return off(`the live tables hold no embeddings yet (run \`am-ml embed\` once)`);
  if (served !== current) return off(`the live tables serve ${served} but the current model is ${current} (run \`am-ml embed\` to switch)`);
  await assertSingleVersion(db, current, ['items']);

  const ref = await resolveModel({ ...opts, model: 'current' });
  const { initTf } = await import('../ml/tf.js');
  await initTf('auto');
  const { loadTwoTowerFromDir } = await import('../ml/load-model-fs.js');
  const model: LoadedTwoTower = await loadTwoTowerFromDir(ref.dir);
  const column = await checkColumns(db, ['items'], model.dim);
  status.enabled = true;
  status.version = current;
  reporterOf(opts).info(`New and updated items are embedded with ${current} in each chunk's transaction.`);
  const hook: AfterChunkHook = async (tx, rows) => {
    const items = await readItemsByIds(tx, rows.map((r) => r.id));
    const embedded = embedItemRows(model, items).rows;
    status.itemsEmbedded += await writeLiveRows(tx, 'items', current, column, embedded, { check: 'served' });
  };
  return { hook, status, dispose: () => model.dispose() };
}
