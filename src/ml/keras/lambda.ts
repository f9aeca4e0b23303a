/**
 * Recognising `Lambda` layers that are an L2 normalisation, so they can run as the `AmMlL2Normalize` shim.
 *
 * Keras stores a lambda as base64 of `marshal.dumps(func.__code__)`: CPython bytecode, which differs between Python
 * versions. We decode the marshal data and run a tiny symbolic interpreter over the bytecode for CPython 3.8–3.13,
 * accepting only one exact shape of code: `lambda x: <F>(x[, axis][, axis=…][, epsilon=…][, order=2])` where `<F>`
 * is a dotted global name from a fixed list (`tf.math.l2_normalize`, `tf.nn.l2_normalize`, `K.l2_normalize`,
 * `keras.ops.normalize`, `ops.normalize`, …) and every other argument is a constant. Any other instruction, name,
 * closure or default makes the lambda unrecognised: the user can still map it explicitly with `--map-lambda`.
 *
 * A Lambda that references a named function (`{"class_name": "function", "config": "l2_normalize"}`) is not
 * recognised automatically: the name alone does not say which function it was.
 */

export interface LambdaMapping {
  /** Axis of the sum of squares (as given; negative counts from the end). */
  axis: number;
  /** The shim computes `x * min(rsqrt(Σx²), maxInverseNorm)`. */
  maxInverseNorm: number;
}

export type LambdaRecognition = { ok: true; mapping: LambdaMapping; how: string } | { ok: false; reason: string };

// tf.math.l2_normalize: x * rsqrt(max(Σx², ε)), ε = 1e-12  →  min(rsqrt(Σx²), 1/√ε)
// keras.ops.normalize(order=2): x * min(rsqrt(Σx²), 1/ε), ε = backend.epsilon() = 1e-7
const TF_FAMILY = new Set(['tf.math.l2_normalize', 'tf.nn.l2_normalize', 'tensorflow.math.l2_normalize', 'tensorflow.nn.l2_normalize', 'tf.linalg.l2_normalize', 'K.l2_normalize', 'backend.l2_normalize', 'keras.backend.l2_normalize', 'tf.keras.backend.l2_normalize']);
const KERAS_OPS_FAMILY = new Set(['keras.ops.normalize', 'ops.normalize', 'keras.ops.nn.normalize', 'keras.src.ops.normalize']);

/** Parse `l2_normalize:axis=-1[:epsilon=1e-12]` (tf semantics) or `normalize:axis=-1[:epsilon=1e-7]` (keras.ops). */
export function parseLambdaMapping(spec: string): LambdaMapping {
  const [fn, ...params] = spec.split(':');
  const values = new Map<string, number>();
  for (const p of params) {
    const m = /^(axis|epsilon)=(-?[0-9.eE+-]+)$/.exec(p);
    if (!m || !Number.isFinite(Number(m[2]))) throw new Error(`'${p}' is not axis=<int> or epsilon=<number>`);
    values.set(m[1], Number(m[2]));
  }
  const axis = values.get('axis') ?? -1;
  if (!Number.isInteger(axis)) throw new Error(`axis must be a whole number, got ${axis}`);
  if (fn === 'l2_normalize') return { axis, maxInverseNorm: 1 / Math.sqrt(values.get('epsilon') ?? 1e-12) };
  if (fn === 'normalize') return { axis, maxInverseNorm: 1 / (values.get('epsilon') ?? 1e-7) };
  throw new Error(`unknown function '${fn}' (use l2_normalize or normalize)`);
}

