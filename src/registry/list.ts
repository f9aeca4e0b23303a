/** `am-ml models`: every stored version of a model with its status, and which one is current. */
import { concurrencyOf, readCurrent, type RegistryContext } from './context.js';
import { mapLimit } from './pool.js';
import { previousVersion } from './pointer.js';
import type { StoredObject } from './types.js';
import { type VerifyReport, type VersionProblem, type VersionStatus, verifyVersion } from './verify.js';

export interface VersionSummary {
  version: string;
  status: VersionStatus;
  current: boolean;
  /** The version a plain `rollback` returns to. */
  previous: boolean;
  checked: 'sha256' | 'sizes';
  files: number;
  bytes: number;
  kind?: string;
  runId?: string;
  createdAt?: string;
  publishedAt?: string;
  embeddingDim?: number;
  metrics?: Record<string, number>;
  notes?: string;
  lastWriteAt?: string;
  problems: VersionProblem[];
}

export interface VersionListing {
  name: string;
  store: string;
  current: string | null;
  previous: string | null;
  /** Set when current.json exists but is damaged. */
  pointerProblem?: string;
  /** Newest first (by publication time, then version id). */
  versions: VersionSummary[];
}

/** The listing row for one verified version. */
export function summaryOf(r: VerifyReport, current: string | null, previous: string | null): VersionSummary {
  const m = r.manifest;
  return {
    version: r.version,
    status: r.status,
    current: r.version === current,
    previous: r.version === previous,
    checked: r.checked,
    files: r.files,
    bytes: r.bytes,
    kind: m?.kind,
    runId: m?.runId,
    createdAt: m?.createdAt,
    publishedAt: m?.publication?.publishedAt,
    embeddingDim: m?.embeddingDim,
    metrics: m?.metrics,
    notes: m?.publication?.notes,
    lastWriteAt: r.lastWriteAt,
    problems: r.problems,
  };
}

export interface ListVersionsOptions {
  /** Hash every file of every version (else compare listing sizes). @default false */
  deep?: boolean;
  tolerateCorruptPointer?: boolean;
  /** Receives each version's full report (with manifest), e.g. to hand deep results on to `repair`. */
  onReport?: (report: VerifyReport) => void;
}

export async function listVersions(ctx: RegistryContext, opts: ListVersionsOptions = {}): Promise<VersionListing> {
  const read = await readCurrent(ctx, { tolerateCorrupt: opts.tolerateCorruptPointer });
  const current = read.pointer?.current.version ?? null;
  const previous = read.pointer ? (previousVersion(read.pointer)?.version ?? null) : null;
  const byVersion = new Map<string, StoredObject[]>();
  for (const o of await ctx.store.list(ctx.name, { signal: ctx.signal })) {
    const rest = o.path.slice(ctx.name.length + 1);
    const slash = rest.indexOf('/');
    if (slash <= 0) continue; // current.json and its lock live beside the versions
    const version = rest.slice(0, slash);
    const list = byVersion.get(version) ?? [];
    list.push({ ...o, path: rest.slice(slash + 1) });
    byVersion.set(version, list);
  }
  // The current version must still be the exact manifest the pointer recorded (a swapped manifest is damage).
  const expectedSha = new Map(read.pointer ? [[read.pointer.current.version, read.pointer.current.manifest.sha256]] : []);
  const versions = await mapLimit([...byVersion.keys()], concurrencyOf(ctx), async (version): Promise<VersionSummary> => {
    const r = await verifyVersion(ctx, version, { deep: opts.deep ?? false, listing: byVersion.get(version), expectedManifestSha256: expectedSha.get(version) });
    opts.onReport?.(r);
    return summaryOf(r, current, previous);
  });
  const when = (v: VersionSummary) => Date.parse(v.publishedAt ?? v.lastWriteAt ?? '') || 0;
  versions.sort((a, b) => when(b) - when(a) || (a.version < b.version ? 1 : a.version > b.version ? -1 : 0));
  return { name: ctx.name, store: ctx.store.url, current, previous, ...(read.corrupt ? { pointerProblem: read.corrupt } : {}), versions };
}
