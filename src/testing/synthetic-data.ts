/**
 * Small planted-structure datasets and a small model configuration for training tests: big enough that a
 * feature-reading model clearly beats popularity, small enough to train in seconds on a shared 2-core machine.
 */
import { writeDatasetFolder } from '../ml/data/dataset.js';
import type { TrainingData } from '../ml/data/types.js';
import { DEFAULT_FEATURE_CONFIG } from '../ml/features/index.js';
import { generateCatalog, generateInteractions, type SyntheticInteractions } from '../ml/synthetic.js';
import type { TrainConfig } from '../ml/train.js';

export interface TinyData {
  data: TrainingData;
  planted: SyntheticInteractions;
}

export function tinyTrainingData(opts: { seed?: number; items?: number; users?: number } = {}): TinyData {
  const seed = opts.seed ?? 1;
  const items = generateCatalog({ seed, items: opts.items ?? 600, genres: 8, tags: 50 });
  const planted = generateInteractions(items, { seed: seed + 1, users: opts.users ?? 300, clusters: 6, likesPerUser: [8, 24] });
  return {
    data: { source: 'synthetic', items, interactions: planted.interactions, summary: {}, badRows: [], notes: [] },
    planted,
  };
}

export function writeTinyDataset(dir: string, opts: { seed?: number; items?: number; users?: number } = {}): TinyData {
  const t = tinyTrainingData(opts);
  writeDatasetFolder(dir, { items: t.data.items, interactions: t.data.interactions });
  return t;
}

/** A model small enough for tests (dims 16–32, one hidden layer of 32). */
export const TINY_TRAIN_CONFIG: Partial<TrainConfig> = {
  dim: 16,
  hidden: [32],
  batchSize: 128,
  epochs: 3,
  learningRate: 0.01,
  temperature: 0.1,
  features: { ...DEFAULT_FEATURE_CONFIG, bagDim: 8 },
};
