#!/usr/bin/env node
// The am-ml binary: everything lives in src/cli.ts (compiled to dist/ by `npm install` / `npm run build`).
import { main } from '../dist/cli.js';

// `am-ml models --json | head`: a closed pipe ends the process quietly.
process.stdout.on('error', (err) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});
const code = await main(process.argv);
// Exit explicitly: WASM backends and database pools may hold handles after the work is done.
process.exit(code);
