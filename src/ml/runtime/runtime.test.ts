/**
 * The `am-ml/runtime` package export, used the way the app's Edge Functions use it: a separate process imports
 * `am-ml/runtime` and plain `@tensorflow/tfjs`, then `tf.loadLayersModel(url)` loads models am-ml wrote (served
 * over HTTP on 127.0.0.1) with strict weights, custom layers included. Also: the runtime uses no Node-only APIs.
 */
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { convertKeras } from '../keras/convert.js';
import { writeExportFolder } from '../keras/export-folder.js';
import { FIXTURES_DIR, REPO_ROOT, type TmpDir, tmpDir } from '../../testing/tmp-dir.js';

const run = promisify(execFile);
const GEN = path.join(FIXTURES_DIR, 'keras', 'generated');

let tmp: TmpDir;
let server: http.Server;
let baseUrl: string;

async function exportTo(name: string, input: string, opts: { tower?: string } = {}): Promise<string> {
  const c = await convertKeras({ input: path.join(GEN, input), tower: opts.tower, convertedBy: 'am-ml test' });
  const out = tmp.join(name);
  await writeExportFolder(c, { outDir: out, amMl: { version: 'test', gitCommit: null } });
  return out;
}

beforeAll(async () => {
  tmp = tmpDir('am-ml-runtime-');
  await exportTo('user', 'full_model_768.keras', { tower: 'user_tower' }); // UnitNormalization
  await exportTo('sink', 'kitchen_sink.h5'); // Subtract
  await exportTo('lambda', 'lambda_l2.keras'); // AmMlL2Normalize
  server = http.createServer((req, res) => {
    const file = path.join(tmp.path, decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname));
    if (!file.startsWith(tmp.path) || !existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': file.endsWith('.json') ? 'application/json' : 'application/octet-stream' }).end(readFileSync(file));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  tmp.remove();
});

/** Run an ES module in a fresh Node process from the repository root (so `am-ml/runtime` resolves via exports). */
async function node(code: string): Promise<string> {
  const { stdout } = await run(process.execPath, ['--input-type=module', '-e', code], { cwd: REPO_ROOT, timeout: 60_000 });
  return stdout.trim();
}

const loadScript = (withRuntime: boolean, folder: string) => `
${withRuntime ? "import 'am-ml/runtime';" : ''}
import * as tf from '@tensorflow/tfjs';
tf.enableProdMode();
await tf.setBackend('cpu');
try {
  const model = await tf.loadLayersModel('${baseUrl}/${folder}/model.json', { strict: true });
  const xs = model.inputs.map((i) => tf.ones([2, ...i.shape.slice(1)], i.dtype));
  const y = model.predict(xs.length === 1 ? xs[0] : xs);
  const ys = Array.isArray(y) ? y : [y];
  console.log(JSON.stringify({ ok: true, classes: model.layers.map((l) => l.getClassName()), shapes: ys.map((t) => t.shape), finite: ys.every((t) => t.dataSync().every(Number.isFinite)) }));
} catch (err) {
  console.log(JSON.stringify({ ok: false, message: err.message }));
}
`;

describe('am-ml/runtime', () => {
  it('is a package export that builds to dist (npm run build)', () => {
    const pkg = JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8'));
    expect(pkg.exports['./runtime']).toEqual({ types: './dist/ml/runtime/index.d.ts', default: './dist/ml/runtime/index.js' });
    expect(pkg.bin['am-ml']).toBe('bin/am-ml.js');
    expect(existsSync(path.join(REPO_ROOT, 'dist/ml/runtime/index.js')), 'dist is missing: run npm run build').toBe(true);
  });

  it.each([
    ['user', 'UnitNormalization', [[2, 768]]],
    ['sink', 'Subtract', [[2, 4], [2, 3]]],
    ['lambda', 'AmMlL2Normalize', [[2, 6]]],
  ])('lets plain tf.loadLayersModel load the %s export (%s) over HTTP', async (folder, customClass, shapes) => {
    const out = JSON.parse(await node(loadScript(true, folder)));
    expect(out).toMatchObject({ ok: true, shapes, finite: true });
    expect(out.classes).toContain(customClass);
  });

  it('is what makes it work: without the import, TF.js does not know the custom class', async () => {
    const out = JSON.parse(await node(loadScript(false, 'user')));
    expect(out.ok).toBe(false);
    expect(out.message).toMatch(/Unknown layer: UnitNormalization/);
  });

  it('uses no Node-only APIs (the Edge runtime imports it), and neither does anything it imports, transitively', () => {
    const entries = [...readdirSync(path.join(REPO_ROOT, 'src/ml/runtime')).filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts')).map((f) => `src/ml/runtime/${f}`), 'src/ml/tf.ts'];
    const seen = new Set<string>();
    const visit = (rel: string) => {
      if (seen.has(rel)) return;
      seen.add(rel);
      const code = readFileSync(path.join(REPO_ROOT, rel), 'utf8').replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, '');
      expect(code, rel).not.toMatch(/from\s+['"]node:|require\(|\bprocess\.|\bBuffer\b|__dirname|import\.meta\.url/);
      for (const m of code.matchAll(/from\s+['"](\.[^'"]+)['"]/g)) visit(path.normalize(path.join(path.dirname(rel), m[1])).replace(/\.js$/, '.ts'));
    };
    entries.forEach(visit);
    // the walk reached the two-tower layers the runtime registers
    expect([...seen]).toEqual(expect.arrayContaining(['src/ml/layers.ts', 'src/ml/kernels/weighted-bag-kernel.ts']));
  });
});
