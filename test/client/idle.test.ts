/**
 * What an idle worker costs (issue 17): a worker whose session has nothing for it stops
 * long-polling, so it no longer holds a Lambda environment the whole day, and still gets a new
 * record within about idlePollSeconds. Against the local runtime; the request lines it logs give
 * each receive's time in the function.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startLocalRuntime, type LocalRuntime } from '../../local/server';
import { IdlePacer, LogrelayClient } from '../../client/src/index';

let rt: LocalRuntime;
let client: LogrelayClient;
/** Time in the function of each receive, ms, as the runtime logged it. */
let receives: number[] = [];

beforeAll(async () => {
  rt = await startLocalRuntime({
    port: 0,
    credentialsPath: join(mkdtempSync(join(tmpdir(), 'logrelay-idle-')), 'credentials.json'),
    log: (line) => {
      const m = /^POST \/sessions\/\{sessionId\}\/receive 200 (\d+)ms$/.exec(line);
      if (m) receives.push(Number(m[1]));
    },
  });
  const p = rt.principals[0]!;
  client = new LogrelayClient({ endpoint: rt.url, credentials: { accessKeyId: p.accessKeyId, secretAccessKey: p.secretAccessKey } });
}, 120_000);
afterAll(async () => rt?.close());

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

describe('IdlePacer', () => {
  it('long-polls while records come, then polls without waiting every idlePollSeconds until they come again', () => {
    const p = new IdlePacer(10, 2);
    expect(p.waitSeconds).toBe(10);
    expect(p.after(5)).toBe(0);
    expect(p.waitSeconds).toBe(10);
    expect(p.after(0)).toBe(2000);
    expect(p.waitSeconds).toBe(0);
    expect(p.after(0)).toBe(2000);
    expect(p.after(1)).toBe(0);
    expect(p.waitSeconds).toBe(10);
  });

  it('idlePollSeconds 0 keeps long-polling; waitSeconds 0 polls every second; a bad value is refused', () => {
    const always = new IdlePacer(10, 0);
    expect(always.after(0)).toBe(0);
    expect(always.waitSeconds).toBe(10);
    const short = new IdlePacer(0, undefined);
    expect(short.after(0)).toBe(1000);
    expect(short.waitSeconds).toBe(0);
    expect(() => new IdlePacer(10, -1)).toThrow(/idlePollSeconds must be/);
    expect(new IdlePacer(10, undefined).after(0)).toBe(2000);
  });
});

describe('an idle worker on the local runtime', () => {
  it('holds the function a small part of the time it idles, and a record appended meanwhile reaches it within about idlePollSeconds', async () => {
    await client.createLog({ logId: 'idle' });
    const session = await client.createSession('idle', { start: 'latest' });
    const stop = new AbortController();
    const got: { seq: number; at: number }[] = [];
    receives = [];
    const worker = session.consume(
      (r) => {
        got.push({ seq: r.seq, at: Date.now() });
      },
      { waitSeconds: 2, idlePollSeconds: 1, signal: stop.signal },
    );
    const idleFrom = Date.now();
    await sleep(7_000);
    const idleMs = Date.now() - idleFrom;
    const inFunction = receives.reduce((a, b) => a + b, 0);
    // One long poll (2 s) and then quick polls: long-polling throughout would be all 7 s.
    expect(receives.filter((ms) => ms >= 1_900)).toHaveLength(1);
    expect(inFunction).toBeLessThan(idleMs / 2);
    expect(receives.length).toBeGreaterThanOrEqual(3);

    const appendedAt = Date.now();
    await client.append('idle', [{ data: 'wake' }]);
    while (got.length === 0 && Date.now() - appendedAt < 10_000) await sleep(20);
    expect(got.map((g) => g.seq)).toEqual([1]);
    // Within the poll interval and a request or two (generous: the machine is shared).
    expect(got[0]!.at - appendedAt).toBeLessThan(1_000 + 2_000);
    stop.abort();
    expect(await worker).toMatchObject({ handled: 1, acked: 1 });
  });

  it('with idlePollSeconds 0 it long-polls the whole time, as before', async () => {
    await client.createLog({ logId: 'idle-always' });
    const session = await client.createSession('idle-always', { start: 'latest' });
    const stop = new AbortController();
    receives = [];
    const worker = session.consume(() => {}, { waitSeconds: 1, idlePollSeconds: 0, signal: stop.signal });
    await sleep(3_500);
    stop.abort();
    await worker;
    expect(receives.length).toBeGreaterThanOrEqual(3);
    for (const ms of receives) expect(ms).toBeGreaterThanOrEqual(950);
  });
});
