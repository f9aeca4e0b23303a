import { writeFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ValidationFailedError } from '../../errors.js';
import { type TmpDir, tmpDir } from '../../testing/tmp-dir.js';
import { splitInteractions } from '../split.js';
import { parseCsv } from './csv.js';
import { readDatasetFolder, writeDatasetFolder } from './dataset.js';
import { trainingDataFromDecisions } from './decisions.js';
import { extractCid, parseReviews } from './reviews.js';
import { dataSnapshotSha256 } from './snapshot.js';

let dir: TmpDir;
beforeEach(() => {
  dir = tmpDir();
});
afterEach(() => dir.remove());

describe('csv', () => {
  it('reads quotes, doubled quotes, embedded newlines, CRLF and a BOM, keeping start lines', () => {
    const { records, errors } = parseCsv('\ufeffa,b\r\n"x, y","say ""hi"""\r\n\r\n"multi\nline",z\n');
    expect(errors).toEqual([]);
    expect(records).toEqual([
      { line: 1, fields: ['a', 'b'] },
      { line: 2, fields: ['x, y', 'say "hi"'] },
      { line: 4, fields: ['multi\nline', 'z'] },
    ]);
  });

  it('reports malformed records with their line instead of throwing', () => {
    const { records, errors } = parseCsv('a,b\nx"y,1\n"ok",2\n"open,3\n');
    expect(records.map((r) => r.line)).toEqual([1, 3]);
    expect(errors).toEqual([
      { line: 2, reason: 'a quote inside an unquoted field' },
      { line: 4, reason: expect.stringMatching(/unterminated/) },
    ]);
  });
});

