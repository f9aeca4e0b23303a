/**
 * A scatter-add `UnsortedSegmentSum` kernel for the wasm and cpu backends. TF.js's gradient of `gather` (and so of
 * every Embedding layer) calls this kernel: the wasm backend does not register it at all ("Kernel
 * 'UnsortedSegmentSum' not registered for backend 'wasm'"), and the cpu backend's version costs about 10 ms per
 * segment (it builds a mask per segment), so a 50,000-row table takes minutes per step. This one is a single
 * pass: out[ids[i]] += x[i].
 *
 * am-ml's own training step does not use it (its bags scatter into touched rows directly, `embedding-bag.ts`); it
 * makes plain TF.js autodiff over embeddings work on these backends, which the benchmark's baseline relies on.
 */
import type { Tf } from '../tf.js';

type BackendValues = Float32Array | Int32Array | Uint8Array;

interface WasmLikeBackend {
  readSync(dataId: object): BackendValues;
  makeOutput(shape: number[], dtype: string, memoryOffset?: number, values?: BackendValues): { dataId: object; shape: number[]; dtype: string };
}
interface CpuLikeBackend {
  readSync(dataId: object): BackendValues;
  makeTensorInfo(shape: number[], dtype: string, values?: BackendValues): { dataId: object; shape: number[]; dtype: string };
}

/** out[numSegments, inner]: sum of the rows of x (viewed as [ids.length, inner]) per segment id; others ignored. */
export function segmentSum(x: Float32Array | Int32Array, ids: Int32Array | Float32Array, numSegments: number): Float32Array {
  const inner = ids.length === 0 ? 0 : x.length / ids.length;
  const out = new Float32Array(numSegments * inner);
  for (let i = 0; i < ids.length; i++) {
    const s = ids[i];
    if (s < 0 || s >= numSegments) continue;
    const xo = i * inner;
    const oo = s * inner;
    for (let j = 0; j < inner; j++) out[oo + j] += x[xo + j];
  }
  return out;
}

let registered = false;

/** Register (once per process) the kernel on wasm and replace the slow one on cpu. */
export function registerSegmentSumKernels(tf: Tf): void {
  if (registered) return;
  registered = true;
  for (const backendName of ['wasm', 'cpu'] as const) {
    if (tf.getKernel('UnsortedSegmentSum', backendName)) tf.unregisterKernel('UnsortedSegmentSum', backendName);
    tf.registerKernel({
      kernelName: 'UnsortedSegmentSum',
      backendName,
      kernelFunc: ({ inputs, backend, attrs }) => {
        const { x, segmentIds } = inputs as unknown as Record<'x' | 'segmentIds', { dataId: object; shape: number[]; dtype: string }>;
        const numSegments = (attrs as { numSegments: number }).numSegments;
        const b = backend as unknown as WasmLikeBackend & CpuLikeBackend;
        const values = segmentSum(b.readSync(x.dataId) as Float32Array, b.readSync(segmentIds.dataId) as Int32Array, numSegments);
        const shape = [numSegments, ...x.shape.slice(segmentIds.shape.length)];
        const out = backendName === 'wasm' ? b.makeOutput(shape, 'float32', undefined, values) : b.makeTensorInfo(shape, 'float32', values);
        return out as unknown as ReturnType<Parameters<Tf['registerKernel']>[0]['kernelFunc']>;
      },
    });
  }
}
