import { Writable } from 'node:stream';

/** A writable that collects what is written (for stdout/stderr in in-process CLI tests). Not a TTY. */
export function captureStream(): Writable & { text(): string } {
  const chunks: string[] = [];
  const w = new Writable({
    write(chunk, _enc, cb) {
      chunks.push(chunk.toString());
      cb();
    },
  }) as Writable & { text(): string };
  w.text = () => chunks.join('');
  return w;
}
