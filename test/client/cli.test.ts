/**
 * The `logrelay` CLI as users run it: the bin npm links for the workspace
 * (node_modules/.bin/logrelay -> client/bin/logrelay.js), as a child process, against the local
 * runtime. Plus its help, checked in process for every command.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createServer, type AddressInfo } from 'node:net';
import { startLocalRuntime, type LocalRuntime } from '../../local/server';
import { buildProgram, commandPaths, run, type CliIo, type Command } from '../../client/src/cli';
import { resolveConnection } from '../../client/src/cli-config';

const ROOT = resolve(__dirname, '../..');
const BIN = join(ROOT, 'node_modules', '.bin', 'logrelay');

let rt: LocalRuntime;
let dir: string;
let credentialsPath: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'logrelay-cli-'));
  credentialsPath = join(dir, 'credentials.json');
  writeFileSync(
    credentialsPath,
    JSON.stringify({
      principals: [
        { name: 'workers', accessKeyId: 'LRCLIWORKER00000', secretAccessKey: 'cli-worker-secret-000000000000000', admin: false },
        { name: 'ops', accessKeyId: 'LRCLIADMIN000000', secretAccessKey: 'cli-admin-secret-0000000000000000', admin: true },
      ],
    }),
  );
  rt = await startLocalRuntime({ port: 0, credentialsPath, timeScale: 20, log: () => {} });
}, 120_000);

afterAll(async () => {
  await rt?.close();
});

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the installed bin with the test's endpoint and credentials file, no AWS credentials. */
function cli(args: string[], opts: { env?: Record<string, string>; stdin?: string } = {}): Promise<Ran> {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: dir,
    LOGRELAY_ENDPOINT: rt.url,
    LOGRELAY_CREDENTIALS_FILE: credentialsPath,
    ...opts.env,
  };
  return new Promise((ok, fail) => {
    const child = spawn(BIN, args, { cwd: dir, env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
    child.on('error', fail);
    child.on('close', (code) => ok({ code, stdout, stderr }));
    child.stdin.end(opts.stdin ?? '');
  });
}

describe('the logrelay bin', () => {
  it('is linked by npm for the workspace', () => {
    expect(existsSync(BIN)).toBe(true);
  });

  it('round trip: logs create, append 1,000 JSON lines from a file, tail them back, bake status', async () => {
    const created = await cli(['logs', 'create', 'cli-roundtrip', '--retention-hours', '24', '--json']);
    expect(created.stderr).toBe('');
    expect(created.code).toBe(0);
    expect(JSON.parse(created.stdout)).toMatchObject({ logId: 'cli-roundtrip', retentionHours: 24 });

    const lines = Array.from({ length: 1000 }, (_, i) =>
      JSON.stringify({ n: i + 1, k: `key-${i % 7}`, text: `line ${i + 1} "quoted" ünïcode` }),
    );
    writeFileSync(join(dir, 'records.jsonl'), `${lines.join('\n')}\n\n`);
    const appended = await cli(['append', 'cli-roundtrip', 'records.jsonl', '--key-field', 'k', '--json']);
    expect(appended.code).toBe(0);
    expect(JSON.parse(appended.stdout)).toEqual({ logId: 'cli-roundtrip', records: 1000, requests: 2, firstSeq: 1, lastSeq: 1000 });

    const described = await cli(['logs', 'describe', 'cli-roundtrip']);
    expect(described.code).toBe(0);
    expect(described.stdout).toContain('1,000 retained (seq 1..1000)');

    const tailed = await cli(['tail', 'cli-roundtrip', '--json']);
    expect(tailed.code).toBe(0);
    const records = tailed.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { seq: number; key: string; deliveryCount: number; data: unknown });
    expect(records.map((r) => r.seq)).toEqual(Array.from({ length: 1000 }, (_, i) => i + 1));
    expect(records.map((r) => JSON.stringify(r.data))).toEqual(lines);
    expect(records.every((r, i) => r.key === `key-${i % 7}` && r.deliveryCount === 1)).toBe(true);

    // Human output, and the data alone reads back exactly what was appended.
    const dataOnly = await cli(['tail', 'cli-roundtrip', '--data-only']);
    expect(dataOnly.code).toBe(0);
    expect(dataOnly.stdout).toBe(`${lines.join('\n')}\n`);
    const human = await cli(['tail', 'cli-roundtrip', '--limit', '3']);
    expect(human.stdout).toBe(
      `${lines
        .slice(0, 3)
        .map((l, i) => `${i + 1} key=key-${i % 7} ${l}`)
        .join('\n')}\n`,
    );
    expect(human.stderr).toContain('3 records (seq 1..3)');

    // tail opened sessions of its own and deleted them: the log's own data is untouched.
    const after = await cli(['logs', 'describe', 'cli-roundtrip', '--json']);
    expect(JSON.parse(after.stdout)).toMatchObject({ firstSeq: 1, lastSeq: 1000 });

    // Stdin works too.
    const piped = await cli(['append', 'cli-roundtrip', '--json'], { stdin: '{"from":"stdin"}\n' });
    expect(JSON.parse(piped.stdout)).toMatchObject({ records: 1, firstSeq: 1001, lastSeq: 1001 });

    // A bake: store a version, start, watch it to its end, then its status.
    writeFileSync(join(dir, 'delivery.json'), JSON.stringify({ maxBatchRecords: 50 }));
    const put = await cli(['configs', 'put', 'delivery', 'delivery.json', '--json']);
    expect(put.code).toBe(0);
    const version = (JSON.parse(put.stdout) as { version: string }).version;
    const started = await cli([
      'bake',
      'start',
      `delivery:${version}`,
      '--bake-seconds',
      '10',
      '--poll-seconds',
      '1',
      '--min-experiment-requests',
      '1',
      '--json',
    ]);
    expect(started.code).toBe(0);
    const { bakeId } = JSON.parse(started.stdout) as { bakeId: string };
    expect(bakeId).toMatch(/^b-/);

    const watched = await cli(['bake', 'status', bakeId, '--watch', '--interval', '1', '--json']);
    const views = watched.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { status: string; timeScale: number; phases: { verdict: string }[] });
    expect(views[views.length - 1]!.status).toBe('SUCCEEDED');
    expect(views.slice(0, -1).every((v) => v.status === 'RUNNING')).toBe(true);
    // The service says its time scale (this runtime's 20), so the view can show real durations.
    expect(views.every((v) => v.timeScale === 20)).toBe(true);
    // Nothing but this test calls the data routes during the bake, so its one phase may be
    // approved or (inconclusive) rejected: a rejected phase exits 4, an approved one 0.
    const verdict = views[views.length - 1]!.phases[0]!.verdict;
    expect(['APPROVED', 'REJECTED']).toContain(verdict);
    expect(watched.code).toBe(verdict === 'REJECTED' ? 4 : 0);

    const status = await cli(['bake', 'status', bakeId]);
    expect(status.code).toBe(verdict === 'REJECTED' ? 4 : 0);
    expect(status.stdout).toContain(`bake ${bakeId}  SUCCEEDED`);
    expect(status.stdout).toMatch(/elapsed \S+ +time scale 20x/);
    expect(status.stdout).toContain('bake 10 s (500 ms real)   poll 1 s (50 ms real)');
    expect(status.stdout).toMatch(new RegExp(`1\\. delivery v${version} +${verdict}`));
    expect(status.stdout).toMatch(/control +\d+ req/);
    expect(status.stdout).toMatch(/alarms: .*\d+ ok/);

    // What the version changes against version 1 (the defaults).
    const diffed = await cli(['configs', 'get', 'delivery', version, '--diff', '1']);
    expect(diffed.code).toBe(0);
    expect(diffed.stdout).toContain(`delivery v${version} against v1 (v1 -> v${version}):\n  maxBatchRecords  100 -> 50\n`);
    const diffedJson = await cli(['configs', 'get', 'delivery', version, '--diff', '1', '--json']);
    expect(JSON.parse(diffedJson.stdout).diff).toEqual([{ path: 'maxBatchRecords', control: 100, experimental: 50 }]);
    const noSuch = await cli(['configs', 'get', 'delivery', version, '--diff', '999']);
    expect(noSuch.code).toBe(1);
    expect(noSuch.stderr).toContain(`Profile delivery has no version 999 to compare version ${version} with`);
  });

  it('fails with the service message and a non-zero exit code', async () => {
    const missing = await cli(['logs', 'describe', 'no-such-log']);
    expect(missing.code).toBe(1);
    expect(missing.stdout).toBe('');
    expect(missing.stderr).toContain("No log named 'no-such-log' exists for this caller");
    expect(missing.stderr).toContain('LogNotFound, HTTP 404');

    const asWorker = await cli(['configs', 'list', '--principal', 'workers', '--json']);
    expect(asWorker.code).toBe(1);
    expect(JSON.parse(asWorker.stderr)).toMatchObject({ error: { code: 'Forbidden', status: 403 } });

    const usage = await cli(['tail']);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('tail needs a log id');

    const badLine = await cli(['append', 'cli-roundtrip'], { stdin: '{"ok":1}\nnot json\n' });
    expect(badLine.code).toBe(2);
    expect(badLine.stderr).toContain('line 2 of stdin is not JSON');

    const closedPort = await new Promise<number>((ok) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const { port } = s.address() as AddressInfo;
        s.close(() => ok(port));
      });
    });
    const refused = await cli(['logs', 'describe', 'x', '--max-attempts', '1'], {
      env: { LOGRELAY_ENDPOINT: `http://127.0.0.1:${closedPort}` },
    });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('ECONNREFUSED');
  });

  it('prints help for a command', async () => {
    const help = await cli(['bake', 'status', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('Usage: logrelay bake status [options] [bakeId]');
    expect(help.stdout).toContain('--watch');
  });
});

