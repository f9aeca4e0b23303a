/**
 * Store layout and the rules for names in it: `<name>/<version>/…` holds one immutable version, `<name>/current.json`
 * is the pointer. Names and version ids become object keys in Supabase Storage and folder names on disk, so they
 * are restricted to characters that are safe in both.
 */
import { InternalError, UsageError } from '../errors.js';

export const POINTER_FILE = 'current.json';
export const VERSION_MANIFEST = 'manifest.json';
/** `--model current` names the pointer, so no version may be called that. */
const RESERVED = new Set(['current', 'latest']);
const ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** A model name (`two_tower`) or version id (`20261122T091500Z`). Throws UsageError naming the flag. */
export function assertId(value: string, what: 'name' | 'version', flag: string): void {
  if (!ID_RE.test(value) || value.endsWith('.json') || value.includes('..')) {
    throw new UsageError(
      `${flag} '${value}' is not a valid ${what}: use 1–128 letters, digits, '.', '_' or '-', starting with a letter or digit.`,
    );
  }
  if (what === 'version' && RESERVED.has(value.toLowerCase())) {
    throw new UsageError(`${flag} '${value}' is reserved (it names the pointer); choose another version id.`);
  }
}

/** A relative object path: no leading slash, no `..`, no empty segments, no backslashes. */
export function assertStorePath(p: string): void {
  if (p === '') return;
  if (p.startsWith('/') || p.includes('\\') || p.split('/').some((s) => s === '' || s === '.' || s === '..')) {
    throw new InternalError(`Refusing an unsafe store path '${p}'.`);
  }
}

export function joinStorePath(...parts: string[]): string {
  return parts.filter((p) => p !== '').join('/');
}

export const versionDir = (name: string, version: string): string => `${name}/${version}`;
export const pointerPath = (name: string): string => `${name}/${POINTER_FILE}`;
export const manifestPath = (name: string, version: string): string => `${name}/${version}/${VERSION_MANIFEST}`;

export function contentTypeFor(p: string): string {
  return p.endsWith('.json') ? 'application/json' : 'application/octet-stream';
}
