/**
 * am-ml's own WebAssembly matrix product, used for training and evaluation on the wasm backend.
 *
 * Why not TF.js's wasm MatMul: it calls XNNPACK, which is built for plain 128-bit WebAssembly SIMD, where a
 * multiply-add is two instructions; on our 2-core Xeons it peaks at ~24 GFLOP/s per core on the training step's
 * shapes. Relaxed SIMD's `f32x4.relaxed_madd` compiles to one FMA instruction on CPUs that have one, and with a
 * 4 × 8 register-blocked micro-kernel (scripts/build-gemm-wasm.mjs) this module reaches ~37 GFLOP/s including
 * packing and copies (~41 in the kernel alone); the plain-SIMD build of the same code ~30. Measured side by side on
 * the step's products: `npm run bench -- --only kernels.gemm`.
 *
 * Relaxed SIMD is standard WebAssembly, on by default from Node 22 (V8 11.4+) and in Deno; Node 20 has it behind a
 * V8 flag, which this module turns on through `process.getBuiltinModule('v8')` (no import, so the module stays
 * loadable where there is no Node). V8 flags are per process: every thread, and so both towers of a two-thread
 * run, sees the same choice. Where relaxed SIMD does not validate, the plain-SIMD build is used; where WebAssembly
 * SIMD is missing altogether, `wasmGemm()` returns undefined and callers keep TF.js's product.
 *
 * Numerics: each element of C is accumulated in increasing k order, one (fused, where the CPU has FMA)
 * multiply-add at a time, so results are deterministic for a given machine and do not depend on the blocking.
 */
import { GEMM_WASM_FMA, GEMM_WASM_SIMD } from './gemm-wasm.generated.js';
import type { MatMul } from './matmul.js';

/** Depth and row blocking (measured best on the step's shapes: 39–42 GFLOP/s for every shape at 256 / 64). */
const KC = 256;
const MC = 64;
const PAGE = 65536;

// The project compiles without the DOM library, and @types/node does not declare WebAssembly: the part used here.
export interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
interface WasmModule {
  readonly __wasmModule: unique symbol;
}
declare const WebAssembly: {
  validate(bytes: Uint8Array): boolean;
  Module: new (bytes: Uint8Array) => WasmModule;
  Instance: new (module: WasmModule, imports: object) => { exports: unknown };
};

export interface KernelExports {
  memory: WasmMemory;
  gemm(a: number, lda: number, astep: number, bp: number, c: number, m: number, k: number, n8: number, kc: number, mc: number): void;
  pack_b(src: number, dst: number, k: number, n: number): void;
  pack_bt(src: number, dst: number, k: number, n: number): void;
  unpad_c(c: number, m: number, n: number, n8: number): void;
  softmax_rows(
    s: number, rows: number, bs: number, rowStart: number, invTau: number,
    logQ: number, itemKey: number, userKey: number, hard: number, stats: number, scaleBase: number,
  ): void;
}

export type WasmGemmVariant = 'fma' | 'simd';

