/**
 * `am-ml train --dataset <dir>`: a documented folder format any source can be exported to.
 *
 * - `items.jsonl` (required): one JSON object per line: `{"item_id", "tags": [], "performers": [], "maker",
 *   "series", "label", "source", "price", "released_at", "duration_seconds", "title"}`. Only `item_id` is required;
 *   unknown fields are ignored; lists may also be a single value. It is the full catalog evaluation ranks.
 * - `interactions.csv` (required): header `user_id,item_id,label[,timestamp]` (any column order). `label` is
 *   `1`/`like`/`positive` or `0`/`nope`/`negative`; `timestamp` is ISO 8601 or epoch seconds/milliseconds. The
 *   latest row per (user, item) wins (by timestamp, else by position in the file).
 * - `users.jsonl` (optional): `{"user_id", ...}` per line; when present, interactions of other users are bad rows.
 *
 * Bad lines are counted and reported with their line numbers; a file with more than `maxBadFraction` bad rows stops
 * the run (exit 4).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { ValidationFailedError } from '../../errors.js';
import type { ItemAttributes } from '../features/index.js';
import { normalizeToken } from '../features/index.js';
import { BadRowLog, DEFAULT_MAX_BAD_FRACTION } from './bad-rows.js';
import { headerIndex, parseCsv } from './csv.js';
import { parseLabel, parseTimestamp } from './labels.js';
import { latestPerPair } from './latest.js';
import type { Interaction, TrainingData } from './types.js';

export const ITEMS_FILE = 'items.jsonl';
export const INTERACTIONS_FILE = 'interactions.csv';
export const USERS_FILE = 'users.jsonl';

const TokenSchema = z.union([z.string(), z.number(), z.null()]);
const TokensSchema = z
  .union([z.array(TokenSchema), TokenSchema], { error: 'must be a list of strings/numbers, a string, a number or null' })
  .optional();
const ScalarSchema = z.union([z.number(), z.string(), z.null()], { error: 'must be a number, a string or null' }).optional();

/** One `items.jsonl` line (unknown fields are dropped). */
export const ItemLineSchema = z.object({
  item_id: z.union([z.string(), z.number()], { error: 'is required (a string or a number)' }),
  title: z.union([z.string(), z.null()], { error: 'must be a string or null' }).optional(),
  tags: TokensSchema,
  performers: TokensSchema,
  maker: TokensSchema,
  series: TokensSchema,
  label: TokensSchema,
  source: TokensSchema,
  price: ScalarSchema,
  released_at: ScalarSchema,
  duration_seconds: ScalarSchema,
});

const UserLineSchema = z.object({ user_id: z.union([z.string(), z.number()]) });

export interface ReadDatasetOptions {
  /** @default 0.5 */
  maxBadFraction?: number;
}

/** A catalog item as read from a file or the database: the feature attributes plus an optional display title. */
export type CatalogItem = ItemAttributes & { title?: string | null; external_id?: string | null };

function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new ValidationFailedError(`Cannot read ${file}: ${(err as Error).message}`, {
      code: 'DATA_INVALID',
      hint: 'A dataset folder holds items.jsonl and interactions.csv (see `am-ml train --help`).',
    });
  }
}

function zodReason(err: z.ZodError): string {
  return err.issues.map((i) => `${i.path.join('.') || 'line'}: ${i.message}`).join('; ');
}

/** Parse a JSONL file into validated objects, logging bad lines. */
function readJsonl<T>(file: string, schema: z.ZodType<T>, log: BadRowLog): { line: number; value: T }[] {
  const out: { line: number; value: T }[] = [];
  const lines = readText(file).split(/\r?\n/);
  lines.forEach((text, i) => {
    if (text.trim() === '') return;
    log.rows++;
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (err) {
      log.add(i + 1, `not valid JSON (${(err as Error).message})`);
      return;
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success) {
      log.add(i + 1, zodReason(parsed.error));
      return;
    }
    out.push({ line: i + 1, value: parsed.data });
  });
  return out;
}

/** Parse `items.jsonl` text lines into catalog items (shared with tests and the quickstart). */
export function readItemsFile(file: string, log: BadRowLog): CatalogItem[] {
  const items: CatalogItem[] = [];
  const firstLine = new Map<string, number>();
  for (const { line, value } of readJsonl(file, ItemLineSchema, log)) {
    const id = normalizeToken(value.item_id);
    if (!('token' in id)) {
      log.add(line, 'item_id is empty');
      continue;
    }
    const seen = firstLine.get(id.token);
    if (seen !== undefined) {
      log.add(line, `duplicate item_id ${JSON.stringify(id.token)} (first at line ${seen})`);
      continue;
    }
    firstLine.set(id.token, line);
    items.push({ ...value, item_id: id.token } as CatalogItem);
  }
  return items;
}

