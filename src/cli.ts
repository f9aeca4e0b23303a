/**
 * The one command registry. Each command's action normalises its flags and then lazily imports
 * `./commands/<name>.js`, so `am-ml --help` stays fast and commands that do not need TensorFlow never load it.
 * This is also the only place that catches errors, maps them to exit codes and prints them.
 */
import { Command, CommanderError, Help, InvalidArgumentError, Option } from 'commander';
import type { CommonOptions } from './commands/common.js';
import { type AmMlError, EXIT, InterruptedError, redact, toAmMlError, UsageError } from './errors.js';
import { emitJson, jsonFailure, jsonSuccess } from './output/json.js';
import { type Reporter, silentReporter } from './output/reporter.js';
import { ttyReporter } from './output/tty-reporter.js';
import { AMML_VERSION } from './version.js';

export interface CliIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WriteStream;
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** Install SIGINT handling (off in in-process tests). */
  handleSignals: boolean;
}

export interface GlobalFlags {
  json?: boolean;
  quiet?: boolean;
  verbose?: boolean;
  config?: string;
  db?: string;
  store?: string;
}

/** What an action returns: the result object and, for humans, the text printed on stdout. */
export interface ActionOutput {
  result: unknown;
  text?: string;
  /** Non-zero exit with a successful result (check commands whose answer is the exit code). */
  exitCode?: number;
}

export type ActionFn = (common: CommonOptions, flags: Record<string, unknown>, args: string[]) => Promise<ActionOutput>;

// ---------------------------------------------------------------------------------------------------------------
// Flag parsers (commander calls them; a throw becomes a usage error naming the flag)
// ---------------------------------------------------------------------------------------------------------------

export function parseIntFlag(min = 0, max = Number.MAX_SAFE_INTEGER) {
  return (value: string): number => {
    if (!/^-?\d+$/.test(value.trim())) throw new InvalidArgumentError(`expected a whole number, got '${value}'.`);
    const n = Number(value);
    if (n < min || n > max) throw new InvalidArgumentError(`expected a number from ${min} to ${max}, got ${n}.`);
    return n;
  };
}

export function parseFloatFlag(min = -Infinity, max = Infinity) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError(`expected a number, got '${value}'.`);
    if (n < min || n > max) throw new InvalidArgumentError(`expected a number from ${min} to ${max}, got ${n}.`);
    return n;
  };
}

/** Repeatable string flag: `--gate a --gate b`. */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

// ---------------------------------------------------------------------------------------------------------------

function makeReporter(flags: GlobalFlags, io: CliIo): Reporter {
  if (flags.json || flags.quiet) {
    // Warnings still matter in CI logs; they go to stderr, never stdout.
    return silentReporter({ warn: (t) => io.stderr.write(`warning: ${redact(t)}\n`) });
  }
  return ttyReporter({ stream: io.stderr, verbose: flags.verbose });
}

function printHumanError(err: AmMlError, flags: GlobalFlags, io: CliIo): void {
  const lines = [`error: ${err.message}`];
  if (err.hint) lines.push(`hint: ${err.hint}`);
  if (err.exitCode === EXIT.INTERNAL) {
    lines.push(`This is a bug in am-ml v${AMML_VERSION}; please report it with the command you ran.`);
    if (flags.verbose && err.cause instanceof Error && err.cause.stack) lines.push(err.cause.stack);
    else if (flags.verbose && err.stack) lines.push(err.stack);
    else lines.push('Run again with --verbose for the stack trace.');
  } else if (flags.verbose && err.cause instanceof Error) {
    lines.push(`cause: ${err.cause.message}`);
  }
  io.stderr.write(`${redact(lines.join('\n'))}\n`);
}

export interface RunActionInput {
  flags: Record<string, unknown>;
  globals: GlobalFlags;
  args: string[];
  io: CliIo;
  signal: AbortSignal;
}

/**
 * Run one command action and turn its outcome into output and an exit code: the result as JSON or text on
 * stdout; any error as one JSON document (--json) or a message with hint on stderr. The only top-level catch.
 */
export async function runAction(name: string, fn: ActionFn, input: RunActionInput): Promise<number> {
  const { globals, io } = input;
  const reporter = makeReporter(globals, io);
  const common: CommonOptions = {
    cwd: io.cwd,
    env: io.env,
    reporter,
    signal: input.signal,
    configFile: globals.config,
    db: globals.db,
    store: globals.store,
    verbose: globals.verbose,
  };
  try {
    const out = await fn(common, input.flags, input.args);
    reporter.close();
    if (globals.json) emitJson(jsonSuccess(name, out.result), io.stdout);
    else if (out.text) io.stdout.write(out.text.endsWith('\n') ? out.text : `${out.text}\n`);
    return out.exitCode ?? EXIT.OK;
  } catch (raw) {
    reporter.close();
    let err = toAmMlError(raw);
    // An abort surfaces from deep inside libraries as all sorts of errors; report it as the interruption it is.
    if (input.signal.aborted && !(err instanceof InterruptedError) && err.exitCode === EXIT.INTERNAL) {
      err = new InterruptedError('Interrupted.', { cause: raw });
    }
    if (globals.json) emitJson(jsonFailure(name, err), io.stdout);
    else printHumanError(err, globals, io);
    return err.exitCode;
  }
}

