import cliProgress from 'cli-progress';
import ora, { type Ora } from 'ora';
import { redact } from '../errors.js';
import type { PhaseHandle, ProgressHandle, Reporter } from './reporter.js';

/** Redraw at most this often; TF.js batch callbacks and COPY chunks fire much faster. */
const RENDER_THROTTLE_MS = 50;
/** Without a TTY, print a percentage line each time progress crosses another step of this size. */
const PLAIN_PERCENT_STEP = 10;

export interface TtyReporterOptions {
  stream?: NodeJS.WriteStream;
  verbose?: boolean;
  /** Force plain line output (tests, CI); default: plain when the stream is not a TTY. */
  plain?: boolean;
  now?: () => number;
}

/**
 * Human progress on stderr. On a TTY: ora spinners for phases, one cli-progress bar per counted task. Without a
 * TTY: one line per phase and a percentage line every 10 %, so CI logs stay short and readable.
 */
export function ttyReporter(opts: TtyReporterOptions = {}): Reporter {
  const stream = opts.stream ?? process.stderr;
  const plain = opts.plain ?? !stream.isTTY;
  const now = opts.now ?? Date.now;
  const spinners = new Set<Ora>();
  const bars = new Set<cliProgress.SingleBar>();
  let multi: cliProgress.MultiBar | undefined;
  // While bars are drawn, lines go through the MultiBar's log so they appear above the bars, not through them.
  const write = (line: string) => (multi ? multi.log(`${redact(line)}\n`) : stream.write(`${redact(line)}\n`));

  const phase = (text: string): PhaseHandle => {
    if (plain) {
      write(`- ${text}`);
      let current = text;
      return {
        succeed: (t) => write(`✔ ${t ?? current}`),
        fail: (t) => write(`✖ ${t ?? current}`),
        update: (t) => {
          current = t;
        },
      };
    }
    const spinner = ora({ text: redact(text), stream }).start();
    spinners.add(spinner);
    return {
      succeed: (t) => {
        spinner.succeed(t === undefined ? undefined : redact(t));
        spinners.delete(spinner);
      },
      fail: (t) => {
        spinner.fail(t === undefined ? undefined : redact(t));
        spinners.delete(spinner);
      },
      update: (t) => {
        spinner.text = redact(t);
      },
    };
  };

  const progress = (label: string, total: number, unit = ''): ProgressHandle => {
    let max = Math.max(0, total);
    if (plain) {
      write(`- ${label}: 0/${max}${unit ? ` ${unit}` : ''}`);
      let lastStep = 0;
      let done = 0;
      let stopped = false;
      return {
        update: (d, info) => {
          done = d;
          if (max <= 0) return;
          const step = Math.floor(((d / max) * 100) / PLAIN_PERCENT_STEP);
          if (step > lastStep) {
            lastStep = step;
            const pct = Math.min(100, Math.floor((d / max) * 100));
            write(`  ${label}: ${pct}% (${d}/${max}${unit ? ` ${unit}` : ''})${info ? ` ${info}` : ''}`);
          }
        },
        setTotal: (t) => {
          max = t;
        },
        stop: () => {
          if (stopped) return;
          stopped = true;
          if (done < max && lastStep < 10) write(`  ${label}: stopped at ${done}/${max}`);
        },
      };
    }
    // All bars share one MultiBar, so concurrent work (one bar per uploading file) renders as stacked lines
    // instead of bars overwriting each other.
    multi ??= new cliProgress.MultiBar(
      { stream, hideCursor: true, clearOnComplete: false, etaBuffer: 50, format: '{bar}' },
      cliProgress.Presets.shades_classic,
    );
    const bar = multi.create(max, 0, { info: '' }, {
      format: `${label} [{bar}] {percentage}% | {value}/{total}${unit ? ` ${unit}` : ''} | ETA {eta_formatted} {info}`,
    });
    bars.add(bar);
    let lastRender = 0;
    return {
      update: (d, info) => {
        const t = now();
        if (t - lastRender < RENDER_THROTTLE_MS && d < max) return;
        lastRender = t;
        bar.update(d, { info: info ? redact(info) : '' });
      },
      setTotal: (t) => {
        max = t;
        bar.setTotal(t);
      },
      stop: () => {
        if (!bars.delete(bar)) return;
        bar.stop();
        if (bars.size === 0) {
          // The last bar leaves the final frame on screen.
          multi?.stop();
          multi = undefined;
        } else {
          // A finished bar among running ones (one file of an upload) makes room for the others.
          multi?.remove(bar);
        }
      },
    };
  };

  return {
    phase,
    progress,
    info: (t) => write(t),
    warn: (t) => write(`warning: ${t}`),
    debug: (t) => {
      if (opts.verbose) write(`debug: ${t}`);
    },
    close: () => {
      for (const s of spinners) s.stop();
      for (const b of bars) b.stop();
      multi?.stop();
      multi = undefined;
      spinners.clear();
      bars.clear();
    },
  };
}
