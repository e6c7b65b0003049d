#!/usr/bin/env node
'use strict';
// The `logrelay` CLI. It runs the TypeScript source (../src/cli.ts) through tsx's CommonJS
// loader, so there is no build step and no compiled copy that could fall behind the source the
// tests type-check. Works on Node.js 20 and later.
require('tsx/cjs/api').register();
require('../src/cli.ts')
  .main()
  .catch((e) => {
    process.stderr.write(`logrelay: ${(e && e.stack) || e}\n`);
    process.exitCode = 1;
  });