describe('dataset folder', () => {
  const items = [
    { item_id: 'i1', tags: ['a'], maker: 'm' },
    { item_id: 'i2', tags: 'b', performers: [1, 2] },
    { item_id: 'i3' },
  ];

  it('reads items and interactions; the latest decision per (user, item) wins', () => {
    writeDatasetFolder(dir.path, { items, interactions: [] });
    writeFileSync(
      dir.join('interactions.csv'),
      'item_id,user_id,label,timestamp\ni1,u1,like,2026-01-02T00:00:00Z\ni1,u1,nope,2026-01-01T00:00:00Z\ni2,u1,0,1767225600\ni2,u1,1,1767225700\ni3,u2,positive,\n',
    );
    const d = readDatasetFolder(dir.path);
    expect(d.items).toHaveLength(3);
    expect(d.items[1]).toMatchObject({ item_id: 'i2', tags: 'b', performers: [1, 2] });
    expect(d.interactions).toEqual([
      { userId: 'u1', itemId: 'i1', label: 1, timestamp: Date.parse('2026-01-02T00:00:00Z') },
      { userId: 'u1', itemId: 'i2', label: 1, timestamp: 1767225700000 },
      { userId: 'u2', itemId: 'i3', label: 1 },
    ]);
    expect(d.summary).toMatchObject({ duplicatesSuperseded: 2, interactionRowsBad: 0, interactionRowsWithTimestamp: 4 });
  });

  it('reports bad rows with line numbers and reasons, and keeps the good ones', () => {
    writeFileSync(dir.join('items.jsonl'), '{"item_id":"i1"}\nnot json\n{"item_id":"i1"}\n{"tags":["x"]}\n{"item_id":"i2","price":{"v":1}}\n{"item_id":"i3"}\n{"item_id":"i4"}\n{"item_id":"i5"}\n');
    writeFileSync(dir.join('interactions.csv'), 'user_id,item_id,label\nu1,i1,1\nu1,i9,1\nu1,i3,maybe\n,i3,1\nu2,i3,0\nu2,i4,1\nu3,i5,1\n');
    const d = readDatasetFolder(dir.path);
    const reasons = d.badRows.map((b) => `${b.file.endsWith('items.jsonl') ? 'items' : 'interactions'}:${b.line} ${b.reason}`);
    expect(reasons).toEqual([
      expect.stringMatching(/^items:2 not valid JSON/),
      'items:3 duplicate item_id "i1" (first at line 1)',
      "items:4 item_id: is required (a string or a number)",
      "items:5 price: must be a number, a string or null",
      'interactions:3 item_id "i9" is not in items.jsonl',
      'interactions:4 label "maybe" is not 1/0, like/nope or positive/negative',
      'interactions:5 user_id is empty',
    ]);
    expect(d.items.map((i) => i.item_id)).toEqual(['i1', 'i3', 'i4', 'i5']);
    expect(d.interactions).toHaveLength(4);
    expect(d.summary).toMatchObject({ itemLinesBad: 4, interactionRowsBad: 3, interactionRows: 7 });
  });

  it('stops when a file is mostly bad, naming the first bad lines (exit 4)', () => {
    writeFileSync(dir.join('items.jsonl'), '{"item_id":"i1"}\n');
    writeFileSync(dir.join('interactions.csv'), 'user_id,item_id,label\nu1,i1,1\nu1,i1,x\nu1,i1,y\nu1,nope,1\n');
    try {
      readDatasetFolder(dir.path);
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ValidationFailedError);
      expect((err as ValidationFailedError).exitCode).toBe(4);
      expect((err as Error).message).toMatch(/3 of 4 rows are bad .* line 3: label "x"/);
    }
    // a stricter limit stops earlier; a header problem is reported as such
    writeFileSync(dir.join('interactions.csv'), 'user_id,item_id,label\nu1,i1,1\nu1,i1,x\nu1,i1,1\nu1,i1,1\n');
    expect(() => readDatasetFolder(dir.path, { maxBadFraction: 0.1 })).toThrow(/1 of 4 rows are bad/);
    writeFileSync(dir.join('interactions.csv'), 'user,item,label\n');
    expect(() => readDatasetFolder(dir.path)).toThrow(/lacks column\(s\) user_id, item_id/);
  });

  it('checks users against users.jsonl when present, and needs both required files', () => {
    writeDatasetFolder(dir.path, {
      items,
      interactions: [
        { userId: 'u1', itemId: 'i1', label: 1 },
        { userId: 'ghost', itemId: 'i2', label: 1 },
      ],
      users: ['u1'],
    });
    const d = readDatasetFolder(dir.path);
    expect(d.badRows.map((b) => b.reason)).toEqual(['user_id "ghost" is not in users.jsonl']);
    expect(() => readDatasetFolder(dir.join('missing'))).toThrow(/items.jsonl is missing/);
  });
});

describe('reviews', () => {
  const catalog = [
    { item_id: 'v-1', external_id: 'abc00123' },
    { item_id: 'v-2', external_id: 'XYZ00001' },
  ];

  it('extracts the cid from both product URL forms', () => {
    expect(extractCid('https://www.dmm.co.jp/digital/videoa/-/detail/=/cid=ABC00123/')).toBe('abc00123');
    expect(extractCid('https://video.dmm.co.jp/av/content/?id=xyz00001')).toBe('xyz00001');
    expect(extractCid('https://video.dmm.co.jp/av/content/?id=xyz00001&foo=1')).toBe('xyz00001');
    expect(extractCid('https://example.com/cid=abc/')).toBeNull();
    expect(extractCid('not a url')).toBeNull();
  });

  it('joins to the catalog, keeps max stars per pair, counts unmatched, neutral and bad rows', () => {
    const csv = [
      'product_url,reviewer_id,stars',
      'https://www.dmm.co.jp/digital/videoa/-/detail/=/cid=abc00123/,r1,2',
      'https://video.dmm.co.jp/av/content/?id=abc00123,r1,5',
      'https://video.dmm.co.jp/av/content/?id=xyz00001,r1,2',
      'https://video.dmm.co.jp/av/content/?id=xyz00001,r2,3',
      'https://video.dmm.co.jp/av/content/?id=zzz99999,r2,5',
      'https://video.dmm.co.jp/av/content/?id=zzz99998,r3,4',
      'https://example.com/x,r3,4',
      'https://video.dmm.co.jp/av/content/?id=abc00123,r4,six',
    ].join('\n');
    const d = parseReviews(csv, 'reviews.csv', catalog, { negativeMaxStars: 2 });
    expect(d.interactions).toEqual([
      { userId: 'r1', itemId: 'v-1', label: 1 },
      { userId: 'r1', itemId: 'v-2', label: 0 },
    ]);
    expect(d.summary).toMatchObject({ reviewRows: 8, reviewRowsBad: 2, reviewRowsUnmatched: 2, unmatchedProducts: 2, neutralPairs: 1, duplicatesMerged: 1 });
    expect(d.badRows.map((b) => b.line)).toEqual([8, 9]);
    expect(d.notes.join(' ')).toMatch(/2 review row\(s\) \(2 product\(s\)\) matched no videos.external_id.*zzz99999/);
  });
});

