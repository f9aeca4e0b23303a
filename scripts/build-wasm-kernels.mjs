#!/usr/bin/env node
/**
 * Assembles am-ml's WebAssembly kernels (the text below: the matrix product and the fused in-batch softmax of the
 * training step) into the two binaries that `src/ml/kernels/wasm-kernels.ts` loads, and writes them base64-encoded
 * to `src/ml/kernels/wasm-kernels.generated.ts`:
 *
 *   node scripts/build-wasm-kernels.mjs           # rewrite the generated module
 *   node scripts/build-wasm-kernels.mjs --check   # exit 1 when it is not what this script produces (a test runs this)
 *
 * Two variants of the same code: `fma` multiplies-and-adds in the product with `f32x4.relaxed_madd` (one fused
 * instruction per four lanes where the CPU has FMA; relaxed SIMD), `simd` with a separate `f32x4.mul` and
 * `f32x4.add` (plain SIMD, for runtimes without relaxed SIMD). Why our own kernels instead of TF.js's: see
 * wasm-gemm.ts and wasm-softmax.ts.
 *
 * The product C[m, n8] = A[m, k] · B[k, n8] works on B packed into panels of 8 columns (`pack_b`), so the
 * micro-kernel reads B sequentially. It is blocked by KC rows of depth (a panel block of KC × 8 floats stays in L1)
 * and MC rows of A (an MC × KC block stays in L2); within a block, 4 rows × 8 columns of C live in 8 SIMD registers
 * for the whole depth. Each element of C is accumulated in increasing k order, one multiply-add at a time, whatever
 * the blocking: the result does not depend on KC or MC.
 *
 * The assembler is the `wabt` package (a devDependency): only this script needs it, never am-ml at run time.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const OUT = path.join(ROOT, 'src/ml/kernels/wasm-kernels.generated.ts');

/** Rows of C per micro-kernel call: 4 rows × 2 vectors = 8 accumulators, plus 2 B vectors and one broadcast A. */
const ROWS = 4;

const get = (name) => `(local.get $${name})`;

/** acc + x·b, fused or not. */
function madd(fma, x, b, acc) {
  return fma ? `(f32x4.relaxed_madd ${x} ${b} ${acc})` : `(f32x4.add (f32x4.mul ${x} ${b}) ${acc})`;
}

/** Address of row r of C: c + r·ldc. */
function cRow(r) {
  return r === 0 ? get('c') : `(i32.add ${get('c')} (i32.mul ${get('ldc')} (i32.const ${r})))`;
}

/**
 * C[rows × 8] (+)= A[rows × kk] · Bpanel[kk × 8]. Row r of A starts `lda` bytes after row r − 1 and steps `astep`
 * bytes per depth (4 and k·4 for row-major A; m·4 and 4 for A given transposed), the panel is packed (32 bytes per
 * depth step), C rows are `ldc` bytes apart; `acc` = 1 adds to what C holds (a later depth block), 0 overwrites.
 */
