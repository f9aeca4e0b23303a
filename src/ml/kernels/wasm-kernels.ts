/**
 * Loads am-ml's WebAssembly kernels (the matrix product of wasm-gemm.ts and the softmax of wasm-softmax.ts; text
 * and assembly in scripts/build-wasm-kernels.mjs, bytes in wasm-kernels.generated.ts) and gives each caller its own
 * instance, with its own memory.
 *
 * Two builds: `fma` (the product's multiply-adds fused through relaxed SIMD's `f32x4.relaxed_madd`) and `simd`
 * (plain WebAssembly SIMD). Relaxed SIMD is standard WebAssembly, on by default from Node 22 (V8 11.4+) and in Deno;
 * Node 20 has it behind a V8 flag, which this module turns on through `process.getBuiltinModule('v8')` (no import,
 * so the module stays loadable where there is no Node). V8 flags are per process: every thread, and so both towers
 * of a two-thread run, makes the same choice.
 */
import { WASM_KERNELS_FMA, WASM_KERNELS_SIMD } from './wasm-kernels.generated.js';

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
  gemm(a: number, lda: number, agroup: number, astep: number, bp: number, c: number, m: number, k: number, n8: number, kc: number, mc: number): void;
  pack_b(src: number, dst: number, k: number, n: number): void;
  pack_bt(src: number, dst: number, k: number, n: number): void;
  pack_at(src: number, dst: number, k: number, m: number): void;
  unpad_c(c: number, m: number, n: number, n8: number): void;
  softmax_rows(
    s: number, rows: number, bs: number, rowStart: number, invTau: number,
    logQ: number, itemKey: number, userKey: number, hard: number, stats: number, scaleBase: number,
  ): void;
}

export type WasmKernelsVariant = 'fma' | 'simd';

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

const modules = new Map<WasmKernelsVariant, WasmModule | null>();

function compiled(variant: WasmKernelsVariant): WasmModule | null {
  if (!modules.has(variant)) {
    if (variant === 'fma') enableRelaxedSimd();
    const bytes = decode(variant === 'fma' ? WASM_KERNELS_FMA : WASM_KERNELS_SIMD);
    modules.set(variant, WebAssembly.validate(bytes) ? new WebAssembly.Module(bytes) : null);
  }
  return modules.get(variant)!;
}

/** The best variant this runtime validates, or undefined without WebAssembly SIMD. */
export function wasmKernelsVariant(): WasmKernelsVariant | undefined {
  if (typeof WebAssembly === 'undefined') return undefined;
  if (compiled('fma')) return 'fma';
  if (compiled('simd')) return 'simd';
  return undefined;
}

/** A fresh instance of the kernel module (its own memory), or undefined where WebAssembly SIMD is unavailable. */
export function kernelInstance(variant: WasmKernelsVariant | undefined = wasmKernelsVariant()): KernelExports | undefined {
  const module = variant && compiled(variant);
  return module ? (new WebAssembly.Instance(module, {}).exports as KernelExports) : undefined;
}

/** Grows an instance's memory to at least `bytes`; true when it grew (typed-array views must then be remade). */
export function ensureMemory(memory: WasmMemory, bytes: number): boolean {
  if (memory.buffer.byteLength >= bytes) return false;
  memory.grow(Math.ceil((bytes - memory.buffer.byteLength) / PAGE));
  return true;
}
