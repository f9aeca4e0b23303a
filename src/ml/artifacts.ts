/**
 * The model manifest: the contract between `train` and `export` (which write model folders), `publish` / `models`
 * / `rollback` (which store and verify them), and `embed` and the Edge runtime (which load them).
 *
 * A model folder holds `manifest.json` plus every file it lists, each with size and sha256. `train` writes
 * `kind: 'two-tower'` (towers `user` and `item`, `features.json`, `metrics.json`, `probe.json`); `export` writes
 * `kind: 'keras-export'` (tower `model`, or the extracted tower's name). The registry stores the same document in a
 * version folder with `publication` filled in.
 *
 * Pure module (zod only, no Node APIs): the Edge runtime parses manifests with it. File-system helpers live in
 * `artifacts-fs.ts`.
 */
import { z } from 'zod';

export const MANIFEST_FILE = 'manifest.json';
export const MANIFEST_SCHEMA_VERSION = 1;
export const FEATURES_FILE = 'features.json';
export const METRICS_FILE = 'metrics.json';
export const PROBE_FILE = 'probe.json';

const Sha256Schema = z.string().regex(/^[0-9a-f]{64}$/, { message: 'must be a lowercase hex sha256' });

/** Relative POSIX path inside the model folder; no absolute paths, no `..`, no backslashes. */
export const RelativePathSchema = z
  .string()
  .min(1)
  .refine((p) => !p.startsWith('/') && !p.includes('\\') && !p.split('/').some((s) => s === '..' || s === ''), {
    message: 'must be a relative path inside the model folder',
  });

export const ManifestFileSchema = z.object({
  path: RelativePathSchema,
  size: z.number().int().nonnegative(),
  sha256: Sha256Schema,
});
export type ManifestFile = z.infer<typeof ManifestFileSchema>;

export const TensorSpecSchema = z.object({
  name: z.string().min(1),
  /** Batch dimension first, `null` where free. */
  shape: z.array(z.number().int().nonnegative().nullable()),
  dtype: z.enum(['float32', 'int32', 'bool', 'string']),
});
export type TensorSpec = z.infer<typeof TensorSpecSchema>;

export const TowerSpecSchema = z.object({
  /** Folder with the TF.js layers model (`model.json` + shards), relative to the model folder; `.` is the folder itself (exports). */
  path: RelativePathSchema,
  inputs: z.array(TensorSpecSchema).min(1),
  outputs: z.array(TensorSpecSchema).min(1),
  /** Custom layer classes the model needs (registered by `am-ml/runtime`). */
  customLayers: z.array(z.string()).default([]),
});
export type TowerSpec = z.infer<typeof TowerSpecSchema>;

export const PublicationSchema = z.object({
  name: z.string().min(1),
  version: z.string().min(1),
  publishedAt: z.string().datetime({ offset: true }),
  notes: z.string().optional(),
  /** The run/export this version was published from. */
  sourceRunId: z.string().optional(),
  sourcePath: z.string().optional(),
  /** Quality gate outcome, and the recorded reason when it was forced. */
  gate: z
    .object({ expressions: z.array(z.string()), passed: z.boolean(), forcedReason: z.string().optional() })
    .optional(),
});
export type Publication = z.infer<typeof PublicationSchema>;

export const ModelManifestSchema = z
  .object({
    schemaVersion: z.literal(MANIFEST_SCHEMA_VERSION),
    kind: z.enum(['two-tower', 'keras-export']),
    /** Sortable UTC id of the run that produced the folder (`20261122T091500Z`). */
    runId: z.string().min(1),
    createdAt: z.string().datetime({ offset: true }),
    amMl: z.object({ version: z.string(), gitCommit: z.string().nullable() }),
    tf: z.object({ version: z.string(), backend: z.string() }).optional(),
    /** Towers by role: `user` and `item` for two-tower runs; one entry for plain exports. */
    towers: z.record(z.string(), TowerSpecSchema),
    /** Output dimension of the embedding towers. */
    embeddingDim: z.number().int().positive().optional(),
    /** sha256 of features.json (the frozen feature spec); required for two-tower runs. */
    featureSpecSha256: Sha256Schema.optional(),
    /** Headline metrics (copied from metrics.json) for listings and gates. */
    metrics: z.record(z.string(), z.number()).optional(),
    /** What the model was trained on: source, counts, and a hash of the data snapshot. */
    data: z
      .object({ source: z.string(), sha256: Sha256Schema.optional(), summary: z.record(z.string(), z.unknown()).optional() })
      .optional(),
    /** Training or export configuration, as given. */
    config: z.record(z.string(), z.unknown()).optional(),
    /** For exports: the source model file. */
    source: z
      .object({ file: z.string(), sha256: Sha256Schema, format: z.string(), kerasVersion: z.string().nullable() })
      .optional(),
    files: z.array(ManifestFileSchema).min(1),
    publication: PublicationSchema.optional(),
  })
  .superRefine((m, ctx) => {
    const paths = new Set<string>();
    for (const f of m.files) {
      if (f.path === MANIFEST_FILE) ctx.addIssue({ code: 'custom', message: 'files must not list manifest.json itself', path: ['files'] });
      if (paths.has(f.path)) ctx.addIssue({ code: 'custom', message: `duplicate file ${f.path}`, path: ['files'] });
      paths.add(f.path);
    }
    for (const [name, t] of Object.entries(m.towers)) {
      const modelJson = t.path === '.' ? 'model.json' : `${t.path}/model.json`;
      if (!paths.has(modelJson)) {
        ctx.addIssue({ code: 'custom', message: `tower ${name}: ${modelJson} is not in files`, path: ['towers', name] });
      }
    }
    if (m.kind === 'two-tower') {
      for (const role of ['user', 'item']) {
        if (!m.towers[role]) ctx.addIssue({ code: 'custom', message: `two-tower manifest needs a '${role}' tower`, path: ['towers'] });
      }
      if (!m.featureSpecSha256) ctx.addIssue({ code: 'custom', message: 'two-tower manifest needs featureSpecSha256', path: ['featureSpecSha256'] });
      if (!paths.has(FEATURES_FILE)) ctx.addIssue({ code: 'custom', message: `two-tower manifest must list ${FEATURES_FILE}`, path: ['files'] });
    }
  });
export type ModelManifest = z.infer<typeof ModelManifestSchema>;

/** Sortable UTC run id: `20261122T091500Z` (matches the app's existing `YYYYMMDDTHHMMSSZ` run ids). */
export function makeRunId(date: Date = new Date()): string {
  return date.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}Z$/, 'Z');
}