/** Build the program. Exported for tests that check registration and help text. */
export function buildProgram(io: CliIo, state: { exitCode: number; abort: AbortController }): Command {
  const program = new Command();
  program
    .name('am-ml')
    .description('ML-ops for the Two-Tower video recommender: sync the DMM catalog, train, export, publish, embed.')
    // `-V, --version` is answered in main() before parsing: registered here, commander would take `--version`
    // anywhere on the line, also `publish --version <id>`. The help still lists it.
    .configureHelp({
      visibleOptions(cmd) {
        const shown = Help.prototype.visibleOptions.call(this, cmd);
        return cmd.parent ? shown : [new Option('-V, --version', 'output the version number'), ...shown];
      },
    })
    .option('--json', 'print exactly one JSON document on stdout (also on failure); no progress output')
    .option('-q, --quiet', 'no progress output; only the result and errors')
    .option('-v, --verbose', 'more detail on stderr (debug lines, stack traces)')
    .option('--config <file>', 'config file (default: am-ml.config.json in the working directory, if present)')
    .option('--db <url>', 'database: pglite://<dir> (default pglite://.am-ml/db) or postgres://… (env AMML_DATABASE_URL)')
    .option('--store <url>', 'model store: file://<dir> (default file://.am-ml/models) or supabase://<bucket>/<prefix> (env AMML_MODEL_STORE)')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
      // Commander errors are reported by our catch (also as JSON); do not print them twice.
      outputError: () => {},
    })
    .addHelpText(
      'after',
      `
Exit codes: 0 ok, 1 internal error, 2 usage, 3 config, 4 validation failed, 5 external service, 6 conflict, 130 interrupted.
Run 'am-ml <command> --help' for a command's flags and examples.`,
    );

  /** Wrap a command action: reporter, signal, result rendering, errors → exit code. */
  const action =
    (name: string, fn: ActionFn) =>
    async (...args: unknown[]): Promise<void> => {
      const cmd = args[args.length - 1] as Command;
      state.exitCode = await runAction(name, fn, {
        flags: cmd.opts() as Record<string, unknown>,
        globals: cmd.optsWithGlobals() as GlobalFlags,
        args: cmd.args,
        io,
        signal: state.abort.signal,
      });
    };

  registerCommands(program, action);
  return program;
}

type ActionFactory = (name: string, fn: ActionFn) => (...args: unknown[]) => Promise<void>;

