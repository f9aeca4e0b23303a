/**
 * The Edge runtime (issue 8 B) under real Deno: a model of the default architecture (128-d) trained one epoch on a
 * generated catalog of 3,000 items, published to the loopback Supabase Storage, served by the example functions.
 * Measured: Deno start to listening, the first embed-user request of a worker (pointer, download, sha256 of every
 * file, strict load, probe, inference), then warm requests of a 200-like history end to end over HTTP, next to the
 * same history through Node's loader (`am-ml embed`'s path, wasm) in process. The issue names no limit; these are
 * reference numbers (a warm request should cost milliseconds; the cold one is paid once per worker).
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { publish } from '../commands/publish.js';
import { train } from '../commands/train.js';
import { readDatasetFolder } from '../ml/data/dataset.js';
import { loadTwoTowerFromDir } from '../ml/load-model-fs.js';
import { initTf } from '../ml/tf.js';
import { serveFunctions } from '../testing/deno.js';
import { startFakeSupabase } from '../testing/fake-supabase-storage.js';
import { writeTinyDataset } from '../testing/synthetic-data.js';
import { REPO_ROOT } from '../testing/tmp-dir.js';
import type { Benchmark } from './types.js';

const WARM_REQUESTS = 50;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const p95 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * 0.95))];

export const benchmarks: Benchmark[] = [
  {
    name: 'edge.embed-user-deno',
    issue: 8,
    description: `embed-user under Deno (cpu backend): cold first request of a worker, then ${WARM_REQUESTS} warm requests of a 200-like history, vs Node's loader in process`,
    repeats: 1,
    units: { denoStartMs: 'ms', coldRequestMs: 'ms', warmMedianMs: 'ms', warmP95Ms: 'ms', nodeEmbedMs: 'ms', modelMiB: 'MiB' },
    async run(ctx) {
      ctx.log('edge: training a 128-d model on 3,000 generated items (1 epoch)');
      writeTinyDataset(path.join(ctx.tmp, 'data'), { items: 3000, users: 1500 });
      await train({ cwd: ctx.tmp, dataset: 'data', out: path.join(ctx.tmp, 'run'), epochs: 1, backend: 'wasm' });
      const fake = await startFakeSupabase();
      try {
        const env = { SUPABASE_URL: fake.url, SUPABASE_SERVICE_ROLE_KEY: fake.key, AMML_MODEL_STORE: 'supabase://models/prod' };
        const pub = await publish({ cwd: ctx.tmp, env, modelDir: 'run', version: 'bench', reload: false });
        await promisify(execFile)(process.execPath, [path.join(REPO_ROOT, 'scripts/vendor-edge.mjs')], { cwd: REPO_ROOT });
        const items = readDatasetFolder(path.join(ctx.tmp, 'data')).items;
        const history = { likes: items.slice(0, 200), nopes: items.slice(200, 300) };

        ctx.log('edge: starting Deno');
        const t0 = performance.now();
        const fns = await serveFunctions(['embed-user'], { denoDir: path.join(ctx.tmp, 'deno'), env: { ...env, AMML_POINTER_MAX_AGE_SECONDS: '3600' } });
        const denoStartMs = performance.now() - t0;
        try {
          const request = async () => {
            const s = performance.now();
            const res = await fetch(`${fns.url}/functions/v1/embed-user`, { method: 'POST', headers: { authorization: `Bearer ${fake.key}` }, body: JSON.stringify(history) });
            const body = (await res.json()) as { source?: string };
            if (body.source !== 'model') throw new Error(`embed-user answered ${JSON.stringify(body).slice(0, 300)}`);
            return performance.now() - s;
          };
          const coldRequestMs = await request();
          const warm: number[] = [];
          for (let i = 0; i < WARM_REQUESTS; i++) warm.push(await request());

          await initTf('wasm');
          const model = await loadTwoTowerFromDir(path.join(ctx.tmp, 'run'));
          const node: number[] = [];
          for (let i = 0; i < WARM_REQUESTS; i++) {
            const s = performance.now();
            model.embedUsers([history]);
            node.push(performance.now() - s);
          }
          model.dispose();
          return { denoStartMs, coldRequestMs, warmMedianMs: median(warm), warmP95Ms: p95(warm), nodeEmbedMs: median(node), modelMiB: pub.bytes / 1024 / 1024 };
        } finally {
          await fns.stop();
        }
      } finally {
        await fake.stop();
      }
    },
  },
];
