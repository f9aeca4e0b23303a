/**
 * The quickstart's "export and validate" step. A run of `am-ml train` is already in the format `am-ml export`
 * produces (TF.js layers models + manifest.json that `publish` takes as is), so there is nothing to convert; what
 * is left to prove is that the saved towers compute what the trainer optimised. For each tower this writes a golden
 * file (`ml/tower-golden.ts`: real catalog items and real user histories from the database, built with the run's
 * frozen feature spec, and the outputs of the trainer's own pure-JS forward pass over the weights decoded from the
 * shard bytes), then runs `am-ml validate <tower dir> --golden <file>`: TF.js loads the folder strictly and must
 * reproduce those outputs, with no leaked tensor. A failure stops the quickstart before anything is published.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { openDb } from '../db/open.js';
import { readUserHistories } from '../db/training-data.js';
import { ValidationFailedError } from '../errors.js';
import { FEATURES_FILE } from '../ml/artifacts.js';
import type { CatalogItem } from '../ml/data/dataset.js';
import { buildItemInputs, buildUserInputs, parseFeatureSpec, type TowerName } from '../ml/features/index.js';
import { readTfjsFolder } from '../ml/keras/tfjs-folder.js';
import { towerGolden } from '../ml/tower-golden.js';
import type { CommonOptions } from './common.js';
import { validate } from './validate.js';

/** Rows per golden file: enough to cover many vocabulary rows, small enough to keep the files ~1 MB. */
const GOLDEN_ITEMS = 64;
const GOLDEN_USERS = 32;

export interface TowerValidation {
  tower: TowerName;
  dir: string;
  golden: string;
  rows: number;
  ok: boolean;
  maxAbsDiff: number;
  backend: string;
  tensorLeak: boolean;
}

/** Every n-th element, `count` in all (deterministic and spread over the whole list). */
function spread<T>(list: readonly T[], count: number): T[] {
  const step = Math.max(1, Math.floor(list.length / count));
  const out: T[] = [];
  for (let i = 0; i < list.length && out.length < count; i += step) out.push(list[i]);
  return out;
}

export async function validateRunTowers(
  common: CommonOptions & { cwd: string; databaseUrl: string },
  run: { dir: string; runId: string },
  data: { catalog: readonly CatalogItem[]; userIds: readonly string[] },
  outDir: string,
): Promise<TowerValidation[]> {
  const spec = parseFeatureSpec(readFileSync(path.join(run.dir, FEATURES_FILE), 'utf8'));
  const byId = new Map(data.catalog.map((c) => [c.item_id, c]));
  const db = await openDb({ url: common.databaseUrl, cwd: common.cwd });
  let histories;
  try {
    const ids = spread(data.userIds, GOLDEN_USERS - 1);
    const h = await readUserHistories(db, ids, { maxLikes: spec.user.maxLikes, maxNopes: spec.user.maxNopes });
    const items = (list: string[]) => list.map((id) => byId.get(id)).filter((c): c is CatalogItem => c !== undefined);
    // Plus a user without history (the cold-start row every loader must handle).
    histories = [...ids.map((u) => ({ likes: items(h.get(u)!.likes), nopes: items(h.get(u)!.nopes) })), { likes: [], nopes: [] }];
  } finally {
    await db.close();
  }
  const inputs = {
    item: buildItemInputs(spec, spread(data.catalog, GOLDEN_ITEMS)).inputs,
    user: buildUserInputs(spec, histories).inputs,
  };
  mkdirSync(outDir, { recursive: true });
  const out: TowerValidation[] = [];
  for (const tower of ['item', 'user'] as const) {
    const dir = path.join(run.dir, `${tower}_tower`);
    const folder = readTfjsFolder(dir);
    const golden = towerGolden(spec, tower, { weightsManifest: folder.modelJson.weightsManifest, weightData: folder.weightData }, inputs[tower].arrays, `am-ml quickstart: the trainer's forward pass (ml/tower.ts, pure-JS matmul) over the weights in ${run.runId}/${tower}_tower`);
    const file = path.join(outDir, `${tower}_tower.golden.json`);
    writeFileSync(file, `${JSON.stringify(golden)}\n`);
    const { result } = await validate({ ...common, dir, golden: [file] });
    const diffs = result.report.golden.flatMap((g) => g.outputs);
    const v: TowerValidation = {
      tower,
      dir,
      golden: file,
      rows: inputs[tower].rows,
      ok: result.ok,
      maxAbsDiff: Math.max(0, ...diffs.map((d) => d.maxAbsDiff)),
      backend: result.report.backend,
      tensorLeak: !result.report.tensorLeak.ok,
    };
    if (!result.ok) {
      throw new ValidationFailedError(
        `The ${tower} tower of run ${run.runId} does not reproduce the trainer's forward pass (max abs diff ${v.maxAbsDiff.toExponential(2)}${v.tensorLeak ? ', tensors leaked' : ''}); nothing was published.`,
        { code: 'QUICKSTART_VALIDATION_FAILED', hint: `Run \`am-ml validate ${dir} --golden ${file}\` for the full report.`, details: { validation: v } },
      );
    }
    out.push(v);
  }
  return out;
}