/** Every command, its flags, help and examples. Keep each registration a thin mapping onto its module. */
function registerCommands(program: Command, action: ActionFactory): void {
  registerQuickstart(program, action);
  program
    .command('init')
    .description('create .am-ml/: the embedded database with the app schema, and the local model store (safe to run twice)')
    .option('--dim <n>', 'embedding dimension of new embedding columns (default 128)', parseIntFlag(1, 16000))
    .addOption(
      new Option('--vector-type <type>', 'column type of new embedding columns (default halfvec)').choices(['vector', 'halfvec']),
    )
    .option('--ann-index', 'also create the HNSW index on video_embeddings (default: on postgres://, off on the embedded PGlite, where it is slow to maintain and unused by the serving query)')
    .addHelpText('after', '\nExamples:\n  am-ml init\n  am-ml init --dim 768 --vector-type vector\n')
    .action(
      action('init', async (common, f) => {
        const m = await import('./commands/init.js');
        const result = await m.init({
          ...common,
          dim: f.dim as number | undefined,
          vectorType: f.vectorType as 'vector' | 'halfvec' | undefined,
          annIndex: f.annIndex === true ? true : undefined,
        });
        return { result, text: m.formatInit(result) };
      }),
    );

  const db = program.command('db').description('database maintenance');
  db.command('migrate')
    .description('apply pending am-ml migrations to the database (--db); idempotent, never drops data')
    .option('--dim <n>', 'dimension for embedding columns this run creates (existing columns are kept)', parseIntFlag(1, 16000), 128)
    .addOption(
      new Option('--vector-type <type>', 'type for embedding columns this run creates').choices(['vector', 'halfvec']).default('halfvec'),
    )
    .option('--ann-index', 'also create the HNSW index on video_embeddings (default: on postgres://, off on the embedded PGlite, where it is slow to maintain and unused by the serving query)')
    .option('--dry-run', 'list pending migrations without applying them')
    .addHelpText(
      'after',
      '\nExamples:\n  am-ml db migrate\n  am-ml db migrate --db "postgres://postgres.<ref>:<password>@aws-0-<region>.pooler.supabase.com:5432/postgres?sslmode=require"\n',
    )
    .action(
      action('db migrate', async (common, f) => {
        const m = await import('./commands/db-migrate.js');
        const result = await m.dbMigrate({
          ...common,
          dim: f.dim as number,
          vectorType: f.vectorType as 'vector' | 'halfvec',
          annIndex: f.annIndex === true ? true : undefined,
          dryRun: Boolean(f.dryRun),
        });
        return { result, text: m.formatDbMigrate(result) };
      }),
    );

  const nameOption = () => new Option('--name <name>', 'model name: the folder under the store root').default('two_tower');
  const reloadOptions = (c: Command) =>
    c
      .option('--reload-function <name>', 'Edge Function told to load the new current version (supabase:// stores)', 'reload_models')
      .option('--no-reload', 'do not call the Edge Function after the pointer moves');
  /** Exit 5 when the pointer moved but the Edge Functions did not confirm the reload (the move itself stands). */
  const reloadExit = (r: { reload?: { ok: boolean } }) => (r.reload && !r.reload.ok ? EXIT.EXTERNAL : EXIT.OK);

  reloadOptions(
    program
      .command('publish')
      .description('upload a model folder (train run or export output) as an immutable version, verify it, and make it current')
      .argument('<model-dir>', 'folder with manifest.json (written by `am-ml train` or `am-ml export`)')
      .addOption(nameOption())
      .option('--version <id>', 'version id (default: a sortable UTC timestamp, e.g. 20261122T091500Z)')
      .option('--no-activate', 'upload and verify, but leave current where it is')
      .option('--gate <expr>', 'refuse unless the metric passes, e.g. "recall@100>=0.2" (repeatable)', collect)
      .option('--gate-vs-current <metric>', "refuse unless the metric is at least the current version's (repeatable)", collect)
      .option('--force', 'publish even though a gate failed (needs --reason)')
      .option('--reason <text>', 'why the gate is overridden; recorded in the manifest')
      .option('--notes <text>', 'release notes, stored with the version')
      .option('--dry-run', 'check the folder, gates and store without writing anything'),
  )
    .addHelpText(
      'after',
      `
Order: check every file's sha256 → gates → upload (parallel, retried) → list back sizes → download and hash every
file → write manifest.json → move current.json (refused with exit 6 if it moved meanwhile) → reload Edge Functions.
A crash at any point leaves the previous current version served and complete.
Exit codes: 4 gate refused or damaged folder, 5 storage failure or failed reload (the publish itself stands), 6 version
exists or current moved during the publish.

Examples:
  am-ml publish runs/20261122T091500Z
  am-ml publish runs/20261122T091500Z --gate "recall@100>=0.2" --gate-vs-current recall@100 --notes "new genres"
  am-ml publish export/out --version 20261122-keras --no-activate
  am-ml --store supabase://models/two_tower_prod publish runs/latest --force --reason "hotfix for empty recs"
`,
    )
    .action(
      action('publish', async (common, f, args) => {
        const m = await import('./commands/publish.js');
        const result = await m.publish({
          ...common,
          modelDir: args[0],
          name: f.name as string,
          version: f.version as string | undefined,
          activate: f.activate !== false,
          gate: f.gate as string[] | undefined,
          gateVsCurrent: f.gateVsCurrent as string[] | undefined,
          force: Boolean(f.force),
          reason: f.reason as string | undefined,
          notes: f.notes as string | undefined,
          reloadFunction: f.reloadFunction as string,
          reload: f.reload !== false,
          dryRun: Boolean(f.dryRun),
        });
        return { result, text: m.formatPublish(result), exitCode: reloadExit(result) };
      }),
    );

  const models = program.command('models').description('list, verify and prune the stored model versions');
  models
    .command('list', { isDefault: true })
    .description('versions with status (complete / incomplete / corrupt), current, previous, size, dates and metrics')
    .addOption(nameOption())
    .option('--check', 'exit 4 unless current is the newest complete version')
    .addHelpText('after', '\nExamples:\n  am-ml models\n  am-ml models list --json\n  am-ml models --check   # exit 4 unless current is the newest complete version\n  am-ml --store supabase://models/prod models\n')
    .action(
      action('models list', async (common, f) => {
        const m = await import('./commands/models.js');
        const result = await m.modelsList({ ...common, name: f.name as string });
        return { result, text: m.formatModelsList(result), exitCode: f.check && !result.currentIsNewest ? EXIT.VALIDATION : EXIT.OK };
      }),
    );
  reloadOptions(
    models
      .command('verify')
      .description('re-hash every file of every version (or of one); exit 4 when something is damaged')
      .argument('[version]', 'only this version')
      .addOption(nameOption())
      .option('--repair', 'if current is damaged, point it at the newest complete version (and reload the Edge Functions)')
      .option('--dry-run', 'with --repair: say what would move, write nothing'),
  )
    .addHelpText(
      'after',
      `
Exit code 0 when current (and every version with a manifest) verifies; with --repair, 0 when current is sound after the
repair. Versions without a manifest are unfinished publishes: listed as incomplete, never current.

Examples:
  am-ml models verify
  am-ml models verify 20261122T091500Z
  am-ml models verify --repair
`,
    )
    .action(
      action('models verify', async (common, f, args) => {
        const m = await import('./commands/models.js');
        const result = await m.modelsVerify({
          ...common,
          name: f.name as string,
          version: args[0],
          repair: Boolean(f.repair),
          dryRun: Boolean(f.dryRun),
          reloadFunction: f.reloadFunction as string,
          reload: f.reload !== false,
        });
        const exitCode = !result.ok ? EXIT.VALIDATION : reloadExit(result);
        return { result, text: m.formatModelsVerify(result), exitCode };
      }),
    );
  models
    .command('prune')
    .description('remove all but the newest N complete versions; never current or its predecessor')
    .requiredOption('--keep <n>', 'how many of the newest complete versions to keep', parseIntFlag(1, 100000))
    .addOption(nameOption())
    .option('--dry-run', 'list what would be removed')
    .addHelpText(
      'after',
      `
Unfinished versions (no manifest) are removed once idle for an hour; younger ones may still be uploading.

Examples:
  am-ml models prune --keep 5 --dry-run
  am-ml models prune --keep 5
`,
    )
    .action(
      action('models prune', async (common, f) => {
        const m = await import('./commands/models.js');
        const result = await m.modelsPrune({ ...common, name: f.name as string, keep: f.keep as number, dryRun: Boolean(f.dryRun) });
        return { result, text: m.formatModelsPrune(result) };
      }),
    );

  reloadOptions(
    program
      .command('rollback')
      .description('point current back at the previous current (or --to any complete version); only the pointer moves')
      .option('--to <version>', 'target version (default: the previous current)')
      .addOption(nameOption())
      .option('--dry-run', 'verify the target and say what would move, write nothing')
      .option('--embed', 're-embed items and users with the target version right away (resumable: am-ml embed --resume)'),
  )
    .addHelpText(
      'after',
      `
The target is re-hashed first; a missing target exits 6, a damaged one exits 4, and current stays where it is. Nothing
is deleted. Serving uses embeddings, not model files: re-embed users and items with the target version afterwards,
or pass --embed to do it in the same command.

Examples:
  am-ml rollback
  am-ml rollback --to 20261120T080000Z
  am-ml rollback --embed
  am-ml --store supabase://models/prod rollback --reload-function reload_models
`,
    )
    .action(
      action('rollback', async (common, f) => {
        const m = await import('./commands/rollback.js');
        const result = await m.rollback({
          ...common,
          to: f.to as string | undefined,
          name: f.name as string,
          dryRun: Boolean(f.dryRun),
          reloadFunction: f.reloadFunction as string,
          reload: f.reload !== false,
          embed: Boolean(f.embed),
        });
        return { result, text: m.formatRollback(result), exitCode: reloadExit(result) };
      }),
    );

  program
    .command('sync-dmm')
    .description('sync the FANZA catalog (DMM API ItemList) into videos, tags, performers: resumable, rate-limited, in chunks')
    .option('--floor <floors>', 'floors to sync, comma-separated: videoa (FANZA), videoc (FANZA_AMATEUR)', collect)
    .option('--from <date>', 'first release date, YYYY-MM-DD JST (default: 14 days ago)')
    .option('--to <date>', 'last release date, YYYY-MM-DD JST, inclusive (default: 14 days ahead, for pre-orders)')
    .option('--chunk <n>', 'videos per transaction (each chunk commits with its checkpoint)', parseIntFlag(1, 10_000), 500)
    .option('--rps <n>', 'DMM API requests per second (token bucket)', parseFloatFlag(0.01, 100), 1)
    .option('--max-items <n>', 'stop after this many items; the run stays open and the next invocation continues it', parseIntFlag(1))
    .option('--resume', 'continue the unfinished run (fail if there is none); the default already resumes a run with the same scope')
    .option('--restart', 'abandon an unfinished run with the same scope and start over')
    .option('--dry-run', 'fetch and compute everything, write nothing')
    .addOption(
      new Option('--embed <mode>', "embed new/updated items with the current model in each chunk's transaction: auto (when the live tables serve the current version), require (fail otherwise), off")
        .choices(['auto', 'require', 'off'])
        .default('auto'),
    )
    .option('--api-base-url <url>', 'DMM API base URL (default: env DMM_API_BASE_URL, else https://api.dmm.com/affiliate/v3)')
    .addHelpText(
      'after',
      `
Credentials: DMM_API_ID and DMM_AFFILIATE_ID (the API affiliate id, ending -990 … -999) from the environment.
Killing a run at any moment is safe: run the same command again and it resumes from the last checkpoint.
Pages that fail after retries and items that fail validation are stored in am_ml.sync_failures and retried first.

Examples:
  am-ml sync-dmm
  am-ml sync-dmm --floor videoa --from 2024-01-01 --to 2024-12-31 --rps 2
  am-ml sync-dmm --from 2015-01-01 --to 2025-12-31 --max-items 20000 --json
  am-ml sync-dmm --resume
`,
    )
    .action(
      action('sync-dmm', async (common, f) => {
        const m = await import('./commands/sync-dmm.js');
        const result = await m.syncDmm({
          ...common,
          floors: f.floor as string[] | undefined,
          from: f.from as string | undefined,
          to: f.to as string | undefined,
          chunk: f.chunk as number,
          rps: f.rps as number,
          maxItems: f.maxItems as number | undefined,
          resume: Boolean(f.resume),
          restart: Boolean(f.restart),
          dryRun: Boolean(f.dryRun),
          apiBaseUrl: f.apiBaseUrl as string | undefined,
          embed: f.embed as 'auto' | 'require' | 'off',
        });
        return { result, text: m.formatSyncDmm(result) };
      }),
    );

  program
    .command('doctor')
    .description('check the TF backend, database, schema, embedding columns, model store and credentials')
    .option('--no-tf', 'skip loading TensorFlow.js')
    .addHelpText('after', '\nExit code 0 only when every needed part is fine.\n\nExamples:\n  am-ml doctor\n  am-ml doctor --json\n')
    .action(
      action('doctor', async (common, f) => {
        const m = await import('./commands/doctor.js');
        const result = await m.doctor({ ...common, tf: f.tf !== false });
        return { result, text: m.formatDoctor(result), exitCode: result.ok ? EXIT.OK : EXIT.VALIDATION };
      }),
    );

  registerTrain(program, action);
  registerKerasCommands(program, action);
  registerEmbed(program, action);
}

