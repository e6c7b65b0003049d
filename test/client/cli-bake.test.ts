/**
 * The CLI's bake and config views against fixtures, in process, with an injected fetch that
 * answers GET /bakes/{id} and GET /configs/... from a script: the exit codes of `bake status` and
 * `bake start --watch` (3 FAILED/ABORTED, 4 a phase REJECTED, 5 REVERTED), the running phase's
 * diff, durations shown as they really pass under the service's time scale, and
 * `configs get --diff`. (The bin against the local runtime is test/client/cli.test.ts.)
 */
import { describe, expect, it } from 'vitest';
import { bakeExitCode, EXIT, run, type CliIo } from '../../client/src/cli';
import { realDuration, renderBake, renderDiff } from '../../client/src/cli-render';
import type { FetchLike } from '../../client/src/http';
import type { Bake, BakePhase } from '../../client/src/types';

const SETTINGS = { weightPercent: 10, bakeSeconds: 600, pollSeconds: 30, minExperimentRequests: 200 };
const ARMS = {
  control: { requests: 900, errors4xx: 0, errors5xx: 0, p99Ms: 12 },
  experiment: { requests: 100, errors4xx: 0, errors5xx: 0, p99Ms: 13 },
};
const T0 = Date.parse('2025-01-01T00:00:00Z');
const iso = (ms: number) => new Date(ms).toISOString();

const phase = (verdict: BakePhase['verdict'], extra: Partial<BakePhase> = {}): BakePhase => ({
  profile: 'delivery',
  version: '2',
  verdict,
  polls: verdict === 'PENDING' ? 0 : 20,
  ...(verdict === 'PENDING' ? {} : { startedAt: iso(T0), arms: ARMS }),
  ...(verdict === 'PENDING' || verdict === 'BAKING' ? {} : { endedAt: iso(T0 + 10_000), reason: `${verdict} for a reason` }),
  ...extra,
});

const bake = (status: Bake['status'], phases: BakePhase[], extra: Partial<Bake> = {}): Bake => ({
  bakeId: 'b-fixture',
  status,
  abortRequested: false,
  createdAt: iso(T0),
  ...(status === 'RUNNING' ? {} : { endedAt: iso(T0 + 20_000) }),
  settings: SETTINGS,
  phases,
  ...extra,
});

interface Sent {
  method: string;
  url: string;
  headers: Record<string, string>;
}

/** A fetch answering each request from `answer`; records what was sent. */
function scripted(answer: (method: string, url: URL) => { status: number; body: unknown }): { fetch: FetchLike; sent: Sent[] } {
  const sent: Sent[] = [];
  const fetch: FetchLike = async (url, init) => {
    sent.push({ method: init.method, url, headers: init.headers });
    const a = answer(init.method, new URL(url));
    return { status: a.status, headers: { get: () => null }, text: async () => JSON.stringify(a.body) };
  };
  return { fetch, sent };
}

function io(fetch: FetchLike): CliIo & { out: () => string; err: () => string } {
  const out: string[] = [];
  const err: string[] = [];
  return {
    out: () => out.join(''),
    err: () => err.join(''),
    stdout: { write: (s: string) => out.push(s) },
    stderr: { write: (s: string) => err.push(s) },
    stdin: process.stdin,
    env: {},
    cwd: process.cwd(),
    onInterrupt: () => () => {},
    client: { fetch, retry: { maxAttempts: 1 } },
  };
}

const KEYS = ['--endpoint', 'http://logrelay.test', '--access-key-id', 'AKIDTEST', '--secret-access-key', 'secret'];

/** Runs `bake status b-fixture [args]` against a service answering `b`. */
async function status(b: Bake, args: string[] = []): Promise<{ code: number; out: string }> {
  const { fetch } = scripted(() => ({ status: 200, body: b }));
  const x = io(fetch);
  const code = await run([...KEYS, 'bake', 'status', 'b-fixture', ...args], x);
  return { code, out: x.out() };
}

