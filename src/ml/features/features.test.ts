import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../errors.js';
import { sha256Hex } from '../sha256.js';
import {
  buildFeatureSpec,
  buildItemInputs,
  buildUserInputs,
  buildUserInputsEncoded,
  DEFAULT_FEATURE_CONFIG,
  emptyStats,
  encodeItem,
  type FeatureSpec,
  packItems,
  type ItemAttributes,
  parseFeatureSpec,
  serializeFeatureSpec,
  TowerBuffers,
  towerInputSpecs,
  UserRowWriter,
  vocabularySize,
} from './index.js';

const items: ItemAttributes[] = [
  { item_id: 'a', tags: ['drama', 'ｃｏｍｅｄｙ'], performers: ['p1', 'p2'], maker: 'm1', source: 'FANZA', price: 500, released_at: '2024-01-01' },
  { item_id: 'b', tags: ['drama', ' comedy '], performers: ['p1'], maker: 'm1', source: 'FANZA', price: '1,980', released_at: '2024-06-01', duration_seconds: 7200 },
  { item_id: 'c', tags: ['drama', 'rare'], performers: ['p2'], maker: 'm2', source: 'FANZA_AMATEUR', price: 300, released_at: 1717200000000 },
  { item_id: 'd', tags: ['comedy'], performers: ['p3', 'p1'], maker: 'm2', series: 's1', source: 'FANZA', price: null },
];
const likes = new Map([
  ['a', 3],
  ['b', 2],
  ['c', 1],
]);

function spec(overrides: Partial<typeof DEFAULT_FEATURE_CONFIG> = {}): FeatureSpec {
  return buildFeatureSpec({ items, likesPerItem: likes }, { ...DEFAULT_FEATURE_CONFIG, ...overrides });
}

describe('feature spec', () => {
  it('builds vocabularies with minimum counts, top-N caps and NFKC/trim normalisation', () => {
    const s = spec();
    const tags = s.vocabularies.find((v) => v.name === 'tags')!;
    // full-width "ｃｏｍｅｄｙ" and " comedy " normalise to "comedy"; "rare" occurs once (< minCount 2)
    expect(tags.tokens).toEqual(['comedy', 'drama']);
    expect(tags.droppedValues).toBe(1);
    expect(s.vocabularies.find((v) => v.name === 'item_id')!.tokens).toEqual(['a', 'b']);
    const capped = buildFeatureSpec(
      { items, likesPerItem: likes },
      { ...DEFAULT_FEATURE_CONFIG, vocabularies: DEFAULT_FEATURE_CONFIG.vocabularies.map((v) => (v.attribute === 'performers' ? { ...v, maxSize: 1, minCount: 1 } : v)) },
    );
    expect(capped.vocabularies.find((v) => v.name === 'performers')!.tokens).toEqual(['p1']);
  });

  it('round-trips through features.json byte for byte, with a stable hash', async () => {
    const s = spec();
    const text = serializeFeatureSpec(s);
    const back = parseFeatureSpec(text);
    expect(back).toEqual(s);
    expect(serializeFeatureSpec(back)).toBe(text);
    expect(await sha256Hex(serializeFeatureSpec(spec()))).toBe(await sha256Hex(text));
    // inputs built from the parsed spec are identical
    expect(buildItemInputs(back, items).inputs).toEqual(buildItemInputs(s, items).inputs);
  });

  it('rejects a corrupt or inconsistent features.json with every problem listed', () => {
    expect(() => parseFeatureSpec('{nope')).toThrow(ConfigError);
    const bad = JSON.parse(serializeFeatureSpec(spec()));
    bad.item.bags[0].vocabulary = 'missing_vocab';
    bad.vocabularies[0].tokens.push(bad.vocabularies[0].tokens[0]);
    try {
      parseFeatureSpec(JSON.stringify(bad));
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).message).toMatch(/unknown vocabulary missing_vocab/);
      expect((err as ConfigError).message).toMatch(/duplicate tokens/);
    }
  });
});

