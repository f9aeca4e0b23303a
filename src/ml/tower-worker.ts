/**
 * Worker-thread entry of a tower (see tower-runner.ts): owns one tower's parameters and optimizer state and runs
 * its forward/backward passes on its own TF.js instance. Errors are sent back to the caller, never printed.
 */
import { parentPort } from 'node:worker_threads';
import { matMulFor } from './kernels/matmul.js';
import { initTf, tf, type BackendChoice } from './tf.js';
import { LocalTowerRunner, type WorkerRequest, type WorkerResponse } from './tower-runner.js';

let runner: LocalTowerRunner | undefined;

async function handle(req: WorkerRequest): Promise<{ value?: unknown; transfer?: ArrayBuffer[] }> {
  switch (req.op) {
    case 'init': {
      const info = await initTf(req.backend === 'tensorflow' ? 'node' : (req.backend as BackendChoice));
      runner = new LocalTowerRunner(req.role, req.arch, req.params, matMulFor(tf, info.backend));
      return {};
    }
    case 'forward': {
      // A copy: the runner returns a view of the trainer's own buffer, which must stay here.
      const z = (await runner!.forward(req.batch, req.rows)).slice();
      return { value: z, transfer: [z.buffer as ArrayBuffer] };
    }
    case 'backward':
      await runner!.backward(req.input, req.step, req.adam);
      return {};
    case 'softmaxRows': {
      const out = await runner!.softmaxRows(req.input);
      // Written into the caller's shared matrix: nothing to send back but the small per-row results.
      if (req.input.out) return { value: { ...out, gScores: undefined } };
      return { value: out, transfer: [out.gScores.buffer as ArrayBuffer] };
    }
    case 'embed': {
      const z = await runner!.embed(req.batch, req.rows);
      return { value: z, transfer: [z.buffer as ArrayBuffer] };
    }
    case 'params':
      return { value: await runner!.params() };
  }
}

parentPort!.on('message', (req: WorkerRequest) => {
  handle(req).then(
    ({ value, transfer }) => parentPort!.postMessage({ id: req.id, ok: true, value } satisfies WorkerResponse, transfer ?? []),
    (err: Error) => parentPort!.postMessage({ id: req.id, ok: false, message: err.message, stack: err.stack } satisfies WorkerResponse),
  );
});