function microKernel(fma, rows) {
  const aPtr = (r) => (r === 0 ? 'a' : `a${r}`);
  const lines = [];
  lines.push(`(func $k${rows}x8 (param $a i32) (param $lda i32) (param $astep i32) (param $b i32) (param $kk i32) (param $c i32) (param $ldc i32) (param $acc i32)`);
  for (let r = 1; r < rows; r++) lines.push(`  (local $a${r} i32)`);
  lines.push('  (local $end i32) (local $b0 v128) (local $b1 v128) (local $x v128)');
  for (let r = 0; r < rows; r++) lines.push(`  (local $c${r}0 v128) (local $c${r}1 v128)`);
  for (let r = 1; r < rows; r++) lines.push(`  (local.set $a${r} (i32.add ${get(aPtr(r - 1))} ${get('lda')}))`);
  lines.push(`  (if ${get('acc')} (then`);
  for (let r = 0; r < rows; r++) lines.push(`    (local.set $c${r}0 (v128.load ${cRow(r)})) (local.set $c${r}1 (v128.load offset=16 ${cRow(r)}))`);
  lines.push('  ))');
  lines.push(`  (local.set $end (i32.add ${get('b')} (i32.shl ${get('kk')} (i32.const 5))))`);
  lines.push('  (loop $depth');
  lines.push(`    (local.set $b0 (v128.load ${get('b')})) (local.set $b1 (v128.load offset=16 ${get('b')}))`);
  for (let r = 0; r < rows; r++) {
    const a = aPtr(r);
    lines.push(`    (local.set $x (v128.load32_splat ${get(a)}))`);
    lines.push(`    (local.set $c${r}0 ${madd(fma, get('x'), get('b0'), get(`c${r}0`))})`);
    lines.push(`    (local.set $c${r}1 ${madd(fma, get('x'), get('b1'), get(`c${r}1`))})`);
    lines.push(`    (local.set $${a} (i32.add ${get(a)} ${get('astep')}))`);
  }
  lines.push(`    (local.set $b (i32.add ${get('b')} (i32.const 32)))`);
  lines.push(`    (br_if $depth (i32.lt_u ${get('b')} ${get('end')})))`);
  for (let r = 0; r < rows; r++) lines.push(`  (v128.store ${cRow(r)} ${get(`c${r}0`)}) (v128.store offset=16 ${cRow(r)} ${get(`c${r}1`)})`);
  lines.push(')');
  return lines.join('\n');
}

/** Byte address of element (row, col) of a row-major matrix at `base` with `width` columns. */
const at = (base, row, width, col) => `(i32.add ${get(base)} (i32.shl (i32.add (i32.mul ${get(row)} ${get(width)}) ${get(col)}) (i32.const 2)))`;

/** Address of A's element (i, k0) in gemm. */
const aAt = `(i32.add ${get('a')} (i32.add (i32.add (i32.mul (i32.shr_u ${get('i')} (i32.const 2)) ${get('agroup')}) (i32.mul (i32.and ${get('i')} (i32.const 3)) ${get('lda')})) (i32.mul ${get('k0')} ${get('astep')})))`;