export function recognizeLambda(config: Record<string, unknown>): LambdaRecognition {
  const fn = config.function;
  let b64: string | undefined;
  let hasDefaults = false;
  let hasClosure = false;
  if (fn && typeof fn === 'object' && !Array.isArray(fn)) {
    const f = fn as Record<string, unknown>;
    if (f.class_name === '__lambda__' && f.config && typeof f.config === 'object') {
      const c = f.config as Record<string, unknown>;
      b64 = typeof c.code === 'string' ? c.code : undefined;
      hasDefaults = c.defaults !== null && c.defaults !== undefined;
      hasClosure = c.closure !== null && c.closure !== undefined;
    } else if (f.class_name === 'function') {
      return { ok: false, reason: `it calls a function named '${String(f.config)}', which cannot be identified from its name` };
    }
  } else if (Array.isArray(fn) && config.function_type === 'lambda') {
    b64 = typeof fn[0] === 'string' ? fn[0] : undefined; // Keras 2: [code, defaults, closure]
    hasDefaults = fn[1] !== null && fn[1] !== undefined;
    hasClosure = fn[2] !== null && fn[2] !== undefined;
  } else if (typeof fn === 'string') {
    return { ok: false, reason: `it calls a function named '${fn}', which cannot be identified from its name` };
  }
  if (!b64) return { ok: false, reason: 'no lambda code found' };
  if (hasDefaults || hasClosure) return { ok: false, reason: 'the lambda has defaults or a closure' };
  const args = config.arguments;
  if (args && typeof args === 'object' && Object.keys(args).length > 0) return { ok: false, reason: 'the Lambda passes extra arguments' };
  let code: CodeObject;
  try {
    const bytes = Uint8Array.from(Buffer.from(b64.replace(/\s+/g, ''), 'base64'));
    const v = new MarshalReader(bytes).read();
    if (!(v instanceof CodeObject)) return { ok: false, reason: 'the lambda code is not a code object' };
    code = v;
  } catch (err) {
    return { ok: false, reason: `its code cannot be decoded (${(err as Error).message})` };
  }
  if (code.argcount !== 1 || code.kwonlyargcount !== 0 || code.varnames.length !== 1) return { ok: false, reason: 'the lambda does not take exactly one argument' };
  const outcomes = new Map<string, { call: SymCall; version: string }>();
  for (const table of TABLES) {
    if (table.layout !== code.layout) continue;
    const call = interpret(code, table);
    if (call) outcomes.set(JSON.stringify(call), { call, version: table.name });
  }
  if (outcomes.size === 0) return { ok: false, reason: 'its bytecode is not a single call of a known L2-normalisation function on the input' };
  if (outcomes.size > 1) return { ok: false, reason: 'its bytecode reads differently under different Python versions' };
  const { call, version } = [...outcomes.values()][0];
  const mapping = mappingOf(call);
  if (!mapping.ok) return { ok: false, reason: mapping.reason };
  return { ok: true, mapping: mapping.mapping, how: `recognised ${call.fn}(x, ${JSON.stringify(call.kwargs)}) in CPython ${version} bytecode` };
}

interface SymCall {
  fn: string;
  positional: unknown[];
  kwargs: Record<string, unknown>;
}

function mappingOf(call: SymCall): { ok: true; mapping: LambdaMapping } | { ok: false; reason: string } {
  const tfFamily = TF_FAMILY.has(call.fn);
  const opsFamily = KERAS_OPS_FAMILY.has(call.fn);
  if (!tfFamily && !opsFamily) return { ok: false, reason: `it calls ${call.fn}, not an L2 normalisation` };
  // Positional parameters after x: tf → (axis, epsilon); keras.ops.normalize → (axis, order, epsilon).
  const names = tfFamily ? ['axis', 'epsilon'] : ['axis', 'order', 'epsilon'];
  if (call.positional.length > names.length) return { ok: false, reason: 'too many arguments' };
  const params: Record<string, unknown> = {};
  call.positional.forEach((v, i) => (params[names[i]] = v));
  for (const [k, v] of Object.entries(call.kwargs)) {
    if (!names.includes(k) || k in params) return { ok: false, reason: `unexpected argument '${k}'` };
    params[k] = v;
  }
  const axis = params.axis === undefined ? (tfFamily ? undefined : -1) : params.axis;
  if (typeof axis !== 'number' || !Number.isInteger(axis)) {
    return { ok: false, reason: axis === undefined ? 'no axis given (tf.math.l2_normalize would normalise over every axis, batch included)' : 'the axis is not one whole number' };
  }
  if (opsFamily && params.order !== undefined && params.order !== 2) return { ok: false, reason: 'order is not 2' };
  const eps = params.epsilon ?? (tfFamily ? 1e-12 : 1e-7);
  if (typeof eps !== 'number' || !(eps > 0)) return { ok: false, reason: 'epsilon is not a positive number' };
  return { ok: true, mapping: { axis, maxInverseNorm: tfFamily ? 1 / Math.sqrt(eps) : 1 / eps } };
}

