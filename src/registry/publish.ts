/**
 * Publish a model folder as an immutable version, then (optionally) make it current. The order is what makes a
 * crash harmless (app-schema §7.10/11):
 *   1. refuse if the version already has a manifest (versions are immutable: exit 6, never an overwrite);
 *   2. upload every file with create-if-absent (parallel; the store retries); files left by an interrupted
 *      publish of the same version are reused only if their bytes are identical;
 *   3. read the listing back and check every size, then download and hash every file;
 *   4. write `manifest.json` (create-if-absent): from here on the version is complete;
 *   5. compare-and-swap `current.json` against the pointer read when the publish began.
 * Killed anywhere before 4, the version is incomplete and never current; between 4 and 5, it is complete but not
 * current. The old pointer and the old version are untouched throughout.
 */
import { ConflictError, InterruptedError, throwIfAborted, ValidationFailedError } from '../errors.js';
import type { ModelManifest, Publication } from '../ml/artifacts.js';
import { concurrencyOf, nowOf, pointerMovedError, readCurrent, type RegistryContext, versionOfText } from './context.js';
import { sha256Hex } from './hash.js';
import { assertId, contentTypeFor, joinStorePath, manifestPath, pointerPath, versionDir } from './paths.js';
import { nextPointer, parsePointer, type PointerEntry, pointerEntry, serializePointer } from './pointer.js';
import { mapLimit } from './pool.js';
import { describeProblems, verifyVersion } from './verify.js';

export interface PublishInput {
  version: string;
  /** The source folder's manifest, already parsed and verified against its files by the caller. */
  manifest: ModelManifest;
  /** Bytes of a file of the source folder (path as listed in the manifest). */
  readFile: (path: string) => Promise<Uint8Array>;
  /** Recorded in the published manifest. */
  publication?: Pick<Publication, 'notes' | 'sourceRunId' | 'sourcePath' | 'gate'>;
  /** Move the pointer after a verified upload. @default true */
  activate?: boolean;
  /**
   * The pointer text as read when the publish began (gates were judged against it); the pointer write is refused
   * if it changed since. Read at the start of publishVersion when not given.
   */
  expectedPointer?: string | null;
  /** Check everything that can be checked without writing. */
  dryRun?: boolean;
}

export interface PublishResult {
  name: string;
  version: string;
  store: string;
  /** Version folder relative to the bucket / store folder. */
  path: string;
  files: number;
  bytes: number;
  uploaded: number;
  /** Files left by an interrupted publish of this version, identical and kept. */
  reused: number;
  manifestSha256?: string;
  activated: boolean;
  previous: string | null;
  dryRun: boolean;
  entry?: PointerEntry;
}

export async function publishVersion(ctx: RegistryContext, input: PublishInput): Promise<PublishResult> {
  const { store, name } = ctx;
  assertId(name, 'name', '--name');
  assertId(input.version, 'version', '--version');
  const version = input.version;
  const activate = input.activate ?? true;
  const dir = versionDir(name, version);
  const expected = input.expectedPointer !== undefined ? input.expectedPointer : (await readCurrent(ctx)).text;
  if (expected !== null) parsePointer(expected, `${store.url}/${pointerPath(name)}`);
  const files = input.manifest.files;
  const bytes = files.reduce((s, f) => s + f.size, 0);
  const result: PublishResult = {
    name,
    version,
    store: store.url,
    path: joinStorePath(store.rootPath, dir),
    files: files.length,
    bytes,
    uploaded: 0,
    reused: 0,
    activated: false,
    previous: expected === null ? null : versionOfText(expected),
    dryRun: Boolean(input.dryRun),
  };

  const tooLarge = files.filter((f) => f.size > store.maxFileBytes);
  if (tooLarge.length) {
    throw new ValidationFailedError(
      `${tooLarge.map((f) => `${f.path} (${f.size} bytes)`).join(', ')} exceed${tooLarge.length === 1 ? 's' : ''} the store's per-file limit of ${store.maxFileBytes} bytes; nothing was uploaded.`,
      { code: 'FILE_TOO_LARGE', hint: 'Write the weights in smaller shards (TF.js uses 4 MiB shards) and publish again.' },
    );
  }
  if (await store.getFile(manifestPath(name, version), { signal: ctx.signal })) {
    throw versionExists(ctx, version);
  }
  const leftovers = new Map(
    (await store.list(dir, { signal: ctx.signal })).map((o) => [o.path.slice(dir.length + 1), o.size] as const),
  );
  if (input.dryRun) return result;
  try {
    return await uploadVerifyActivate(ctx, input, { dir, expected, leftovers, result, activate });
  } catch (err) {
    // Say what an interruption left behind, wherever in the transfer it struck.
    if (err instanceof InterruptedError && !err.message.includes(version)) {
      const left = result.manifestSha256
        ? `${version} is complete but not current; run \`am-ml rollback --to ${version}\` to activate it.`
        : interruptedHint(version);
      throw new InterruptedError(`Interrupted. ${left}`, { cause: err });
    }
    throw err;
  }
}