export function readDatasetFolder(dir: string, opts: ReadDatasetOptions = {}): TrainingData {
  const maxBad = opts.maxBadFraction ?? DEFAULT_MAX_BAD_FRACTION;
  for (const f of [ITEMS_FILE, INTERACTIONS_FILE]) {
    if (!existsSync(path.join(dir, f))) {
      throw new ValidationFailedError(`${dir} is not a dataset folder: ${f} is missing.`, {
        code: 'DATA_INVALID',
        hint: 'A dataset folder holds items.jsonl and interactions.csv, and optionally users.jsonl (see `am-ml train --help`).',
      });
    }
  }
  const itemsFile = path.join(dir, ITEMS_FILE);
  const itemLog = new BadRowLog(itemsFile);
  const items = readItemsFile(itemsFile, itemLog);
  itemLog.check(maxBad);
  if (items.length === 0) {
    throw new ValidationFailedError(`${itemsFile} holds no items.`, { code: 'DATA_INVALID' });
  }
  const itemIds = new Set(items.map((i) => i.item_id));

  let users: Set<string> | undefined;
  const usersFile = path.join(dir, USERS_FILE);
  const userLog = new BadRowLog(usersFile);
  if (existsSync(usersFile)) {
    users = new Set();
    for (const { line, value } of readJsonl(usersFile, UserLineSchema, userLog)) {
      const id = normalizeToken(value.user_id);
      if ('token' in id) users.add(id.token);
      else userLog.add(line, 'user_id is empty');
    }
    userLog.check(maxBad);
  }

  const interactionsFile = path.join(dir, INTERACTIONS_FILE);
  const log = new BadRowLog(interactionsFile);
  const { records, errors } = parseCsv(readText(interactionsFile));
  if (records.length === 0) {
    throw new ValidationFailedError(`${interactionsFile} has no header row.`, {
      code: 'DATA_INVALID',
      hint: 'The first line must be the header user_id,item_id,label[,timestamp].',
    });
  }
  const { index, missing } = headerIndex(records[0].fields, ['user_id', 'item_id', 'label'], ['timestamp']);
  if (missing.length) {
    throw new ValidationFailedError(
      `${interactionsFile}: the header lacks column(s) ${missing.join(', ')} (found: ${records[0].fields.join(', ')}).`,
      { code: 'DATA_INVALID', hint: 'The first line must be the header user_id,item_id,label[,timestamp].' },
    );
  }
  for (const e of errors) {
    log.rows++;
    log.add(e.line, e.reason);
  }
  const rows: (Interaction & { order: number })[] = [];
  let withTime = 0;
  for (let r = 1; r < records.length; r++) {
    const { line, fields } = records[r];
    log.rows++;
    const cell = (k: string) => (index[k] === undefined ? '' : (fields[index[k]] ?? ''));
    if (fields.length < records[0].fields.length) {
      log.add(line, `expected ${records[0].fields.length} columns, found ${fields.length}`);
      continue;
    }
    const user = normalizeToken(cell('user_id'));
    const item = normalizeToken(cell('item_id'));
    if (!('token' in user)) {
      log.add(line, 'user_id is empty');
      continue;
    }
    if (!('token' in item)) {
      log.add(line, 'item_id is empty');
      continue;
    }
    if (!itemIds.has(item.token)) {
      log.add(line, `item_id ${JSON.stringify(item.token)} is not in ${ITEMS_FILE}`);
      continue;
    }
    if (users && !users.has(user.token)) {
      log.add(line, `user_id ${JSON.stringify(user.token)} is not in ${USERS_FILE}`);
      continue;
    }
    const label = parseLabel(cell('label'));
    if (label === null) {
      log.add(line, `label ${JSON.stringify(cell('label'))} is not 1/0, like/nope or positive/negative`);
      continue;
    }
    const ts = parseTimestamp(cell('timestamp'));
    if (ts !== undefined && Number.isNaN(ts)) {
      log.add(line, `timestamp ${JSON.stringify(cell('timestamp'))} is neither ISO 8601 nor epoch seconds/milliseconds`);
      continue;
    }
    if (ts !== undefined) withTime++;
    rows.push({ userId: user.token, itemId: item.token, label, ...(ts !== undefined ? { timestamp: ts } : {}), order: r });
  }
  log.check(maxBad);
  const { interactions, superseded } = latestPerPair(rows);
  const badRows = [...itemLog.kept, ...userLog.kept, ...log.kept];
  return {
    source: `dataset:${dir}`,
    items,
    interactions,
    summary: {
      items: items.length,
      itemLinesBad: itemLog.total,
      users: users?.size ?? new Set(interactions.map((i) => i.userId)).size,
      userLinesBad: userLog.total,
      interactionRows: log.rows,
      interactionRowsBad: log.total,
      interactionRowsWithTimestamp: withTime,
      duplicatesSuperseded: superseded,
      interactions: interactions.length,
    },
    badRows,
    notes: [],
  };
}

/** Write a dataset folder (tests, the synthetic generator, the quickstart). */
export function writeDatasetFolder(
  dir: string,
  data: { items: readonly CatalogItem[]; interactions: readonly Interaction[]; users?: readonly string[] },
): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, ITEMS_FILE), data.items.map((i) => JSON.stringify(i)).join('\n') + '\n');
  const csvCell = (s: string) => (/[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);
  const hasTime = data.interactions.some((i) => i.timestamp !== undefined);
  const lines = [hasTime ? 'user_id,item_id,label,timestamp' : 'user_id,item_id,label'];
  for (const i of data.interactions) {
    const base = `${csvCell(i.userId)},${csvCell(i.itemId)},${i.label}`;
    lines.push(hasTime ? `${base},${i.timestamp === undefined ? '' : new Date(i.timestamp).toISOString()}` : base);
  }
  writeFileSync(path.join(dir, INTERACTIONS_FILE), lines.join('\n') + '\n');
  if (data.users) writeFileSync(path.join(dir, USERS_FILE), data.users.map((u) => JSON.stringify({ user_id: u })).join('\n') + '\n');
}
