/**
 * `npm run traffic` (local/traffic-command.ts): its flags, and runs against a local runtime as a
 * user would run it beside `npm start`: requests at no more than the rate asked, everything
 * appended acked by the end, Ctrl-C once (drain) and twice (quit), the experiment arm's requests
 * counted while a bake's experiment is live, and a clear message when nothing answers.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startLocalRuntime, type LocalRuntime } from '../../local/server';
import { SignedHttp } from '../../local/client';
import { parseTrafficArgs, runTraffic, TrafficUsageError, type TrafficArgs } from '../../local/traffic-command';

let rt: LocalRuntime;
let dir: string;
let credentialsPath: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'logrelay-traffic-'));
  mkdirSync(join(dir, '.logrelay'));
  credentialsPath = join(dir, '.logrelay', 'credentials.json');
  writeFileSync(
    credentialsPath,
    JSON.stringify({
      principals: [
        { name: 'workers', accessKeyId: 'LRTRAFFICWORKER0', secretAccessKey: 'traffic-worker-secret-00000000000', admin: false },
        { name: 'ops', accessKeyId: 'LRTRAFFICADMIN00', secretAccessKey: 'traffic-admin-secret-000000000000', admin: true },
      ],
    }),
  );
  rt = await startLocalRuntime({ port: 0, credentialsPath, timeScale: 10, log: () => {} });
}, 120_000);

afterAll(async () => {
  await rt?.close();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function args(extra: Partial<TrafficArgs> = {}): TrafficArgs {
  return { logs: 6, workers: 2, rate: 50, batch: 5, endpoint: rt.url, credentialsFile: credentialsPath, ...extra };
}

/** Runs the command, collecting what it prints; returns the run, its lines, and the exit code when done. */
function start(a: TrafficArgs) {
  const lines: string[] = [];
  const started = Date.now();
  const run = runTraffic(a, { print: (l) => lines.push(l) });
  const finished = run.done.then((code) => ({ code, seconds: (Date.now() - started) / 1000 }));
  return { run, lines, finished };
}

/** The totals of the command's last line: "N requests in S s (R/s); A records appended, K acked." */
function totals(lines: string[]): { requests: number; appended: number; acked: number } {
  const last = lines.find((l) => /requests in \d+ s/.test(l));
  expect(last, lines.join('\n')).toBeDefined();
  const m = /^([\d,]+) requests in \d+ s \([\d,]+\/s\); ([\d,]+) records appended, ([\d,]+) acked\.$/.exec(last!)!;
  const n = (x: string) => Number(x.replace(/,/g, ''));
  return { requests: n(m[1]!), appended: n(m[2]!), acked: n(m[3]!) };
}

describe('npm run traffic: flags', () => {
  it('has defaults for everything but the credentials file, which it finds as the CLI does', () => {
    const a = parseTrafficArgs([], {}, join(dir, '.logrelay'));
    expect(a).toEqual({
      help: false,
      logs: 20,
      workers: 2,
      rate: 100,
      batch: 5,
      endpoint: 'http://127.0.0.1:8787',
      credentialsFile: credentialsPath,
    });
    expect(
      parseTrafficArgs(
        [
          '--logs',
          '3',
          '--workers',
          '1',
          '--rate',
          '250',
          '--duration',
          '30',
          '--batch',
          '10',
          '--endpoint',
          'http://127.0.0.1:9000',
          '--principal',
          'workers',
        ],
        {},
        dir,
      ),
    ).toEqual({
      help: false,
      logs: 3,
      workers: 1,
      rate: 250,
      durationSeconds: 30,
      batch: 10,
      endpoint: 'http://127.0.0.1:9000',
      credentialsFile: credentialsPath,
      principal: 'workers',
    });
    // The environment, as for the CLI and npm start.
    expect(parseTrafficArgs([], { PORT: '9999', LOGRELAY_PRINCIPAL: 'workers' }, dir)).toMatchObject({
      endpoint: 'http://127.0.0.1:9999',
      principal: 'workers',
    });
    expect(
      parseTrafficArgs([], { LOGRELAY_ENDPOINT: 'http://127.0.0.1:1', LOGRELAY_CREDENTIALS_FILE: credentialsPath }, tmpdir()),
    ).toMatchObject({ endpoint: 'http://127.0.0.1:1', credentialsFile: credentialsPath });
    expect(parseTrafficArgs(['--help'], {}, tmpdir())).toEqual({ help: true });
  });

  it('refuses bad values with a sentence naming the flag', () => {
    for (const [argv, message] of [
      [['--rate', '0'], "--rate must be an integer from 1 to 5000; it is '0'."],
      [['--logs', 'many'], "--logs must be an integer from 1 to 200; it is 'many'."],
      [['--duration', '1.5'], "--duration must be an integer from 1 to 86400; it is '1.5'."],
      [['--workers', '11'], "--workers must be an integer from 1 to 10; it is '11'."],
    ] as const) {
      expect(() => parseTrafficArgs([...argv], {}, dir)).toThrow(new TrafficUsageError(message));
    }
    expect(() => parseTrafficArgs(['--speed', '3'], {}, dir)).toThrow(TrafficUsageError);
    const empty = mkdtempSync(join(tmpdir(), 'logrelay-nocreds-'));
    expect(() => parseTrafficArgs([], {}, empty)).toThrow(
      /No credentials file \.logrelay\/credentials\.json \(here or in a parent folder\)\. Start the local runtime with npm start/,
    );
    expect(() => runTraffic(args({ principal: 'nobody' }), { print: () => {} })).toThrow("There is no principal 'nobody'");
  });
});

