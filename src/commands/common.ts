/**
 * What every command accepts besides its own flags, and the small helpers commands share. Commands are the
 * composition root: they load config, build clients, and hand them to core modules.
 */
import { type ConfigFor, type ConfigPart, loadConfig } from '../config.js';
import { type Reporter, silentReporter } from '../output/reporter.js';

export interface CommonOptions {
  /** Working directory; relative paths (pglite://.am-ml/db, file://…, --out) resolve against it. @default process.cwd() */
  cwd?: string;
  /** Environment to read settings from. @default process.env */
  env?: NodeJS.ProcessEnv;
  /** Progress sink. @default a silent reporter */
  reporter?: Reporter;
  /** Aborted on SIGINT; long work stops between units and throws InterruptedError. */
  signal?: AbortSignal;
  /** `--config <file>`. @default am-ml.config.json in cwd, when present */
  configFile?: string;
  /** `--db <url>` */
  db?: string;
  /** `--store <url>` */
  store?: string;
  verbose?: boolean;
}

export function cwdOf(opts: CommonOptions): string {
  return opts.cwd ?? process.cwd();
}

export function reporterOf(opts: CommonOptions): Reporter {
  return opts.reporter ?? silentReporter();
}

/** Load the config parts a command needs, with the global flags applied. */
export function configOf<P extends ConfigPart>(opts: CommonOptions, parts: readonly P[]): ConfigFor<P> {
  return loadConfig({
    parts,
    env: opts.env,
    cwd: cwdOf(opts),
    flags: { db: opts.db, store: opts.store },
    configFile: opts.configFile,
  });
}