const QUICKSTART_HELP = `
Steps (each one the real command, with its own progress):
  1. init        the embedded database (PGlite + pgvector) and the local model store in <dir>/.am-ml
  2. catalog     a generated DMM catalog (made-up titles, performers, makers, genres and dates) served by a replay
                 server on 127.0.0.1 and synced with sync-dmm
  3. decisions   generated users whose likes follow the catalog's genres, makers and performers, written to
                 user_video_decisions
  4. train       train --from-db: the two-tower model, evaluated against the popularity baseline
  5. validate    golden outputs from an independent forward pass over the saved weights; am-ml validate --golden
  6. publish     to the local store, refused unless the model beats popularity (recall@100 and ndcg@10)
  7. embed       every item and user, switching the live tables in one transaction
  8. recommend   two sample users' recent likes next to what the app's serving rule recommends them now

Always on the embedded database and local store inside --dir (the environment's AMML_DATABASE_URL and
AMML_MODEL_STORE are ignored: it writes made-up users). Running it again keeps the catalog and decisions, trains
and publishes a new version and switches the live embeddings to it.

Exit codes: 0 done; 2 bad flags; 4 a tower failed validation or the model did not beat popularity (nothing
published); 130 interrupted (run it again).

Examples:
  am-ml quickstart
  am-ml quickstart --dir /tmp/am-ml-demo
  am-ml quickstart --json > summary.json
`;

