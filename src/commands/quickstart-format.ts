/**
 * What `am-ml quickstart` prints on stdout for humans: the steps, the evaluation table, each sample user's recent
 * likes next to their recommendations, the live tables, and where everything was written. Japanese titles take two
 * terminal columns per character, so the two-column layout measures display width, not string length.
 */
import type { QuickstartResult } from './quickstart.js';
import type { SampleUser } from './quickstart-samples.js';

const LEFT_WIDTH = 46;
const RIGHT_WIDTH = 64;

/** Terminal columns of one code point: East Asian wide and full-width characters take two. */
function charWidth(cp: number): number {
  return (cp >= 0x1100 && cp <= 0x115f) ||
    (cp >= 0x2e80 && cp <= 0xa4cf) ||
    (cp >= 0xac00 && cp <= 0xd7a3) ||
    (cp >= 0xf900 && cp <= 0xfaff) ||
    (cp >= 0xfe30 && cp <= 0xfe4f) ||
    (cp >= 0xff00 && cp <= 0xff60) ||
    (cp >= 0xffe0 && cp <= 0xffe6)
    ? 2
    : 1;
}

export function displayWidth(s: string): number {
  let w = 0;
  for (const ch of s) w += charWidth(ch.codePointAt(0)!);
  return w;
}

/** Cut to `width` columns (with an ellipsis when cut) and pad with spaces to exactly `width`. */
export function fit(s: string, width: number): string {
  let out = '';
  let w = 0;
  const chars = [...s];
  for (let i = 0; i < chars.length; i++) {
    const cw = charWidth(chars[i].codePointAt(0)!);
    const rest = chars.slice(i).reduce((a, c) => a + charWidth(c.codePointAt(0)!), 0);
    if (w + rest <= width) {
      out += chars.slice(i).join('');
      w += rest;
      break;
    }
    if (w + cw > width - 1) {
      out += '…';
      w += 1;
      break;
    }
    out += chars[i];
    w += cw;
  }
  return out + ' '.repeat(Math.max(0, width - w));
}

const f3 = (v: number | undefined) => (v === undefined || !Number.isFinite(v) ? '-' : v.toFixed(3));

function sharedText(s: SampleUser['recommendations'][number]['shared']): string {
  const parts = [...(s.maker ? [s.maker] : []), ...s.performers, ...s.genres];
  return parts.length ? `✓ ${parts.join(', ')}` : '✗ no part of the taste';
}

function sampleBlock(s: SampleUser, index: number, total: number): string[] {
  const t = s.taste;
  const feature = (f: { name: string; likes: number }) => `${f.name} ×${f.likes}`;
  const lines = [
    `Sample user ${index + 1} of ${total}: ${s.userId} (${t.of} likes)`,
    `  the taste that generated their likes (×N: likes carrying it):`,
    `    makers ${t.makers.map(feature).join(', ')} · genres ${t.genres.map(feature).join(', ')}`,
    `    performers ${t.performers.filter((p) => p.likes > 0).map(feature).join(', ') || '-'}`,
    `  ${fit('recent likes', LEFT_WIDTH)} │ score  recommended now (${s.querySource}, version ${s.modelVersion ?? 'none'})`,
  ];
  const left = s.recentLikes.flatMap((l) => [fit(l.title, LEFT_WIDTH), fit(`  ${l.maker ?? '-'} · ${l.genres.join(', ')}`, LEFT_WIDTH)]);
  const right = s.recommendations.flatMap((r) => [
    fit(`${r.score.toFixed(3)}  ${r.title}`, RIGHT_WIDTH),
    fit(`       ${sharedText(r.shared)} | ${r.maker ?? '-'} · ${r.genres.join(', ')}`, RIGHT_WIDTH),
  ]);
  for (let i = 0; i < Math.max(left.length, right.length); i++) {
    lines.push(`  ${left[i] ?? ' '.repeat(LEFT_WIDTH)} │ ${(right[i] ?? '').trimEnd()}`.trimEnd());
  }
  const matching = s.recommendations.filter((r) => r.shared.matches).length;
  lines.push(
    `  ${matching} of ${s.recommendations.length} recommendations carry a maker, performer or genre of this taste ` +
      `(${Math.round(s.relevance.model * 100)}%; the popularity feed: ${Math.round(s.relevance.popularity * 100)}%).`,
  );
  return lines;
}

export function formatQuickstart(r: QuickstartResult): string {
  const lines: string[] = [`am-ml quickstart ran the whole loop in ${Math.round(r.seconds)} s, offline, in ${r.dir}`, ''];
  r.steps.forEach((s, i) => lines.push(`  ${i + 1}. ${s.name.padEnd(13)}${`${s.seconds.toFixed(1)} s`.padStart(8)}  ${s.summary}`));
  const e = r.evaluation;
  lines.push('', `Evaluation on the ${e.evaluatedOn} split (${e.users} users, ranked over the full catalog of ${e.items} items):`);
  lines.push(`  ${'metric'.padEnd(14)}${'model'.padStart(8)}${'popularity'.padStart(12)}`);
  for (const m of e.metrics) lines.push(`  ${m.name.padEnd(14)}${f3(m.model).padStart(8)}${f3(m.popularity).padStart(12)}`);
  lines.push(e.beatsPopularity ? '  The model beats the popularity baseline (recall@100 and ndcg@10).' : '  The model does NOT beat the popularity baseline.');
  for (const [i, s] of r.samples.entries()) lines.push('', ...sampleBlock(s, i, r.samples.length));
  const rel = r.relevance;
  lines.push(
    '',
    `Over the first ${rel.users} users with 15 or more likes, ${Math.round(rel.model * 100)}% of the top ${rel.k} recommendations carry ` +
      `the user's taste; ${Math.round(rel.popularity * 100)}% of the popularity feed's top ${rel.k} do.`,
  );
  const live = (rows: { version: string | null; rows: number }[]) => rows.map((v) => `${v.rows} rows of ${v.version ?? 'no version'}`).join(', ') || 'empty';
  lines.push(
    '',
    `Live tables: video_embeddings ${live(r.live.videoEmbeddings)}; user_embeddings ${live(r.live.userEmbeddings)}; served version ${r.live.servedVersion ?? 'none'}.`,
    '',
    'Written:',
    `  database       ${r.written.database}  (embedded PGlite with pgvector; --db pglite://${r.written.database})`,
    `  model store    ${r.written.store}  (current: ${r.published.name} ${r.published.version}${r.published.previous ? `, previous ${r.published.previous}` : ''})`,
    `  this version   ${r.written.version}`,
    `  training run   ${r.written.run}`,
    `  golden files   ${r.written.goldens.join(', ')}`,
    '',
    `Next: run \`am-ml models\`, \`am-ml doctor\` or \`am-ml embed --dry-run\` in ${r.dir}; run the quickstart again to train, publish and switch to a new version.`,
  );
  return lines.join('\n');
}
