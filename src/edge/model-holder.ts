/**
 * The model an Edge Function instance serves: loaded from the store by its pointer, verified, kept across requests,
 * and replaced when the pointer moves. Policy (README "Edge runtime"):
 *
 * - Cold start: the first request reads `<prefix>/<name>/current.json` and loads the version it names through
 *   `loadTwoTower` (every file's size and sha256 from the manifest, the manifest itself against the pointer's
 *   sha256, strict weights, the probe). Concurrent requests share one load.
 * - Pointer max age (default 60 s): a request arriving later than that after the last pointer read reads the
 *   pointer again (one small GET) and loads the new version when it changed. 0 checks on every request.
 * - `reload({version, name})` (the `reload_models` call `am-ml publish` / `rollback` make): reads the pointer at once
 *   and loads what it names. The pointer is the truth: if it names another version than the one asked for, that
 *   one is loaded and the answer says so.
 * - A failed load never replaces a working model: the old version keeps serving and the failure is reported. With
 *   nothing loaded, requests get the caller's fallback. A version that failed is not downloaded again before
 *   `retryAfterFailureMs` (default 30 s) has passed, whatever the max age; a reload call retries at once.
 *
 * Each function instance (Supabase worker) has its own holder: a reload call reaches one worker of the function it
 * is sent to, so other workers pick the new version up through the pointer max age.
 */
import { type LoadedTwoTower, loadTwoTower } from '../ml/load-model.js';
import { sha256Hex } from '../ml/sha256.js';
import { activeBackend } from '../ml/tf.js';
import { pointerPath, VERSION_MANIFEST } from '../registry/paths.js';
import { type Pointer, type PointerEntry, parsePointer } from '../registry/pointer.js';
import type { StoreReader } from './store.js';

export const DEFAULT_POINTER_MAX_AGE_MS = 60_000;
export const DEFAULT_RETRY_AFTER_FAILURE_MS = 30_000;

export interface ServedModel {
  model: LoadedTwoTower;
  name: string;
  /** The store version (the pointer's `current.version`): the `model_version` `am-ml embed` writes for this model. */
  version: string;
  /** The training run the version was published from. */
  runId: string;
  /** The TF.js backend running it (`cpu`, `wasm`). */
  backend: string;
  loadedAt: number;
  loadMs: number;
}

export type HolderEvent =
  | { kind: 'pointer'; version: string | null; changed: boolean }
  | { kind: 'load-start'; version: string }
  | { kind: 'load-done'; version: string; ms: number; replaced: string | null }
  | { kind: 'load-failed'; version: string | null; reason: string; serving: string | null };

export interface ModelHolderOptions {
  store: StoreReader;
  /** Model name (the folder under the store prefix). @default two_tower */
  name?: string;
  /** @default 60 000 */
  pointerMaxAgeMs?: number;
  /** @default 30 000 */
  retryAfterFailureMs?: number;
  /** Rows per inference batch. @default 256 */
  batchSize?: number;
  /** Runs once before the first load (TF.js backend selection); a throw counts as a failed load. */
  prepare?: () => Promise<void>;
  now?: () => number;
  onEvent?: (e: HolderEvent) => void;
}

export interface HolderState {
  served: ServedModel | null;
  /** Why nothing (or an older version) is served; null when the last attempt succeeded. */
  failure: string | null;
}

export interface ReloadRequest {
  version?: string;
  name?: string;
}

export interface ReloadOutcome {
  ok: boolean;
  name: string;
  requested: string | null;
  /** The version served after the reload (null: none). */
  version: string | null;
  runId: string | null;
  previous: string | null;
  changed: boolean;
  /** Set when the pointer names another version than the one requested. */
  note?: string;
  error?: string;
  loadMs?: number;
}

const decoder = new TextDecoder();

export class ModelHolder {
  readonly name: string;
  private served: ServedModel | null = null;
  private failure: { reason: string; at: number; version: string | null } | null = null;
  private pointerCheckedAt = -Infinity;
  private inFlight: Promise<void> | null = null;
  private prepared: Promise<void> | null = null;
  private readonly maxAge: number;
  private readonly retryAfter: number;
  private readonly now: () => number;

  constructor(private readonly opts: ModelHolderOptions) {
    this.name = opts.name ?? 'two_tower';
    this.maxAge = opts.pointerMaxAgeMs ?? DEFAULT_POINTER_MAX_AGE_MS;
    this.retryAfter = opts.retryAfterFailureMs ?? DEFAULT_RETRY_AFTER_FAILURE_MS;
    this.now = opts.now ?? (() => Date.now());
  }

  /** The model to serve now, refreshing by the policy above. Never throws. */
  async current(): Promise<HolderState> {
    if (this.inFlight) await this.inFlight;
    const t = this.now();
    // Serving: the pointer max age decides. Nothing to serve: try again unless the last failure is recent.
    const due = this.served ? t - this.pointerCheckedAt >= this.maxAge : this.failure === null || t - this.failure.at >= this.retryAfter;
    if (due) await this.refresh();
    return this.state();
  }