function registerQuickstart(program: Command, action: ActionFactory): void {
  program
    .command('quickstart')
    .description('run the whole loop offline on the embedded defaults: generated catalog → sync → decisions → train → validate → publish → embed → recommendations')
    .option('--dir <path>', 'working directory: .am-ml/ is created in it (default: the current directory)')
    .addOption(new Option('--backend <name>', 'TF.js backend (default auto)').choices(['auto', 'node', 'wasm', 'cpu']))
    // Sizes for tests and experiments; the default size is what the README promises to run in a few minutes.
    .addOption(new Option('--items <n>', 'catalog items').argParser(parseIntFlag(200, 1_000_000)).hideHelp())
    .addOption(new Option('--users <n>', 'generated users').argParser(parseIntFlag(50, 1_000_000)).hideHelp())
    .addOption(new Option('--epochs <n>', 'training epochs at most').argParser(parseIntFlag(1, 10_000)).hideHelp())
    .addOption(new Option('--seed <n>', 'seed of the catalog and the users').argParser(parseIntFlag(0, 2 ** 31 - 1)).hideHelp())
    .addHelpText('after', QUICKSTART_HELP)
    .action(
      action('quickstart', async (common, f) => {
        const m = await import('./commands/quickstart.js');
        const result = await m.quickstart({
          ...common,
          dir: f.dir as string | undefined,
          backend: f.backend as 'auto' | 'node' | 'wasm' | 'cpu' | undefined,
          items: f.items as number | undefined,
          users: f.users as number | undefined,
          epochs: f.epochs as number | undefined,
          seed: f.seed as number | undefined,
        });
        return { result, text: m.formatQuickstart(result) };
      }),
    );
}

const TRAIN_HELP = `
Data sources (exactly one):
  --dataset <dir>   a folder with items.jsonl and interactions.csv (and optionally users.jsonl):
                      items.jsonl       one JSON object per line: {"item_id", "tags": [], "performers": [], "maker",
                                        "series", "label", "source", "price", "released_at", "duration_seconds"};
                                        only item_id is required, unknown fields are ignored
                      interactions.csv  header user_id,item_id,label[,timestamp]; label 1/like/positive or
                                        0/nope/negative; timestamp ISO 8601 or epoch seconds/milliseconds
                      users.jsonl       {"user_id"} per line; when present, other users' rows are bad rows
  --reviews <csv>   DMM reviews product_url,reviewer_id,stars joined to the database's videos.external_id
                    (…/cid=<cid>/ and video.dmm.co.jp/av/content/?id=<cid> URLs; unmatched rows are reported)
  --from-db         the app's user_video_decisions (likes positive, nopes explicit negatives; latest per
                    user and video) with the catalog's tags (training groups only) and performers
  Bad rows are reported with their line numbers; a file with more than --max-bad-fraction bad rows stops the run.

The run folder (--out, default .am-ml/runs/<runId>) holds user_tower/, item_tower/ (TF.js layers models),
features.json, metrics.json, probe.json and manifest.json; it is written to a temporary folder and renamed
when complete. Metrics are full-catalog Recall@10/50/100, NDCG@10 and coverage@100 on a per-user held-out
split (time-ordered when every row has a timestamp), next to a popularity baseline on the same users.

Exit codes: 0 trained (and every --gate passed), 2 bad flags, 3 bad configuration or backend, 4 a gate failed
(the run is still written) or the data is unusable, 130 interrupted (nothing written).

Examples:
  am-ml train --dataset data/synthetic --epochs 10
  am-ml train --from-db --gate "recall@100>=0.2" --gate "ndcg@10>=0.05" --json
  am-ml train --reviews reviews.csv --positive-min-stars 5 --backend wasm --out runs/reviews-v1
  am-ml train --dataset data/app --dry-run
`;

