/**
 * The Lambda recogniser on real marshalled code objects from CPython 3.9–3.13 (written by the fixture generator):
 * every L2 normalisation spelling is recognised with the right axis and epsilon, and every look-alike is refused.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { FIXTURES_DIR } from '../../testing/tmp-dir.js';
import { parseLambdaMapping, recognizeLambda } from './lambda.js';

interface BytecodeFixture {
  expected: Record<string, [number, number] | null>;
  sources: Record<string, string>;
  pythons: Array<{ python: string; codes: Record<string, string> }>;
}

const fixture = JSON.parse(readFileSync(path.join(FIXTURES_DIR, 'keras/generated/lambda-bytecode.json'), 'utf8')) as BytecodeFixture;
const keras3 = (code: string) => ({ function: { class_name: '__lambda__', config: { code, defaults: null, closure: null } }, arguments: {} });
const keras2 = (code: string) => ({ function: [code, null, null], function_type: 'lambda', arguments: {} });

describe('recognizeLambda', () => {
  it('has bytecode from at least four CPython versions', () => {
    expect(fixture.pythons.map((p) => p.python).sort()).toEqual(expect.arrayContaining(['3.10', '3.11', '3.12', '3.13']));
  });

  for (const { python, codes } of fixture.pythons) {
    for (const [name, expected] of Object.entries(fixture.expected)) {
      it(`CPython ${python}: ${fixture.sources[name]} → ${expected ? `axis ${expected[0]}, max 1/norm ${expected[1]}` : 'refused'}`, () => {
        for (const config of [keras3(codes[name]), keras2(codes[name])]) {
          const r = recognizeLambda(config);
          if (expected) {
            expect(r.ok, r.ok ? '' : r.reason).toBe(true);
            if (r.ok) {
              expect(r.mapping.axis).toBe(expected[0]);
              expect(r.mapping.maxInverseNorm).toBeCloseTo(expected[1], -1);
            }
          } else {
            expect(r.ok).toBe(false);
          }
        }
      });
    }
  }

  it('refuses named functions, defaults, closures, extra arguments and garbage', () => {
    const code = fixture.pythons[0].codes.tf_math_axis_kw;
    expect(recognizeLambda({ function: { class_name: 'function', config: 'l2_normalize' } })).toMatchObject({ ok: false, reason: expect.stringMatching(/named 'l2_normalize'/) });
    expect(recognizeLambda({ function: { class_name: '__lambda__', config: { code, defaults: [1], closure: null } } }).ok).toBe(false);
    expect(recognizeLambda({ function: { class_name: '__lambda__', config: { code, defaults: null, closure: ['x'] } } }).ok).toBe(false);
    expect(recognizeLambda({ ...keras3(code), arguments: { axis: 2 } }).ok).toBe(false);
    expect(recognizeLambda(keras3('bm90IG1hcnNoYWw=')).ok).toBe(false);
    expect(recognizeLambda(keras3(code.slice(0, 40))).ok).toBe(false);
  });
});

describe('parseLambdaMapping', () => {
  it('reads tf and keras.ops semantics', () => {
    expect(parseLambdaMapping('l2_normalize:axis=-1')).toEqual({ axis: -1, maxInverseNorm: 1e6 });
    expect(parseLambdaMapping('l2_normalize:axis=1:epsilon=1e-10').maxInverseNorm).toBeCloseTo(1e5, 3);
    expect(parseLambdaMapping('normalize:axis=-1')).toEqual({ axis: -1, maxInverseNorm: 1e7 });
    expect(() => parseLambdaMapping('softmax:axis=-1')).toThrow(/unknown function/);
    expect(() => parseLambdaMapping('l2_normalize:axis=0.5')).toThrow(/whole number/);
    expect(() => parseLambdaMapping('l2_normalize:dims=2')).toThrow();
  });
});
