/**
 * The `<name>/current.json` pointer: which version is served, and every previous current. Each entry carries all
 * that is needed to fetch and re-embed that version without listing the store (app-schema §7.10: the old release
 * script's `previous` entries lost the feature and vocabulary paths, so rollback could not finish).
 */
import { z } from 'zod';
import { ValidationFailedError } from '../errors.js';
import type { ModelManifest } from '../ml/artifacts.js';
import { joinStorePath, VERSION_MANIFEST, versionDir } from './paths.js';

export const POINTER_SCHEMA_VERSION = 1;

const Sha256 = z.string().regex(/^[0-9a-f]{64}$/);
const FileRef = z.object({ path: z.string().min(1), size: z.number().int().nonnegative(), sha256: Sha256 });

export const PointerEntrySchema = z.object({
  version: z.string().min(1),
  /** When this entry became current, and why. */
  activatedAt: z.string().datetime({ offset: true }),
  reason: z.enum(['publish', 'rollback', 'repair']),
  /** The version folder, relative to the bucket (Supabase) or the store folder (local). */
  path: z.string().min(1),
  /** manifest.json inside `path`, with its size and sha256 (the manifest in turn hashes every file). */
  manifest: FileRef,
  publishedAt: z.string().datetime({ offset: true }),
  kind: z.string().min(1),
  runId: z.string().min(1),
  embeddingDim: z.number().int().positive().optional(),
  featureSpecSha256: Sha256.optional(),
  metrics: z.record(z.string(), z.number()).optional(),
  /** Tower folders by role (`user`, `item`), relative to `path`. */
  towers: z.record(z.string(), z.object({ path: z.string().min(1) })),
  /** Every file of the version, relative to `path`. */
  files: z.array(FileRef).min(1),
  notes: z.string().optional(),
});
export type PointerEntry = z.infer<typeof PointerEntrySchema>;

export const PointerSchema = z.object({
  schemaVersion: z.literal(POINTER_SCHEMA_VERSION),
  name: z.string().min(1),
  updatedAt: z.string().datetime({ offset: true }),
  current: PointerEntrySchema,
  /** Previous currents, newest first; never trimmed, so any past release can be fetched again. */
  history: z.array(PointerEntrySchema),
});
export type Pointer = z.infer<typeof PointerSchema>;

/** Parse current.json; a damaged pointer is an integrity failure (exit 4) with the repair command as the hint. */
export function parsePointer(text: string, where: string): Pointer {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw corrupt(where, `not valid JSON (${(err as Error).message})`);
  }
  const parsed = PointerSchema.safeParse(json);
  if (!parsed.success) {
    throw corrupt(where, parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; '));
  }
  return parsed.data;
}

function corrupt(where: string, why: string): ValidationFailedError {
  return new ValidationFailedError(`The model pointer ${where} is damaged: ${why}.`, {
    code: 'POINTER_CORRUPT',
    hint: 'Run `am-ml models verify --repair` to point it at the newest complete version.',
  });
}

export interface EntryInput {
  name: string;
  version: string;
  /** The store's root inside its bucket (`ModelStore.rootPath`). */
  rootPath: string;
  manifest: ModelManifest;
  manifestBytes: Uint8Array;
  manifestSha256: string;
  reason: PointerEntry['reason'];
  activatedAt: Date;
}

export function pointerEntry(i: EntryInput): PointerEntry {
  const m = i.manifest;
  return {
    version: i.version,
    activatedAt: i.activatedAt.toISOString(),
    reason: i.reason,
    path: joinStorePath(i.rootPath, versionDir(i.name, i.version)),
    manifest: { path: VERSION_MANIFEST, size: i.manifestBytes.byteLength, sha256: i.manifestSha256 },
    publishedAt: m.publication?.publishedAt ?? m.createdAt,
    kind: m.kind,
    runId: m.runId,
    ...(m.embeddingDim !== undefined ? { embeddingDim: m.embeddingDim } : {}),
    ...(m.featureSpecSha256 ? { featureSpecSha256: m.featureSpecSha256 } : {}),
    ...(m.metrics ? { metrics: m.metrics } : {}),
    towers: Object.fromEntries(Object.entries(m.towers).map(([role, t]) => [role, { path: t.path }])),
    files: m.files.map((f) => ({ path: f.path, size: f.size, sha256: f.sha256 })),
    ...(m.publication?.notes ? { notes: m.publication.notes } : {}),
  };
}

/** The pointer after `entry` becomes current: the old current goes to the front of the history. */
export function nextPointer(name: string, prev: Pointer | null, entry: PointerEntry, now: Date): Pointer {
  return {
    schemaVersion: POINTER_SCHEMA_VERSION,
    name,
    updatedAt: now.toISOString(),
    current: entry,
    history: prev ? [prev.current, ...prev.history] : [],
  };
}

/** The version a plain `rollback` returns to: the newest previous current that is not the current one. */
export function previousVersion(p: Pointer): PointerEntry | undefined {
  return p.history.find((e) => e.version !== p.current.version);
}

export function serializePointer(p: Pointer): string {
  return `${JSON.stringify(p, null, 2)}\n`;
}