describe('decisions and split', () => {
  it('maps decision types, refuses unknown ones as schema drift, and keeps the latest per pair', () => {
    const catalog = [{ item_id: 'v1' }, { item_id: 'v2' }];
    const d = trainingDataFromDecisions(
      [
        { userId: 'u', itemId: 'v1', decisionType: 'swipe_like', createdAt: 1 },
        { userId: 'u', itemId: 'v2', decisionType: 'grid_nope', createdAt: 2 },
        { userId: 'u', itemId: 'gone', decisionType: 'grid_like', createdAt: 3 },
      ],
      catalog,
      'db:test',
    );
    expect(d.interactions).toEqual([
      { userId: 'u', itemId: 'v1', label: 1, timestamp: 1 },
      { userId: 'u', itemId: 'v2', label: 0, timestamp: 2 },
    ]);
    expect(d.summary.decisionsOutsideCatalog).toBe(1);
    expect(() => trainingDataFromDecisions([{ userId: 'u', itemId: 'v1', decisionType: 'like', createdAt: 1 }], catalog, 'db')).toThrow(
      /decision_type holds value\(s\) am-ml does not know: "like"/,
    );
  });

  it('holds out each user’s newest positives when every row has a time; random but seeded otherwise', () => {
    const rows = Array.from({ length: 10 }, (_, i) => ({ userId: 'u', itemId: `i${i}`, label: (i === 4 ? 0 : 1) as 0 | 1, timestamp: 1000 + i }));
    rows.push({ userId: 'few', itemId: 'x', label: 1, timestamp: 5 });
    const s = splitInteractions(rows, { valFraction: 0.2, testFraction: 0.2, seed: 1 });
    expect(s.timeOrdered).toBe(true);
    expect(s.test.map((r) => r.itemId)).toEqual(['i8', 'i9']);
    expect(s.val.map((r) => r.itemId)).toEqual(['i6', 'i7']);
    expect(s.train.filter((r) => r.userId === 'u').map((r) => r.itemId)).toEqual(['i0', 'i1', 'i2', 'i3', 'i4', 'i5']);
    expect(s.train.filter((r) => r.userId === 'few')).toHaveLength(1);
    const untimed = rows.map(({ timestamp: _t, ...r }) => r);
    const a = splitInteractions(untimed, { valFraction: 0.2, testFraction: 0.2, seed: 1 });
    expect(a.timeOrdered).toBe(false);
    expect(splitInteractions(untimed, { valFraction: 0.2, testFraction: 0.2, seed: 1 })).toEqual(a);
    expect(a.test.filter((r) => r.label === 1)).toHaveLength(2);
  });

  it('hashes the data snapshot independently of row order', () => {
    const items = [{ item_id: 'b', tags: ['x'] }, { item_id: 'a' }];
    const inter = [
      { userId: 'u', itemId: 'a', label: 1 as const },
      { userId: 'v', itemId: 'b', label: 0 as const },
    ];
    expect(dataSnapshotSha256({ items, interactions: inter })).toBe(dataSnapshotSha256({ items: [...items].reverse(), interactions: [...inter].reverse() }));
    expect(dataSnapshotSha256({ items, interactions: inter })).not.toBe(dataSnapshotSha256({ items, interactions: [inter[0]] }));
  });
});
