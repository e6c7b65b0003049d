#!/usr/bin/env node
'use strict';
// The `logrelay` CLI. Installed from the package (npm pack / a registry), it runs the compiled
// CLI, ../dist/cli.cjs, with plain Node.js 20 or later. In this repository's checkout, where
// ../src/cli.ts exists (the tarball never holds src/), it runs that source through tsx's
// CommonJS loader instead (tsx is the root's dev dependency), so the workspace's bin is never a
// stale build of the source the tests type-check.
const { existsSync } = require('node:fs');
const { join } = require('node:path');

const source = join(__dirname, '..', 'src', 'cli.ts');
let cli;
if (existsSync(source)) {
  require('tsx/cjs/api').register();
  cli = require(source);
} else {
  cli = require('../dist/cli.cjs');
}
cli.main().catch((e) => {
  process.stderr.write(`logrelay: ${(e && e.stack) || e}\n`);
  process.exitCode = 1;
});
