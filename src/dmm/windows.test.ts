import { describe, expect, it } from 'vitest';
import { apiDate, DAY_MS, HOUR_MS, jstDate, jstDayStart, rootWindow, splitWindow, windowLabel } from './windows.js';

const label = (w: ReturnType<typeof rootWindow>) => windowLabel(w).split(' ')[1];

describe('date windows (dmm-api.md §8.2)', () => {
  it('covers whole JST days, bounds inclusive, formatted without a zone', () => {
    const w = rootWindow('digital/videoa', '2024-01-01', '2024-01-31');
    expect(w.start.toISOString()).toBe('2023-12-31T15:00:00.000Z');
    expect(label(w)).toBe('2024-01-01T00:00:00..2024-01-31T23:59:59');
    expect(apiDate(w.end.getTime())).toBe('2024-01-31T23:59:59');
  });

  it('halves on day boundaries, then hours, never below the minimum, without gaps or overlaps', () => {
    const leaves: ReturnType<typeof rootWindow>[] = [];
    const stack = [rootWindow('digital/videoa', '2024-02-27', '2024-03-03')]; // leap day included
    while (stack.length) {
      const w = stack.pop()!;
      const halves = splitWindow(w);
      if (halves) stack.push(halves[1], halves[0]);
      else leaves.push(w);
    }
    expect(leaves).toHaveLength(6 * 24); // split all the way down to one hour
    for (let i = 0; i < leaves.length; i++) {
      expect(leaves[i].end.getTime() - leaves[i].start.getTime()).toBe(HOUR_MS - 1000);
      if (i) expect(leaves[i].start.getTime() - leaves[i - 1].end.getTime()).toBe(1000);
    }
    expect(label(leaves[0])).toBe('2024-02-27T00:00:00..2024-02-27T00:59:59');
    expect(label(leaves.at(-1)!)).toBe('2024-03-03T23:00:00..2024-03-03T23:59:59');
  });

  it('splits a multi-day window on a day boundary and a day on an hour boundary', () => {
    const [a, b] = splitWindow(rootWindow('f', '2024-01-01', '2024-01-05'))!;
    expect([label(a), label(b)]).toEqual(['2024-01-01T00:00:00..2024-01-02T23:59:59', '2024-01-03T00:00:00..2024-01-05T23:59:59']);
    const [c, d] = splitWindow(rootWindow('f', '2024-01-01', '2024-01-01'))!;
    expect([label(c), label(d)]).toEqual(['2024-01-01T00:00:00..2024-01-01T11:59:59', '2024-01-01T12:00:00..2024-01-01T23:59:59']);
    expect(splitWindow(rootWindow('f', '2024-01-01', '2024-01-01'), DAY_MS)).toBeNull();
  });

  it('parses and shifts JST dates', () => {
    expect(jstDayStart('2024-02-30')).toBeNull();
    expect(jstDayStart('2024-1-1')).toBeNull();
    // 2024-01-01T20:00Z is already the 2nd in Japan.
    expect(jstDate(Date.parse('2024-01-01T20:00:00Z'))).toBe('2024-01-02');
    expect(jstDate(Date.parse('2024-01-01T20:00:00Z'), -14)).toBe('2023-12-19');
  });
});
