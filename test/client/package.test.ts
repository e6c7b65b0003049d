/**
 * @logrelay/client as a package a user installs: `npm pack` in client/ (which builds dist/
 * through the package's `prepack` script), the tarball installed with npm into an empty project
 * in the OS temp folder (outside this repository, so neither the workspace link nor the root's
 * tsx can be reached), and there, with plain `node`: an ESM script and a CommonJS script each
 * create a log, append three records and consume them against the local runtime this test
 * starts; and the installed `logrelay` bin prints its help. Also what the tarball holds: the
 * build and its declarations, no TypeScript source and no tests, and the exports map.
 *
 * npm is run with --prefer-offline: the dependencies come from npm's cache when the repository's
 * own install put them there, else from the registry.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { startLocalRuntime, type LocalRuntime } from '../../local/server';

const ROOT = resolve(__dirname, '../..');
const CLIENT = join(ROOT, 'client');
const NPM_TIMEOUT_MS = 240_000;

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * The environment for npm and node children: this process's, without what `npm test` and vitest
 * put there (npm_* lifecycle and config variables would point npm back at this repository;
 * NODE_OPTIONS could load a loader), but keeping the user's npm cache, registry and npmrc.
 */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const keep = new Set(['npm_config_cache', 'npm_config_registry', 'npm_config_userconfig']);
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    const lower = k.toLowerCase();
    if ((lower.startsWith('npm_') && !keep.has(lower)) || lower === 'node_options' || lower === 'init_cwd' || lower.startsWith('vitest'))
      continue;
    env[k] = v;
  }
  return { ...env, ...extra };
}

function run(file: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = cleanEnv()): Promise<Ran> {
  return new Promise((ok) => {
    execFile(file, args, { cwd, env, timeout: NPM_TIMEOUT_MS, maxBuffer: 32 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : null) : 0;
      ok({ code, stdout, stderr });
    });
  });
}

const npm = (args: string[], cwd: string) => run(process.platform === 'win32' ? 'npm.cmd' : 'npm', args, cwd);

/** Fails with npm's own output, so a failed install says why. */
function expectOk(r: Ran, what: string): void {
  if (r.code !== 0) throw new Error(`${what} exited ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`);
}

const ACCESS_KEY_ID = 'LRPACKADMIN00000';
const SECRET = 'pack-admin-secret-00000000000000';

/**
 * The worker a user writes, in the module system under test: create a log, append three records,
 * open a session and consume until all three were handled, then stop. It prints one JSON line.
 */
function workerSource(kind: 'esm' | 'cjs'): string {
  const load =
    kind === 'esm'
      ? `import { LogrelayClient, LogrelayError } from '@logrelay/client';\nimport { createRequire } from 'node:module';\nconst resolved = createRequire(import.meta.url).resolve('@logrelay/client');\n// import.meta.resolve is synchronous from Node.js 20.6.\nconst esmUrl = typeof import.meta.resolve === 'function' ? import.meta.resolve('@logrelay/client') : 'unavailable';`
      : `const { LogrelayClient, LogrelayError } = require('@logrelay/client');\nconst resolved = require.resolve('@logrelay/client');\nconst esmUrl = null;`;
  const body = `
async function mainFn() {
  const client = new LogrelayClient({
    endpoint: process.env.LOGRELAY_ENDPOINT,
    credentials: { accessKeyId: process.env.LR_KEY_ID, secretAccessKey: process.env.LR_SECRET },
  });
  const logId = process.env.LR_LOG_ID;
  await client.createLog({ logId });
  const appended = await client.append(logId, [{ data: { n: 1 } }, { data: { n: 2 } }, { data: { n: 3 } }]);
  const session = await client.createSession(logId, { ackTimeoutSeconds: 10 });
  const stop = new AbortController();
  const seen = [];
  const summary = await session.consume(
    async (r) => {
      seen.push({ seq: r.seq, n: r.data.n });
      if (seen.length === 3) stop.abort();
    },
    { waitSeconds: 1, signal: stop.signal },
  );
  seen.sort((a, b) => a.seq - b.seq);
  const info = await client.describeSession(session.id);
  let notFound = null;
  try {
    await client.describeLog('no-such-log-here');
  } catch (e) {
    notFound = { isLogrelayError: e instanceof LogrelayError, status: e.status };
  }
  console.log(JSON.stringify({ appended, seen, summary, info, notFound, resolved, esmUrl }));
}
mainFn().catch((e) => { console.error(e && e.stack || e); process.exitCode = 1; });
`;
  return `${load}\n${body}`;
}

let rt: LocalRuntime;
let work: string;
let project: string;
let tarball: string;
let packed: { files: { path: string }[]; filename: string };

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'logrelay-pack-'));
  // The point of the test: the project must not sit inside this repository.
  expect(relative(realpathSync(ROOT), realpathSync(work)).startsWith('..')).toBe(true);

  const credentialsPath = join(work, 'credentials.json');
  writeFileSync(
    credentialsPath,
    JSON.stringify({ principals: [{ name: 'ops', accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET, admin: true }] }),
  );
  const runtime = startLocalRuntime({ port: 0, credentialsPath, log: () => {} });

  // npm pack runs the package's `prepack` (the build) first; --json lists what it packed.
  const pack = await npm(['pack', '--pack-destination', work, '--json'], CLIENT);
  expectOk(pack, 'npm pack');
  packed = (JSON.parse(pack.stdout) as { files: { path: string }[]; filename: string }[])[0];
  tarball = join(work, packed.filename);

  project = join(work, 'project');
  mkdirSync(project);
  expectOk(await npm(['init', '-y'], project), 'npm init');
  expectOk(await npm(['install', tarball, '--no-audit', '--no-fund', '--prefer-offline'], project), 'npm install <tarball>');

  rt = await runtime;
}, NPM_TIMEOUT_MS * 2);

