import { describe, expect, it } from 'vitest';
import { UsageError } from '../errors.js';
import { describeFailedGates, evaluateGates, parseGates } from './gate.js';

describe('quality gates', () => {
  it('parses repeated and comma-separated expressions', () => {
    const gates = parseGates(['recall@100>=0.2', 'ndcg@10 > 0.05, coverage@100<=1']);
    expect(gates.map((g) => [g.metric, g.op, g.threshold])).toEqual([
      ['recall@100', '>=', 0.2],
      ['ndcg@10', '>', 0.05],
      ['coverage@100', '<=', 1],
    ]);
  });

  it('rejects malformed expressions naming the flag and the expression', () => {
    expect(() => parseGates(['recall@100 => 0.2'])).toThrow(UsageError);
    expect(() => parseGates(['recall@100 => 0.2'])).toThrow(/--gate 'recall@100 => 0.2'/);
  });

  it('fails a gate whose metric is missing instead of passing it', () => {
    const out = evaluateGates(parseGates(['recall@100>=0.2', 'ndcg@10>=0.1']), { 'recall@100': 0.25 });
    expect(out.map((o) => o.passed)).toEqual([true, false]);
    expect(describeFailedGates(out, ['recall@100'])).toMatch(/metric 'ndcg@10' not found \(available: recall@100\)/);
  });

  it('treats NaN as missing', () => {
    expect(evaluateGates(parseGates(['loss<1']), { loss: Number.NaN })[0].passed).toBe(false);
  });
});
