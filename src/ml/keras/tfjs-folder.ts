/**
 * Read a TF.js layers-model folder from disk (loading it into TF.js is `tfjs-load.ts`, so that reading does not
 * pull in TensorFlow). model.json must be a layers model, and every shard path a plain file inside the folder.
 */
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { concatBytes } from '../bytes.js';
import { invalidModel, unreadableInput } from './errors.js';
import type { ModelJson } from './tfjs-format.js';

export interface TfjsFolder {
  dir: string;
  modelJson: ModelJson;
  /** All shards concatenated in manifest order. */
  weightData: Uint8Array;
}

/** Largest weight data we load (TF.js needs it in one ArrayBuffer). */
const MAX_WEIGHT_BYTES = 2 ** 31 - 1;

export function readTfjsFolder(dir: string): TfjsFolder {
  const file = path.join(dir, 'model.json');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    throw unreadableInput(`${dir} has no model.json; it is not a TF.js model folder.`, 'Point at a folder written by am-ml export.');
  }
  let json: ModelJson;
  try {
    json = JSON.parse(text) as ModelJson;
  } catch (err) {
    throw unreadableInput(`${file} is not valid JSON: ${(err as Error).message}.`);
  }
  if (json.format !== 'layers-model' || !json.modelTopology || !Array.isArray(json.weightsManifest)) {
    throw unreadableInput(`${file} is not a TF.js layers model (format ${JSON.stringify(json.format)}).`);
  }
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (const group of json.weightsManifest) {
    for (const p of group.paths) {
      if (typeof p !== 'string' || p.startsWith('/') || p.includes('\\') || p.split('/').some((s) => s === '..' || s === '')) {
        throw invalidModel(`${file} lists a weight file ${JSON.stringify(p)} outside the folder.`, { code: 'TFJS_UNSAFE_PATH' });
      }
      const full = path.join(dir, p);
      let size: number;
      try {
        size = statSync(full).size;
      } catch {
        throw invalidModel(`${file} lists ${p}, which is missing.`, { code: 'TFJS_SHARD_MISSING' });
      }
      total += size;
      if (total > MAX_WEIGHT_BYTES) throw invalidModel(`The weights of ${dir} exceed ${MAX_WEIGHT_BYTES} bytes.`, { code: 'KERAS_SIZE_LIMIT' });
      const b = readFileSync(full);
      chunks.push(new Uint8Array(b.buffer, b.byteOffset, b.byteLength));
    }
  }
  return { dir, modelJson: json, weightData: concatBytes(chunks) };
}

