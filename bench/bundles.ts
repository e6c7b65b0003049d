/**
 * Each handler bundled the way the stack bundles it (lib/service-function.ts: esbuild, minify,
 * CommonJS, target node24, source maps without sources, `@aws-sdk/*` external because the
 * Lambda runtime ships it), its size, and its module initialization time in fresh Node.js
 * processes as a proxy for cold start.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';
import type { FunctionName } from '../lambdas/routes';
import { median } from './stats';

export const PROJECT_ROOT = resolve(__dirname, '..');
const FUNCTIONS: FunctionName[] = ['logs', 'append', 'sessions', 'receive', 'leases'];
/** The stack's esbuild target (lib/service-function.ts ESBUILD_TARGET); restated to keep aws-cdk-lib out of this process. */
const ESBUILD_TARGET = 'node24';

export interface BundleResult {
  fn: FunctionName;
  bytes: number;
  gzipBytes: number;
  sourceMapBytes: number;
  /** Median over fresh processes of the time `require(bundle)` takes, with --enable-source-maps as deployed. */
  initMs: number;
  initMsRuns: number[];
  /** The same without --enable-source-maps. */
  initMsNoSourceMaps: number;
}

export interface BundlesReport {
  nodeVersion: string;
  runs: number;
  /** Median of `require` of nothing but @aws-sdk/client-dynamodb + lib-dynamodb (what every bundle pulls in from the runtime). */
  sdkOnlyInitMs: number;
  bundles: BundleResult[];
}

/** Times `require(file)` in a fresh process; returns milliseconds. */
function timeRequire(file: string, sourceMaps: boolean): number {
  const script = `const t=process.hrtime.bigint();${file
    .split('\n')
    .map((f) => `require(${JSON.stringify(f)});`)
    .join('')}process.stdout.write(String(Number(process.hrtime.bigint()-t)/1e6));`;
  const args = [...(sourceMaps ? ['--enable-source-maps'] : []), '-e', script];
  const r = spawnSync(process.execPath, args, {
    // The external @aws-sdk/* packages come from the project's node_modules, as from the runtime in Lambda.
    env: { PATH: process.env.PATH ?? '', NODE_PATH: join(PROJECT_ROOT, 'node_modules'), AWS_REGION: 'us-east-1' },
    encoding: 'utf8',
    timeout: 60_000,
  });
  if (r.status !== 0) throw new Error(`node -e require(${file}) failed: ${r.stderr}`);
  return Number(r.stdout);
}

export async function measureBundles(runs: number, progress: (line: string) => void): Promise<BundlesReport> {
  const dir = mkdtempSync(join(tmpdir(), 'logrelay-bench-bundles-'));
  try {
    const bundles: BundleResult[] = [];
    for (const fn of FUNCTIONS) {
      const outfile = join(dir, fn, 'index.js');
      await build({
        entryPoints: [join(PROJECT_ROOT, 'lambdas', 'handlers', `${fn}.ts`)],
        bundle: true,
        platform: 'node',
        format: 'cjs',
        target: ESBUILD_TARGET,
        minify: true,
        sourcemap: true,
        sourcesContent: false,
        external: ['@aws-sdk/*'],
        outfile,
        logLevel: 'silent',
      });
      const code = readFileSync(outfile);
      const initMsRuns: number[] = [];
      const noMaps: number[] = [];
      for (let i = 0; i < runs; i++) {
        initMsRuns.push(timeRequire(outfile, true));
        noMaps.push(timeRequire(outfile, false));
      }
      const b: BundleResult = {
        fn,
        bytes: code.length,
        gzipBytes: gzipSync(code).length,
        sourceMapBytes: statSync(`${outfile}.map`).size,
        initMs: median(initMsRuns),
        initMsRuns,
        initMsNoSourceMaps: median(noMaps),
      };
      bundles.push(b);
      progress(`bundle ${fn}: ${(b.bytes / 1024).toFixed(0)} KiB, init ${b.initMs.toFixed(0)} ms`);
    }
    const sdk: number[] = [];
    for (let i = 0; i < runs; i++) sdk.push(timeRequire('@aws-sdk/client-dynamodb\n@aws-sdk/lib-dynamodb', false));
    return { nodeVersion: process.version, runs, sdkOnlyInitMs: median(sdk), bundles };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