// ---------------------------------------------------------------------------------------------------------------
// marshal
// ---------------------------------------------------------------------------------------------------------------

class CodeObject {
  constructor(
    readonly layout: 'pre311' | 'post311',
    readonly argcount: number,
    readonly kwonlyargcount: number,
    readonly code: Uint8Array,
    readonly consts: unknown[],
    readonly names: string[],
    readonly varnames: string[],
  ) {}
}

class PyNone {}
const NONE = new PyNone();

class MarshalReader {
  private pos = 0;
  private readonly refs: unknown[] = [];
  private depth = 0;
  constructor(private readonly b: Uint8Array) {}

  private byte(): number {
    if (this.pos >= this.b.length) throw new Error('truncated marshal data');
    return this.b[this.pos++];
  }
  private i32(): number {
    const v = this.byte() | (this.byte() << 8) | (this.byte() << 16) | (this.byte() << 24);
    return v;
  }
  private bytes(n: number): Uint8Array {
    if (n < 0 || this.pos + n > this.b.length) throw new Error('truncated marshal data');
    const out = this.b.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  read(): unknown {
    if (++this.depth > 64) throw new Error('marshal data nests too deeply');
    try {
      return this.readInner();
    } finally {
      this.depth--;
    }
  }

  private readInner(): unknown {
    const code = this.byte();
    const flag = (code & 0x80) !== 0;
    const type = String.fromCharCode(code & 0x7f);
    let slot = -1;
    const reserve = () => {
      if (flag) {
        slot = this.refs.length;
        this.refs.push(undefined);
      }
    };
    const done = <T>(v: T): T => {
      if (flag) {
        if (slot < 0) this.refs.push(v);
        else this.refs[slot] = v;
      }
      return v;
    };
    switch (type) {
      case 'N':
        return done(NONE);
      case 'T':
        return done(true);
      case 'F':
        return done(false);
      case '.':
        return done('...');
      case 'i':
        return done(this.i32());
      case 'g': {
        const dv = new DataView(this.b.buffer, this.b.byteOffset + this.pos, 8);
        if (this.pos + 8 > this.b.length) throw new Error('truncated marshal data');
        const v = dv.getFloat64(0, true);
        this.pos += 8;
        return done(v);
      }
      case 'l': {
        const n = this.i32();
        let v = 0;
        for (let i = 0; i < Math.abs(n); i++) v += (this.byte() | (this.byte() << 8)) * 2 ** (15 * i);
        return done(n < 0 ? -v : v);
      }
      case 's':
        return done(this.bytes(this.i32()));
      case 'z':
      case 'Z':
        return done(new TextDecoder('latin1').decode(this.bytes(this.byte())));
      case 'a':
      case 'A':
        return done(new TextDecoder('latin1').decode(this.bytes(this.i32())));
      case 'u':
      case 't':
        return done(new TextDecoder('utf-8').decode(this.bytes(this.i32())));
      case ')':
      case '(':
      case '[': {
        const n = type === ')' ? this.byte() : this.i32();
        if (n < 0 || n > 10_000) throw new Error('bad tuple size');
        reserve();
        const items: unknown[] = [];
        for (let i = 0; i < n; i++) items.push(this.read());
        return done(items);
      }
      case 'r': {
        const idx = this.i32();
        if (idx < 0 || idx >= this.refs.length) throw new Error('bad marshal back-reference');
        return this.refs[idx];
      }
      case 'c': {
        reserve();
        // CPython ≥ 3.11: argcount, posonly, kwonly, stacksize, flags; 3.8–3.10 add nlocals before stacksize.
        // The code bytes object follows the ints, so its type byte tells the two layouts apart.
        const at = (off: number) => this.b[this.pos + off] & 0x7f;
        const layout = at(20) === 0x73 ? 'post311' : at(24) === 0x73 ? 'pre311' : undefined;
        if (!layout) throw new Error('unknown code object layout');
        const argcount = this.i32();
        this.i32(); // posonlyargcount
        const kwonly = this.i32();
        if (layout === 'pre311') this.i32(); // nlocals
        this.i32(); // stacksize
        this.i32(); // flags
        const codeBytes = this.read();
        const consts = this.read();
        const names = this.read();
        let varnames: unknown;
        if (layout === 'post311') {
          varnames = this.read(); // localsplusnames
          this.read(); // localspluskinds
        } else {
          varnames = this.read();
          const free = this.read();
          const cell = this.read();
          if ((Array.isArray(free) && free.length) || (Array.isArray(cell) && cell.length)) throw new Error('closures are not supported');
        }
        this.read(); // filename
        this.read(); // name
        if (layout === 'post311') this.read(); // qualname
        this.i32(); // firstlineno
        this.read(); // linetable / lnotab
        if (layout === 'post311') this.read(); // exceptiontable
        if (!(codeBytes instanceof Uint8Array) || !Array.isArray(consts) || !Array.isArray(names) || !Array.isArray(varnames)) throw new Error('malformed code object');
        return done(new CodeObject(layout, argcount, kwonly, codeBytes, consts, names.map(String), varnames.map(String)));
      }
      default:
        throw new Error(`unsupported marshal type '${type}'`);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Bytecode tables for the instructions our one pattern uses, per CPython version (from dis.opmap / caches)
// ---------------------------------------------------------------------------------------------------------------

type Op = 'RESUME' | 'CACHE' | 'NOP' | 'PUSH_NULL' | 'LOAD_GLOBAL' | 'LOAD_ATTR' | 'LOAD_METHOD' | 'LOAD_FAST' | 'LOAD_CONST' | 'KW_NAMES' | 'PRECALL' | 'CALL' | 'CALL_KW' | 'CALL_FUNCTION' | 'CALL_FUNCTION_KW' | 'CALL_METHOD' | 'RETURN_VALUE' | 'EXTENDED_ARG';

interface OpTable {
  name: string;
  layout: 'pre311' | 'post311';
  ops: Partial<Record<number, Op>>;
  /** Inline cache entries (2 bytes each) after an instruction. */
  caches: Partial<Record<Op, number>>;
  /** LOAD_GLOBAL's arg: names index (<3.11) or index << 1 | push-null. */
  globalShift: 0 | 1;
  /** LOAD_ATTR's arg: names index (<3.12) or index << 1 | method. */
  attrShift: 0 | 1;
}

const TABLES: OpTable[] = [
  {
    name: '3.8–3.10',
    layout: 'pre311',
    ops: { 9: 'NOP', 116: 'LOAD_GLOBAL', 106: 'LOAD_ATTR', 160: 'LOAD_METHOD', 124: 'LOAD_FAST', 100: 'LOAD_CONST', 131: 'CALL_FUNCTION', 141: 'CALL_FUNCTION_KW', 161: 'CALL_METHOD', 83: 'RETURN_VALUE', 144: 'EXTENDED_ARG' },
    caches: {},
    globalShift: 0,
    attrShift: 0,
  },
  {
    name: '3.11',
    layout: 'post311',
    ops: { 0: 'CACHE', 9: 'NOP', 151: 'RESUME', 2: 'PUSH_NULL', 116: 'LOAD_GLOBAL', 106: 'LOAD_ATTR', 160: 'LOAD_METHOD', 124: 'LOAD_FAST', 100: 'LOAD_CONST', 172: 'KW_NAMES', 166: 'PRECALL', 171: 'CALL', 83: 'RETURN_VALUE', 144: 'EXTENDED_ARG' },
    caches: { LOAD_GLOBAL: 5, LOAD_ATTR: 4, LOAD_METHOD: 10, PRECALL: 1, CALL: 4 },
    globalShift: 1,
    attrShift: 0,
  },
  {
    name: '3.12',
    layout: 'post311',
    ops: { 0: 'CACHE', 9: 'NOP', 151: 'RESUME', 2: 'PUSH_NULL', 116: 'LOAD_GLOBAL', 106: 'LOAD_ATTR', 124: 'LOAD_FAST', 100: 'LOAD_CONST', 172: 'KW_NAMES', 171: 'CALL', 83: 'RETURN_VALUE', 144: 'EXTENDED_ARG' },
    caches: { LOAD_GLOBAL: 4, LOAD_ATTR: 9, CALL: 3 },
    globalShift: 1,
    attrShift: 1,
  },
  {
    name: '3.13',
    layout: 'post311',
    ops: { 0: 'CACHE', 30: 'NOP', 149: 'RESUME', 34: 'PUSH_NULL', 91: 'LOAD_GLOBAL', 82: 'LOAD_ATTR', 85: 'LOAD_FAST', 83: 'LOAD_CONST', 53: 'CALL', 57: 'CALL_KW', 36: 'RETURN_VALUE', 71: 'EXTENDED_ARG' },
    caches: { LOAD_GLOBAL: 4, LOAD_ATTR: 9, CALL: 3 },
    globalShift: 1,
    attrShift: 1,
  },
];

type Sym = { k: 'null' } | { k: 'name'; path: string[] } | { k: 'arg' } | { k: 'const'; v: unknown } | { k: 'call'; call: SymCall };

function plain(v: unknown): unknown {
  if (v === NONE) return null;
  if (Array.isArray(v)) return v.map(plain);
  return v;
}

/** Run the pattern interpreter; returns the single call the lambda returns, or undefined. */
function interpret(code: CodeObject, t: OpTable): SymCall | undefined {
  const stack: Sym[] = [];
  let kwNames: string[] | undefined;
  const b = code.code;
  let ext = 0;
  const pop = (): Sym | undefined => stack.pop();
  /** Pop a call's operands; `nullBelow`: the callable sits on a NULL slot (3.11+ CALL, and CALL_METHOD). */
  const makeCall = (argc: number, kwTuple: string[] | undefined, nullBelow: boolean): boolean => {
    const args: Sym[] = [];
    for (let i = 0; i < argc; i++) {
      const a = pop();
      if (!a) return false;
      args.unshift(a);
    }
    const callee = pop();
    // [NULL, callable] is a plain function call; [callable, self] would be a method call on an object.
    if (nullBelow && pop()?.k !== 'null') return false;
    if (callee?.k !== 'name') return false;
    const kws = kwTuple ?? [];
    const positionalCount = argc - kws.length;
    if (positionalCount < 1) return false;
    const [first, ...rest] = args.slice(0, positionalCount);
    if (first.k !== 'arg') return false;
    const positional: unknown[] = [];
    for (const r of rest) {
      if (r.k !== 'const') return false;
      positional.push(plain(r.v));
    }
    const kwargs: Record<string, unknown> = {};
    for (let i = 0; i < kws.length; i++) {
      const a = args[positionalCount + i];
      if (a.k !== 'const') return false;
      kwargs[kws[i]] = plain(a.v);
    }
    stack.push({ k: 'call', call: { fn: callee.path.join('.'), positional, kwargs } });
    return true;
  };
  for (let pc = 0; pc + 1 < b.length; ) {
    const op = t.ops[b[pc]];
    const arg = b[pc + 1] | ext;
    pc += 2;
    if (!op) return undefined;
    if (op === 'EXTENDED_ARG') {
      ext = arg << 8;
      continue;
    }
    ext = 0;
    pc += 2 * (t.caches[op] ?? 0);
    switch (op) {
      case 'CACHE':
      case 'NOP':
      case 'RESUME':
        break;
      case 'PUSH_NULL':
        stack.push({ k: 'null' });
        break;
      case 'LOAD_GLOBAL': {
        const name = code.names[arg >> t.globalShift];
        if (name === undefined) return undefined;
        if (t.globalShift && arg & 1 && t.name !== '3.13') stack.push({ k: 'null' });
        stack.push({ k: 'name', path: [name] });
        if (t.globalShift && arg & 1 && t.name === '3.13') stack.push({ k: 'null' });
        break;
      }
      case 'LOAD_ATTR':
      case 'LOAD_METHOD': {
        const top = pop();
        const name = code.names[arg >> (op === 'LOAD_ATTR' ? t.attrShift : 0)];
        if (top?.k !== 'name' || name === undefined) return undefined;
        const method = op === 'LOAD_METHOD' || (t.attrShift === 1 && (arg & 1) === 1);
        // A method load pushes [NULL, function] for a plain function reached through a module attribute.
        if (method && t.name !== '3.13') stack.push({ k: 'null' });
        stack.push({ k: 'name', path: [...top.path, name] });
        if (method && t.name === '3.13') stack.push({ k: 'null' });
        break;
      }
      case 'LOAD_FAST':
        if (arg !== 0) return undefined;
        stack.push({ k: 'arg' });
        break;
      case 'LOAD_CONST':
        if (arg >= code.consts.length) return undefined;
        stack.push({ k: 'const', v: code.consts[arg] });
        break;
      case 'KW_NAMES': {
        const v = code.consts[arg];
        if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) return undefined;
        kwNames = v as string[];
        break;
      }
      case 'PRECALL':
        break;
      case 'CALL':
        if (t.name === '3.13' ? !makeCall313(stack, arg, []) : !makeCall(arg, kwNames, true)) return undefined;
        kwNames = undefined;
        break;
      case 'CALL_KW':
      case 'CALL_FUNCTION_KW': {
        const names = pop();
        if (names?.k !== 'const' || !Array.isArray(names.v) || !names.v.every((x) => typeof x === 'string')) return undefined;
        if (op === 'CALL_KW') {
          // 3.13: stack is [callable, NULL|self, args..., kwnames]
          if (!makeCall313(stack, arg, names.v as string[])) return undefined;
        } else if (!makeCall(arg, names.v as string[], false)) return undefined;
        break;
      }
      case 'CALL_FUNCTION':
        if (!makeCall(arg, undefined, false)) return undefined;
        break;
      case 'CALL_METHOD':
        if (!makeCall(arg, undefined, true)) return undefined;
        break;
      case 'RETURN_VALUE': {
        const top = pop();
        if (top?.k !== 'call' || stack.length !== 0) return undefined;
        // Nothing may follow the return except padding caches.
        for (let rest = pc; rest < b.length; rest += 2) if (t.ops[b[rest]] !== 'CACHE') return undefined;
        return top.call;
      }
      default:
        return undefined;
    }
  }
  return undefined;

  function makeCall313(st: Sym[], argc: number, kws: string[]): boolean {
    // In 3.13 the callable sits below its NULL/self slot; reorder to the 3.11 layout and reuse makeCall.
    const args = st.splice(st.length - argc, argc);
    const self = st.pop();
    const callee = st.pop();
    if (self?.k !== 'null' || callee?.k !== 'name') return false;
    st.push({ k: 'null' }, callee, ...args);
    return makeCall(argc, kws, true);
  }
}