describe('help and configuration, in process', () => {
  const io = (): CliIo & { out: string[]; err: string[] } => {
    const out: string[] = [];
    const err: string[] = [];
    return {
      out,
      err,
      stdout: { write: (s: string) => out.push(s) },
      stderr: { write: (s: string) => err.push(s) },
      stdin: process.stdin,
      env: {},
      cwd: dir,
      onInterrupt: () => () => {},
    };
  };

  it('has --help for every command of the issue, each with a description and described arguments and options', async () => {
    const program = buildProgram(io());
    const paths = commandPaths(program);
    for (const needed of [
      'logs create',
      'logs describe',
      'append',
      'sessions create',
      'sessions describe',
      'tail',
      'configs list',
      'configs put',
      'bake start',
      'bake status',
      'bake abort',
    ]) {
      expect(paths).toContain(needed);
    }
    const find = (path: string): Command =>
      path.split(' ').reduce((c: Command, name) => c.commands.find((x) => x.name() === name)!, program);
    for (const path of paths) {
      const c = find(path);
      expect(c.description(), path).not.toBe('');
      for (const a of c.registeredArguments) expect(a.description, `${path} <${a.name()}>`).not.toBe('');
      for (const o of c.options) expect(o.description, `${path} ${o.flags}`).not.toBe('');
      const io1 = io();
      expect(await run([...path.split(' '), '--help'], io1)).toBe(0);
      expect(io1.out.join('')).toContain(`Usage: logrelay ${path}`);
    }
    const root = io();
    expect(await run(['--help'], root)).toBe(0);
    const text = root.out.join('');
    for (const word of [
      'logs',
      'append',
      'sessions',
      'tail',
      'configs',
      'bake',
      'Exit codes',
      'LOGRELAY_ENDPOINT',
      '--principal',
      'credentials.json',
    ])
      expect(text).toContain(word);
  });

  it('every client source file is reachable from index.ts or cli.ts, so the root type-check (which includes test/, not client/) covers it', () => {
    const src = join(ROOT, 'client', 'src');
    const seen = new Set<string>();
    const visit = (file: string) => {
      if (seen.has(file)) return;
      seen.add(file);
      for (const m of readFileSync(join(src, file), 'utf8').matchAll(/from '\.\/([\w-]+)'/g)) visit(`${m[1]}.ts`);
    };
    visit('index.ts');
    visit('cli.ts');
    expect([...seen].sort()).toEqual(
      readdirSync(src)
        .filter((f) => f.endsWith('.ts'))
        .sort(),
    );
  });

  it('resolves credentials: flags, then --principal, then AWS environment, then the local file (first admin)', () => {
    const env = { LOGRELAY_CREDENTIALS_FILE: credentialsPath };
    const local = resolveConnection({}, env, dir);
    expect(local.endpoint).toBe('http://127.0.0.1:8787');
    expect(local.credentials).toEqual({ accessKeyId: 'LRCLIADMIN000000', secretAccessKey: 'cli-admin-secret-0000000000000000' });
    expect(resolveConnection({ principal: 'workers' }, env, dir).credentials).toMatchObject({ accessKeyId: 'LRCLIWORKER00000' });
    expect(resolveConnection({ accessKeyId: 'AK', secretAccessKey: 'S', endpoint: 'https://x.example' }, env, dir).credentials).toEqual({
      accessKeyId: 'AK',
      secretAccessKey: 'S',
    });
    const aws = resolveConnection({}, { ...env, AWS_ACCESS_KEY_ID: 'AKIA', LOGRELAY_ENDPOINT: 'https://api.example' }, dir);
    expect(typeof aws.credentials).toBe('function'); // the AWS provider chain
    expect(aws.endpoint).toBe('https://api.example');
    // A remote endpoint with no AWS credentials configured does not get the local keys.
    const remote = resolveConnection({}, { LOGRELAY_ENDPOINT: 'https://api.example' }, dir);
    expect(typeof remote.credentials).toBe('function');
    expect(() => resolveConnection({ principal: 'nobody' }, env, dir)).toThrow("There is no principal 'nobody'");
    expect(() => resolveConnection({ profile: 'prod' }, {}, dir)).toThrow('No endpoint');
    expect(readFileSync(credentialsPath, 'utf8')).toContain('ops');
  });
});