function decode(b64: string): Uint8Array {
  const bin = atob(b64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return bytes;
}

let relaxedSimdTried = false;

/** Node 20 only validates relaxed SIMD behind a V8 flag; turn it on once (harmless where it is already on). */
function enableRelaxedSimd(): void {
  if (relaxedSimdTried) return;
  relaxedSimdTried = true;
  const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
  const v8 = proc?.getBuiltinModule?.('v8') as { setFlagsFromString?: (flags: string) => void } | undefined;
  try {
    v8?.setFlagsFromString?.('--experimental-wasm-relaxed-simd');
  } catch {
    // an engine that rejects the flag simply keeps the plain-SIMD build
  }
}

const modules = new Map<WasmGemmVariant, WasmModule | null>();

function compiled(variant: WasmGemmVariant): WasmModule | null {
  if (!modules.has(variant)) {
    const bytes = decode(variant === 'fma' ? GEMM_WASM_FMA : GEMM_WASM_SIMD);
    modules.set(variant, WebAssembly.validate(bytes) ? new WebAssembly.Module(bytes) : null);
  }
  return modules.get(variant)!;
}

/** The best variant this runtime validates, or undefined without WebAssembly SIMD. */
export function wasmGemmVariant(): WasmGemmVariant | undefined {
  if (typeof WebAssembly === 'undefined') return undefined;
  enableRelaxedSimd();
  if (compiled('fma')) return 'fma';
  if (compiled('simd')) return 'simd';
  return undefined;
}

/** A fresh instance of the kernel module (its own memory), or undefined where WebAssembly SIMD is unavailable. */
export function kernelInstance(variant: WasmGemmVariant | undefined = wasmGemmVariant()): KernelExports | undefined {
  const module = variant && compiled(variant);
  return module ? (new WebAssembly.Instance(module, {}).exports as KernelExports) : undefined;
}

/** Grows an instance's memory to at least `bytes`; true when it grew (typed-array views must then be remade). */
export function ensureMemory(memory: WasmMemory, bytes: number): boolean {
  if (memory.buffer.byteLength >= bytes) return false;
  memory.grow(Math.ceil((bytes - memory.buffer.byteLength) / PAGE));
  return true;
}

/**
 * A MatMul on its own WebAssembly instance (its memory grows to the largest product seen and is reused), or
 * undefined where WebAssembly SIMD is unavailable. `variant` forces one build (tests compare the two).
 */
export function wasmGemm(variant: WasmGemmVariant | undefined = wasmGemmVariant()): MatMul | undefined {
  const instance = kernelInstance(variant);
  if (!instance) return undefined;
  const ex = instance;
  let heap = new Float32Array(ex.memory.buffer);

  /** Float offsets of A, raw B, packed B and C for one product, growing the memory when needed. */
  function layout(m: number, k: number, n: number, n8: number) {
    const align = (x: number) => (x + 3) & ~3; // 16-byte aligned regions
    const a = 0;
    const b = align(a + m * k);
    const bp = align(b + k * n);
    const c = align(bp + k * n8);
    const end = c + m * n8;
    if (ensureMemory(ex.memory, end * 4)) heap = new Float32Array(ex.memory.buffer);
    return { a, b, bp, c };
  }

  /**
   * C[m,n] = A·B with A row-major [m,k] (or given transposed, [k,m]) and B row-major [k,n] (or transposed, [n,k]):
   * the transposed forms only change how A is stepped through and how B is packed, so they cost no extra pass.
   */
  function product(a: Float32Array, aTransposed: boolean, b: Float32Array, bTransposed: boolean, m: number, k: number, n: number, out?: Float32Array) {
    const c = out ?? new Float32Array(m * n);
    if (m === 0 || n === 0) return c;
    if (k === 0) return c.fill(0, 0, m * n);
    const n8 = (n + 7) & ~7;
    const at = layout(m, k, n, n8);
    heap.set(a.subarray(0, m * k), at.a);
    heap.set(b.subarray(0, k * n), at.b);
    if (bTransposed) ex.pack_bt(at.b * 4, at.bp * 4, k, n);
    else ex.pack_b(at.b * 4, at.bp * 4, k, n);
    const [lda, astep] = aTransposed ? [4, m * 4] : [k * 4, 4];
    ex.gemm(at.a * 4, lda, astep, at.bp * 4, at.c * 4, m, k, n8, KC, MC);
    if (n8 !== n) ex.unpad_c(at.c * 4, m, n, n8);
    c.set(heap.subarray(at.c, at.c + m * n));
    return c;
  }

  return {
    name: `wasm-gemm-${variant}`,
    mm: (a, b, m, k, n, out) => product(a, false, b, false, m, k, n, out),
    mmAt: (at, b, m, k, n, out) => product(at, true, b, false, m, k, n, out),
    mmBt: (a, bt, m, k, n, out) => product(a, false, bt, true, m, k, n, out),
  };
}