function registerTrain(program: Command, action: ActionFactory): void {
  program
    .command('train')
    .description('train the two-tower model (TF.js) with frozen features and full-catalog evaluation; write a run folder')
    .option('--from-db', 'train on the app database (--db): user_video_decisions and the catalog')
    .option('--reviews <csv>', 'train on scraped DMM reviews joined to the catalog in --db')
    .option('--dataset <dir>', 'train on a dataset folder (items.jsonl + interactions.csv)')
    .option('--dim <n>', 'embedding dimension (default 128)', parseIntFlag(2, 4096))
    .option('--hidden <n>', 'hidden layer width, repeatable for more layers (default 256)', (v: string, prev: number[] = []) => [...prev, parseIntFlag(1, 65536)(v)])
    .option('--bag-dim <n>', 'embedding width of each feature bag (default 32)', parseIntFlag(1, 1024))
    .option('--epochs <n>', 'maximum epochs (default 20; early stopping on validation recall@100)', parseIntFlag(1, 10000))
    .option('--patience <n>', 'epochs without improvement before stopping (default 3)', parseIntFlag(1, 10000))
    .option('--batch-size <n>', 'positives per batch; each row sees the others as negatives (default 1024)', parseIntFlag(2, 65536))
    .option('--lr <x>', 'Adam learning rate (default 0.003)', parseFloatFlag(1e-7, 10))
    .option('--temperature <x>', 'softmax temperature over cosine scores (default 0.05)', parseFloatFlag(1e-4, 100))
    .option('--val <fraction>', "share of each user's positives held out for validation (default 0.1)", parseFloatFlag(0.001, 0.9))
    .option('--test <fraction>', 'share held out for the final test metrics; 0 reports validation (default 0.1)', parseFloatFlag(0, 0.9))
    .option('--val-users <n>', 'validation users scored each epoch (a seeded sample; default 2000)', parseIntFlag(1))
    .option('--seed <n>', 'random seed: same seed, data and backend give the same model (default 42)', parseIntFlag(0, 2 ** 32 - 1))
    .option('--no-item-id', 'no item-id bags (towers use features and history only)')
    .option('--no-hard-negatives', "do not use users' explicit negatives as hard negatives")
    .option('--no-log-q', 'no log-Q popularity correction of in-batch negatives')
    .option('--out <dir>', 'run folder (default .am-ml/runs/<runId>); must not exist')
    .option('--gate <expr>', 'quality gate, e.g. "recall@100>=0.2" (repeatable); exit 4 when one fails', collect)
    .addOption(new Option('--backend <name>', 'TF.js backend (default auto: node, else wasm, else cpu)').choices(['auto', 'node', 'wasm', 'cpu']))
    .option('--threads <n>', "'auto' (default: 2 on two or more cores) or 1 or 2: towers in worker threads", (v: string) => (v === 'auto' ? 'auto' : parseIntFlag(1, 2)(v)))
    .option('--max-bad-fraction <x>', 'stop when more than this share of a file is bad rows (default 0.5)', parseFloatFlag(0, 1))
    .option('--positive-min-stars <n>', 'reviews: stars counted as a like (default 4)', parseIntFlag(1, 5))
    .option('--negative-max-stars <n>', 'reviews: stars counted as a nope (default 3)', parseIntFlag(1, 5))
    .option('--dry-run', 'read and check the data and build the features; train and write nothing')
    .addHelpText('after', TRAIN_HELP)
    .action(
      action('train', async (common, f) => {
        const m = await import('./commands/train.js');
        const result = await m.train({
          ...common,
          fromDb: Boolean(f.fromDb),
          reviews: f.reviews as string | undefined,
          dataset: f.dataset as string | undefined,
          dim: f.dim as number | undefined,
          hidden: f.hidden as number[] | undefined,
          bagDim: f.bagDim as number | undefined,
          epochs: f.epochs as number | undefined,
          patience: f.patience as number | undefined,
          batchSize: f.batchSize as number | undefined,
          lr: f.lr as number | undefined,
          temperature: f.temperature as number | undefined,
          val: f.val as number | undefined,
          test: f.test as number | undefined,
          valUsers: f.valUsers as number | undefined,
          seed: f.seed as number | undefined,
          itemId: f.itemId !== false,
          hardNegatives: f.hardNegatives !== false,
          logQ: f.logQ !== false,
          out: f.out as string | undefined,
          gate: f.gate as string[] | undefined,
          backend: f.backend as 'auto' | 'node' | 'wasm' | 'cpu' | undefined,
          threads: f.threads as 'auto' | number | undefined,
          maxBadFraction: f.maxBadFraction as number | undefined,
          positiveMinStars: f.positiveMinStars as number | undefined,
          negativeMaxStars: f.negativeMaxStars as number | undefined,
          dryRun: Boolean(f.dryRun),
        });
        return { result, text: m.formatTrain(result) };
      }),
    );
}

const EMBED_HELP = `
Modes:
  (default)            full re-embed of items and users with one model version: rows are staged, then the live
                       tables switch in one transaction (readers see the old version or the new one, never a mix)
  --missing            only rows lacking an embedding of the version already served (daily new items), written
                       directly; refused when the live tables serve another version
  --shard i/n          this job embeds shard i of n (stable hash of the id; 1-based); the last shard to finish,
                       or a later --finalize, performs the switch
  --dataset D --to O   offline: embed a dataset folder into O/items.jsonl and O/users.jsonl, no database

Only the store's current version is written to the live tables (one writer); the old daily embedding job must be
retired first. Users with fewer than --min-history decisions get no embedding (serving then falls back to the mean
of their liked items, as the app's RPC does).

Exit codes: 4 dimension/vocabulary/probe mismatch (nothing written), 6 the model is not the current version,
another run holds the shard, or mixed versions were found after writing; 130 interrupted (resume with --resume).

Examples:
  am-ml embed
  am-ml embed --missing --items
  am-ml embed --shard 1/4 --json        (one job per shard, in parallel)
  am-ml embed --finalize
  am-ml embed --model .am-ml/runs/20261122T091500Z --unpublished --db pglite://.tmp/db
  am-ml embed --dataset data/app --to out/embeddings
`;

