/**
 * `npm run bench`: run every benchmark (`src/bench/*.ts` modules exporting `benchmarks`), take the median of several
 * runs of each metric, check it against the limit its issue names, and rewrite BENCHMARKS.md (plus
 * BENCHMARKS.json, the machine-readable copy) with the machine, date, command and git commit.
 *
 *   npm run bench                       all benchmarks, default repeats
 *   npm run bench -- --only sync-dmm    benchmarks whose name contains "sync-dmm" (others keep their last results)
 *   npm run bench -- --repeats 1        quick run
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { BenchGoal, Benchmark } from './types.js';

const DEFAULT_REPEATS = 3;
const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO_ROOT = path.resolve(HERE, '..', '..');
const MD_FILE = path.join(REPO_ROOT, 'BENCHMARKS.md');
const JSON_FILE = path.join(REPO_ROOT, 'BENCHMARKS.json');

interface MetricSummary {
  median: number;
  min: number;
  max: number;
  runs: number[];
}

interface BenchRecord {
  name: string;
  issue: number;
  description: string;
  repeats: number;
  units: Record<string, string>;
  metrics: Record<string, MetricSummary>;
  goals: (BenchGoal & { actual: number | null; met: boolean })[];
  error?: string;
  machine: MachineInfo;
  date: string;
  command: string;
  gitCommit: string | null;
}

interface MachineInfo {
  cpu: string;
  cores: number;
  memoryGiB: number;
  node: string;
  os: string;
}

function machineInfo(): MachineInfo {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
  };
}

function gitCommit(): string | null {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'ignore'] })
      .toString()
      .trim();
  } catch {
    return null;
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

async function loadBenchmarks(): Promise<Benchmark[]> {
  const out: Benchmark[] = [];
  for (const file of readdirSync(HERE).sort()) {
    if (!file.endsWith('.js') || file === 'index.js' || file === 'types.js') continue;
    const mod = (await import(pathToFileURL(path.join(HERE, file)).href)) as { benchmarks?: Benchmark[] };
    if (Array.isArray(mod.benchmarks)) out.push(...mod.benchmarks);
  }
  return out;
}

function parseArgs(argv: string[]): { only?: string; repeats?: number } {
  const out: { only?: string; repeats?: number } = {};
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--only') out.only = argv[++i];
    else if (argv[i] === '--repeats') out.repeats = Number(argv[++i]);
  }
  return out;
}

function fmt(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  const a = Math.abs(n);
  if (a >= 1000) return Math.round(n).toLocaleString('en-US');
  if (a >= 10) return n.toFixed(1);
  if (a >= 0.01) return n.toFixed(3);
  return n.toPrecision(3);
}

function renderMarkdown(records: BenchRecord[]): string {
  const lines = [
    '# Benchmarks',
    '',
    'Written by `npm run bench` (src/bench/index.ts); do not edit by hand. Each metric is the median of the runs',
    'shown; goals are the limits named in the issues. Machines are shared and noisy: compare ratios measured in the',
    'same run rather than absolute numbers across runs.',
    '',
  ];
  for (const r of records) {
    lines.push(`## ${r.name} (issue #${r.issue})`, '', r.description, '');
    lines.push(
      `- machine: ${r.machine.cpu}, ${r.machine.cores} cores, ${r.machine.memoryGiB} GiB, Node ${r.machine.node}, ${r.machine.os}`,
      `- date: ${r.date}; commit: ${r.gitCommit ?? 'unknown'}; command: \`${r.command}\`; runs: ${r.repeats}`,
      '',
    );
    if (r.error) {
      lines.push(`**Failed to run:** ${r.error}`, '');
      continue;
    }
    lines.push('| metric | median | min | max | unit |', '|---|---:|---:|---:|---|');
    for (const [k, m] of Object.entries(r.metrics)) {
      lines.push(`| ${k} | ${fmt(m.median)} | ${fmt(m.min)} | ${fmt(m.max)} | ${r.units[k] ?? ''} |`);
    }
    if (r.goals.length) {
      lines.push('', '| goal | actual (median) | met |', '|---|---:|---|');
      for (const g of r.goals) {
        lines.push(`| ${g.description} (\`${g.metric} ${g.op} ${g.value}\`) | ${g.actual === null ? 'n/a' : fmt(g.actual)} | ${g.met ? 'yes' : '**no**'} |`);
      }
    }
    lines.push('');
  }
  return `${lines.join('\n')}\n`;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const all = await loadBenchmarks();
  const selected = args.only ? all.filter((b) => b.name.includes(args.only!)) : all;
  if (selected.length === 0) {
    process.stderr.write(`No benchmark matches '${args.only}'. Available: ${all.map((b) => b.name).join(', ')}\n`);
    process.exit(2);
  }
  const previous: BenchRecord[] = existsSync(JSON_FILE) ? JSON.parse(readFileSync(JSON_FILE, 'utf8')) : [];
  const machine = machineInfo();
  const command = `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`;
  const commit = gitCommit();
  const fresh: BenchRecord[] = [];
  let anyGoalMissed = false;
  for (const b of selected) {
    const repeats = args.repeats ?? b.repeats ?? DEFAULT_REPEATS;
    const runs: Record<string, number>[] = [];
    let error: string | undefined;
    process.stderr.write(`\n== ${b.name} (${repeats} run${repeats > 1 ? 's' : ''})\n`);
    for (let i = 0; i < repeats && !error; i++) {
      const tmp = mkdtempSync(path.join(os.tmpdir(), 'am-ml-bench-'));
      try {
        const started = Date.now();
        runs.push(await b.run({ tmp, log: (t) => process.stderr.write(`  ${t}\n`) }));
        process.stderr.write(`  run ${i + 1}: ${JSON.stringify(runs[runs.length - 1])} (${((Date.now() - started) / 1000).toFixed(1)} s)\n`);
      } catch (err) {
        error = (err as Error).stack ?? String(err);
        process.stderr.write(`  failed: ${error}\n`);
      } finally {
        rmSync(tmp, { recursive: true, force: true });
      }
    }
    const metrics: Record<string, MetricSummary> = {};
    for (const key of Object.keys(runs[0] ?? {})) {
      const xs = runs.map((r) => r[key]).filter((x) => typeof x === 'number');
      metrics[key] = { median: median(xs), min: Math.min(...xs), max: Math.max(...xs), runs: xs };
    }
    const goals = (b.goals ?? []).map((g) => {
      const actual = metrics[g.metric]?.median ?? null;
      const met = actual !== null && (g.op === '>=' ? actual >= g.value : actual <= g.value);
      if (!met) anyGoalMissed = true;
      return { ...g, actual, met };
    });
    fresh.push({
      name: b.name,
      issue: b.issue,
      description: b.description,
      repeats,
      units: b.units ?? {},
      metrics,
      goals,
      error: error?.split('\n')[0],
      machine,
      date: new Date().toISOString(),
      command,
      gitCommit: commit,
    });
  }
  const names = new Set(fresh.map((r) => r.name));
  const known = new Set(all.map((b) => b.name));
  const merged = [...previous.filter((r) => !names.has(r.name) && known.has(r.name)), ...fresh].sort(
    (a, b) => a.issue - b.issue || a.name.localeCompare(b.name),
  );
  writeFileSync(JSON_FILE, `${JSON.stringify(merged, null, 2)}\n`);
  writeFileSync(MD_FILE, renderMarkdown(merged));
  process.stderr.write(`\nWrote ${path.relative(process.cwd(), MD_FILE)}${anyGoalMissed ? ' (some goals were not met)' : ''}\n`);
}

await main();
