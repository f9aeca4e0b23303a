/**
 * The one command registry. Each command's action normalises its flags and then lazily imports
 * `./commands/<name>.js`, so `am-ml --help` stays fast and commands that do not need TensorFlow never load it.
 * This is also the only place that catches errors, maps them to exit codes and prints them.
 */
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
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
    .version(AMML_VERSION, '-V, --version')
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
  program
    .command('init')
    .description('create .am-ml/: the embedded database with the app schema, and the local model store (safe to run twice)')
    .option('--dim <n>', 'embedding dimension of new embedding columns (default 128)', parseIntFlag(1, 16000))
    .addOption(
      new Option('--vector-type <type>', 'column type of new embedding columns (default halfvec)').choices(['vector', 'halfvec']),
    )
    .addHelpText('after', '\nExamples:\n  am-ml init\n  am-ml init --dim 768 --vector-type vector\n')
    .action(
      action('init', async (common, f) => {
        const m = await import('./commands/init.js');
        const result = await m.init({
          ...common,
          dim: f.dim as number | undefined,
          vectorType: f.vectorType as 'vector' | 'halfvec' | undefined,
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
          dryRun: Boolean(f.dryRun),
        });
        return { result, text: m.formatDbMigrate(result) };
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
  return words[0] === 'db' && words[1] ? `db ${words[1]}` : (words[0] ?? '');
}