describe('item inputs', () => {
  it('handles missing, empty, invalid and unknown values explicitly and counts them', () => {
    const s = spec();
    const stats = emptyStats();
    const weird = encodeItem(
      s,
      {
        item_id: 'zzz',
        tags: [null, '', '  ', 'drama', 'unheard-of', { bad: 1 } as unknown as string],
        performers: null,
        maker: undefined,
        price: 'n/a',
        released_at: 'not a date',
        duration_seconds: Number.NaN,
      },
      stats,
    );
    const tagsVocab = s.vocabularies.findIndex((v) => v.name === 'tags');
    const v = s.vocabularies[tagsVocab];
    // drama is known (index 2: comedy=1, drama=2); unheard-of goes to the single OOV bucket (last index)
    expect(Array.from(weird.tokens[tagsVocab])).toEqual([2, vocabularySize(v) - 1]);
    expect(stats.fields.tags).toMatchObject({ invalid: 1, unknown: 1, dropped: 0 });
    expect(stats.fields.performers.missing).toBe(1);
    expect(stats.fields.maker.missing).toBe(1);
    expect(stats.fields.item_id.unknown).toBe(1);
    expect(stats.fields.price.invalid).toBe(1);
    expect(stats.fields.released.invalid).toBe(1);
    expect(stats.fields.duration.invalid).toBe(1);
    // numerics: missing/invalid → value 0 and missing flag 1
    expect(Array.from(weird.numeric)).toEqual([0, 1, 0, 1, 0, 1]);
    expect(Array.from(weird.numeric).every(Number.isFinite)).toBe(true);
  });

  it('drops unknown tokens (and counts them) when a vocabulary has no OOV bucket', () => {
    const s = buildFeatureSpec(
      { items, likesPerItem: likes },
      { ...DEFAULT_FEATURE_CONFIG, vocabularies: DEFAULT_FEATURE_CONFIG.vocabularies.map((v) => ({ ...v, oovBuckets: 0 })) },
    );
    const stats = emptyStats();
    const e = encodeItem(s, { item_id: 'q', tags: ['nope', 'drama'] }, stats);
    expect(Array.from(e.tokens[0])).toEqual([2]);
    expect(stats.fields.tags).toMatchObject({ unknown: 1, dropped: 1 });
  });

  it('lays out inputs in the fixed model order with mean weights', () => {
    const s = spec();
    const { inputs } = buildItemInputs(s, items.slice(0, 2));
    expect(inputs.arrays.map((a) => a.name)).toEqual(towerInputSpecs(s, 'item').map((x) => x.name));
    const tagsW = inputs.arrays.find((a) => a.name === 'tags_w')!;
    expect(Array.from(tagsW.data.subarray(0, 3))).toEqual([0.5, 0.5, 0]);
    expect(inputs.arrays.every((a) => a.data.length === a.shape[0] * a.shape[1])).toBe(true);
  });
});

describe('user inputs', () => {
  it('are identical whether built from raw histories (embed, runtime) or by the training writer with an item left out', () => {
    const s = spec();
    const enc = items.map((i) => encodeItem(s, i));
    // training: history [d, c, b, a] (newest first) with 'c' (position 1) left out
    const buf = new TowerBuffers(s, 'user', 1);
    const v = s.vocabularies.length;
    new UserRowWriter(s).write(buf, 0, packItems([enc[3], enc[2], enc[1], enc[0]], v), packItems([enc[2]], v), 1);
    const training = buf.toInputs(1);
    // inference: the same user without 'c' in their likes
    const inference = buildUserInputs(s, [{ likes: [items[3], items[1], items[0]], nopes: [items[2]] }]).inputs;
    expect(inference).toEqual(training);
    const encoded = buildUserInputsEncoded(s, [{ likes: [enc[3], enc[1], enc[0]], nopes: [enc[2]] }]).inputs;
    expect(encoded).toEqual(training);
  });

  it('are the same for every row of a batch as for that history alone (the batch reuses its packing buffers)', () => {
    const s = spec();
    const enc = items.map((i) => encodeItem(s, i));
    const histories = [
      { likes: [enc[0], enc[1], enc[2], enc[3]], nopes: [enc[3], enc[2]] },
      { likes: [enc[1]], nopes: [] },
      { likes: [], nopes: [enc[0]] },
      { likes: [enc[3], enc[0]], nopes: [enc[1], enc[2], enc[0]] },
    ];
    const batch = buildUserInputsEncoded(s, histories).inputs;
    histories.forEach((h, row) => {
      const alone = buildUserInputsEncoded(s, [h]).inputs;
      batch.arrays.forEach((a, k) => {
        const w = a.shape[1];
        expect(Array.from(a.data.subarray(row * w, (row + 1) * w))).toEqual(Array.from(alone.arrays[k].data));
      });
    });
  });

  it('weights tokens by their share of the history and caps the window', () => {
    const s = spec({ maxLikes: 2 });
    const { inputs } = buildUserInputs(s, [{ likes: [items[0], items[1], items[3]], nopes: [] }]);
    const idx = inputs.arrays.find((a) => a.name === 'liked_tags_idx')!;
    const w = inputs.arrays.find((a) => a.name === 'liked_tags_w')!;
    // only the 2 newest likes count: both have comedy and drama → share 1 each
    expect(Array.from(idx.data.subarray(0, 3))).toEqual([1, 2, 0]);
    expect(Array.from(w.data.subarray(0, 3))).toEqual([1, 1, 0]);
    const numeric = inputs.arrays.find((a) => a.name === 'numeric')!;
    expect(numeric.data[0]).toBeCloseTo(Math.log1p(2) / Math.log1p(2));
    expect(numeric.data[2]).toBe(1); // like ratio
  });

  it('embeds an empty history as a valid, flagged row', () => {
    const s = spec();
    const { inputs } = buildUserInputs(s, [{ likes: [] }]);
    const numeric = inputs.arrays.find((a) => a.name === 'numeric')!;
    expect(Array.from(numeric.data)).toEqual([0, 0, 0.5, 1]);
    expect(inputs.arrays.filter((a) => a.name.endsWith('_w')).every((a) => a.data.every((x) => x === 0))).toBe(true);
  });
});