describe('bake exit codes', () => {
  it('are 0, 3, 4 or 5 by what the bake decided, the most serious first', () => {
    const cases: [string, Bake, number][] = [
      ['succeeded, all approved', bake('SUCCEEDED', [phase('APPROVED'), phase('APPROVED')]), EXIT.ok],
      ['running, nothing decided yet', bake('RUNNING', [phase('BAKING'), phase('PENDING')]), EXIT.ok],
      ['succeeded with a rejected phase', bake('SUCCEEDED', [phase('APPROVED'), phase('REJECTED')]), EXIT.phaseRejected],
      ['running after a rejected phase', bake('RUNNING', [phase('REJECTED'), phase('BAKING')]), EXIT.phaseRejected],
      ['failed', bake('FAILED', [phase('REJECTED'), phase('PENDING')]), EXIT.bakeNotSucceeded],
      ['aborted', bake('ABORTED', [phase('APPROVED'), phase('REJECTED')]), EXIT.bakeNotSucceeded],
      ['reverted (bake status)', bake('REVERTED', [phase('REVERTED'), phase('REVERTED')]), EXIT.reverted],
      ['a phase reverted, whatever the status', bake('FAILED', [phase('REVERTED'), phase('REJECTED')]), EXIT.reverted],
      ['status reverted alone', bake('REVERTED', [phase('APPROVED')]), EXIT.reverted],
      ['a dry run that would reject: nothing was changed', bake('SUCCEEDED', [phase('WOULD_APPROVE'), phase('WOULD_REJECT')]), EXIT.ok],
    ];
    for (const [what, b, code] of cases) expect({ what, code: bakeExitCode(b) }).toEqual({ what, code });
    // Distinct from each other and from the CLI's other codes.
    const codes = Object.values(EXIT);
    expect(new Set(codes).size).toBe(codes.length);
    expect([EXIT.bakeNotSucceeded, EXIT.phaseRejected, EXIT.reverted]).toEqual([3, 4, 5]);
  });

  it('bake status exits with them, with and without --watch, in text and JSON', async () => {
    expect((await status(bake('SUCCEEDED', [phase('APPROVED')]))).code).toBe(0);
    const rejected = await status(bake('SUCCEEDED', [phase('APPROVED'), phase('REJECTED')]));
    expect(rejected.code).toBe(4);
    expect(rejected.out).toContain('REJECTED');
    expect((await status(bake('SUCCEEDED', [phase('REJECTED')]), ['--json'])).code).toBe(4);
    expect((await status(bake('SUCCEEDED', [phase('REJECTED')]), ['--watch', '--json'])).code).toBe(4);
    expect((await status(bake('ABORTED', [phase('REJECTED')]), ['--watch'])).code).toBe(3);
    const reverted = await status(bake('REVERTED', [phase('REVERTED', { reason: 'Alarm slo-5xx in ALARM during the watch' })]), [
      '--watch',
    ]);
    expect(reverted.code).toBe(5);
    expect(reverted.out).toContain('bake b-fixture  REVERTED');
    expect(reverted.out).toMatch(/1\. delivery v2 +REVERTED/);
    expect(reverted.out).toContain('reason: Alarm slo-5xx in ALARM during the watch');
  });

  it('bake start --watch follows the bake to its end and exits 4 when a phase was rejected', async () => {
    const views = [bake('RUNNING', [phase('BAKING', { polls: 3 })]), bake('SUCCEEDED', [phase('REJECTED')])];
    let reads = 0;
    const { fetch, sent } = scripted((method, url) => {
      if (method === 'POST' && url.pathname === '/bakes') return { status: 202, body: { bakeId: 'b-fixture' } };
      return { status: 200, body: views[Math.min(reads++, views.length - 1)] };
    });
    const x = io(fetch);
    const code = await run([...KEYS, 'bake', 'start', 'delivery:2', '--watch', '--interval', '1'], x);
    expect(code).toBe(EXIT.phaseRejected);
    expect(sent.map((s) => `${s.method} ${new URL(s.url).pathname}`)).toEqual([
      'POST /bakes',
      'GET /bakes/b-fixture',
      'GET /bakes/b-fixture',
    ]);
    expect(x.out()).toContain('RUNNING');
    expect(x.out()).toContain('SUCCEEDED');
    expect(x.err()).toContain('started bake b-fixture');
  });

  it('are in the help of the CLI and of bake status', async () => {
    const root = io(scripted(() => ({ status: 500, body: {} })).fetch);
    expect(await run(['--help'], root)).toBe(0);
    expect(root.out()).toMatch(/3 it\s+ended FAILED or ABORTED, 4 a phase was REJECTED .*5 a promoted\s+change was REVERTED/s);
    const help = io(scripted(() => ({ status: 500, body: {} })).fetch);
    expect(await run(['bake', 'status', '--help'], help)).toBe(0);
    expect(help.out()).toMatch(/3 the bake ended FAILED or ABORTED; 4 a phase was REJECTED .*5 a promoted change was REVERTED/s);
  });
});