  state(): HolderState {
    return { served: this.served, failure: this.failure?.reason ?? null };
  }

  /** Load what the pointer names now (see the module comment). Never throws. */
  async reload(req: ReloadRequest = {}): Promise<ReloadOutcome> {
    const requested = req.version ?? null;
    const base = { name: this.name, requested };
    if (req.name !== undefined && req.name !== this.name) {
      const s = this.served;
      return { ...base, ok: false, version: s?.version ?? null, runId: s?.runId ?? null, previous: s?.version ?? null, changed: false, error: `This function serves model '${this.name}', not '${req.name}'.` };
    }
    if (this.inFlight) await this.inFlight;
    const previous = this.served?.version ?? null;
    const pointerVersion = await this.refresh(true);
    const s = this.served;
    const out: ReloadOutcome = { ...base, ok: false, version: s?.version ?? null, runId: s?.runId ?? null, previous, changed: (s?.version ?? null) !== previous };
    if (requested !== null && pointerVersion !== null && pointerVersion !== requested) {
      out.note = `The pointer names ${pointerVersion}, not the requested ${requested}; the pointer wins.`;
    }
    if (this.failure) out.error = this.failure.reason;
    else out.ok = s !== null;
    if (out.changed && s) out.loadMs = s.loadMs;
    return out;
  }

  dispose(): void {
    this.served?.model.dispose();
    this.served = null;
  }

  /**
   * Read the pointer and load its version when it is not the one served. A version that just failed to load is not
   * downloaded again before the back-off has passed (unless `force`: a reload call). Returns the pointer's version.
   */
  private refresh(force = false): Promise<string | null> {
    let version: string | null = null;
    const run = (async () => {
      const t = this.now();
      let pointer: Pointer;
      try {
        pointer = await this.readPointer();
      } catch (err) {
        this.pointerCheckedAt = t;
        this.fail(null, (err as Error).message);
        return;
      }
      this.pointerCheckedAt = t;
      version = pointer.current.version;
      const changed = version !== this.served?.version;
      this.opts.onEvent?.({ kind: 'pointer', version, changed });
      if (!changed) {
        this.failure = null;
        return;
      }
      if (!force && this.failure?.version === version && t - this.failure.at < this.retryAfter) return;
      try {
        await this.load(pointer.current);
        this.failure = null;
      } catch (err) {
        this.fail(version, (err as Error).message);
      }
    })();
    this.inFlight = run;
    return run.then(() => {
      if (this.inFlight === run) this.inFlight = null;
      return version;
    });
  }

  private fail(version: string | null, reason: string): void {
    this.failure = { reason, at: this.now(), version };
    this.opts.onEvent?.({ kind: 'load-failed', version, reason, serving: this.served?.version ?? null });
  }

  private async readPointer(): Promise<Pointer> {
    const p = [this.opts.store.prefix, pointerPath(this.name)].filter(Boolean).join('/');
    const bytes = await this.opts.store.get(p, { fresh: true });
    if (!bytes) throw new Error(`No model is published: ${this.opts.store.display}/${pointerPath(this.name)} does not exist (run \`am-ml publish\`).`);
    return parsePointer(decoder.decode(bytes), `${this.opts.store.display}/${pointerPath(this.name)}`);
  }

  private async load(entry: PointerEntry): Promise<void> {
    this.prepared ??= (this.opts.prepare ?? (async () => {}))();
    try {
      await this.prepared;
    } catch (err) {
      this.prepared = null;
      throw new Error(`TF.js could not start: ${(err as Error).message}`);
    }
    const started = this.now();
    this.opts.onEvent?.({ kind: 'load-start', version: entry.version });
    const store = this.opts.store;
    const where = `${store.display}/${entry.path.slice(store.prefix ? store.prefix.length + 1 : 0)}`;
    const model = await loadTwoTower(
      async (rel) => {
        const bytes = await store.get(`${entry.path}/${rel}`);
        if (!bytes) throw new Error('not found in the store');
        // The pointer pins the manifest; the manifest pins every other file (checked by loadTwoTower).
        if (rel === VERSION_MANIFEST) {
          const sha = await sha256Hex(bytes);
          if (sha !== entry.manifest.sha256 || bytes.byteLength !== entry.manifest.size) {
            throw new Error(`manifest.json is ${bytes.byteLength} bytes with sha256 ${sha}, but the pointer recorded ${entry.manifest.size} bytes with sha256 ${entry.manifest.sha256}`);
          }
        }
        return bytes;
      },
      { where, batchSize: this.opts.batchSize ?? 256 },
    );
    const old = this.served;
    const loadMs = this.now() - started;
    this.served = { model, name: this.name, version: entry.version, runId: model.runId, backend: activeBackend(), loadedAt: this.now(), loadMs };
    // Safe: inference is synchronous, so no request holds the old model across an await.
    old?.model.dispose();
    this.opts.onEvent?.({ kind: 'load-done', version: entry.version, ms: loadMs, replaced: old?.version ?? null });
  }
}
