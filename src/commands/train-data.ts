/**
 * Loading `am-ml train`'s data source: `--dataset <dir>` (files only), `--reviews <csv>` (joined to the database's
 * catalog) or `--from-db` (the app's decisions and catalog). The composition of db and ml lives here because ml
 * never imports db.
 */
import { readCatalog, readDecisions } from '../db/training-data.js';
import { openDb } from '../db/open.js';
import { readDatasetFolder } from '../ml/data/dataset.js';
import { trainingDataFromDecisions } from '../ml/data/decisions.js';
import { readReviewsCsv } from '../ml/data/reviews.js';
import type { TrainingData } from '../ml/data/types.js';
import type { Reporter } from '../output/reporter.js';

export type TrainSource = { kind: 'dataset'; dir: string } | { kind: 'reviews'; file: string } | { kind: 'db' };

export interface LoadTrainingDataOptions {
  source: TrainSource;
  cwd: string;
  db: { url: string; caFile?: string };
  reporter: Reporter;
  maxBadFraction?: number;
  positiveMinStars?: number;
  negativeMaxStars?: number;
}

export async function loadTrainingData(o: LoadTrainingDataOptions): Promise<TrainingData> {
  const { source, reporter } = o;
  if (source.kind === 'dataset') {
    const phase = reporter.phase(`Reading dataset ${source.dir}`);
    try {
      const data = readDatasetFolder(source.dir, { maxBadFraction: o.maxBadFraction });
      phase.succeed(`Read ${data.items.length} items and ${data.interactions.length} interactions from ${source.dir}`);
      return data;
    } catch (err) {
      phase.fail();
      throw err;
    }
  }
  const phase = reporter.phase(`Reading the catalog from ${o.db.url}`);
  const db = await openDb({ url: o.db.url, cwd: o.cwd, caFile: o.db.caFile });
  try {
    const catalog = await readCatalog(db, (n) => phase.update(`Reading the catalog from ${db.displayUrl}: ${n} videos`));
    if (source.kind === 'reviews') {
      phase.update(`Reading reviews ${source.file}`);
      const data = readReviewsCsv(source.file, catalog, {
        maxBadFraction: o.maxBadFraction,
        positiveMinStars: o.positiveMinStars,
        negativeMaxStars: o.negativeMaxStars,
      });
      phase.succeed(`Read ${catalog.length} videos and ${data.summary.reviewRows} review rows (${data.interactions.length} labelled pairs)`);
      return data;
    }
    phase.update(`Reading user_video_decisions from ${db.displayUrl}`);
    const { rows } = await readDecisions(db);
    const data = trainingDataFromDecisions(rows, catalog, `db:${db.displayUrl}`);
    phase.succeed(`Read ${catalog.length} videos and ${rows.length} decisions from ${db.displayUrl}`);
    return data;
  } catch (err) {
    phase.fail();
    throw err;
  } finally {
    await db.close();
  }
}