function registerEmbed(program: Command, action: ActionFactory): void {
  program
    .command('embed')
    .description('re-embed every item and user into pgvector with one model version, switching versions atomically')
    .option('--items', 'items only (with --missing, or when users already hold this version)')
    .option('--users', 'users only (same rule)')
    .option('--all', 'items and users (the default)')
    .option('--model <ref>', 'current (default), a published version id, or a model folder')
    .addOption(new Option('--name <name>', 'model name in the store').default('two_tower'))
    .option('--batch-size <n>', `rows per read, inference and COPY batch (default 4096)`, parseIntFlag(1, 1_000_000))
    .option('--missing', 'only rows lacking an embedding of the served version; no switch')
    .option('--shard <i/n>', 'embed shard i of n (1-based) of a run shared by n jobs')
    .option('--finalize', 'only switch: every shard of the run is staged')
    .option('--resume', 'continue an interrupted run from its checkpoint')
    .option('--restart', 'discard an interrupted run and start over')
    .option('--dry-run', 'check model, schema and dimensions, embed one batch in memory; write nothing')
    .option('--dataset <dir>', 'offline: a dataset folder (train --dataset format)')
    .option('--to <dir>', 'offline: where to write items.jsonl and users.jsonl')
    .addOption(
      new Option('--index-policy <policy>', 'ANN indexes during the switch: keep (readers never wait), rebuild (fast bulk), auto (rebuild on PGlite, keep on postgres://)')
        .choices(['auto', 'keep', 'rebuild'])
        .default('auto'),
    )
    .option('--min-history <n>', 'decisions a user needs to get an embedding (default 1)', parseIntFlag(1, 100000))
    .option('--unpublished', 'allow writing a model that is not the store\'s current version')
    .addOption(new Option('--backend <name>', 'TF.js backend (default auto)').choices(['auto', 'node', 'wasm', 'cpu']))
    .addHelpText('after', EMBED_HELP)
    .action(
      action('embed', async (common, f) => {
        const m = await import('./commands/embed.js');
        const result = await m.embed({
          ...common,
          items: Boolean(f.items),
          users: Boolean(f.users),
          all: Boolean(f.all),
          model: f.model as string | undefined,
          name: f.name as string,
          batchSize: f.batchSize as number | undefined,
          missing: Boolean(f.missing),
          shard: f.shard as string | undefined,
          finalize: Boolean(f.finalize),
          resume: Boolean(f.resume),
          restart: Boolean(f.restart),
          dryRun: Boolean(f.dryRun),
          dataset: f.dataset as string | undefined,
          to: f.to as string | undefined,
          indexPolicy: f.indexPolicy as 'auto' | 'keep' | 'rebuild',
          minHistory: f.minHistory as number | undefined,
          unpublished: Boolean(f.unpublished),
          backend: f.backend as 'auto' | 'node' | 'wasm' | 'cpu' | undefined,
        });
        return { result, text: m.formatEmbed(result) };
      }),
    );
}

/** `export` and `validate`: Keras → TF.js conversion and its proof (issue 5). */
function registerKerasCommands(program: Command, action: ActionFactory): void {
  const exitCodes =
    '\nExit codes: 0 ok; 2 bad flags or an unreadable input (not a Keras file, damaged or truncated HDF5/zip, unsafe zip member names,\n' +
    'weights-only .h5 without topology); 4 the model cannot be converted as it is (unsupported layers, weights that disagree with the\n' +
    'config, sizes over the limits) or validation found a mismatch. Nothing is written unless everything succeeded.\n';
  program
    .command('export')
    .description('convert a Keras model (.keras, .h5, or topology .json + weights .h5) into a TF.js layers-model folder, optionally proven equal')
    .argument('<model>', 'model.keras (Keras 3), model.h5 (Keras 2 or 3), or a topology .json (with --weights)')
    .option('--weights <file>', 'weights-only .h5 (save_weights) for a topology .json')
    .option('--out <dir>', 'output folder: model.json, group1-shard*.bin, manifest.json (must not exist or be empty, unless --force)')
    .option('--validate', 'prove the result equal: weights round trip, strict load, reference forward pass layer by layer, tensor-leak check')
    .option('--golden <file>', 'golden JSON (inputs + expected outputs from the training side) to compare with; repeatable; needs --validate', collect)
    .option('--tolerance <x>', 'relative tolerance for --validate (default 1e-4; scaled with depth)', parseFloatFlag(0, 1))
    .addOption(new Option('--quantize <dtype>', 'store weights as float16 or uint8 (the accuracy change is reported)').choices(['float16', 'uint8']))
    .option('--shard-size-bytes <n>', 'weight shard size in bytes (default 4194304)', parseIntFlag(1024, 2 ** 31 - 1))
    .option('--tower <layer>', 'export one tower of a two-tower model (a nested model layer, or the layer that ends a branch)')
    .option('--list-towers', 'list the towers of a two-tower model and write nothing')
    .option('--map-lambda <layer=fn:axis=n>', 'run a Lambda layer as an L2 normalisation: <layer>=l2_normalize:axis=-1[:epsilon=1e-12] (tf) or normalize:axis=-1 (keras.ops); repeatable', collect)
    .option('--force', 'replace an existing output folder')
    .option('--dry-run', 'convert (and validate) in memory; write nothing')
    .addOption(new Option('--backend <name>', 'TF.js backend for --validate (default cpu)').choices(['cpu', 'wasm', 'node', 'auto']))
    .addHelpText(
      'after',
      `${exitCodes}\nExamples:\n  am-ml export user_tower_768.keras --out models/user --validate\n  am-ml export full_model_768.keras --list-towers\n` +
        '  am-ml export full_model_768.h5 --tower user_tower --out models/user --validate --golden user_golden.json\n' +
        '  am-ml export model.json --weights weights.h5 --out out/ --quantize float16 --validate\n',
    )
    .action(
      action('export', async (common, f, args) => {
        const m = await import('./commands/export.js');
        const result = await m.exportModel({
          ...common,
          input: args[0],
          weights: f.weights as string | undefined,
          out: f.out as string | undefined,
          validate: Boolean(f.validate),
          golden: f.golden as string[] | undefined,
          tolerance: f.tolerance as number | undefined,
          quantize: f.quantize as 'float16' | 'uint8' | undefined,
          shardSizeBytes: f.shardSizeBytes as number | undefined,
          tower: f.tower as string | undefined,
          listTowers: Boolean(f.listTowers),
          mapLambda: f.mapLambda as string[] | undefined,
          force: Boolean(f.force),
          dryRun: Boolean(f.dryRun),
          backend: f.backend as 'cpu' | 'wasm' | 'node' | 'auto' | undefined,
        });
        return { result, text: m.formatExport(result) };
      }),
    );

  program
    .command('validate')
    .description('prove a TF.js model folder equal to its Keras source (reference forward pass) and/or golden outputs; exit 4 if not')
    .argument('<dir>', 'TF.js layers-model folder (model.json + shards)')
    .option('--against <file>', 'the Keras source: model.keras, model.h5, or topology .json (with --weights)')
    .option('--weights <file>', 'weights-only .h5 for a topology .json given to --against')
    .option('--golden <file>', 'golden JSON: {"inputs", "input_order", "outputs", "output_names"}; repeatable', collect)
    .option('--tolerance <x>', 'relative tolerance (default 1e-4; scaled with depth)', parseFloatFlag(0, 1))
    .option('--batch <n>', 'rows of generated inputs for the reference pass (default 16)', parseIntFlag(1, 4096))
    .option('--map-lambda <layer=fn:axis=n>', 'as for export, when the model was exported with --map-lambda', collect)
    .addOption(new Option('--backend <name>', 'TF.js backend (default cpu)').choices(['cpu', 'wasm', 'node', 'auto']))
    .addHelpText(
      'after',
      `${exitCodes}\nExamples:\n  am-ml validate models/user --against user_tower_768.keras\n  am-ml validate models/user --golden user_golden.json --tolerance 1e-5 --json\n`,
    )
    .action(
      action('validate', async (common, f, args) => {
        const m = await import('./commands/validate.js');
        const { result, exitCode } = await m.validate({
          ...common,
          dir: args[0],
          against: f.against as string | undefined,
          weights: f.weights as string | undefined,
          golden: f.golden as string[] | undefined,
          tolerance: f.tolerance as number | undefined,
          batch: f.batch as number | undefined,
          mapLambda: f.mapLambda as string[] | undefined,
          backend: f.backend as 'cpu' | 'wasm' | 'node' | 'auto' | undefined,
        });
        return { result, text: m.formatValidate(result), exitCode };
      }),
    );
}