function moduleText(fma) {
  return `(module
 (memory (export "memory") 1)
${microKernel(fma, ROWS)}
${microKernel(fma, 1)}
 ;; C[m, n8] = A[m, k] · B where bp holds B packed by pack_b or pack_bt (n8 / 8 panels of k × 8) and element
 ;; (i, p) of A is at a + floor(i/4)*agroup + (i mod 4)*lda + p*astep (bytes): agroup = 4*lda for a plain row-major or
 ;; transposed A, a separate stride for A packed by pack_at. Requires k >= 1.
 (func (export "gemm") (param $a i32) (param $lda i32) (param $agroup i32) (param $astep i32) (param $bp i32) (param $c i32) (param $m i32) (param $k i32) (param $n8 i32) (param $kc i32) (param $mc i32)
  (local $k0 i32) (local $kk i32) (local $i0 i32) (local $iend i32) (local $j i32) (local $i i32) (local $panel i32)
  (local $ldc i32) (local $acc i32)
  (local.set $ldc (i32.shl ${get('n8')} (i32.const 2)))
  (loop $depthBlocks
   (local.set $kk (select ${get('kc')} (i32.sub ${get('k')} ${get('k0')}) (i32.lt_u ${get('kc')} (i32.sub ${get('k')} ${get('k0')}))))
   (local.set $acc (i32.ne ${get('k0')} (i32.const 0)))
   (local.set $i0 (i32.const 0))
   (loop $rowBlocks
    (local.set $iend (select (i32.add ${get('i0')} ${get('mc')}) ${get('m')} (i32.lt_u (i32.add ${get('i0')} ${get('mc')}) ${get('m')})))
    (local.set $j (i32.const 0))
    (loop $panels
     ;; panel j / 8 starts j·k floats into bp; this depth block k0·8 floats into the panel
     (local.set $panel (i32.add ${get('bp')} (i32.shl (i32.add (i32.mul ${get('j')} ${get('k')}) (i32.shl ${get('k0')} (i32.const 3))) (i32.const 2))))
     (local.set $i ${get('i0')})
     (block $fullDone (loop $full
      (br_if $fullDone (i32.gt_u (i32.add ${get('i')} (i32.const ${ROWS})) ${get('iend')}))
      (call $k${ROWS}x8 ${aAt} ${get('lda')} ${get('astep')} ${get('panel')} ${get('kk')} ${at('c', 'i', 'n8', 'j')} ${get('ldc')} ${get('acc')})
      (local.set $i (i32.add ${get('i')} (i32.const ${ROWS})))
      (br $full)))
     (block $restDone (loop $rest
      (br_if $restDone (i32.ge_u ${get('i')} ${get('iend')}))
      (call $k1x8 ${aAt} ${get('lda')} ${get('astep')} ${get('panel')} ${get('kk')} ${at('c', 'i', 'n8', 'j')} ${get('ldc')} ${get('acc')})
      (local.set $i (i32.add ${get('i')} (i32.const 1)))
      (br $rest)))
     (local.set $j (i32.add ${get('j')} (i32.const 8)))
     (br_if $panels (i32.lt_u ${get('j')} ${get('n8')})))
    (local.set $i0 ${get('iend')})
    (br_if $rowBlocks (i32.lt_u ${get('i0')} ${get('m')})))
   (local.set $k0 (i32.add ${get('k0')} ${get('kc')}))
   (br_if $depthBlocks (i32.lt_u ${get('k0')} ${get('k')})))
 )
 ;; Packs row-major B[k, n] at src into n8 / 8 panels of k × 8 at dst, zero-filling the columns past n.
 (func (export "pack_b") (param $src i32) (param $dst i32) (param $k i32) (param $n i32)
  (local $q i32) (local $full i32) (local $p i32) (local $s i32) (local $t i32) (local $w i32)
  (local.set $full (i32.shr_u ${get('n')} (i32.const 3)))
  (block $panelsDone (loop $panels
   (br_if $panelsDone (i32.ge_u ${get('q')} ${get('full')}))
   (local.set $s (i32.add ${get('src')} (i32.shl ${get('q')} (i32.const 5))))
   (local.set $p (i32.const 0))
   (loop $rows
    (v128.store ${get('dst')} (v128.load ${get('s')}))
    (v128.store offset=16 ${get('dst')} (v128.load offset=16 ${get('s')}))
    (local.set $dst (i32.add ${get('dst')} (i32.const 32)))
    (local.set $s (i32.add ${get('s')} (i32.shl ${get('n')} (i32.const 2))))
    (local.set $p (i32.add ${get('p')} (i32.const 1)))
    (br_if $rows (i32.lt_u ${get('p')} ${get('k')})))
   (local.set $q (i32.add ${get('q')} (i32.const 1)))
   (br $panels)))
  (local.set $w (i32.and ${get('n')} (i32.const 7)))
  (if ${get('w')} (then
   (local.set $s (i32.add ${get('src')} (i32.shl ${get('full')} (i32.const 5))))
   (local.set $p (i32.const 0))
   (loop $rows
    (v128.store ${get('dst')} (v128.const i32x4 0 0 0 0))
    (v128.store offset=16 ${get('dst')} (v128.const i32x4 0 0 0 0))
    (local.set $t (i32.const 0))
    (loop $cols
     (f32.store (i32.add ${get('dst')} (i32.shl ${get('t')} (i32.const 2))) (f32.load (i32.add ${get('s')} (i32.shl ${get('t')} (i32.const 2)))))
     (local.set $t (i32.add ${get('t')} (i32.const 1)))
     (br_if $cols (i32.lt_u ${get('t')} ${get('w')})))
    (local.set $dst (i32.add ${get('dst')} (i32.const 32)))
    (local.set $s (i32.add ${get('s')} (i32.shl ${get('n')} (i32.const 2))))
    (local.set $p (i32.add ${get('p')} (i32.const 1)))
    (br_if $rows (i32.lt_u ${get('p')} ${get('k')})))))
 )
 ;; Packs A given transposed (At[k, m] row-major at src) into groups of 4 rows of A: group g holds, for each depth
 ;; p, At[p, 4g..4g+3] (16 bytes; read past m in the last group, never used), so the product reads A sequentially
 ;; (in place, a depth step jumps a whole row of At, a new page at m ≥ 1024). Groups are copied 16 at a time, so
 ;; each source row is read in whole cache lines and each group is written front to back.
 (func (export "pack_at") (param $src i32) (param $dst i32) (param $k i32) (param $m i32)
  (local $groups i32) (local $g0 i32) (local $gend i32) (local $g i32) (local $p i32) (local $row i32)
  (local.set $groups (i32.shr_u (i32.add ${get('m')} (i32.const 3)) (i32.const 2)))
  (block $blocksDone (loop $blocks
   (br_if $blocksDone (i32.ge_u ${get('g0')} ${get('groups')}))
   (local.set $gend (select (i32.add ${get('g0')} (i32.const 16)) ${get('groups')} (i32.lt_u (i32.add ${get('g0')} (i32.const 16)) ${get('groups')})))
   (local.set $p (i32.const 0))
   (loop $depth
    (local.set $row (i32.add ${get('src')} (i32.shl (i32.mul ${get('p')} ${get('m')}) (i32.const 2))))
    (local.set $g ${get('g0')})
    (loop $group
     (v128.store (i32.add ${get('dst')} (i32.shl (i32.add (i32.mul ${get('g')} ${get('k')}) ${get('p')}) (i32.const 4)))
       (v128.load (i32.add ${get('row')} (i32.shl ${get('g')} (i32.const 4)))))
     (local.set $g (i32.add ${get('g')} (i32.const 1)))
     (br_if $group (i32.lt_u ${get('g')} ${get('gend')})))
    (local.set $p (i32.add ${get('p')} (i32.const 1)))
    (br_if $depth (i32.lt_u ${get('p')} ${get('k')})))
   (local.set $g0 ${get('gend')})
   (br $blocks)))
 )
 ;; Packs B given transposed (Bt[n, k] row-major at src) the same way as pack_b: panel q holds Bt rows 8q..8q+7.
 (func (export "pack_bt") (param $src i32) (param $dst i32) (param $k i32) (param $n i32)
  (local $q i32) (local $p i32) (local $t i32) (local $row i32) (local $out i32)
  (block $panelsDone (loop $panels
   (br_if $panelsDone (i32.ge_u (i32.shl ${get('q')} (i32.const 3)) ${get('n')}))
   (local.set $t (i32.const 0))
   (loop $lanes
    (local.set $row (i32.add (i32.shl ${get('q')} (i32.const 3)) ${get('t')}))
    (local.set $out (i32.add ${get('dst')} (i32.shl ${get('t')} (i32.const 2))))
    (local.set $p (i32.const 0))
    (if (i32.lt_u ${get('row')} ${get('n')})
     (then
      (local.set $row ${at('src', 'row', 'k', 'zero')})
      (loop $depth
       (f32.store ${get('out')} (f32.load ${get('row')}))
       (local.set $row (i32.add ${get('row')} (i32.const 4)))
       (local.set $out (i32.add ${get('out')} (i32.const 32)))
       (local.set $p (i32.add ${get('p')} (i32.const 1)))
       (br_if $depth (i32.lt_u ${get('p')} ${get('k')}))))
     (else
      (loop $zeros
       (f32.store ${get('out')} (f32.const 0))
       (local.set $out (i32.add ${get('out')} (i32.const 32)))
       (local.set $p (i32.add ${get('p')} (i32.const 1)))
       (br_if $zeros (i32.lt_u ${get('p')} ${get('k')})))))
    (local.set $t (i32.add ${get('t')} (i32.const 1)))
    (br_if $lanes (i32.lt_u ${get('t')} (i32.const 8))))
   (local.set $dst (i32.add ${get('dst')} (i32.shl ${get('k')} (i32.const 5))))
   (local.set $q (i32.add ${get('q')} (i32.const 1)))
   (br $panels)))
 )
${softmaxRows()}
 ;; Compacts C[m, n8] in place to C[m, n] (n <= n8): rows move towards the start, so copying in row order is safe.
 (func (export "unpad_c") (param $c i32) (param $m i32) (param $n i32) (param $n8 i32)
  (local $i i32)
  (block $done (loop $rows
   (br_if $done (i32.ge_u ${get('i')} ${get('m')}))
   (memory.copy ${at('c', 'i', 'n', 'zero')} ${at('c', 'i', 'n8', 'zero')} (i32.shl ${get('n')} (i32.const 2)))
   (local.set $i (i32.add ${get('i')} (i32.const 1)))
   (br $rows)))
 )
)
`.replace(/\(local\.get \$zero\)/g, '(i32.const 0)');
}

