/**
 * The embedding thread (see embedder.ts): loads and verifies the model, then answers item and user batches with
 * packed embedding matrices (transferred, not copied). A user batch whose history items are not in the cache is
 * answered with `need`; the batch completes when the items arrive.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { CatalogItem } from './data/dataset.js';
import { DEFAULT_ITEM_CACHE_ENTRIES, embedAndCacheItems, embedUserRows, EncodedItemCache } from './embed-batch.js';
import { type EmbedWorkerReady, type EmbedWorkerReply, type EmbedWorkerRequest, packRows, toWireError, type WorkerEmbedderOptions } from './embedder.js';
import { loadTwoTowerFromDir } from './load-model-fs.js';
import { type BackendChoice, initTf } from './tf.js';

async function serve(opts: WorkerEmbedderOptions): Promise<void> {
  const port = parentPort!;
  let model: Awaited<ReturnType<typeof loadTwoTowerFromDir>>;
  let backend: string;
  try {
    backend = (await initTf(opts.backend as BackendChoice)).backend;
    model = await loadTwoTowerFromDir(opts.modelDir, { batchSize: opts.batchSize });
  } catch (err) {
    port.postMessage({ ready: false, error: toWireError(err) } satisfies EmbedWorkerReady);
    return;
  }
  const capacity = opts.cacheEntries ?? DEFAULT_ITEM_CACHE_ENTRIES;
  const cache = new EncodedItemCache(model, capacity);
  /** User batches waiting for items, by request id. */
  const waiting = new Map<number, Extract<EmbedWorkerRequest, { op: 'users' }>>();

  const reply = (r: EmbedWorkerReply) => port.postMessage(r, 'embeddings' in r ? [r.embeddings.buffer as ArrayBuffer] : []);

  const answerUsers = (req: Extract<EmbedWorkerRequest, { op: 'users' }>, fetched: CatalogItem[] | null) => {
    cache.add(req.known.filter((i) => !cache.has(i.item_id)));
    if (fetched) cache.add(fetched);
    const refs = new Set<string>();
    for (const u of req.users) for (const id of [...u.likes, ...u.nopes]) refs.add(id);
    const missing = cache.missing(refs);
    if (missing.length && fetched === null) {
      waiting.set(req.id, req);
      reply({ id: req.id, ok: true, need: missing });
      return;
    }
    // After a fetch, ids still missing are items deleted from the catalog: embedUserRows drops and counts them.
    const r = embedUserRows(model, cache, req.users, req.minHistory);
    reply({ id: req.id, ok: true, ...packRows(r.rows, model.dim), skipped: r.skipped });
  };

  port.on('message', (m: EmbedWorkerRequest) => {
    try {
      switch (m.op) {
        case 'items': {
          reply({ id: m.id, ok: true, ...packRows(embedAndCacheItems(model, cache, m.items), model.dim), skipped: 0 });
          break;
        }
        case 'users':
          answerUsers(m, null);
          break;
        case 'fetched': {
          const req = waiting.get(m.forId);
          if (!req) return;
          waiting.delete(m.forId);
          answerUsers(req, m.items);
          break;
        }
        case 'close':
          model.dispose();
          reply({ id: m.id, ok: true, closed: true });
          break;
      }
    } catch (err) {
      reply({ id: m.op === 'fetched' ? m.forId : m.id, ok: false, error: toWireError(err) });
    }
  });
  port.postMessage({ ready: true, dim: model.dim, caps: { maxLikes: model.spec.user.maxLikes, maxNopes: model.spec.user.maxNopes }, backend } satisfies EmbedWorkerReady);
}

if ((workerData as { amMlEmbedWorker?: boolean } | undefined)?.amMlEmbedWorker) {
  await serve(workerData as WorkerEmbedderOptions);
}
