/**
 * The two ways a Keras input can fail, mapped onto the project's exit codes:
 *
 * - `unreadableInput` (UsageError, exit 2): the file is not a Keras model we can read at all: wrong magic, damaged
 *   or truncated HDF5/zip, unsafe zip member names, sizes over the limits, an HDF5 feature we do not read, a missing
 *   topology for a weights-only file.
 * - `invalidModel` (ValidationFailedError, exit 4): the file is readable but the model is not convertible or not
 *   consistent: unsupported layers, weight counts or shapes that disagree with the config, unused or duplicated
 *   weights, numeric mismatches.
 */
import { UsageError, ValidationFailedError } from '../../errors.js';
import { Hdf5Error } from './hdf5/bytes.js';

export function unreadableInput(message: string, hint?: string, cause?: unknown): UsageError {
  return new UsageError(message, { code: 'KERAS_INPUT_UNREADABLE', hint, cause });
}

export function invalidModel(message: string, opts: { code?: string; hint?: string; details?: Record<string, unknown>; cause?: unknown } = {}): ValidationFailedError {
  return new ValidationFailedError(message, { code: opts.code ?? 'KERAS_MODEL_INVALID', hint: opts.hint, details: opts.details, cause: opts.cause });
}

/** Turn an `Hdf5Error` from reading `file` into the matching user-facing error; other errors pass through. */
export function fromHdf5Error(err: unknown, file: string): unknown {
  if (!(err instanceof Hdf5Error)) return err;
  if (err.kind === 'limit') {
    return invalidModel(`${file}: ${err.message}`, { code: 'KERAS_SIZE_LIMIT', cause: err, hint: 'The file declares sizes no real model has; it is damaged or hostile.' });
  }
  return unreadableInput(
    `${file} cannot be read as HDF5: ${err.message}`,
    err.kind === 'unsupported' ? 'Re-save the model with Keras defaults (model.save("model.keras") or model.save("model.h5")).' : 'The file is damaged or truncated; copy it again from its source.',
    err,
  );
}