describe('npm run traffic against the local runtime', () => {
  it('keeps to the rate, stops after the duration, and every record appended is acked', async () => {
    const t0 = Date.now();
    const { lines, finished } = start(args({ durationSeconds: 3, rate: 50 }));
    const { code } = await finished;
    const elapsed = (Date.now() - t0) / 1000;
    expect(code, lines.join('\n')).toBe(0);
    expect(lines[0]).toMatch(
      new RegExp(
        `^Traffic on ${rt.url} as principal 'ops' \\(.*credentials\\.json\\): 6 logs \\(traffic-\\w+-0 \\.\\.\\.\\), 2 workers each, at most 50 requests/s, for 3 s\\.$`,
      ),
    );
    const t = totals(lines);
    expect(t.requests).toBeGreaterThan(20);
    // The pacing is structural (one slot every 1/rate s): never more than the rate allows in the time it ran.
    expect(t.requests).toBeLessThanOrEqual(Math.ceil(50 * elapsed) + 1);
    expect(t.appended).toBeGreaterThan(0);
    expect(t.acked).toBe(t.appended);
  });

  it('Ctrl-C once stops producing and drains; twice quits at once with 130', async () => {
    const once = start(args());
    await sleep(1500);
    once.run.interrupt();
    const a = await once.finished;
    expect(a.code).toBe(0);
    expect(once.lines.join('\n')).toContain(
      'Stopping: no more appends; waiting for the workers to ack what was appended (Ctrl-C again to quit at once).',
    );
    const t = totals(once.lines);
    expect(t.acked).toBe(t.appended);

    const twice = start(args({ rate: 5 }));
    await sleep(1000);
    twice.run.interrupt();
    twice.run.interrupt();
    expect((await twice.finished).code).toBe(130);
  });

  it('counts the requests that went to the experiment arm while a bake has an experiment live', async () => {
    const admin = new SignedHttp(rt.url, rt.principals.find((p) => p.admin)!);
    const v = (await admin.call('POST', '/configs/delivery/versions', { content: { maxBatchRecords: 40 } })).body.version as string;
    const bake = await admin.call('POST', '/bakes', {
      changes: [{ profile: 'delivery', version: v }],
      weightPercent: 50,
      bakeSeconds: 600,
      pollSeconds: 30,
    });
    expect(bake.status).toBe(202);
    try {
      // The experiment goes live at the phase's start, moments after POST /bakes.
      for (let i = 0; i < 50 && !(await admin.call('GET', '/configs')).body.profiles.delivery.experiment; i++) await sleep(100);
      const { lines, finished } = start(args({ durationSeconds: 7, rate: 60, logs: 10 }));
      expect((await finished).code).toBe(0);
      const seen = lines.filter((l) => l.includes(`experiment delivery v${v} on 50%:`));
      expect(seen.length, lines.join('\n')).toBeGreaterThan(0);
      // The most any status line counted: the phase can end before the traffic does (an alarm
      // on a loaded machine rejects it), and the lines after that say no experiment is live.
      const counted = Math.max(...seen.map((l) => Number(/: ([\d,]+) requests since seen live$/.exec(l)![1]!.replace(/,/g, ''))));
      // At 50% with 20 keys, both arms get requests.
      expect(counted).toBeGreaterThan(0);
      expect(counted).toBeLessThan(totals(lines).requests);
    } finally {
      await admin.call('POST', `/bakes/${bake.body.bakeId}/abort`);
      await rt.bakeExecutions.get(bake.body.bakeId);
    }
  }, 60_000);

  it('says so, and exits 1, when nothing answers at the endpoint', async () => {
    const closedPort = await new Promise<number>((ok) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const { port } = s.address() as AddressInfo;
        s.close(() => ok(port));
      });
    });
    const { lines, finished } = start(args({ endpoint: `http://127.0.0.1:${closedPort}` }));
    expect((await finished).code).toBe(1);
    expect(lines).toEqual([
      `Nothing answers at http://127.0.0.1:${closedPort} (ECONNREFUSED). Start the local runtime first (npm start, in another terminal), or pass --endpoint.`,
    ]);
  });
});
