/**
 * One benchmark of `npm run bench`. The runner (src/bench/index.ts) runs each `repeats` times, takes the median
 * of every metric, checks the goal, and rewrites BENCHMARKS.md with the machine, date and command.
 */
export interface BenchContext {
  /** A fresh temporary directory for this run (removed afterwards). */
  tmp: string;
  /** Progress line on stderr. */
  log(text: string): void;
}

export interface BenchGoal {
  /** Metric the goal is about (a key of the run's result). */
  metric: string;
  op: '>=' | '<=';
  value: number;
  /** The limit as the issue words it: "≥ 0.95 of the request budget at --rps 20". */
  description: string;
}

export interface Benchmark {
  /** Short id: `sync-dmm.replay-rps20`. */
  name: string;
  /** Issue number the numbers answer. */
  issue: number;
  /** What is measured, one sentence. */
  description: string;
  /** Runs to take the median of. @default 3 */
  repeats?: number;
  /** Metric units for the report: `{ itemsPerSec: 'items/s' }`. */
  units?: Record<string, string>;
  goals?: BenchGoal[];
  run(ctx: BenchContext): Promise<Record<string, number>>;
}