/** exp of each lane of an f32x4 (Cephes expf: ~1 ulp); lanes below −87.3 (masked columns: −∞) give exactly 0. */
function expF32x4(x) {
  const c = (v) => `(f32x4.splat (f32.const ${v}))`;
  return `(block (result v128)
      (local.set $ex ${x})
      (local.set $ez (f32x4.max (local.get $ex) ${c(-87.33654)}))
      (local.set $en (f32x4.floor (f32x4.add (f32x4.mul (local.get $ez) ${c(1.44269504088896341)}) ${c(0.5)})))
      (local.set $ez (f32x4.sub (f32x4.sub (local.get $ez) (f32x4.mul (local.get $en) ${c(0.693359375)})) (f32x4.mul (local.get $en) ${c(-2.12194440e-4)})))
      (local.set $ep ${c(1.9875691500e-4)})
      (local.set $ep (f32x4.add (f32x4.mul (local.get $ep) (local.get $ez)) ${c(1.3981999507e-3)}))
      (local.set $ep (f32x4.add (f32x4.mul (local.get $ep) (local.get $ez)) ${c(8.3334519073e-3)}))
      (local.set $ep (f32x4.add (f32x4.mul (local.get $ep) (local.get $ez)) ${c(4.1665795894e-2)}))
      (local.set $ep (f32x4.add (f32x4.mul (local.get $ep) (local.get $ez)) ${c(1.6666665459e-1)}))
      (local.set $ep (f32x4.add (f32x4.mul (local.get $ep) (local.get $ez)) ${c(5.0000001201e-1)}))
      (local.set $ep (f32x4.add (f32x4.add (f32x4.mul (local.get $ep) (f32x4.mul (local.get $ez) (local.get $ez))) (local.get $ez)) ${c(1)}))
      (local.set $ep (f32x4.mul (local.get $ep) (i32x4.shl (i32x4.add (i32x4.trunc_sat_f32x4_s (local.get $en)) (i32x4.splat (i32.const 127))) (i32.const 23))))
      (v128.bitselect (v128.const i32x4 0 0 0 0) (local.get $ep) (f32x4.lt (local.get $ex) ${c(-87.33654)})))`;
}

