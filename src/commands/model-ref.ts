/**
 * `--model current|<version>|<dir>` for the commands that load a model (embed, quickstart, ...): resolve it to a
 * local folder whose every file has been checked against its manifest's sha256.
 *
 *   const m = await resolveModel({ ...common, model: flags.model });   // m.dir, m.manifest, m.version
 *
 * - `current` (the default): the version `<name>/current.json` points at, downloaded once into
 *   `.am-ml/cache/models/<manifest sha256>/` and re-verified on every use;
 * - a version id (`20261122T091500Z`): that version, the same way;
 * - a folder (anything with a `/`, starting with `.`, or existing on disk): used in place after verifying it.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { UsageError, ValidationFailedError } from '../errors.js';
import { MANIFEST_FILE, type ModelManifest } from '../ml/artifacts.js';
import { parseManifest, readManifest, verifyModelFolder } from '../ml/artifacts-fs.js';
import { resolveStoredModel } from '../registry/model-cache.js';
import { type CommonOptions, cwdOf, reporterOf } from './common.js';
import { DEFAULT_MODEL_NAME, MODEL_CACHE_DIR, openModelStore } from './store.js';

export interface ResolveModelOptions extends CommonOptions {
  /** `current`, a version id, or a model folder. @default current */
  model?: string;
  /** Model name in the store. @default two_tower */
  name?: string;
  /** @default .am-ml/cache/models (relative to cwd) */
  cacheDir?: string;
}

export interface ResolvedModelRef {
  /** Local folder with manifest.json and every listed file, verified. */
  dir: string;
  manifest: ModelManifest;
  manifestSha256: string;
  /** The published version id, or the run id of an unpublished folder (what embed records as model_version). */
  version: string;
  /** Whether the model came from the store (its manifest carries a publication record). */
  published: boolean;
  source: 'dir' | 'cache' | 'download';
  /** The store URL for store-resolved models. */
  store?: string;
}

function looksLikeDir(spec: string, cwd: string): boolean {
  return spec.includes('/') || spec.includes(path.sep) || spec.startsWith('.') || existsSync(path.resolve(cwd, spec));
}

export async function resolveModel(opts: ResolveModelOptions = {}): Promise<ResolvedModelRef> {
  const spec = opts.model ?? 'current';
  const cwd = cwdOf(opts);
  const reporter = reporterOf(opts);
  if (spec !== 'current' && looksLikeDir(spec, cwd)) {
    const dir = path.resolve(cwd, spec);
    if (!existsSync(dir)) throw new UsageError(`--model ${spec}: no such folder (${dir}).`);
    const phase = reporter.phase(`Verifying model folder ${dir}`);
    const manifest = readManifest(dir);
    const problems = await verifyModelFolder(dir, manifest);
    if (problems.length) {
      phase.fail();
      throw new ValidationFailedError(`${dir} does not match its manifest: ${problems.map((p) => `${p.path} ${p.problem}`).join('; ')}.`, {
        code: 'MODEL_FOLDER_DAMAGED',
        details: { problems },
      });
    }
    phase.succeed(`Model folder ${dir}: every file matches its sha256`);
    const manifestSha256 = createHash('sha256').update(readFileSync(path.join(dir, MANIFEST_FILE))).digest('hex');
    return { dir, manifest, manifestSha256, version: manifest.publication?.version ?? manifest.runId, published: Boolean(manifest.publication), source: 'dir' };
  }

  const opened = await openModelStore(opts);
  const phase = reporter.phase(`Resolving ${opts.name ?? DEFAULT_MODEL_NAME} ${spec} in ${opened.store.url}`);
  let bar: ReturnType<typeof reporter.progress> | undefined;
  let done = 0;
  try {
    const r = await resolveStoredModel({
      store: opened.store,
      name: opts.name ?? DEFAULT_MODEL_NAME,
      ref: spec,
      cacheDir: path.resolve(cwd, opts.cacheDir ?? MODEL_CACHE_DIR),
      parseManifest,
      signal: opts.signal,
      onProgress: (e) => {
        if (e.kind === 'resolved') phase.update(`Resolving ${spec}: version ${e.version}`);
        else if (e.kind === 'cache-damaged') reporter.warn(`cached copy ${e.dir} is damaged (${e.problem}); downloading again`);
        else if (e.kind === 'download-start') bar = reporter.progress(`Downloading ${e.version}`, e.bytes, 'bytes');
        else if (e.kind === 'download-file') bar?.update((done += e.bytes));
      },
    });
    bar?.stop();
    phase.succeed(`Model ${r.name} ${r.version} ${r.source === 'cache' ? 'from the cache' : 'downloaded'}, every sha256 verified: ${r.dir}`);
    return { dir: r.dir, manifest: r.manifest, manifestSha256: r.manifestSha256, version: r.version, published: true, source: r.source, store: r.store };
  } catch (err) {
    bar?.stop();
    phase.fail();
    throw err;
  }
}
