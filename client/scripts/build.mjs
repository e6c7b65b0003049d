/**
 * Builds the published form of @logrelay/client into dist/: run by `npm pack` through the
 * package's `prepack` script, by `npm install` / `npm ci` at the repository root through the
 * root's `prepare`, or by `npm run build -w @logrelay/client`. Flow: empty dist/; esbuild
 * bundles src/index.ts twice, as ESM (dist/index.mjs) and as CommonJS (dist/index.cjs), and
 * src/cli.ts once as CommonJS (dist/cli.cjs, which bin/logrelay.js loads when the package has no
 * src/); then tsc writes the type declarations (dist/types/) from tsconfig.build.json.
 * Dependencies stay external (they are declared in package.json and installed beside the
 * package), so the bundles hold only this package's own code. Offline: uses only the root's
 * installed devDependencies.
 *
 * Why esbuild: it is already the project's bundler (the stack's Lambda functions), turns the
 * extensionless relative imports of src/ into files Node's ESM loader accepts by bundling them,
 * and takes well under a second. It does not write declarations, so tsc does that, from the same
 * sources the root's `tsc --noEmit` type-checks. The package's own manifest has no install-time
 * script (no `prepare`): npm would flag it, or try to run it, in every project that installs it.
 */
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const pkgDir = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(pkgDir, 'dist');
rmSync(dist, { recursive: true, force: true });

const common = {
  absWorkingDir: pkgDir,
  bundle: true,
  platform: 'node',
  // The package's engines floor; nothing newer is emitted.
  target: 'node20',
  // Dependencies are require()d / imported at run time from node_modules, not copied in.
  packages: 'external',
  // Not minified and no source maps: the bundles read like the source, and stack traces point
  // at lines a user can open in node_modules.
  logLevel: 'warning',
};

await Promise.all([
  build({ ...common, entryPoints: ['src/index.ts'], format: 'esm', outfile: 'dist/index.mjs' }),
  build({ ...common, entryPoints: ['src/index.ts'], format: 'cjs', outfile: 'dist/index.cjs' }),
  // dist/cli.cjs sits one folder below the package root, as src/cli.ts does, so the CLI's
  // `--version` still reads ../package.json.
  build({ ...common, entryPoints: ['src/cli.ts'], format: 'cjs', outfile: 'dist/cli.cjs' }),
]);

const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
execFileSync(process.execPath, [tsc, '-p', join(pkgDir, 'tsconfig.build.json')], { stdio: 'inherit' });
