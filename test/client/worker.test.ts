/**
 * The worker API against the local runtime (real handlers, real HTTP, SigV4): three workers
 * consume one session while one is aborted mid-batch and one handler fails some records; a
 * handler slower than the ack timeout keeps its lease by extension; records() with explicit acks.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startLocalRuntime, type LocalRuntime } from '../../local/server';
import { LogrelayClient, type ConsumeSummary, type DeliveredRecord } from '../../client/src/index';

let rt: LocalRuntime;
let client: LogrelayClient;

beforeAll(async () => {
  const credentialsPath = join(mkdtempSync(join(tmpdir(), 'logrelay-client-')), 'credentials.json');
  writeFileSync(
    credentialsPath,
    JSON.stringify({
      principals: [
        { name: 'workers', accessKeyId: 'LRCLIENTWORKER00', secretAccessKey: 'client-worker-secret-00000000000000', admin: false },
      ],
    }),
  );
  rt = await startLocalRuntime({ port: 0, credentialsPath, log: () => {} });
  const p = rt.principals[0]!;
  client = new LogrelayClient({ endpoint: rt.url, credentials: { accessKeyId: p.accessKeyId, secretAccessKey: p.secretAccessKey } });
}, 120_000);

afterAll(async () => {
  await rt?.close();
});

const tick = () => new Promise<void>((r) => setImmediate(r));
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

describe('consume on the local runtime', () => {
  it('three workers over 5,000 records: one aborted mid-batch, one failing some records; every record handled successfully exactly once', async () => {
    const TOTAL = 5000;
    await client.createLog({ logId: 'consume-5000' });
    const appended = await client.appendMany(
      'consume-5000',
      Array.from({ length: TOTAL }, (_, i) => ({ data: { n: i + 1 } })),
    );
    expect(appended).toMatchObject({ records: TOTAL, requests: 10 });
    const session = await client.createSession('consume-5000', { ackTimeoutSeconds: 10 });

    // The handlers' own count: successes and failures per sequence number, and every delivery seen.
    const successes = new Map<number, number>();
    const successDeliveryCount = new Map<number, number>();
    let invocations = 0;
    let thrown = 0;
    const all = new AbortController();
    const succeed = (r: DeliveredRecord) => {
      expect((r.data as { n: number }).n).toBe(r.seq);
      successes.set(r.seq, (successes.get(r.seq) ?? 0) + 1);
      successDeliveryCount.set(r.seq, r.deliveryCount);
      if (successes.size === TOTAL) all.abort();
    };

    // A: plain. B: throws the first time it meets a multiple of 37. C: aborted after 120 records,
    // in the middle of its third batch of 50.
    const seenByB = new Set<number>();
    const stopC = new AbortController();
    let handledByC = 0;
    const workerA = session.consume(
      async (r) => {
        invocations++;
        await tick();
        succeed(r);
      },
      { concurrency: 4, maxRecords: 50, waitSeconds: 1, signal: all.signal },
    );
    const workerB = session.consume(
      async (r) => {
        invocations++;
        await tick();
        if (r.seq % 37 === 0 && !seenByB.has(r.seq)) {
          seenByB.add(r.seq);
          thrown++;
          throw new Error(`B refuses ${r.seq} once`);
        }
        succeed(r);
      },
      { concurrency: 3, maxRecords: 50, waitSeconds: 1, signal: all.signal, onError: () => {} },
    );
    const workerC = session.consume(
      async (r) => {
        invocations++;
        await sleep(2);
        succeed(r);
        if (++handledByC === 120) stopC.abort();
      },
      { concurrency: 2, maxRecords: 50, waitSeconds: 1, signal: AbortSignal.any([stopC.signal, all.signal]) },
    );

    const summaries: ConsumeSummary[] = await Promise.all([workerA, workerB, workerC]);
    const [a, b, c] = summaries;
    const sum = (k: keyof ConsumeSummary) => summaries.reduce((acc, s) => acc + s[k], 0);

    // Every record handled successfully exactly once, by the handlers' own count.
    expect(successes.size).toBe(TOTAL);
    expect([...successes.values()].every((n) => n === 1)).toBe(true);
    expect(Math.min(...successes.keys())).toBe(1);
    expect(Math.max(...successes.keys())).toBe(TOTAL);

    // C stopped mid-batch: it released what it held and had not started, and handled exactly 120
    // (the two running when it was aborted finish and count: the 120th and at most one more).
    expect(stopC.signal.aborted).toBe(true);
    expect(c!.handled).toBeGreaterThanOrEqual(120);
    expect(c!.handled).toBeLessThanOrEqual(121);
    expect(c!.released).toBeGreaterThan(0);
    expect(b!.failed).toBe(thrown);
    expect(thrown).toBeGreaterThan(0);
    expect(a!.failed + c!.failed).toBe(0);

    // The redeliveries are exactly what the failures and the releases explain: every delivery is
    // a handler call or a release, and a record's successful delivery is its last one.
    expect(sum('handled')).toBe(TOTAL);
    expect(invocations).toBe(TOTAL + thrown);
    const redeliveries = [...successDeliveryCount.values()].reduce((acc, dc) => acc + (dc - 1), 0);
    expect(redeliveries).toBe(thrown + sum('released'));
    expect(sum('received')).toBe(TOTAL + redeliveries);
    expect(sum('leasesLost') + sum('unsettled')).toBe(0);
    expect(sum('acked')).toBe(TOTAL);

    const state = await session.describe();
    expect(state).toMatchObject({ inFlight: 0, ackFloor: TOTAL, cursor: TOTAL + 1, deadLettered: 0 });
    await session.delete();
  });

  it('a handler slower than the ack timeout keeps its lease by extension: never redelivered, no other worker gets it', async () => {
    await client.createLog({ logId: 'slow-handler' });
    await client.append('slow-handler', [{ data: 'slow' }]);
    const session = await client.createSession('slow-handler', { ackTimeoutSeconds: 2 });

    const stop = new AbortController();
    const slowCalls: DeliveredRecord[] = [];
    const otherCalls: DeliveredRecord[] = [];
    let handlerFinished = false;
    const slow = session.consume(
      async (r) => {
        slowCalls.push(r);
        await sleep(5000); // two and a half ack timeouts
        handlerFinished = true;
      },
      { maxRecords: 1, waitSeconds: 1, signal: stop.signal },
    );
    // A second worker long-polls the same session the whole time.
    const other = client.session(session.id, { ackTimeoutSeconds: 2 }).consume(
      (r) => {
        otherCalls.push(r);
      },
      { waitSeconds: 1, signal: stop.signal },
    );
    // The other worker polls every second: had the 2 s lease lapsed during the 5 s handler, it
    // would have received the record (or the slow worker itself, with deliveryCount 2).
    while (!handlerFinished) await sleep(100);
    stop.abort();
    const [s, o] = await Promise.all([slow, other]);

    expect(slowCalls.map((r) => [r.seq, r.deliveryCount])).toEqual([[1, 1]]);
    expect(otherCalls).toEqual([]);
    expect(s).toMatchObject({ handled: 1, failed: 0, acked: 1, leasesLost: 0 });
    expect(s.extended).toBeGreaterThanOrEqual(2);
    expect(o.received).toBe(0);
    expect(await session.describe()).toMatchObject({ inFlight: 0, ackFloor: 1 });
  });

  it('records(): explicit acks; leaving the loop releases what was received and not acked', async () => {
    await client.createLog({ logId: 'iterate' });
    await client.append(
      'iterate',
      Array.from({ length: 30 }, (_, i) => ({ data: i + 1, key: `k${i % 3}` })),
    );
    const session = await client.createSession('iterate', { ackTimeoutSeconds: 30 });

    const got: number[] = [];
    for await (const r of session.records({ maxRecords: 10, waitSeconds: 0 })) {
      got.push(r.seq);
      expect(r.key).toBe(`k${(r.seq - 1) % 3}`);
      await r.ack();
      if (got.length === 15) break; // in the middle of the second batch of 10
    }
    expect(got).toEqual(Array.from({ length: 15 }, (_, i) => i + 1));
    // 16..20 were received with 11..15 and released on break: they come back first, delivered twice.
    const after = await session.describe();
    expect(after).toMatchObject({ ackFloor: 15 });
    const rest: [number, number][] = [];
    for await (const r of session.records({ maxRecords: 100, waitSeconds: 0, stopWhenEmpty: true })) {
      rest.push([r.seq, r.deliveryCount]);
      await r.ack();
    }
    expect(rest.map(([seq]) => seq).sort((x, y) => x - y)).toEqual(Array.from({ length: 15 }, (_, i) => i + 16));
    expect(
      rest
        .filter(([, dc]) => dc === 2)
        .map(([seq]) => seq)
        .sort((x, y) => x - y),
    ).toEqual([16, 17, 18, 19, 20]);
    expect(await session.describe()).toMatchObject({ inFlight: 0, ackFloor: 30 });
  });
});
