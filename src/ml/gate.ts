/**
 * Quality gates: `recall@100>=0.2`, `ndcg@10 > 0.05`. Used by `train --gate` and `publish --gate`. A gate over a
 * metric the run does not have fails (it never passes by default), so a renamed metric cannot skip a release.
 */
import { UsageError } from '../errors.js';

export type GateOp = '>=' | '>' | '<=' | '<' | '==';
export interface Gate {
  expression: string;
  metric: string;
  op: GateOp;
  threshold: number;
}
export interface GateOutcome extends Gate {
  actual: number | null;
  passed: boolean;
}

const GATE_RE = /^\s*([A-Za-z][A-Za-z0-9_@.\-/]*)\s*(>=|<=|==|>|<)\s*(-?\d+(?:\.\d+)?(?:e-?\d+)?)\s*$/i;

/** Parse one or more gate expressions (each may also be comma-separated). Throws UsageError naming the bad one. */
export function parseGates(expressions: readonly string[], flag = '--gate'): Gate[] {
  const out: Gate[] = [];
  for (const raw of expressions.flatMap((e) => e.split(','))) {
    if (!raw.trim()) continue;
    const m = GATE_RE.exec(raw);
    if (!m) {
      throw new UsageError(`${flag} '${raw.trim()}' is not a gate; expected <metric><op><number>, e.g. "recall@100>=0.2".`);
    }
    out.push({ expression: raw.trim(), metric: m[1], op: m[2] as GateOp, threshold: Number(m[3]) });
  }
  return out;
}

function compare(a: number, op: GateOp, b: number): boolean {
  switch (op) {
    case '>=':
      return a >= b;
    case '>':
      return a > b;
    case '<=':
      return a <= b;
    case '<':
      return a < b;
    case '==':
      return a === b;
  }
}

/** Evaluate gates over a flat metrics record; a missing or non-finite metric fails its gate. */
export function evaluateGates(gates: readonly Gate[], metrics: Readonly<Record<string, number>>): GateOutcome[] {
  return gates.map((g) => {
    const v = metrics[g.metric];
    const actual = typeof v === 'number' && Number.isFinite(v) ? v : null;
    return { ...g, actual, passed: actual !== null && compare(actual, g.op, g.threshold) };
  });
}

/** One line per failed gate, for error messages. */
export function describeFailedGates(outcomes: readonly GateOutcome[], available: readonly string[]): string {
  return outcomes
    .filter((o) => !o.passed)
    .map((o) =>
      o.actual === null
        ? `${o.expression}: metric '${o.metric}' not found (available: ${available.join(', ') || 'none'})`
        : `${o.expression}: ${o.metric} is ${o.actual}`,
    )
    .join('; ');
}
