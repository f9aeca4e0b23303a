/**
 * `am-ml doctor`: is everything needed in place? TF backend, database reachable, schema version, embedding column
 * types and dimensions, model store reachable, and which credentials are present (never their values). Exit 0
 * only when every needed check passes.
 */
import { accessSync, constants, existsSync } from 'node:fs';
import { credentialPresence, resolveUrlPath } from '../config.js';
import { embeddingColumn } from '../db/introspect.js';
import { appliedMigrationIds } from '../db/migrate.js';
import { MIGRATIONS } from '../db/migrations/index.js';
import { openDb } from '../db/open.js';
import { type AmMlError, toAmMlError } from '../errors.js';
import { AMML_VERSION } from '../version.js';
import { type CommonOptions, configOf, cwdOf, reporterOf } from './common.js';

export interface DoctorOptions extends CommonOptions {
  /** Load TF.js and report its backend. @default true */
  tf?: boolean;
}

/** Doctor should answer quickly: two attempts, not a publish's patience. */
const DOCTOR_RETRY_POLICY = { attempts: 2, baseDelayMs: 200, maxDelayMs: 400 };

export interface DoctorCheck {
  name: string;
  ok: boolean;
  /** A failing needed check makes doctor exit non-zero. */
  needed: boolean;
  detail: string;
  hint?: string;
}

export interface DoctorResult {
  ok: boolean;
  version: string;
  checks: DoctorCheck[];
  tf?: { backend: string; native: boolean; version: string; notes: string[] };
  database?: { url: string; driver: string; schemaVersion: number; latest: number; embeddingColumns?: Record<string, string> };
  store?: { url: string };
  credentials: Record<string, boolean>;
}

function failed(name: string, err: unknown, needed = true): DoctorCheck {
  const e: AmMlError = toAmMlError(err);
  return { name, ok: false, needed, detail: e.message.split('\n')[0], hint: e.hint };
}

export async function doctor(opts: DoctorOptions = {}): Promise<DoctorResult> {
  const cwd = cwdOf(opts);
  const reporter = reporterOf(opts);
  const checks: DoctorCheck[] = [];
  const result: DoctorResult = { ok: false, version: AMML_VERSION, checks, credentials: credentialPresence(opts.env) };

  if (opts.tf !== false) {
    const phase = reporter.phase('Loading TensorFlow.js');
    try {
      const { initTf } = await import('../ml/tf.js');
      const info = await initTf('auto');
      result.tf = info;
      checks.push({
        name: 'tf-backend',
        ok: true,
        needed: true,
        detail: `${info.backend}${info.native ? ' (native)' : ''}, tfjs ${info.version}${info.notes.length ? `; ${info.notes.join('; ')}` : ''}`,
      });
      phase.succeed(`TF.js backend: ${info.backend}`);
    } catch (err) {
      checks.push(failed('tf-backend', err));
      phase.fail();
    }
  }

  let config: ReturnType<typeof configOf<'db' | 'store'>> | undefined;
  try {
    config = configOf(opts, ['db', 'store']);
    checks.push({ name: 'config', ok: true, needed: true, detail: config.configFile ? `read ${config.configFile}` : 'no config file; env and defaults' });
  } catch (err) {
    checks.push(failed('config', err));
  }

  if (config) {
    const phase = reporter.phase(`Connecting to ${config.databaseUrl}`);
    try {
      const isEmbedded = config.databaseUrl.startsWith('pglite://') && !config.databaseUrl.endsWith(':memory:');
      if (isEmbedded && !existsSync(resolveUrlPath(config.databaseUrl, cwd))) {
        throw Object.assign(new Error(`the embedded database ${config.databaseUrl} does not exist yet`), {});
      }
      const db = await openDb({ url: config.databaseUrl, cwd, caFile: config.databaseCaFile });
      try {
        checks.push({ name: 'database', ok: true, needed: true, detail: `${db.displayUrl} (${db.driver}) reachable` });
        const applied = await appliedMigrationIds(db);
        const latest = MIGRATIONS[MIGRATIONS.length - 1].id;
        const missing = MIGRATIONS.filter((m) => !applied.includes(m.id));
        checks.push({
          name: 'schema',
          ok: missing.length === 0,
          needed: true,
          detail: missing.length
            ? `${missing.length} migration(s) pending: ${missing.map((m) => `${m.id} ${m.name}`).join(', ')}`
            : `schema version ${latest}`,
          hint: missing.length ? 'Run `am-ml db migrate` (or `am-ml init` for the embedded database).' : undefined,
        });
        result.database = {
          url: db.displayUrl,
          driver: db.driver,
          schemaVersion: Math.max(0, ...applied),
          latest,
        };
        const cols: Record<string, string> = {};
        for (const table of ['public.video_embeddings', 'public.user_embeddings']) {
          try {
            const c = await embeddingColumn(db, table);
            cols[table] = c.formatted;
            checks.push({ name: `embedding-column ${table}`, ok: true, needed: true, detail: c.formatted });
          } catch (err) {
            checks.push(failed(`embedding-column ${table}`, err));
          }
        }
        result.database.embeddingColumns = cols;
      } finally {
        await db.close();
      }
      phase.succeed(`Database reachable: ${config.databaseUrl}`);
    } catch (err) {
      phase.fail();
      const c = failed('database', err);
      c.hint ??= 'Run `am-ml init` to create the embedded database, or set --db / AMML_DATABASE_URL.';
      checks.push(c);
    }

    result.store = { url: config.modelStore };
    checks.push(...(await checkStore(config.modelStore, cwd, opts)));
  }

  for (const [name, present] of Object.entries(result.credentials)) {
    const neededForStore = name.startsWith('SUPABASE') && Boolean(config?.modelStore.startsWith('supabase://'));
    checks.push({
      name: `credential ${name}`,
      ok: present,
      needed: neededForStore,
      detail: present ? 'set' : neededForStore ? 'not set (needed by the supabase:// model store)' : 'not set',
    });
  }

  result.ok = checks.every((c) => c.ok || !c.needed);
  return result;
}