describe('the bake view', () => {
  it("shows the running phase's diff against control, and no diff for other phases", () => {
    const diff = [
      { path: 'longPollIntervalMs', control: 250, experimental: 100 },
      { path: 'maxBatchRecords', control: 100, experimental: 50 },
    ];
    const b = bake('RUNNING', [
      phase('APPROVED', { diff: [{ path: 'maxBatchBytes', control: 1, experimental: 2 }] }),
      phase('BAKING', { polls: 5, diff, profile: 'limits' }),
      phase('PENDING', { diff }),
    ]);
    const lines = renderBake(b, T0 + 5_000);
    const at = lines.findIndex((l) => l.includes('2. limits v2'));
    expect(lines.slice(at + 1, at + 4)).toEqual([
      '       changes against control:',
      '         longPollIntervalMs  250 -> 100',
      '         maxBatchRecords     100 -> 50',
    ]);
    expect(lines.filter((l) => l.includes('changes against control'))).toHaveLength(1);
    expect(lines.join('\n')).not.toContain('maxBatchBytes');
    // A running phase whose version changes nothing hosts serve says so; one without a diff (an older service) shows none.
    expect(renderBake(bake('RUNNING', [phase('BAKING', { diff: [] })]), T0).join('\n')).toContain(
      'no field differs (hosts serve the same values under both)',
    );
    expect(renderBake(bake('RUNNING', [phase('BAKING')]), T0).join('\n')).not.toContain('changes against control');
  });

  it('bake status prints the running phase diff from GET /bakes/{id}', async () => {
    const r = await status(
      bake('RUNNING', [phase('BAKING', { polls: 2, diff: [{ path: 'maxBatchRecords', control: 100, experimental: 50 }] })]),
    );
    expect(r.code).toBe(0);
    expect(r.out).toContain('changes against control:\n         maxBatchRecords  100 -> 50\n');
  });

  it('shows durations as they really pass under the time scale, and as before without one', () => {
    const running = (extra: Partial<Bake>) => renderBake(bake('RUNNING', [phase('BAKING', { polls: 5 })], extra), T0 + 4_000);
    const scaled = running({ timeScale: 60 });
    expect(scaled[0]).toBe('bake b-fixture  RUNNING  elapsed 4s  time scale 60x');
    expect(scaled[1]).toBe('  weight 10%   bake 600 s (10s real)   poll 30 s (500 ms real)   min experiment requests 200');
    // 20 polls of 30 s; 15 left: 450 s of bake time, 7.5 s of real time.
    expect(scaled[2]).toMatch(/^ {2}1\. delivery v2 +BAKING +4s {2}poll 5\/20 {2}~7s left$/);

    for (const unscaled of [running({}), running({ timeScale: 1 })]) {
      expect(unscaled[0]).toBe('bake b-fixture  RUNNING  elapsed 4s');
      expect(unscaled[1]).toBe('  weight 10%   bake 600 s   poll 30 s   min experiment requests 200');
      expect(unscaled[2]).toMatch(/poll 5\/20 {2}~7m 30s left$/);
    }
    // Extended: half the polls again (30 in all).
    expect(renderBake(bake('RUNNING', [phase('BAKING', { polls: 25, extended: true })], { timeScale: 10 }), T0)[2]).toMatch(
      /poll 25\/30 {2}~15s left {2}extended$/,
    );
    expect(realDuration(600, 5)).toBe('2m 00s');
    expect(realDuration(1, 20)).toBe('50 ms');
  });
});

describe('configs get --diff', () => {
  it('asks for ?diff=N, signed, and prints the content then each differing field', async () => {
    const answer = {
      profile: 'delivery',
      version: '3',
      content: { maxBatchRecords: 20 },
      diff: [
        { path: 'maxBatchRecords', control: 50, experimental: 20 },
        { path: 'note', control: 'x' },
      ],
    };
    const { fetch, sent } = scripted(() => ({ status: 200, body: answer }));
    const x = io(fetch);
    expect(await run([...KEYS, 'configs', 'get', 'delivery', '3', '--diff', '2'], x)).toBe(0);
    expect(new URL(sent[0]!.url).pathname + new URL(sent[0]!.url).search).toBe('/configs/delivery/versions/3?diff=2');
    expect(sent[0]!.headers.authorization).toMatch(/^AWS4-HMAC-SHA256 Credential=AKIDTEST\//);
    expect(x.out()).toBe(
      [
        '{',
        '  "maxBatchRecords": 20',
        '}',
        '',
        'delivery v3 against v2 (v2 -> v3):',
        '  maxBatchRecords  50 -> 20',
        '  note             "x" -> (not set)',
        '',
      ].join('\n'),
    );

    // Without --diff: no query, the content only.
    const plain = scripted(() => ({ status: 200, body: { profile: 'delivery', version: '3', content: {} } }));
    const y = io(plain.fetch);
    expect(await run([...KEYS, 'configs', 'get', 'delivery', '3'], y)).toBe(0);
    expect(new URL(plain.sent[0]!.url).search).toBe('');
    expect(y.out()).toBe('{}\n');
  });

  it('refuses a --diff that is not a version number before sending anything', async () => {
    const { fetch, sent } = scripted(() => ({ status: 200, body: {} }));
    const x = io(fetch);
    expect(await run([...KEYS, 'configs', 'get', 'delivery', '3', '--diff', 'abc'], x)).toBe(EXIT.usage);
    expect(x.err()).toContain('--diff must be an integer from 1 to 2147483647');
    expect(sent).toEqual([]);
  });

  it('renders an empty diff as one line', () => {
    expect(renderDiff([], '  ')).toEqual(['  no field differs (hosts serve the same values under both)']);
    expect(renderDiff([{ path: '', control: { a: 1 }, experimental: [1] }])).toEqual(['(whole content)  {"a":1} -> [1]']);
  });
});
