/**
 * Configuration: one table of settings, each with its env names, config-file key, flag and default; zod checks
 * the merged values. Precedence: flag > env > config file (`am-ml.config.json`, or `--config <file>`) > default.
 * `loadConfig` parses only the parts a command needs (`train` never asks for Supabase keys) and reports every
 * problem at once in one `ConfigError`. This table is the single list of environment variables (README mirrors it).
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { ConfigError, type ConfigIssue, registerSecret } from './errors.js';

export const DEFAULT_CONFIG_FILE = 'am-ml.config.json';
export const DEFAULT_HOME_DIR = '.am-ml';
export const DEFAULT_DATABASE_URL = `pglite://${DEFAULT_HOME_DIR}/db`;
export const DEFAULT_MODEL_STORE = `file://${DEFAULT_HOME_DIR}/models`;
export const DEFAULT_DMM_API_BASE_URL = 'https://api.dmm.com/affiliate/v3';
export const DEFAULT_MODEL_BUCKET = 'models';

/** Strict boolean from env/config: a typo must not silently mean "false" (app-schema §7.18). */
export const StrictBoolean = z.union([
  z.boolean(),
  z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1'),
]);

const urlWithScheme = (schemes: string[]) =>
  z
    .string()
    .min(1)
    .refine((v) => schemes.some((s) => v.startsWith(`${s}://`)), {
      message: `must start with ${schemes.map((s) => `${s}://`).join(', ')}`,
    });

