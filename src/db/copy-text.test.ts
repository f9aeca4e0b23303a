import { describe, expect, it } from 'vitest';
import { createTestDb } from '../testing/pglite.js';
import { parseCopyText, sqlLiteral, uuidArrayLiteral } from './copy-text.js';

describe('COPY text reads', () => {
  it('round-trips awkward values through COPY … TO on PGlite', async () => {
    const db = await createTestDb({ migrate: false });
    try {
      const values = ['plain', 'tab\there', 'new\nline', 'back\\slash', "quote'd", 'ビデオ', '\\N literally', ''];
      const text = await db.copyOut(`SELECT x, NULL::text FROM unnest(ARRAY[${values.map((v) => sqlLiteral(v)).join(', ')}]) WITH ORDINALITY AS t(x, n) ORDER BY n`);
      expect(parseCopyText(text)).toEqual(values.map((v) => [v, null]));
    } finally {
      await db.close();
    }
  });

  it('refuses values it cannot quote safely', () => {
    expect(() => sqlLiteral('not-a-uuid', 'uuid')).toThrow(RangeError);
    expect(() => sqlLiteral(1.5, 'int')).toThrow(RangeError);
    expect(() => sqlLiteral('a\0b')).toThrow(RangeError);
    expect(sqlLiteral("o'clock")).toBe("'o''clock'");
    expect(() => uuidArrayLiteral(["x'); DROP TABLE videos; --"])).toThrow(RangeError);
  });

  it('decodes octal and hex escapes', () => {
    expect(parseCopyText('a\\101\\x42\tb\\\\c\n')).toEqual([['aAB', 'b\\c']]);
  });
});