/**
 * The in-batch softmax of kernels/in-batch-softmax.ts over a block of rows, in float32 SIMD, in place: s holds
 * S[rows, bs] (bs = b rounded up to 4; padding columns carry logQ = +∞ and keys −1) and receives exp(z − max)
 * scaled by `scaleBase` / row sum, i.e. dL/dS without the −1/(bτ) of the positive. Per row, stats receives
 * (max, z_i, sum, exp(z_h − max)) as float64 for the loss, accuracy and hard-negative gradient, computed in JS.
 */
function softmaxRows() {
  const g = get;
  const lane = (v, k) => `(f32x4.extract_lane ${k} ${v})`;
  return ` (func (export "softmax_rows") (param $s i32) (param $rows i32) (param $bs i32) (param $rowStart i32) (param $invTau f32)
   (param $logQ i32) (param $itemKey i32) (param $userKey i32) (param $hard i32) (param $stats i32) (param $scaleBase f64)
  (local $r i32) (local $i i32) (local $j i32) (local $row i32) (local $p i32)
  (local $vik v128) (local $viu v128) (local $vi v128) (local $jv v128) (local $vmax v128) (local $z v128) (local $m v128) (local $e v128)
  (local $sumLo v128) (local $sumHi v128) (local $vscale v128) (local $vtau v128)
  (local $ex v128) (local $ez v128) (local $en v128) (local $ep v128)
  (local $max f32) (local $h f32) (local $zh f32) (local $zi f32) (local $eh f64) (local $sum f64)
  (local.set $vtau (f32x4.splat ${g('invTau')}))
  (block $rowsDone (loop $rowLoop
   (br_if $rowsDone (i32.ge_u ${g('r')} ${g('rows')}))
   (local.set $i (i32.add ${g('rowStart')} ${g('r')}))
   (local.set $row (i32.add ${g('s')} (i32.shl (i32.mul ${g('r')} ${g('bs')}) (i32.const 2))))
   (local.set $vik (i32x4.splat (i32.load (i32.add ${g('itemKey')} (i32.shl ${g('i')} (i32.const 2))))))
   (local.set $viu (i32x4.splat (i32.load (i32.add ${g('userKey')} (i32.shl ${g('i')} (i32.const 2))))))
   (local.set $vi (i32x4.splat ${g('i')}))
   (local.set $jv (v128.const i32x4 0 1 2 3))
   (local.set $vmax (f32x4.splat (f32.const -inf)))
   ;; pass 1: z = S/τ − logQ, masked (same item or same user in another column) to −∞; running max
   (local.set $j (i32.const 0))
   (loop $p1
    (local.set $p (i32.shl ${g('j')} (i32.const 2)))
    (local.set $z (f32x4.sub (f32x4.mul (v128.load (i32.add ${g('row')} ${g('p')})) ${g('vtau')}) (v128.load (i32.add ${g('logQ')} ${g('p')}))))
    (local.set $m (v128.or (i32x4.eq (v128.load (i32.add ${g('itemKey')} ${g('p')})) ${g('vik')}) (i32x4.eq (v128.load (i32.add ${g('userKey')} ${g('p')})) ${g('viu')})))
    (local.set $m (v128.andnot ${g('m')} (i32x4.eq ${g('jv')} ${g('vi')})))
    (local.set $z (v128.bitselect (f32x4.splat (f32.const -inf)) ${g('z')} ${g('m')}))
    (v128.store (i32.add ${g('row')} ${g('p')}) ${g('z')})
    (local.set $vmax (f32x4.max ${g('vmax')} ${g('z')}))
    (local.set $jv (i32x4.add ${g('jv')} (v128.const i32x4 4 4 4 4)))
    (local.set $j (i32.add ${g('j')} (i32.const 4)))
    (br_if $p1 (i32.lt_u ${g('j')} ${g('bs')})))
   (local.set $max (f32.max (f32.max ${lane(g('vmax'), 0)} ${lane(g('vmax'), 1)}) (f32.max ${lane(g('vmax'), 2)} ${lane(g('vmax'), 3)})))
   ;; the explicit negative (NaN: none)
   (local.set $h (f32.load (i32.add ${g('hard')} (i32.shl ${g('r')} (i32.const 2)))))
   (local.set $zh (select (f32.mul ${g('h')} ${g('invTau')}) (f32.const -inf) (f32.eq ${g('h')} ${g('h')})))
   (local.set $max (f32.max ${g('max')} ${g('zh')}))
   (local.set $zi (f32.load (i32.add ${g('row')} (i32.shl ${g('i')} (i32.const 2)))))
   ;; pass 2: e = exp(z − max), summed in float64
   (local.set $sumLo (f64x2.splat (f64.const 0)))
   (local.set $sumHi (f64x2.splat (f64.const 0)))
   (local.set $j (i32.const 0))
   (loop $p2
    (local.set $p (i32.add ${g('row')} (i32.shl ${g('j')} (i32.const 2))))
    (local.set $e ${expF32x4(`(f32x4.sub (v128.load ${g('p')}) (f32x4.splat ${g('max')}))`)})
    (v128.store ${g('p')} ${g('e')})
    (local.set $sumLo (f64x2.add ${g('sumLo')} (f64x2.promote_low_f32x4 ${g('e')})))
    (local.set $sumHi (f64x2.add ${g('sumHi')} (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 ${g('e')} ${g('e')}))))
    (local.set $j (i32.add ${g('j')} (i32.const 4)))
    (br_if $p2 (i32.lt_u ${g('j')} ${g('bs')})))
   (local.set $eh (f64.promote_f32 (f32x4.extract_lane 0 ${expF32x4(`(f32x4.splat (f32.sub ${g('zh')} ${g('max')}))`)})))
   (local.set $sum (f64.add (f64.add (f64.add (f64x2.extract_lane 0 ${g('sumLo')}) (f64x2.extract_lane 1 ${g('sumLo')}))
     (f64.add (f64x2.extract_lane 0 ${g('sumHi')}) (f64x2.extract_lane 1 ${g('sumHi')}))) ${g('eh')}))
   ;; pass 3: dL/dS = e · (1/(bτ)) / sum
   (local.set $vscale (f32x4.splat (f32.demote_f64 (f64.div ${g('scaleBase')} ${g('sum')}))))
   (local.set $j (i32.const 0))
   (loop $p3
    (local.set $p (i32.add ${g('row')} (i32.shl ${g('j')} (i32.const 2))))
    (v128.store ${g('p')} (f32x4.mul (v128.load ${g('p')}) ${g('vscale')}))
    (local.set $j (i32.add ${g('j')} (i32.const 4)))
    (br_if $p3 (i32.lt_u ${g('j')} ${g('bs')})))
   (local.set $p (i32.add ${g('stats')} (i32.shl ${g('r')} (i32.const 5))))
   (f64.store ${g('p')} (f64.promote_f32 ${g('max')}))
   (f64.store offset=8 ${g('p')} (f64.promote_f32 ${g('zi')}))
   (f64.store offset=16 ${g('p')} ${g('sum')})
   (f64.store offset=24 ${g('p')} ${g('eh')})
   (local.set $r (i32.add ${g('r')} (i32.const 1)))
   (br $rowLoop)))
 )`;
}

