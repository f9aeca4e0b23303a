/**
 * The replay server on its own thread, serving a generated catalog: the caller's event loop stays free, as with
 * the real (remote) API. The benchmark uses it so that a busy database write does not stall the server, and the
 * quickstart can use it the same way.
 *
 *   const server = await startFakeDmmServerInWorker({ catalog: { seed: 7, items: { videoa: 3000 }, from, to } });
 *   await syncDmm({ env: { ...process.env, ...server.env }, ... });
 *   await server.close();
 */
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { generateDmmCatalog, type GenerateCatalogOptions } from './dmm-catalog.js';
import { type FakeDmmServerOptions, startFakeDmmServer } from './fake-dmm-server.js';

/** What can cross the thread boundary: generator options instead of a catalog, no callbacks. */
export interface WorkerServerOptions extends Omit<FakeDmmServerOptions, 'catalog' | 'itemOverride' | 'recordServedItems'> {
  catalog: GenerateCatalogOptions;
}

export interface WorkerServer {
  url: string;
  env: { DMM_API_BASE_URL: string; DMM_API_ID: string; DMM_AFFILIATE_ID: string };
  /** Requests served so far. */
  requestCount(): Promise<number>;
  close(): Promise<void>;
}

type Msg = { type: 'ready'; url: string; env: WorkerServer['env'] } | { type: 'count'; n: number } | { type: 'closed' };

export async function startFakeDmmServerInWorker(opts: WorkerServerOptions): Promise<WorkerServer> {
  const worker = new Worker(new URL(import.meta.url), { workerData: opts });
  const waiters: ((m: Msg) => void)[] = [];
  worker.on('message', (m: Msg) => waiters.shift()?.(m));
  const next = () => new Promise<Msg>((resolve) => waiters.push(resolve));
  const ready = await Promise.race([
    next(),
    new Promise<never>((_, reject) => worker.once('error', reject)),
  ]);
  if (ready.type !== 'ready') throw new Error('replay worker did not start');
  return {
    url: ready.url,
    env: ready.env,
    async requestCount() {
      const p = next();
      worker.postMessage('count');
      const m = await p;
      return m.type === 'count' ? m.n : -1;
    },
    async close() {
      const p = next();
      worker.postMessage('close');
      await p;
      await worker.terminate();
    },
  };
}

if (!isMainThread && parentPort && (workerData as WorkerServerOptions | undefined)?.catalog) {
  const port = parentPort;
  const { catalog, ...rest } = workerData as WorkerServerOptions;
  const server = await startFakeDmmServer({ ...rest, catalog: generateDmmCatalog(catalog) });
  let served = 0;
  // The request log would grow with the run; a count is all a caller on another thread can ask for.
  server.onRequest = () => {
    served++;
    server.requests.length = 0;
  };
  port.on('message', async (m: string) => {
    if (m === 'count') port.postMessage({ type: 'count', n: served } satisfies Msg);
    if (m === 'close') {
      await server.close();
      port.postMessage({ type: 'closed' } satisfies Msg);
    }
  });
  port.postMessage({ type: 'ready', url: server.url, env: server.env } satisfies Msg);
}
