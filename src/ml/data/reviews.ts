/**
 * `am-ml train --reviews <csv>`: scraped DMM reviews (`product_url,reviewer_id,stars`) joined to the catalog by
 * content id (app-schema §6). Both product URL forms are accepted:
 *   https://www.dmm.co.jp/digital/videoa/-/detail/=/cid=<cid>/   (old)
 *   https://video.dmm.co.jp/av/content/?id=<cid>                 (current)
 * The cid is lower-cased and matched against `videos.external_id` (lower-cased). The highest stars per (reviewer,
 * product) count; stars ≥ positiveMinStars are positives, ≤ negativeMaxStars explicit negatives, anything between
 * is neutral and dropped (counted). Rows whose cid matches no video are counted and reported, never silently
 * dropped; malformed rows are bad rows with line numbers.
 */
import { readFileSync } from 'node:fs';
import { ValidationFailedError } from '../../errors.js';
import { BadRowLog, DEFAULT_MAX_BAD_FRACTION } from './bad-rows.js';
import { headerIndex, parseCsv } from './csv.js';
import type { CatalogItem } from './dataset.js';
import type { Interaction, TrainingData } from './types.js';

export interface ReviewsOptions {
  /** @default 4 */
  positiveMinStars?: number;
  /** @default 3 */
  negativeMaxStars?: number;
  /** @default 0.5 */
  maxBadFraction?: number;
}

const CID_PATH_RE = /\/cid=([^/?&#]+)/i;
const UNMATCHED_EXAMPLES = 5;

/** The content id of a DMM product URL (either form), lower-cased; null when the URL is neither form. */
export function extractCid(productUrl: string): string | null {
  const raw = productUrl.trim();
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return null;
  }
  const host = url.hostname.toLowerCase();
  if (!host.endsWith('dmm.co.jp') && !host.endsWith('dmm.com')) return null;
  const pathMatch = CID_PATH_RE.exec(url.pathname);
  if (pathMatch) return decodeURIComponent(pathMatch[1]).toLowerCase();
  const id = url.searchParams.get('id');
  if (id && /\/content\/?$/.test(url.pathname)) return id.trim().toLowerCase() || null;
  return null;
}

export function readReviewsCsv(file: string, catalog: readonly CatalogItem[], opts: ReviewsOptions = {}): TrainingData {
  const posMin = opts.positiveMinStars ?? 4;
  const negMax = opts.negativeMaxStars ?? 3;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ValidationFailedError(`Cannot read ${file}: ${(err as Error).message}`, { code: 'DATA_INVALID' });
  }
  return parseReviews(text, file, catalog, { ...opts, positiveMinStars: posMin, negativeMaxStars: negMax });
}

/** Parse reviews CSV text (see the module comment). */
export function parseReviews(text: string, file: string, catalog: readonly CatalogItem[], opts: ReviewsOptions = {}): TrainingData {
  const posMin = opts.positiveMinStars ?? 4;
  const negMax = opts.negativeMaxStars ?? 3;
  const byCid = new Map<string, string>();
  for (const item of catalog) {
    if (item.external_id) byCid.set(item.external_id.trim().toLowerCase(), item.item_id);
  }
  const log = new BadRowLog(file);
  const { records, errors } = parseCsv(text);
  if (records.length === 0) {
    throw new ValidationFailedError(`${file} has no header row.`, { code: 'DATA_INVALID', hint: 'Expected the header product_url,reviewer_id,stars.' });
  }
  const { index, missing } = headerIndex(records[0].fields, ['product_url', 'reviewer_id', 'stars']);
  if (missing.length) {
    throw new ValidationFailedError(`${file}: the header lacks column(s) ${missing.join(', ')} (found: ${records[0].fields.join(', ')}).`, {
      code: 'DATA_INVALID',
      hint: 'Expected the header product_url,reviewer_id,stars.',
    });
  }
  for (const e of errors) {
    log.rows++;
    log.add(e.line, e.reason);
  }
  // (reviewer, cid) → max stars, first line seen (for deterministic order)
  const best = new Map<string, { reviewer: string; cid: string; stars: number; order: number }>();
  let unmatchedRows = 0;
  const unmatchedCids = new Set<string>();
  for (let r = 1; r < records.length; r++) {
    const { line, fields } = records[r];
    log.rows++;
    const cell = (k: string) => (fields[index[k]] ?? '').trim();
    const cid = extractCid(cell('product_url'));
    if (!cid) {
      log.add(line, `product_url ${JSON.stringify(cell('product_url'))} is not a DMM product URL (…/cid=<cid>/ or …/av/content/?id=<cid>)`);
      continue;
    }
    const reviewer = cell('reviewer_id');
    if (!reviewer) {
      log.add(line, 'reviewer_id is empty');
      continue;
    }
    const starsText = cell('stars');
    const stars = Number(starsText);
    if (!/^\d+(\.0+)?$/.test(starsText) || stars < 1 || stars > 5) {
      log.add(line, `stars ${JSON.stringify(starsText)} is not a whole number from 1 to 5`);
      continue;
    }
    if (!byCid.has(cid)) {
      unmatchedRows++;
      unmatchedCids.add(cid);
      continue;
    }
    const key = `${reviewer}\u0000${cid}`;
    const prev = best.get(key);
    if (!prev) best.set(key, { reviewer, cid, stars, order: r });
    else if (stars > prev.stars) prev.stars = stars;
  }
  log.check(opts.maxBadFraction ?? DEFAULT_MAX_BAD_FRACTION);
  const interactions: Interaction[] = [];
  let neutral = 0;
  for (const b of best.values()) {
    const label = b.stars >= posMin ? 1 : b.stars <= negMax ? 0 : null;
    if (label === null) {
      neutral++;
      continue;
    }
    interactions.push({ userId: b.reviewer, itemId: byCid.get(b.cid)!, label });
  }
  const notes: string[] = [];
  const matchedRows = log.rows - log.total - unmatchedRows;
  if (unmatchedRows > 0) {
    notes.push(
      `${unmatchedRows} review row(s) (${unmatchedCids.size} product(s)) matched no videos.external_id and were not used, e.g. ${[...unmatchedCids]
        .slice(0, UNMATCHED_EXAMPLES)
        .join(', ')}; sync those products first to use them.`,
    );
  }
  if (neutral > 0) notes.push(`${neutral} (reviewer, product) pair(s) with stars between ${negMax} and ${posMin} are neutral and were not used.`);
  return {
    source: `reviews:${file}`,
    items: [...catalog],
    interactions,
    summary: {
      items: catalog.length,
      reviewRows: log.rows,
      reviewRowsBad: log.total,
      reviewRowsUnmatched: unmatchedRows,
      unmatchedProducts: unmatchedCids.size,
      reviewRowsMatched: matchedRows,
      duplicatesMerged: matchedRows - best.size,
      neutralPairs: neutral,
      interactions: interactions.length,
      users: new Set(interactions.map((i) => i.userId)).size,
    },
    badRows: log.kept,
    notes,
  };
}
