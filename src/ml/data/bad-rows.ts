/**
 * Bad-row accounting per input file: every bad row is counted, the first few are kept with their line numbers for
 * the report, and a file whose bad share exceeds the limit stops the run (exit 4) naming the first bad lines.
 */
import { ValidationFailedError } from '../../errors.js';
import type { BadRow } from './types.js';

/** Bad rows kept per file for the report (all are counted). */
export const BAD_ROWS_KEPT = 20;
/** Default share of bad rows above which a file is "mostly bad" and the run stops. */
export const DEFAULT_MAX_BAD_FRACTION = 0.5;

export class BadRowLog {
  total = 0;
  readonly kept: BadRow[] = [];
  rows = 0;

  constructor(readonly file: string) {}

  add(line: number, reason: string): void {
    this.total++;
    // Keep the lowest line numbers (checks run in more than one pass, so lines can arrive out of order).
    this.kept.push({ file: this.file, line, reason });
    this.kept.sort((a, b) => a.line - b.line);
    if (this.kept.length > BAD_ROWS_KEPT) this.kept.length = BAD_ROWS_KEPT;
  }

  /** Throw when more than `maxFraction` of the file's data rows are bad (or the file has rows and all are bad). */
  check(maxFraction: number): void {
    if (this.rows === 0) return;
    if (this.total / this.rows > maxFraction) {
      const first = this.kept
        .slice(0, 5)
        .map((b) => `line ${b.line}: ${b.reason}`)
        .join('; ');
      throw new ValidationFailedError(
        `${this.file}: ${this.total} of ${this.rows} rows are bad (more than ${Math.round(maxFraction * 100)}%); stopping. First problems: ${first}.`,
        {
          code: 'DATA_INVALID',
          hint: 'Fix the file (the format is documented in `am-ml train --help`), or raise --max-bad-fraction if the bad rows are expected.',
          details: { file: this.file, badRows: this.total, rows: this.rows, first: this.kept.slice(0, 5) },
        },
      );
    }
  }
}
