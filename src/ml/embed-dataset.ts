/**
 * `am-ml embed --dataset <dir> --to <dir>`: embed the items and users of a dataset folder (the `train --dataset`
 * format) without a database, for offline evaluation. Writes `items.jsonl` and `users.jsonl`, one
 * `{"id": …, "embedding": […]}` per line, through temp files renamed at the end (nothing half-written).
 *
 * User histories are built the way `am-ml embed` builds them from the database: latest decision per (user, item),
 * newest first (by timestamp when every row has one, else by position in interactions.csv), capped by the frozen
 * spec's maxLikes / maxNopes.
 */
import { closeSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import path from 'node:path';
import { throwIfAborted } from '../errors.js';
import { readDatasetFolder } from './data/dataset.js';
import type { Interaction } from './data/types.js';
import { DEFAULT_MIN_HISTORY, embedAndCacheItems, type EmbeddedRow, embedUserRows, EncodedItemCache } from './embed-batch.js';
import type { LoadedTwoTower } from './load-model.js';

export const EMBED_DATASET_BATCH = 4096;

export type EmbedDatasetEvent = { kind: 'items' | 'users'; done: number; total: number };

export interface EmbedDatasetOptions {
  model: LoadedTwoTower;
  datasetDir: string;
  outDir: string;
  batchSize?: number;
  minHistory?: number;
  signal?: AbortSignal;
  onProgress?: (e: EmbedDatasetEvent) => void;
}

export interface EmbedDatasetResult {
  items: number;
  users: number;
  usersSkipped: number;
  files: string[];
  dim: number;
}

/** Newest-first likes and nopes per user, in first-appearance order of users. */
export function datasetHistories(interactions: readonly Interaction[]): { userId: string; likes: string[]; nopes: string[] }[] {
  const allTimed = interactions.length > 0 && interactions.every((i) => i.timestamp !== undefined);
  const ordered = interactions.map((r, order) => ({ r, order }));
  if (allTimed) ordered.sort((a, b) => a.r.timestamp! - b.r.timestamp! || a.order - b.order);
  const users = new Map<string, { likes: string[]; nopes: string[] }>();
  for (const { r } of ordered) {
    let h = users.get(r.userId);
    if (!h) users.set(r.userId, (h = { likes: [], nopes: [] }));
    (r.label === 1 ? h.likes : h.nopes).push(r.itemId);
  }
  return [...users].map(([userId, h]) => ({ userId, likes: h.likes.reverse(), nopes: h.nopes.reverse() }));
}

function writeJsonl(file: string, write: (emit: (row: EmbeddedRow) => void) => void): void {
  const tmp = `${file}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w');
  try {
    write((row) => writeSync(fd, `${JSON.stringify({ id: row.id, embedding: Array.from(row.embedding) })}\n`));
  } catch (err) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
  closeSync(fd);
  renameSync(tmp, file);
}

export async function embedDataset(opts: EmbedDatasetOptions): Promise<EmbedDatasetResult> {
  const { model } = opts;
  const batch = opts.batchSize ?? EMBED_DATASET_BATCH;
  const data = readDatasetFolder(opts.datasetDir);
  mkdirSync(opts.outDir, { recursive: true });
  const itemsFile = path.join(opts.outDir, 'items.jsonl');
  const usersFile = path.join(opts.outDir, 'users.jsonl');

  // Filled while the items are embedded (each item encoded once), then read by the users' histories.
  const cache = new EncodedItemCache(model, Number.POSITIVE_INFINITY);
  writeJsonl(itemsFile, (emit) => {
    for (let s = 0; s < data.items.length; s += batch) {
      throwIfAborted(opts.signal, 'Nothing was written.');
      for (const row of embedAndCacheItems(model, cache, data.items.slice(s, s + batch))) emit(row);
      opts.onProgress?.({ kind: 'items', done: Math.min(s + batch, data.items.length), total: data.items.length });
    }
  });

  const { maxLikes, maxNopes } = model.spec.user;
  const histories = datasetHistories(data.interactions).map((h) => ({
    userId: h.userId,
    likes: h.likes.slice(0, maxLikes),
    nopes: h.nopes.slice(0, maxNopes),
  }));
  let usersWritten = 0;
  let usersSkipped = 0;
  try {
    writeJsonl(usersFile, (emit) => {
      for (let s = 0; s < histories.length; s += batch) {
        throwIfAborted(opts.signal, 'users.jsonl was not written.');
        const r = embedUserRows(model, cache, histories.slice(s, s + batch), opts.minHistory ?? DEFAULT_MIN_HISTORY);
        for (const row of r.rows) emit(row);
        usersWritten += r.rows.length;
        usersSkipped += r.skipped;
        opts.onProgress?.({ kind: 'users', done: Math.min(s + batch, histories.length), total: histories.length });
      }
    });
  } catch (err) {
    rmSync(itemsFile, { force: true }); // all or nothing
    throw err;
  }
  return { items: data.items.length, users: usersWritten, usersSkipped, files: [itemsFile, usersFile], dim: model.dim };
}
