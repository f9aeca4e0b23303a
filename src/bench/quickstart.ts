/**
 * Quickstart time (issue 8): `am-ml quickstart` at its default size (3,000 items, 2,000 users), the README's first
 * command after `npm install`, in a fresh folder. The issue asks for "a few minutes at most on 2 cores"; the goal
 * below reads that as 180 s. Each step's time is reported so a regression points at its step.
 */
import { quickstart } from '../commands/quickstart.js';
import type { Benchmark } from './types.js';

const STEPS = ['init', 'catalog', 'interactions', 'train', 'validate', 'publish', 'embed', 'recommend'] as const;

export const benchmarks: Benchmark[] = [
  {
    name: 'quickstart.default-size',
    issue: 8,
    description: 'am-ml quickstart at its default size (3,000 items, 2,000 users, whole loop offline) in a fresh folder.',
    repeats: 1,
    units: { totalSec: 's', ...Object.fromEntries(STEPS.map((s) => [`${s}Sec`, 's'])), recallAt100: '', popularityRecallAt100: '' },
    goals: [{ metric: 'totalSec', op: '<=', value: 180, description: 'the whole run in a few minutes at most on 2 cores (≤ 180 s)' }],
    async run(ctx) {
      const r = await quickstart({ dir: ctx.tmp, env: {} });
      const steps = Object.fromEntries(r.steps.map((s) => [`${s.name}Sec`, s.seconds]));
      const recall = r.evaluation.metrics.find((m) => m.name === 'recall@100');
      ctx.log(`quickstart: ${r.steps.map((s) => `${s.name} ${s.seconds.toFixed(1)} s`).join(', ')}`);
      return {
        totalSec: r.seconds,
        ...steps,
        recallAt100: recall?.model ?? Number.NaN,
        popularityRecallAt100: recall?.popularity ?? Number.NaN,
      };
    },
  },
];
