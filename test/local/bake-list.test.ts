/**
 * GET /bakes on the local runtime: bakes started with POST /bakes and run to their end by the
 * stack's state machine are listed newest first across pages, over signed HTTP, each as
 * GET /bakes/{bakeId} reports it; the client's listBakes pages through them; bad parameters are
 * a 400 with a sentence; a worker principal is refused the admin route.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tmpdir } from 'node:os';
import type { LocalRuntime } from '../../local/server';
import type { SignedHttp } from '../../local/client';
import { startTestRuntime } from '../support/runtime';
import { LogrelayClient } from '../../client/src/client';
import { parseSince, run, type CliIo } from '../../client/src/cli';
import { renderBakeList } from '../../client/src/cli-render';

// 100x: a phase's 10 s bake is 0.1 s; with no traffic each phase ends Inconclusive in well under a second.
const SCALE = 100;

let rt: LocalRuntime;
let credentialsPath: string;
let admin: SignedHttp;
let worker: SignedHttp;
const bakeIds: string[] = [];

beforeAll(async () => {
  ({ rt, admin, worker, credentialsPath } = await startTestRuntime('LIST', { timeScale: SCALE }));
  const delivery = await admin.call('POST', '/configs/delivery/versions', { content: { maxBatchRecords: 50 } });
  const limits = await admin.call('POST', '/configs/limits/versions', { content: { maxRecordsPerAppend: 400 } });
  expect([delivery.status, limits.status]).toEqual([201, 201]);
  // Three bakes, one after another (one runs at a time), each run to its end.
  const changes = [
    [{ profile: 'delivery', version: delivery.body.version }],
    [{ profile: 'limits', version: limits.body.version }],
    [
      { profile: 'delivery', version: delivery.body.version },
      { profile: 'limits', version: limits.body.version },
    ],
  ];
  for (const c of changes) {
    const started = await admin.call('POST', '/bakes', { changes: c, bakeSeconds: 10, pollSeconds: 1 });
    expect(started.status).toBe(202);
    bakeIds.push(started.body.bakeId);
    await rt.bakeExecutions.get(started.body.bakeId);
  }
}, 120_000);

afterAll(async () => {
  await rt?.close();
});

describe('GET /bakes on the local runtime', () => {
  it('lists the bakes newest first across pages, each as GET /bakes/{bakeId} reports it', async () => {
    const first = await admin.call('GET', '/bakes?limit=2');
    expect(first.status).toBe(200);
    expect(first.body.bakes.map((b: { bakeId: string }) => b.bakeId)).toEqual([bakeIds[2], bakeIds[1]]);
    expect(typeof first.body.nextToken).toBe('string');
    const second = await admin.call('GET', `/bakes?limit=2&nextToken=${first.body.nextToken}`);
    expect(second.status).toBe(200);
    expect(second.body.bakes.map((b: { bakeId: string }) => b.bakeId)).toEqual([bakeIds[0]]);
    expect(second.body.nextToken).toBeUndefined();

    const all = (await admin.call('GET', '/bakes')).body; // default limit: all three on one page
    expect(all.bakes.map((b: { bakeId: string }) => b.bakeId)).toEqual([...bakeIds].reverse());
    expect(all.nextToken).toBeUndefined();
    for (const listed of all.bakes) {
      const one = (await admin.call('GET', `/bakes/${listed.bakeId}`)).body;
      expect(listed.status).toBe('SUCCEEDED');
      expect(listed).toMatchObject({
        status: one.status,
        abortRequested: one.abortRequested,
        createdAt: one.createdAt,
        endedAt: one.endedAt,
      });
      expect(listed.settings).toEqual(one.settings);
      expect(listed.phases).toEqual(
        one.phases.map((p: Record<string, unknown>) => ({
          profile: p.profile,
          version: p.version,
          verdict: p.verdict,
          ...(p.reason ? { reason: p.reason } : {}),
          ...(p.startedAt ? { startedAt: p.startedAt } : {}),
          ...(p.endedAt ? { endedAt: p.endedAt } : {}),
        })),
      );
      // What the bake decided, and why, in the listing itself: no traffic, so nothing was shown.
      for (const p of listed.phases) {
        expect(p.verdict).toBe('REJECTED');
        expect(p.reason).toMatch(/Inconclusive/);
      }
    }
    expect(all.bakes[0].phases.map((p: { profile: string }) => p.profile)).toEqual(['delivery', 'limits']);
  });

  it('the client library pages through them with listBakes', async () => {
    const ops = rt.principals.find((p) => p.admin)!;
    const client = new LogrelayClient({
      endpoint: rt.url,
      credentials: { accessKeyId: ops.accessKeyId, secretAccessKey: ops.secretAccessKey },
    });
    const p1 = await client.listBakes({ limit: 1 });
    expect(p1.bakes.map((b) => b.bakeId)).toEqual([bakeIds[2]]);
    const seen = [...p1.bakes.map((b) => b.bakeId)];
    let token = p1.nextToken;
    while (token) {
      const page = await client.listBakes({ limit: 1, nextToken: token });
      seen.push(...page.bakes.map((b) => b.bakeId));
      token = page.nextToken;
    }
    expect(seen).toEqual([...bakeIds].reverse());
    expect((await client.listBakes()).bakes).toHaveLength(3);
  });

  it('answers a bad limit, a forged nextToken or an unknown parameter with a 400 that says what to do', async () => {
    const cases: [string, RegExp][] = [
      ['/bakes?limit=0', /^limit must be a whole number from 1 to 100 \(default 20\); it is '0'\.$/],
      ['/bakes?limit=101', /it is '101'/],
      [
        '/bakes?nextToken=abc',
        /^nextToken 'abc' is not one GET \/bakes gave out\. Pass the nextToken of the previous page exactly as it came/,
      ],
      ['/bakes?limt=5', /^GET \/bakes takes the query parameters limit and nextToken; 'limt' is not among them\.$/],
    ];
    for (const [path, message] of cases) {
      const r = await admin.call('GET', path);
      expect(r.status, path).toBe(400);
      expect(r.body.error.code, path).toBe('ValidationError');
      expect(r.body.error.message, path).toMatch(message);
    }
  });

  it('is an admin route: a worker principal is refused', async () => {
    const r = await worker.call('GET', '/bakes');
    expect(r.status).toBe(403);
    expect(r.body.error.message).toMatch(/GET \/bakes is an admin route/);
  });
});

describe('logrelay bake list', () => {
  /** Runs the CLI in process against the runtime, as the admin principal. */
  const cli = async (args: string[]) => {
    const out: string[] = [];
    const err: string[] = [];
    const io: CliIo = {
      stdout: { write: (x: string) => out.push(x) },
      stderr: { write: (x: string) => err.push(x) },
      stdin: process.stdin,
      env: { LOGRELAY_ENDPOINT: rt.url, LOGRELAY_CREDENTIALS_FILE: credentialsPath, LOGRELAY_PRINCIPAL: 'ops' },
      cwd: tmpdir(),
      onInterrupt: () => () => {},
    };
    const code = await run(args, io);
    return { code, stdout: out.join(''), stderr: err.join('') };
  };

  it('prints one page, newest first, each change with its verdict and reason, and the command for the next page', async () => {
    const r = await cli(['bake', 'list', '--limit', '2']);
    expect(r.code).toBe(0);
    const heads = r.stdout.split('\n').filter((l) => l.startsWith('b-'));
    expect(heads.map((l) => l.split('  ')[0])).toEqual([bakeIds[2], bakeIds[1]]);
    // The patterns below mirror the rendered columns space for space.
    // biome-ignore lint/complexity/noAdjacentSpacesInRegex: the columns' spacing is what is checked
    expect(heads[0]).toMatch(/^b-\S+  SUCCEEDED  started \d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}Z  took \d+s$/);
    // biome-ignore lint/complexity/noAdjacentSpacesInRegex: the columns' spacing is what is checked
    expect(r.stdout).toMatch(/\n  1\. delivery v\d+  REJECTED   Inconclusive/);
    // biome-ignore lint/complexity/noAdjacentSpacesInRegex: the columns' spacing is what is checked
    expect(r.stdout).toMatch(/\n  2\. limits v\d+    REJECTED   Inconclusive/);
    const more = /more: logrelay bake list --next-token (\S+) --limit 2/.exec(r.stdout);
    expect(more).not.toBeNull();
    const next = await cli(['bake', 'list', '--limit', '2', '--next-token', more![1]!]);
    expect(
      next.stdout
        .split('\n')
        .filter((l) => l.startsWith('b-'))
        .map((l) => l.split('  ')[0]),
    ).toEqual([bakeIds[0]]);
    expect(next.stdout).not.toContain('more:');
  });

  it('--all reads every page; --since reads back to a time and stops; --json prints the bakes', async () => {
    const all = await cli(['bake', 'list', '--all', '--limit', '1', '--json']);
    expect(all.code).toBe(0);
    const doc = JSON.parse(all.stdout);
    expect(doc.bakes.map((b: { bakeId: string }) => b.bakeId)).toEqual([...bakeIds].reverse());
    expect(doc.nextToken).toBeUndefined();
    const recent = await cli(['bake', 'list', '--since', '1h', '--limit', '1', '--json']);
    expect(JSON.parse(recent.stdout).bakes).toHaveLength(3);
    // Since the second bake started: the second and third, and no token (nothing later is newer).
    const second = JSON.parse(all.stdout).bakes[1];
    const fromSecond = JSON.parse((await cli(['bake', 'list', '--since', second.createdAt, '--limit', '1', '--json'])).stdout);
    expect(fromSecond.bakes.map((b: { bakeId: string }) => b.bakeId)).toEqual([bakeIds[2], bakeIds[1]]);
    expect(fromSecond.nextToken).toBeUndefined();
    const none = await cli(['bake', 'list', '--since', new Date(Date.now() + 60_000).toISOString()]);
    expect(none.stdout.trim()).toBe('no bakes');
  });

  it("refuses an unreadable --since or --limit as a usage error (exit 2), and a forged --next-token with the service's sentence", async () => {
    const since = await cli(['bake', 'list', '--since', 'yesterday']);
    expect(since.code).toBe(2);
    expect(since.stderr).toMatch(/--since 'yesterday' is neither an ISO 8601 time .* nor a span back from now \(90m, 24h, 7d\)/);
    expect((await cli(['bake', 'list', '--limit', '500'])).code).toBe(2);
    const token = await cli(['bake', 'list', '--next-token', 'forged']);
    expect(token.code).toBe(1);
    expect(token.stderr).toMatch(/nextToken 'forged' is not one GET \/bakes gave out/);
    expect(parseSince('90m', 1_000_000_000)).toBe(1_000_000_000 - 90 * 60_000);
    expect(parseSince('7d', 1_000_000_000_000)).toBe(1_000_000_000_000 - 7 * 86_400_000);
  });

  it('renders a running bake, an error and a bake with no verdict yet', () => {
    const lines = renderBakeList(
      [
        {
          bakeId: 'b-run',
          status: 'RUNNING',
          abortRequested: true,
          createdAt: '2026-11-24T09:00:00.000Z',
          settings: { weightPercent: 10, bakeSeconds: 600, pollSeconds: 30, minExperimentRequests: 200 },
          phases: [
            { profile: 'delivery', version: '2', verdict: 'APPROVED', reason: 'Judge: not worse' },
            { profile: 'limits', version: '12', verdict: 'BAKING' },
          ],
        },
        {
          bakeId: 'b-dead',
          status: 'FAILED',
          error: 'The bake failed: States.Timeout',
          abortRequested: false,
          createdAt: '2026-11-23T09:00:00.000Z',
          endedAt: '2026-11-23T09:10:00.000Z',
          settings: { weightPercent: 10, bakeSeconds: 600, pollSeconds: 30, minExperimentRequests: 200 },
          phases: [{ profile: 'limits', version: '3', verdict: 'REJECTED', reason: 'The bake failed' }],
        },
      ],
      Date.parse('2026-11-24T09:05:00Z'),
    );
    expect(lines).toEqual([
      'b-run  RUNNING (abort requested)  started 2026-11-24 09:00:00Z  running for 5m 00s',
      '  1. delivery v2  APPROVED   Judge: not worse',
      '  2. limits v12   BAKING',
      'b-dead  FAILED  started 2026-11-23 09:00:00Z  took 10m 00s',
      '  error: The bake failed: States.Timeout',
      '  1. limits v3  REJECTED   The bake failed',
    ]);
    expect(renderBakeList([])).toEqual(['no bakes']);
  });
});