/**
 * Run the CLI and return the exit code. `bin/am-ml.js` calls this; tests call it in process with their own io.
 */
export async function main(argv: string[] = process.argv, partialIo: Partial<CliIo> = {}): Promise<number> {
  const io: CliIo = {
    stdout: partialIo.stdout ?? process.stdout,
    stderr: partialIo.stderr ?? process.stderr,
    env: partialIo.env ?? process.env,
    cwd: partialIo.cwd ?? process.cwd(),
    handleSignals: partialIo.handleSignals ?? true,
  };
  const state = { exitCode: EXIT.OK as number, abort: new AbortController() };
  const wantsJson = argv.includes('--json');
  let sigints = 0;
  const onSigint = () => {
    sigints++;
    if (sigints === 1) {
      io.stderr.write('\nInterrupting: finishing the current step safely (press Ctrl-C again to exit at once)…\n');
      state.abort.abort();
    } else {
      process.exit(EXIT.INTERRUPTED);
    }
  };
  if (isVersionRequest(argv)) {
    io.stdout.write(`${AMML_VERSION}\n`);
    return EXIT.OK;
  }
  if (io.handleSignals) process.on('SIGINT', onSigint);
  try {
    const program = buildProgram(io, state);
    await program.parseAsync(argv);
  } catch (raw) {
    if (raw instanceof CommanderError) {
      if (raw.code === 'commander.helpDisplayed' || raw.code === 'commander.version' || raw.code === 'commander.help') {
        return EXIT.OK;
      }
      const message = raw.message.replace(/^error:\s*/i, '');
      const err = new UsageError(`${message.charAt(0).toUpperCase()}${message.slice(1)}`, {
        code: 'USAGE',
        hint: 'Run am-ml --help, or am-ml <command> --help.',
      });
      if (wantsJson) emitJson(jsonFailure(commandNameOf(argv), err), io.stdout);
      else io.stderr.write(`error: ${redact(err.message)}\n${err.hint}\n`);
      return EXIT.USAGE;
    }
    const err = toAmMlError(raw);
    if (wantsJson) emitJson(jsonFailure(commandNameOf(argv), err), io.stdout);
    else io.stderr.write(`error: ${redact(err.message)}\n`);
    return err.exitCode;
  } finally {
    if (io.handleSignals) process.off('SIGINT', onSigint);
  }
  return state.exitCode;
}

const GLOBAL_FLAGS_WITH_VALUE = new Set(['--config', '--db', '--store']);

/** `am-ml --version` / `am-ml -V` (before any command word; after one, `--version` is that command's flag). */
function isVersionRequest(argv: string[]): boolean {
  const args = argv.slice(2);
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--version' || a === '-V') return true;
    if (GLOBAL_FLAGS_WITH_VALUE.has(a)) i++;
    else if (!a.startsWith('-')) return false;
  }
  return false;
}

/** Best guess at the command name for JSON errors raised before an action ran (`db migrate`, `train`). */
function commandNameOf(argv: string[]): string {
  const words: string[] = [];
  const args = argv.slice(2);
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (GLOBAL_FLAGS_WITH_VALUE.has(a)) {
      i++;
      continue;
    }
    if (a.startsWith('-')) continue;
    words.push(a);
  }
  if (words[0] === 'db' && words[1]) return `db ${words[1]}`;
  if (words[0] === 'models') return `models ${['verify', 'prune'].includes(words[1]) ? words[1] : 'list'}`;
  return words[0] ?? '';
}