afterAll(async () => {
  await rt?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('npm pack of @logrelay/client', () => {
  it('packs the build, its declarations and the bin, and no TypeScript source or tests', () => {
    const paths = packed.files.map((f) => f.path).sort();
    expect(paths).toEqual(
      expect.arrayContaining([
        'package.json',
        'README.md',
        'bin/logrelay.js',
        'dist/index.mjs',
        'dist/index.cjs',
        'dist/cli.cjs',
        'dist/types/index.d.ts',
      ]),
    );
    // Declarations are .d.ts; anything else ending in .ts is source.
    expect(paths.filter((p) => p.endsWith('.ts') && !p.endsWith('.d.ts'))).toEqual([]);
    expect(
      paths.filter(
        (p) => p.startsWith('src/') || p.startsWith('test') || /\.test\./.test(p) || p.startsWith('scripts/') || p.includes('tsconfig'),
      ),
    ).toEqual([]);
    expect(packed.filename).toMatch(/^logrelay-client-\d+\.\d+\.\d+\.tgz$/);
  });

  it("the installed package.json has the exports map (types, import, require), the compiled bin's launcher and its dependencies, and no tsx", () => {
    const pkg = JSON.parse(readFileSync(join(project, 'node_modules', '@logrelay', 'client', 'package.json'), 'utf8')) as Record<
      string,
      unknown
    >;
    expect(pkg.exports).toEqual({
      '.': { types: './dist/types/index.d.ts', import: './dist/index.mjs', require: './dist/index.cjs' },
      './package.json': './package.json',
    });
    expect(pkg.bin).toEqual({ logrelay: 'bin/logrelay.js' });
    expect(pkg.engines).toEqual({ node: '>=20' });
    // Nothing for the user's npm to run at install (the build script is not in the tarball).
    const scripts = Object.keys((pkg.scripts ?? {}) as Record<string, string>);
    expect(scripts.filter((s) => /^(pre|post)?(install|prepare)$/.test(s))).toEqual([]);
    const deps = Object.keys(pkg.dependencies as Record<string, string>).sort();
    expect(deps).toEqual(['@aws-crypto/sha256-js', '@aws-sdk/credential-provider-node', '@smithy/signature-v4', 'commander']);
    // Plain node: nothing in the project could run TypeScript.
    expect(existsSync(join(project, 'node_modules', 'tsx'))).toBe(false);
    expect(existsSync(join(project, 'node_modules', '@logrelay', 'client', 'src'))).toBe(false);
    // Installed as files, not a link back into this repository.
    const installed = realpathSync(join(project, 'node_modules', '@logrelay', 'client'));
    expect(relative(realpathSync(ROOT), installed).startsWith('..')).toBe(true);
  });

  for (const kind of ['esm', 'cjs'] as const) {
    it(`imported as ${kind === 'esm' ? 'ESM (import, .mjs)' : 'CommonJS (require, .cjs)'} with plain node: a three-record consume against the local runtime`, async () => {
      const file = join(project, kind === 'esm' ? 'worker.mjs' : 'worker.cjs');
      writeFileSync(file, workerSource(kind));
      const logId = `pack-${kind}`;
      const ran = await run(
        process.execPath,
        [file],
        project,
        cleanEnv({ LOGRELAY_ENDPOINT: rt.url, LR_KEY_ID: ACCESS_KEY_ID, LR_SECRET: SECRET, LR_LOG_ID: logId }),
      );
      expectOk(ran, `node ${file}`);
      const out = JSON.parse(ran.stdout.trim().split('\n').pop()!) as {
        appended: { firstSeq: number; lastSeq: number };
        seen: { seq: number; n: number }[];
        summary: { received: number; handled: number; failed: number; acked: number };
        info: { inFlight?: number };
        notFound: { isLogrelayError: boolean; status: number };
        resolved: string;
        esmUrl: string | null;
      };
      expect(out.appended).toMatchObject({ firstSeq: 1, lastSeq: 3 });
      expect(out.seen).toEqual([
        { seq: 1, n: 1 },
        { seq: 2, n: 2 },
        { seq: 3, n: 3 },
      ]);
      expect(out.summary).toMatchObject({ received: 3, handled: 3, failed: 0, acked: 3 });
      // The error classes come from the same copy of the package as the client that threw.
      expect(out.notFound).toEqual({ isLogrelayError: true, status: 404 });
      // The module system picked the matching build from the exports map, inside the project.
      const dist = join(realpathSync(project), 'node_modules', '@logrelay', 'client', 'dist');
      expect(realpathSync(out.resolved)).toBe(join(dist, 'index.cjs'));
      if (kind === 'esm' && out.esmUrl !== 'unavailable')
        expect(out.esmUrl).toMatch(/\/node_modules\/@logrelay\/client\/dist\/index\.mjs$/);
      // And the records really were acked on the service.
      expect(out.info).toMatchObject({ inFlight: 0 });
    });
  }

  it('the installed bin: node_modules/.bin/logrelay --help exits 0 with the usage, and --version is the package version', async () => {
    const bin = join(project, 'node_modules', '.bin', 'logrelay');
    const help = await run(bin, ['--help'], project);
    expectOk(help, 'logrelay --help');
    expect(help.stdout).toMatch(/^Usage: logrelay /m);
    expect(help.stdout).toMatch(/^\s+logs\b/m);
    expect(help.stdout).toMatch(/^\s+bake\b/m);
    expect(help.stderr).toBe('');
    const version = await run(bin, ['--version'], project);
    expectOk(version, 'logrelay --version');
    expect(version.stdout.trim()).toBe(JSON.parse(readFileSync(join(CLIENT, 'package.json'), 'utf8')).version);
  });
});