const httpUrl = z
  .string()
  .url({ message: 'must be an http(s) URL' })
  .refine((v) => /^https?:\/\//.test(v), { message: 'must be an http(s) URL' });

/** Description of one setting: where it can come from. */
interface SettingSpec {
  env: string[];
  /** Key in am-ml.config.json. */
  file?: string;
  /** Global flag (without dashes) that overrides it. */
  flag?: string;
  secret?: boolean;
  default?: unknown;
  schema: z.ZodType;
  describe: string;
}

export const SETTINGS = {
  databaseUrl: {
    env: ['AMML_DATABASE_URL', 'DATABASE_URL'],
    file: 'databaseUrl',
    flag: 'db',
    default: DEFAULT_DATABASE_URL,
    schema: urlWithScheme(['pglite', 'postgres', 'postgresql']),
    describe:
      'Database: pglite://<dir> (embedded, default .am-ml/db) or postgres://user:pass@host:port/db?sslmode=require',
  },
  databaseCaFile: {
    env: ['AMML_DATABASE_CA_FILE'],
    file: 'databaseCaFile',
    schema: z.string().min(1),
    describe: 'PEM file with the CA certificate of the database (Supabase pooler); enables certificate checks',
  },
  modelStore: {
    env: ['AMML_MODEL_STORE'],
    file: 'modelStore',
    flag: 'store',
    default: DEFAULT_MODEL_STORE,
    schema: urlWithScheme(['file', 'supabase']),
    describe: 'Model store: file://<dir> (default .am-ml/models) or supabase://<bucket>/<prefix>',
  },
  supabaseUrl: {
    env: ['SUPABASE_URL'],
    file: 'supabaseUrl',
    schema: httpUrl,
    describe: 'Supabase project URL (https://<ref>.supabase.co)',
  },
  supabaseServiceRoleKey: {
    env: ['SUPABASE_SERVICE_ROLE_KEY'],
    secret: true,
    schema: z.string().min(20, { message: 'looks too short for a service-role key' }),
    describe: 'Supabase service-role key (secret; env only)',
  },
  dmmApiId: {
    env: ['DMM_API_ID'],
    secret: true,
    schema: z.string().min(4, { message: 'looks too short for a DMM api_id' }),
    describe: 'DMM Affiliate API api_id (secret; env only)',
  },
  dmmAffiliateId: {
    env: ['DMM_AFFILIATE_ID'],
    secret: true,
    schema: z.string().regex(/^.+-99[0-9]$/, { message: 'must be an API affiliate id ending in -990 … -999' }),
    describe: 'DMM API affiliate id, ending -990 … -999 (secret; env only)',
  },
  dmmLinkAffiliateId: {
    env: ['DMM_LINK_AFFILIATE_ID'],
    file: 'dmmLinkAffiliateId',
    schema: z.string().min(1),
    describe: 'Affiliate id used when building product links (not the API one)',
  },
  dmmApiBaseUrl: {
    env: ['DMM_API_BASE_URL'],
    file: 'dmmApiBaseUrl',
    default: DEFAULT_DMM_API_BASE_URL,
    schema: httpUrl,
    describe: 'DMM API base URL (a replay server in tests)',
  },
} satisfies Record<string, SettingSpec>;

export type SettingName = keyof typeof SETTINGS;

/** Groups of settings a command can ask for. */
export const CONFIG_PARTS = {
  db: { required: ['databaseUrl'], optional: ['databaseCaFile'] },
  store: { required: ['modelStore'], optional: [] },
  supabase: { required: ['supabaseUrl', 'supabaseServiceRoleKey'], optional: [] },
  dmm: { required: ['dmmApiId', 'dmmAffiliateId', 'dmmApiBaseUrl'], optional: ['dmmLinkAffiliateId'] },
} as const satisfies Record<string, { required: readonly SettingName[]; optional: readonly SettingName[] }>;
export type ConfigPart = keyof typeof CONFIG_PARTS;

export interface AmMlConfig {
  databaseUrl: string;
  databaseCaFile?: string;
  modelStore: string;
  supabaseUrl: string;
  supabaseServiceRoleKey: string;
  dmmApiId: string;
  dmmAffiliateId: string;
  dmmLinkAffiliateId?: string;
  dmmApiBaseUrl: string;
}

type PartKeys<P extends ConfigPart> =
  | (typeof CONFIG_PARTS)[P]['required'][number]
  | (typeof CONFIG_PARTS)[P]['optional'][number];
export type ConfigFor<P extends ConfigPart> = Pick<AmMlConfig, PartKeys<P>> & {
  /** Where each value came from, for `doctor` and error messages (never the value itself). */
  sources: Partial<Record<SettingName, string>>;
  /** The config file that was read, if any. */
  configFile?: string;
};

export interface LoadConfigOptions<P extends ConfigPart> {
  parts: readonly P[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Global flag values (`db`, `store`), already parsed by the CLI. */
  flags?: Partial<Record<string, string | undefined>>;
  /** `--config <file>`; without it `am-ml.config.json` in cwd is read when present. */
  configFile?: string;
}

/** Read and shape-check the config file; its own problems are config issues too. */
function readConfigFile(file: string, explicit: boolean, issues: ConfigIssue[]): Record<string, unknown> {
  if (!existsSync(file)) {
    if (explicit) issues.push({ key: 'config', message: `file not found: ${file}`, source: '--config' });
    return {};
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    issues.push({ key: 'config', message: `${file} is not valid JSON: ${(err as Error).message}`, source: file });
    return {};
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) {
    issues.push({ key: 'config', message: `${file} must hold a JSON object`, source: file });
    return {};
  }
  const allowed = new Map<string, SettingName>();
  for (const [name, spec] of Object.entries(SETTINGS) as [SettingName, SettingSpec][]) {
    if (spec.file) allowed.set(spec.file, name);
  }
  for (const key of Object.keys(parsed)) {
    if (key === '$schema' || allowed.has(key)) continue;
    const secret = (SETTINGS as Record<string, SettingSpec>)[key];
    issues.push({
      key,
      message: secret?.secret
        ? `secrets are read from the environment only (set ${secret.env[0]}), not from the config file`
        : `unknown key; allowed keys: ${[...allowed.keys()].join(', ')}`,
      source: file,
    });
  }
  return parsed as Record<string, unknown>;
}

/**
 * Merge flag > env > config file > default for the settings of the requested parts, validate them, and register
 * secrets for redaction. Throws one `ConfigError` listing every problem with where to fix it.
 */
export function loadConfig<P extends ConfigPart>(opts: LoadConfigOptions<P>): ConfigFor<P> {
  const env = opts.env ?? process.env;
  const cwd = opts.cwd ?? process.cwd();
  const issues: ConfigIssue[] = [];
  const explicitFile = opts.configFile !== undefined;
  const configPath = path.resolve(cwd, opts.configFile ?? DEFAULT_CONFIG_FILE);
  const fileValues = readConfigFile(configPath, explicitFile, issues);

  const wanted = new Map<SettingName, boolean>(); // name → required
  for (const part of opts.parts) {
    for (const k of CONFIG_PARTS[part].required) wanted.set(k, true);
    for (const k of CONFIG_PARTS[part].optional) if (!wanted.has(k)) wanted.set(k, false);
  }

  const out: Record<string, unknown> = {};
  const sources: Partial<Record<SettingName, string>> = {};
  for (const [name, required] of wanted) {
    const spec = SETTINGS[name] as SettingSpec;
    let raw: unknown;
    let source: string | undefined;
    const flagValue = spec.flag ? opts.flags?.[spec.flag] : undefined;
    if (flagValue !== undefined && flagValue !== '') {
      raw = flagValue;
      source = `--${spec.flag}`;
    } else {
      const envName = spec.env.find((n) => env[n] !== undefined && env[n] !== '');
      if (envName) {
        raw = env[envName];
        source = `env ${envName}`;
      } else if (spec.file && fileValues[spec.file] !== undefined) {
        raw = fileValues[spec.file];
        source = path.relative(cwd, configPath) || configPath;
      } else if (spec.default !== undefined) {
        raw = spec.default;
        source = 'default';
      }
    }
    const whereToSet = [
      spec.flag ? `--${spec.flag}` : undefined,
      `env ${spec.env.join(' or ')}`,
      spec.file ? `"${spec.file}" in ${DEFAULT_CONFIG_FILE}` : undefined,
    ]
      .filter(Boolean)
      .join(', ');
    if (raw === undefined) {
      if (required) issues.push({ key: spec.env[0], message: `is not set (${spec.describe})`, source: `set ${whereToSet}` });
      continue;
    }
    if (spec.secret && typeof raw === 'string') registerSecret(raw);
    const parsed = spec.schema.safeParse(raw);
    if (!parsed.success) {
      for (const issue of parsed.error.issues) {
        issues.push({ key: spec.env[0], message: issue.message, source: `from ${source}; set ${whereToSet}` });
      }
      continue;
    }
    out[name] = parsed.data;
    sources[name] = source!;
  }
  if (issues.length) {
    throw new ConfigError(`Configuration has ${issues.length} problem${issues.length > 1 ? 's' : ''}:`, issues, {
      hint: 'Fix the values listed above; `am-ml doctor` shows what is set and where it comes from.',
    });
  }
  return {
    ...(out as Pick<AmMlConfig, PartKeys<P>>),
    sources,
    configFile: existsSync(configPath) ? configPath : undefined,
  };
}

/** Resolve the path part of `pglite://<dir>` or `file://<dir>` against cwd (relative paths are allowed). */
export function resolveUrlPath(url: string, cwd: string): string {
  const m = /^[a-z]+:\/\/(.*)$/i.exec(url);
  const p = m ? decodeURIComponent(m[1]) : url;
  return path.resolve(cwd, p || '.');
}

/** Which credentials are present (never their values), for `doctor`. */
export function credentialPresence(env: NodeJS.ProcessEnv = process.env): Record<string, boolean> {
  const out: Record<string, boolean> = {};
  for (const spec of Object.values(SETTINGS) as SettingSpec[]) {
    if (spec.secret) out[spec.env[0]] = Boolean(env[spec.env[0]]);
  }
  return out;
}