interface PublishState {
  dir: string;
  expected: string | null;
  leftovers: Map<string, number>;
  result: PublishResult;
  activate: boolean;
}

async function uploadVerifyActivate(ctx: RegistryContext, input: PublishInput, st: PublishState): Promise<PublishResult> {
  const { store, name } = ctx;
  const { version, manifest } = input;
  const { dir, expected, leftovers, result, activate } = st;
  const files = manifest.files;
  const bytes = result.bytes;

  // 2. Upload.
  await mapLimit(files, concurrencyOf(ctx), async (f) => {
    throwIfAborted(ctx.signal, interruptedHint(version));
    ctx.onProgress?.({ kind: 'upload-start', path: f.path, bytes: f.size });
    const body = await input.readFile(f.path);
    if (body.byteLength !== f.size || sha256Hex(body) !== f.sha256) {
      throw new ValidationFailedError(`${f.path} changed after the source folder was verified (size or sha256 differs from its manifest).`, {
        code: 'SOURCE_CHANGED',
        hint: 'Re-run the command once the folder is no longer being written.',
      });
    }
    const key = `${dir}/${f.path}`;
    let reused = false;
    if (leftovers.has(f.path)) reused = await sameObject(ctx, key, body, version);
    if (!reused) {
      try {
        await store.putFile(key, body, { signal: ctx.signal, contentType: contentTypeFor(f.path) });
      } catch (err) {
        if (!(err instanceof ConflictError && err.code === 'OBJECT_EXISTS')) throw err;
        // Another publish of the same version is uploading the same files: identical bytes are fine.
        reused = await sameObject(ctx, key, body, version);
      }
    }
    if (reused) result.reused++;
    else result.uploaded++;
    ctx.onProgress?.({ kind: 'upload-done', path: f.path, bytes: f.size, reused });
  });

  // 3. Read back: listing sizes, then every byte hashed. The manifest is not there yet, so check against the source.
  throwIfAborted(ctx.signal, interruptedHint(version));
  const listed = new Map((await store.list(dir, { signal: ctx.signal })).map((o) => [o.path.slice(dir.length + 1), o.size] as const));
  const missing = files.filter((f) => listed.get(f.path) !== f.size);
  if (missing.length) {
    throw new ValidationFailedError(
      `After upload, the store lists ${missing.map((f) => `${f.path} as ${listed.has(f.path) ? `${listed.get(f.path)} bytes (expected ${f.size})` : 'missing'}`).join(', ')}; ${version} was not made current.`,
      { code: 'UPLOAD_INCOMPLETE', hint: interruptedHint(version) },
    );
  }
  ctx.onProgress?.({ kind: 'verify-start', version, files: files.length, bytes });
  await mapLimit(files, concurrencyOf(ctx), async (f) => {
    const body = await store.getFile(`${dir}/${f.path}`, { signal: ctx.signal });
    const sha = body ? sha256Hex(body) : 'missing';
    ctx.onProgress?.({ kind: 'verify-file', version, path: f.path, bytes: f.size, ok: sha === f.sha256 });
    if (sha !== f.sha256) {
      throw new ValidationFailedError(`${f.path} reads back from the store with sha256 ${sha.slice(0, 12)}…, expected ${f.sha256.slice(0, 12)}…; ${version} was not made current.`, {
        code: 'CHECKSUM_MISMATCH',
        details: { path: f.path, expected: f.sha256, found: sha },
      });
    }
  });

  // 4. The manifest marks the version complete.
  const published: ModelManifest = {
    ...input.manifest,
    publication: { name, version, publishedAt: nowOf(ctx).toISOString(), ...definedOnly(input.publication ?? {}) },
  };
  const manifestText = `${JSON.stringify(published, null, 2)}\n`;
  const checked = ctx.parseManifest(manifestText, `${store.url}/${manifestPath(name, version)}`);
  const manifestBytes = new TextEncoder().encode(manifestText);
  try {
    await store.putFile(manifestPath(name, version), manifestBytes, { signal: ctx.signal, contentType: 'application/json' });
    result.manifestSha256 = sha256Hex(manifestBytes);
  } catch (err) {
    if (err instanceof ConflictError && err.code === 'OBJECT_EXISTS') throw versionExists(ctx, version);
    throw err;
  }
  const verified = await verifyVersion(ctx, version, { deep: false });
  if (verified.status !== 'complete' || verified.manifestSha256 !== sha256Hex(manifestBytes)) {
    throw new ValidationFailedError(`${version} does not read back complete: ${describeProblems(verified.problems)}.`, { code: 'UPLOAD_INCOMPLETE' });
  }
  result.manifestSha256 = verified.manifestSha256;
  const entry = pointerEntry({
    name,
    version,
    rootPath: store.rootPath,
    manifest: checked,
    manifestBytes,
    manifestSha256: verified.manifestSha256,
    reason: 'publish',
    activatedAt: nowOf(ctx),
  });
  result.entry = entry;
  if (!activate) return result;

  // 5. Move the pointer only if nobody else did since the publish began.
  throwIfAborted(ctx.signal, `${version} is complete but not current; run \`am-ml rollback --to ${version}\` to activate it.`);
  const prev = expected === null ? null : parsePointer(expected, pointerPath(name));
  const next = nextPointer(name, prev, entry, nowOf(ctx));
  try {
    await store.writePointer(pointerPath(name), serializePointer(next), { expected, signal: ctx.signal });
  } catch (err) {
    throw pointerMovedError(err, ctx, version, ` ${version} itself is published and complete; run \`am-ml rollback --to ${version}\` to activate it if it should still win.`);
  }
  ctx.onProgress?.({ kind: 'pointer', from: prev?.current.version ?? null, to: version, reason: 'publish' });
  result.activated = true;
  return result;
}

async function sameObject(ctx: RegistryContext, key: string, body: Uint8Array, version: string): Promise<boolean> {
  const existing = await ctx.store.getFile(key, { signal: ctx.signal });
  if (existing && existing.byteLength === body.byteLength && sha256Hex(existing) === sha256Hex(body)) return true;
  throw new ConflictError(`${key} already exists in ${ctx.store.url} with different content; versions are never overwritten.`, {
    code: 'VERSION_CONFLICT',
    hint: `Publish under another --version, or remove the unfinished ${version} with \`am-ml models prune\`.`,
  });
}

function versionExists(ctx: RegistryContext, version: string): ConflictError {
  return new ConflictError(`${ctx.name} version ${version} already exists in ${ctx.store.url}; published versions are never overwritten.`, {
    code: 'VERSION_EXISTS',
    hint: 'Choose another --version (the default is a fresh UTC timestamp), or `am-ml rollback --to <version>` to serve an existing one.',
    details: { version },
  });
}

function interruptedHint(version: string): string {
  return `${version} is incomplete and not current; the current version is unchanged. Re-run the same publish with --version ${version} to finish it, or remove it with \`am-ml models prune\`.`;
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