/** Reach the model store for real (a supabase:// store is listed, not just checked for env vars) and read its pointer. */
async function checkStore(url: string, cwd: string, opts: DoctorOptions): Promise<DoctorCheck[]> {
  if (url.startsWith('file://')) {
    const dir = resolveUrlPath(url, cwd);
    try {
      accessSync(dir, constants.W_OK);
    } catch {
      return [
        {
          name: 'model-store',
          ok: false,
          needed: true,
          detail: `${dir} does not exist or is not writable`,
          hint: 'Run `am-ml init`, or point --store / AMML_MODEL_STORE at a writable folder.',
        },
      ];
    }
  }
  const { openModelStore, registryContext, DEFAULT_MODEL_NAME } = await import('./store.js');
  const { readCurrent } = await import('../registry/registry.js');
  let opened;
  let entries: number;
  try {
    opened = await openModelStore({ ...opts, reporter: undefined }, { retry: DOCTOR_RETRY_POLICY, onRetry: () => {} });
    entries = (await opened.store.list('', { recursive: false, signal: opts.signal })).length;
  } catch (err) {
    const c = failed('model-store', err);
    c.detail = `${url}: ${c.detail}`;
    return [c];
  }
  const checks: DoctorCheck[] = [
    { name: 'model-store', ok: true, needed: true, detail: `${opened.store.url} reachable (${entries} entr${entries === 1 ? 'y' : 'ies'} at the top)` },
  ];
  try {
    const cur = await readCurrent(registryContext(opened, opts, DEFAULT_MODEL_NAME));
    checks.push({
      name: 'model-current',
      ok: true,
      needed: false,
      detail: cur.pointer ? `${DEFAULT_MODEL_NAME} ${cur.pointer.current.version} (since ${cur.pointer.current.activatedAt})` : `no ${DEFAULT_MODEL_NAME} version published yet`,
    });
  } catch (err) {
    checks.push(failed('model-current', err));
  }
  return checks;
}

export function formatDoctor(r: DoctorResult): string {
  const width = Math.max(...r.checks.map((c) => c.name.length));
  const lines = r.checks.map((c) => {
    const mark = c.ok ? 'ok  ' : c.needed ? 'FAIL' : 'info';
    return `${mark}  ${c.name.padEnd(width)}  ${c.detail}${!c.ok && c.hint ? `\n      ${' '.repeat(width)}  → ${c.hint}` : ''}`;
  });
  lines.push('', r.ok ? 'All needed checks passed.' : 'Some needed checks failed (see FAIL above).');
  return lines.join('\n');
}
