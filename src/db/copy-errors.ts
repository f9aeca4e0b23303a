import { ValidationFailedError } from '../errors.js';
import { CopyEncodeError } from './binary-copy.js';
import type { CopyColumn } from './types.js';

/** Run an encoder; a bad value becomes a ValidationFailedError naming table, row and column (nothing is written). */
export function wrapEncodeError<T>(table: string, columns: readonly CopyColumn[], encode: () => T): T {
  try {
    return encode();
  } catch (err) {
    if (err instanceof CopyEncodeError) {
      const col = columns[err.column]?.name ?? `#${err.column + 1}`;
      throw new ValidationFailedError(
        `Refusing to write ${table}: ${err.message.replace(/column \d+/, `column ${col}`)}. Nothing was written.`,
        { code: 'BAD_ROW', details: { table, row: err.row, column: col }, cause: err },
      );
    }
    throw err;
  }
}
