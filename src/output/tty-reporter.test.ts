import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ttyReporter } from './tty-reporter.js';

/** A stream that claims to be a terminal and records what is drawn on it. */
function fakeTty() {
  let out = '';
  const s = new Writable({
    write(chunk, _enc, cb) {
      out += chunk.toString();
      cb();
    },
  }) as Writable & { isTTY: boolean; columns: number; text(): string };
  s.isTTY = true;
  s.columns = 120;
  s.text = () => out;
  return s;
}

describe('ttyReporter on a terminal', () => {
  it('draws concurrent bars as stacked lines in one MultiBar, removes finished ones, and keeps the last frame', async () => {
    const stream = fakeTty();
    const r = ttyReporter({ stream: stream as unknown as NodeJS.WriteStream, now: () => Date.now() + Math.random() * 1e6 });
    const total = r.progress('Uploading 2 files', 30, 'bytes');
    const a = r.progress('  a.bin', 10, 'bytes');
    const b = r.progress('  b.bin', 20, 'bytes');
    await new Promise((res) => setTimeout(res, 150)); // the MultiBar redraws on its own timer
    a.update(10);
    a.stop();
    r.info('a line printed while bars run');
    b.update(20);
    b.stop();
    total.update(30);
    total.stop();
    r.close();
    const text = stream.text();
    for (const label of ['Uploading 2 files', 'a.bin', 'b.bin', 'a line printed while bars run']) expect(text).toContain(label);
    expect(text).toMatch(/Uploading 2 files \[[^\]]*\] 100% \| 30\/30 bytes/);
    // Stopping twice and closing after everything stopped are harmless.
    a.stop();
    r.close();
  });

  it('prints one line per step without a terminal', () => {
    const lines: string[] = [];
    const stream = new Writable({
      write(chunk, _enc, cb) {
        lines.push(...chunk.toString().split('\n').filter(Boolean));
        cb();
      },
    });
    const r = ttyReporter({ stream: stream as unknown as NodeJS.WriteStream, plain: true });
    const a = r.progress('x', 4, 'files');
    a.update(2);
    a.update(4);
    a.stop();
    expect(lines).toEqual(['- x: 0/4 files', '  x: 50% (2/4 files)', '  x: 100% (4/4 files)']);
  });
});
