/**
 * What commands use to show progress. Core modules never see a Reporter: they emit typed `onProgress` events and
 * the command translates them into phases and bars. Implementations: `tty-reporter.ts` (ora + cli-progress on a
 * TTY, plain lines otherwise), `silentReporter` (`--json`/`--quiet`), and `src/testing/recording-reporter.ts`.
 * Everything a Reporter writes goes to stderr; stdout carries only the result.
 */

export interface PhaseHandle {
  /** Finish the phase successfully, optionally replacing its label. */
  succeed(text?: string): void;
  fail(text?: string): void;
  /** Change the text of a running phase. */
  update(text: string): void;
}

export interface ProgressHandle {
  /** Set absolute progress; `info` is short text shown after the bar (loss, rate, ...). */
  update(done: number, info?: string): void;
  /** Grow or shrink the total (for work whose size becomes known late). */
  setTotal(total: number): void;
  stop(): void;
}

export interface Reporter {
  /** A phase of unknown length ("Loading model"). */
  phase(text: string): PhaseHandle;
  /** Counted work (epochs, pages, rows, bytes). */
  progress(label: string, total: number, unit?: string): ProgressHandle;
  info(text: string): void;
  warn(text: string): void;
  /** Only shown with --verbose. */
  debug(text: string): void;
  /** Stop everything still running (called in `finally`). */
  close(): void;
}

const noopPhase: PhaseHandle = { succeed() {}, fail() {}, update() {} };
const noopProgress: ProgressHandle = { update() {}, setTotal() {}, stop() {} };

/** For `--json` and `--quiet`: no spinners, bars or info lines. Warnings still reach stderr unless silenced. */
export function silentReporter(opts: { warn?: (text: string) => void } = {}): Reporter {
  return {
    phase: () => noopPhase,
    progress: () => noopProgress,
    info() {},
    warn: (t) => opts.warn?.(t),
    debug() {},
    close() {},
  };
}
