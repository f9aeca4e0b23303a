/**
 * Is a stored version complete? A version is complete when its manifest.json is present, valid, names this
 * version, and every file it lists is present with the listed size and (deep check) sha256. Without a manifest the
 * version is `incomplete`: a publish that did not finish, or a prune in progress (both write/remove the manifest
 * at the edge of the operation). With a manifest but bad files it is `corrupt`.
 */
import { ConfigError } from '../errors.js';
import type { ModelManifest } from '../ml/artifacts.js';
import { concurrencyOf, type RegistryContext } from './context.js';
import { sha256Hex } from './hash.js';
import { manifestPath, VERSION_MANIFEST, versionDir } from './paths.js';
import { mapLimit } from './pool.js';
import type { StoredObject } from './types.js';

export type VersionStatus = 'complete' | 'incomplete' | 'corrupt' | 'absent';

export interface VersionProblem {
  /** File path inside the version folder (`manifest.json` for manifest problems). */
  path: string;
  problem: 'missing' | 'size' | 'sha256' | 'manifest-missing' | 'manifest-invalid' | 'manifest-mismatch';
  expected?: string | number;
  found?: string | number;
  detail?: string;
}

export interface VerifyReport {
  version: string;
  status: VersionStatus;
  /** `sha256`: every file was downloaded and hashed; `sizes`: the listing was compared only. */
  checked: 'sha256' | 'sizes';
  files: number;
  bytes: number;
  manifest?: ModelManifest;
  manifestBytes?: Uint8Array;
  manifestSha256?: string;
  problems: VersionProblem[];
  /** Newest write time among the version's objects (prune's grace period for incomplete versions). */
  lastWriteAt?: string;
}

export interface VerifyOptions {
  /** Download and hash every file (else compare sizes from the listing). @default true */
  deep?: boolean;
  /** The version's objects, when the caller already listed them (relative to the version folder). */
  listing?: StoredObject[];
  /** Refuse a manifest whose sha256 differs (the pointer records it). */
  expectedManifestSha256?: string;
}

export async function verifyVersion(ctx: RegistryContext, version: string, opts: VerifyOptions = {}): Promise<VerifyReport> {
  const deep = opts.deep ?? true;
  const dir = versionDir(ctx.name, version);
  const listing =
    opts.listing ??
    (await ctx.store.list(dir, { signal: ctx.signal })).map((o) => ({ ...o, path: o.path.slice(dir.length + 1) }));
  const sizes = new Map(listing.map((o) => [o.path, o.size]));
  const lastWriteAt = listing.map((o) => o.updatedAt ?? '').sort().pop() || undefined;
  const base: VerifyReport = { version, status: 'absent', checked: deep ? 'sha256' : 'sizes', files: 0, bytes: 0, problems: [], lastWriteAt };
  if (listing.length === 0) return base;

  const manifestBytes = await ctx.store.getFile(manifestPath(ctx.name, version), { signal: ctx.signal });
  if (!manifestBytes) {
    return {
      ...base,
      status: 'incomplete',
      files: listing.length,
      bytes: listing.reduce((s, o) => s + o.size, 0),
      problems: [{ path: VERSION_MANIFEST, problem: 'manifest-missing', detail: 'the publish did not finish (or a prune is removing it)' }],
    };
  }
  const manifestSha256 = sha256Hex(manifestBytes);
  let manifest: ModelManifest;
  try {
    manifest = ctx.parseManifest(new TextDecoder().decode(manifestBytes), `${ctx.store.url}/${dir}/${VERSION_MANIFEST}`);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return { ...base, status: 'corrupt', manifestSha256, problems: [{ path: VERSION_MANIFEST, problem: 'manifest-invalid', detail: err.message }] };
  }
  const problems: VersionProblem[] = [];
  if (opts.expectedManifestSha256 && opts.expectedManifestSha256 !== manifestSha256) {
    problems.push({ path: VERSION_MANIFEST, problem: 'manifest-mismatch', expected: opts.expectedManifestSha256, found: manifestSha256, detail: 'differs from the sha256 recorded in the pointer' });
  }
  const pub = manifest.publication;
  if (!pub || pub.version !== version || pub.name !== ctx.name) {
    problems.push({
      path: VERSION_MANIFEST,
      problem: 'manifest-mismatch',
      expected: `${ctx.name}/${version}`,
      found: pub ? `${pub.name}/${pub.version}` : 'no publication record',
    });
  }
  const bytes = manifest.files.reduce((s, f) => s + f.size, 0);
  const present = manifest.files.filter((f) => {
    const size = sizes.get(f.path);
    if (size === undefined) problems.push({ path: f.path, problem: 'missing' });
    else if (size !== f.size) problems.push({ path: f.path, problem: 'size', expected: f.size, found: size });
    return size === f.size;
  });

  if (deep) {
    ctx.onProgress?.({ kind: 'verify-start', version, files: manifest.files.length, bytes });
    await mapLimit(present, concurrencyOf(ctx), async (f) => {
      const body = await ctx.store.getFile(`${dir}/${f.path}`, { signal: ctx.signal });
      let ok = false;
      if (!body) problems.push({ path: f.path, problem: 'missing' });
      else {
        const sha = sha256Hex(body);
        ok = sha === f.sha256;
        if (!ok) problems.push({ path: f.path, problem: 'sha256', expected: f.sha256, found: sha });
      }
      ctx.onProgress?.({ kind: 'verify-file', version, path: f.path, bytes: f.size, ok });
    });
  }
  problems.sort((a, b) => (a.path < b.path ? -1 : 1));
  return {
    ...base,
    status: problems.length ? 'corrupt' : 'complete',
    files: manifest.files.length,
    bytes,
    manifest,
    manifestBytes,
    manifestSha256,
    problems,
  };
}

/** One line per problem, for error messages. */
export function describeProblems(problems: readonly VersionProblem[], max = 5): string {
  const lines = problems.slice(0, max).map((p) => {
    if (p.problem === 'missing') return `${p.path} is missing`;
    if (p.problem === 'size') return `${p.path} has ${p.found} bytes, expected ${p.expected}`;
    if (p.problem === 'sha256') return `${p.path} has sha256 ${String(p.found).slice(0, 12)}…, expected ${String(p.expected).slice(0, 12)}…`;
    if (p.problem === 'manifest-missing') return `manifest.json is missing (${p.detail})`;
    if (p.problem === 'manifest-invalid') return `manifest.json is invalid: ${p.detail?.split('\n').join(' ')}`;
    return `manifest.json: expected ${p.expected}, found ${p.found}${p.detail ? ` (${p.detail})` : ''}`;
  });
  if (problems.length > max) lines.push(`and ${problems.length - max} more`);
  return lines.join('; ');
}