async function assemble(fma) {
  const require = createRequire(import.meta.url);
  const wabt = await require('wabt')();
  const parsed = wabt.parseWat(fma ? 'gemm-fma.wat' : 'gemm-simd.wat', moduleText(fma), { simd: true, relaxed_simd: true, bulk_memory: true });
  try {
    parsed.validate();
    return Buffer.from(parsed.toBinary({}).buffer);
  } finally {
    parsed.destroy();
  }
}

function generated(fma, simd) {
  const chunk = (b64) => b64.match(/.{1,100}/g).map((l) => `  '${l}'`).join(' +\n');
  return `// Generated by scripts/build-wasm-kernels.mjs from the WebAssembly text in that script. Do not edit by hand:
// change the script and run \`node scripts/build-wasm-kernels.mjs\` (a test fails when this file is out of date).

/** The kernels, the product with fused multiply-adds (\`f32x4.relaxed_madd\`; needs relaxed SIMD). */
export const WASM_KERNELS_FMA =
${chunk(fma.toString('base64'))};

/** The same kernels with a separate multiply and add (plain WebAssembly SIMD). */
export const WASM_KERNELS_SIMD =
${chunk(simd.toString('base64'))};
`;
}

const text = generated(await assemble(true), await assemble(false));
if (process.argv.includes('--check')) {
  const current = readFileSync(OUT, 'utf8');
  if (current !== text) {
    console.error(`${path.relative(ROOT, OUT)} is out of date: run node scripts/build-wasm-kernels.mjs`);
    process.exit(1);
  }
} else {
  writeFileSync(OUT, text);
  console.log(`wrote ${path.relative(ROOT, OUT)}`);
}
