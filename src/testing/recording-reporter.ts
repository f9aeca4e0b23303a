import type { PhaseHandle, ProgressHandle, Reporter } from '../output/reporter.js';

export type RecordedEvent =
  | { kind: 'phase'; text: string }
  | { kind: 'phase-end'; text: string; ok: boolean }
  | { kind: 'progress'; label: string; total: number }
  | { kind: 'progress-update'; label: string; done: number; info?: string }
  | { kind: 'progress-stop'; label: string }
  | { kind: 'info' | 'warn' | 'debug'; text: string };

/** A Reporter that records what a command reported, for assertions in command tests. */
export interface RecordingReporter extends Reporter {
  events: RecordedEvent[];
  /** Texts of info/warn lines. */
  lines(kind?: 'info' | 'warn' | 'debug'): string[];
  /** True once close() ran (commands must stop their progress in `finally`). */
  closed: boolean;
}

export function recordingReporter(): RecordingReporter {
  const events: RecordedEvent[] = [];
  const r: RecordingReporter = {
    events,
    closed: false,
    phase(text): PhaseHandle {
      events.push({ kind: 'phase', text });
      let current = text;
      return {
        succeed: (t) => events.push({ kind: 'phase-end', text: t ?? current, ok: true }),
        fail: (t) => events.push({ kind: 'phase-end', text: t ?? current, ok: false }),
        update: (t) => {
          current = t;
        },
      };
    },
    progress(label, total): ProgressHandle {
      events.push({ kind: 'progress', label, total });
      return {
        update: (done, info) => events.push({ kind: 'progress-update', label, done, info }),
        setTotal: () => {},
        stop: () => events.push({ kind: 'progress-stop', label }),
      };
    },
    info: (text) => events.push({ kind: 'info', text }),
    warn: (text) => events.push({ kind: 'warn', text }),
    debug: (text) => events.push({ kind: 'debug', text }),
    close() {
      r.closed = true;
    },
    lines(kind) {
      return events
        .filter((e): e is { kind: 'info' | 'warn' | 'debug'; text: string } =>
          kind ? e.kind === kind : e.kind === 'info' || e.kind === 'warn',
        )
        .map((e) => e.text);
    },
  };
  return r;
}
