/**
 * Acks carried on receives (the body's `ack`, answered with `acked`):
 * - `receive`/`receiveAndAck` against the local runtime (real handlers, real HTTP, SigV4);
 * - consume() over 2,000 records: the acks ride on its receives, counted at the transport and
 *   in the runtime's request log;
 * - receives carrying acks that fail (503, 500, a lost answer, an older service's 400) against a
 *   scripted fake of the session routes: the acks are retried or flushed and counted once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startLocalRuntime, type LocalRuntime } from '../../local/server';
import { LogrelayClient, type ConsumeSummary, type FetchLike } from '../../client/src/index';

let rt: LocalRuntime;
const requestLog: string[] = [];
let keys: { accessKeyId: string; secretAccessKey: string };

beforeAll(async () => {
  const credentialsPath = join(mkdtempSync(join(tmpdir(), 'logrelay-carried-')), 'credentials.json');
  writeFileSync(
    credentialsPath,
    JSON.stringify({
      principals: [
        { name: 'workers', accessKeyId: 'LRCARRIEDACKS000', secretAccessKey: 'carried-acks-secret-0000000000000', admin: false },
      ],
    }),
  );
  // One line per request: "POST /sessions/{sessionId}/ack 200 3ms".
  rt = await startLocalRuntime({ port: 0, credentialsPath, log: (line) => requestLog.push(line) });
  const p = rt.principals[0]!;
  keys = { accessKeyId: p.accessKeyId, secretAccessKey: p.secretAccessKey };
}, 120_000);

afterAll(async () => {
  await rt?.close();
});

interface Exchange {
  op: string;
  body: any;
  status?: number;
  answer?: any;
}

/** A client on the local runtime whose transport records every request and its answer. */
function observedClient() {
  const exchanges: Exchange[] = [];
  const observed: FetchLike = async (url, init) => {
    const x: Exchange = { op: new URL(url).pathname.split('/').pop()!, body: init.body === undefined ? undefined : JSON.parse(init.body) };
    exchanges.push(x);
    const res = await fetch(url, init);
    const text = await res.text();
    x.status = res.status;
    x.answer = text ? JSON.parse(text) : undefined;
    return { status: res.status, headers: res.headers, text: async () => text };
  };
  return { client: new LogrelayClient({ endpoint: rt.url, credentials: keys, fetch: observed }), exchanges };
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
const tick = () => new Promise<void>((r) => setImmediate(r));

describe('receive carrying acks, on the local runtime', () => {
  it("sends the selection as the body's ack, applies it before choosing records, and returns the count", async () => {
    const { client, exchanges } = observedClient();
    await client.createLog({ logId: 'carry-basic' });
    await client.append(
      'carry-basic',
      range(1, 12).map((n) => ({ data: n })),
    );
    // maxInFlight 5: the second receive gets records only because its acks free the room first.
    const session = await client.createSession('carry-basic', { maxInFlight: 5, ackTimeoutSeconds: 60 });

    const first = await session.receiveAndAck({ maxRecords: 5 });
    expect(first.records.map((r) => r.seq)).toEqual(range(1, 5));
    expect(first.acked).toBe(0);
    expect(exchanges.at(-1)!.body).toEqual({ maxRecords: 5 }); // no ack: no `ack` key, and no `acked` back
    expect(exchanges.at(-1)!.answer).not.toHaveProperty('acked');

    const second = await session.receiveAndAck({ maxRecords: 5, ack: [3, 1, 2, 5, 4] });
    expect(exchanges.at(-1)!.body).toEqual({ maxRecords: 5, ack: { ranges: [[1, 5]] } }); // as ack() encodes it
    expect(second).toMatchObject({ acked: 5 });
    expect(second.records.map((r) => r.seq)).toEqual(range(6, 10));

    // session.receive keeps its return type (the records); the contract's {seqs, ranges} form passes as is.
    const third = await session.receive({ maxRecords: 5, ack: { seqs: [6], ranges: [[7, 8]] } });
    expect(Array.isArray(third)).toBe(true);
    expect(third.map((r) => r.seq)).toEqual([11, 12]);
    expect(exchanges.at(-1)!.body).toEqual({ maxRecords: 5, ack: { seqs: [6], ranges: [[7, 8]] } });
    expect(exchanges.at(-1)!.answer.acked).toBe(3);

    // Acking again counts 0 (harmless to resend); a never-sent seq counts 0 too; an empty selection sends no ack.
    expect(await session.receiveAndAck({ ack: [1, 2, 3, 6] })).toEqual({ records: [], acked: 0 });
    expect(await session.receiveAndAck({ ack: [9, 10, 11, 12, 500] })).toEqual({ records: [], acked: 4 });
    expect(await session.receiveAndAck({ ack: [] })).toEqual({ records: [], acked: 0 });
    expect(exchanges.at(-1)!.body).toEqual({});
    expect(await session.describe()).toMatchObject({ inFlight: 0, ackFloor: 12 });

    // More than one request's worth of acks is refused before anything is sent.
    const before = exchanges.length;
    const scattered = Array.from({ length: 10_001 }, (_, i) => 2 * i + 1);
    await expect(session.receiveAndAck({ ack: scattered })).rejects.toBeInstanceOf(RangeError);
    expect(exchanges).toHaveLength(before);
  });

  it('a long poll applies carried acks at once', async () => {
    const { client } = observedClient();
    await client.createLog({ logId: 'carry-poll' });
    await client.append(
      'carry-poll',
      range(1, 3).map((n) => ({ data: n })),
    );
    const session = await client.createSession('carry-poll', { ackTimeoutSeconds: 60 });
    expect((await session.receive({ maxRecords: 3 })).map((r) => r.seq)).toEqual([1, 2, 3]);
    const poll = session.receiveAndAck({ waitSeconds: 3, ack: [1, 2, 3] });
    await new Promise((r) => setTimeout(r, 1000));
    expect(await session.describe()).toMatchObject({ inFlight: 0, ackFloor: 3 }); // while the poll still waits
    expect(await poll).toEqual({ records: [], acked: 3 });
  });
});

describe('consume carries its acks on its receives, on the local runtime', () => {
  const TOTAL = 2000;
  const CONCURRENCY = 4;

  async function run(logId: string, consumeOpts: { maxAckDelayMs?: number }, ackTimeoutSeconds: number) {
    const { client, exchanges } = observedClient();
    await client.createLog({ logId });
    await client.appendMany(
      logId,
      range(1, TOTAL).map((n) => ({ data: n })),
    );
    const session = await client.createSession(logId, { ackTimeoutSeconds });
    const logFrom = requestLog.length;
    const from = exchanges.length;

    const successes = new Map<number, number>();
    const refused = new Set<number>();
    const summary = await session.consume(
      async (r) => {
        await tick();
        if (r.seq % 97 === 0 && !refused.has(r.seq)) {
          refused.add(r.seq); // fails the first delivery of 20 records
          throw new Error(`refusing ${r.seq} once`);
        }
        successes.set(r.seq, (successes.get(r.seq) ?? 0) + 1);
      },
      { concurrency: CONCURRENCY, maxRecords: 50, waitSeconds: 0, stopWhenEmpty: true, onError: () => {}, ...consumeOpts },
    );

    const mine = exchanges.slice(from);
    const receives = mine.filter((x) => x.op === 'receive');
    const acks = mine.filter((x) => x.op === 'ack');
    const logged = requestLog.slice(logFrom);
    const seqsOf = (b: { seqs?: number[]; ranges?: [number, number][] }) => [
      ...(b.seqs ?? []),
      ...(b.ranges ?? []).flatMap(([a, z]) => range(a, z)),
    ];
    return { session, summary, successes, refused, mine, receives, acks, logged, seqsOf };
  }

  function checkEveryRecord(r: Awaited<ReturnType<typeof run>>): void {
    const { summary, successes, refused, receives, acks, seqsOf } = r;
    // Every record handled successfully exactly once, by the handler's own count.
    expect(successes.size).toBe(TOTAL);
    expect([...successes.values()].every((n) => n === 1)).toBe(true);
    expect(refused.size).toBe(20);
    expect(summary).toMatchObject<Partial<ConsumeSummary>>({
      handled: TOTAL,
      failed: 20,
      received: TOTAL + 20,
      released: 0,
      acked: TOTAL,
      leasesLost: 0,
      unsettled: 0,
    });
    // The summary's acks are exactly the service's counts: on receives plus on ack requests.
    const onReceives = receives.reduce((n, x) => n + (x.answer?.acked ?? 0), 0);
    const onAcks = acks.reduce((n, x) => n + x.answer.acked, 0);
    expect(onReceives + onAcks).toBe(TOTAL);
    // Every successful record was named by exactly one ack (carried or not); no refused delivery was acked.
    const named = [...receives.filter((x) => x.body.ack).flatMap((x) => seqsOf(x.body.ack)), ...acks.flatMap((x) => seqsOf(x.body))].sort(
      (a, b) => a - b,
    );
    expect(named).toEqual(range(1, TOTAL));
    expect(receives.every((x) => x.status === 200) && acks.every((x) => x.status === 200)).toBe(true);
  }

  it('2,000 records, concurrency 4, 20 failures: no separate ack before the session first runs dry, and at most concurrency + 1 per empty receive after', async () => {
    // A long maxAckDelayMs (capped at a tenth of the 120 s ack timeout) takes timing out of the
    // count: an ack then goes in a request of its own only when the loop is idle, which (with
    // stopWhenEmpty, and no receive failing) happens only after a receive that found nothing.
    // Then the acks waiting go in one request, and each of the at most `concurrency` handlers
    // still running may send one more when it finishes. No extend runs in the few seconds of a
    // 120 s ack timeout, so no ack is held back from a receive for an extend in flight.
    const r = await run('carry-consume-exact', { maxAckDelayMs: 10_000 }, 120);
    checkEveryRecord(r);
    const { receives, acks, mine, logged } = r;
    const empty = receives.filter((x) => x.answer.records.length === 0);
    const firstEmpty = mine.indexOf(empty[0]!);
    expect(firstEmpty).toBeGreaterThan(0);
    expect(mine.slice(0, firstEmpty).filter((x) => x.op === 'ack')).toEqual([]);
    expect(acks.length).toBeLessThanOrEqual(empty.length * (CONCURRENCY + 1));
    expect(acks.length).toBeGreaterThanOrEqual(1); // the last handlers finish after the last receive was sent
    // Much fewer than the receives: 2,020 deliveries in batches of at most 50 take at least 41.
    expect(receives.length).toBeGreaterThanOrEqual(41);
    expect(acks.length * 5).toBeLessThan(receives.length);
    // The runtime saw the same requests (a retry would show in both).
    expect(logged.filter((l) => l.startsWith('POST /sessions/{sessionId}/ack ')).length).toBe(acks.length);
    expect(logged.filter((l) => l.startsWith('POST /sessions/{sessionId}/receive ')).length).toBe(receives.length);
    expect(await r.session.describe()).toMatchObject({ inFlight: 0, ackFloor: TOTAL, cursor: TOTAL + 1, deadLettered: 0 });
  });

  it('the same with the default maxAckDelayMs (100 ms): every ack counted once, most of them on receives', async () => {
    const r = await run('carry-consume-default', {}, 30);
    checkEveryRecord(r);
    const { receives, acks } = r;
    // Timing-dependent, so only loosely: the acks of a batch ride on the receive after it unless
    // that receive comes more than 100 ms later; far fewer ack requests than receives.
    const carried = receives.filter((x) => x.body.ack).reduce((n, x) => n + x.answer.acked, 0);
    expect(carried).toBeGreaterThan(TOTAL / 2);
    expect(acks.length * 2).toBeLessThan(receives.length);
    expect(await r.session.describe()).toMatchObject({ inFlight: 0, ackFloor: TOTAL });
  });
});

// ---- A scripted fake of the session routes, for failures ----------------------------------------

type Fault = 'refuse' | 'fail' | 'lose' | 'reject-ack-field';

/**
 * Hands out `total` records in batches of `maxRecords` (no leases expire: a nack puts a record
 * back at once), applies acks as the service does (an acked seq counts once, ever), and lets the
 * test fail chosen receive attempts: 'refuse' (503, nothing applied), 'fail' (500, nothing
 * applied), 'lose' (acks applied, then the connection drops before the answer), or
 * 'reject-ack-field' (an older service: 400 for any body with `ack`).
 */
function fakeService(total: number, faults: (attempt: number, body: any) => Fault | undefined) {
  const ackedOnce = new Map<number, number>(); // seq -> times newly acked (must end at 1)
  const available: number[] = range(1, total);
  const leased = new Set<number>();
  const log: { op: string; body: any; fault?: Fault; acked?: number }[] = [];
  let receiveAttempts = 0;
  const seqsOf = (b: any): number[] => [...(b?.seqs ?? []), ...(b?.ranges ?? []).flatMap(([a, z]: [number, number]) => range(a, z))];
  const applyAcks = (sel: any): number => {
    let n = 0;
    for (const s of seqsOf(sel)) {
      if (leased.delete(s)) {
        ackedOnce.set(s, (ackedOnce.get(s) ?? 0) + 1);
        n++;
      }
    }
    return n;
  };
  const reply = (status: number, b: unknown) => ({ status, headers: { get: () => null }, text: async () => JSON.stringify(b) });
  const fetch: FetchLike = async (url, init) => {
    await new Promise((r) => setImmediate(r));
    const op = new URL(url).pathname.split('/').pop()!;
    const body = init.body ? JSON.parse(init.body) : {};
    const entry: (typeof log)[number] = { op, body };
    log.push(entry);
    if (op === 'receive') {
      const fault = faults(++receiveAttempts, body);
      if (fault) entry.fault = fault;
      if (fault === 'refuse') return reply(503, { error: { code: 'ServiceBusy', message: 'busy' } });
      if (fault === 'fail') return reply(500, { error: { code: 'InternalError', message: 'failed' } });
      if (fault === 'reject-ack-field' && body.ack)
        return reply(400, { error: { code: 'ValidationError', message: 'Unrecognized key: "ack"' } });
      const acked = body.ack ? applyAcks(body.ack) : undefined;
      if (acked !== undefined) entry.acked = acked;
      if (fault === 'lose')
        throw Object.assign(new TypeError('fetch failed'), { cause: Object.assign(new Error('ECONNRESET'), { code: 'ECONNRESET' }) });
      const out = available.splice(0, body.maxRecords ?? 100);
      for (const s of out) leased.add(s);
      const records = out.map((seq) => ({ seq, data: seq, deliveryCount: 1, leaseExpiresAt: new Date(Date.now() + 60_000).toISOString() }));
      return reply(200, acked === undefined ? { records } : { records, acked });
    }
    if (op === 'ack') {
      const acked = applyAcks(body);
      entry.acked = acked;
      return reply(200, { acked });
    }
    if (op === 'nack') {
      const back = seqsOf(body).filter((s) => leased.delete(s));
      available.unshift(...back);
      return reply(200, { released: back.length });
    }
    throw new Error(`unexpected ${init.method} ${op}`);
  };
  const client = new LogrelayClient({
    endpoint: 'http://127.0.0.1:8787',
    credentials: { accessKeyId: 'AKIDEXAMPLE00000', secretAccessKey: 'secret-secret-secret-secret' },
    fetch,
    retry: { sleep: async () => {}, maxAttempts: 3 },
  });
  return { session: client.session('s-1', { ackTimeoutSeconds: 60 }), log, ackedOnce, leased, seqsOf };
}

describe('a receive carrying acks that fails', () => {
  const TOTAL = 200;
  const opts = { concurrency: 4, maxRecords: 20, waitSeconds: 0, stopWhenEmpty: true, maxAckDelayMs: 10_000 };
  const everyRecordAckedOnce = (f: ReturnType<typeof fakeService>) => {
    expect([...f.ackedOnce.keys()].sort((a, b) => a - b)).toEqual(range(1, TOTAL));
    expect([...f.ackedOnce.values()].every((n) => n === 1)).toBe(true);
    expect(f.leased.size).toBe(0);
  };

  it('refused (503): the client retries the same receive with the same acks; counted once, no ack request needed for them', async () => {
    let failedBody: any;
    const f = fakeService(TOTAL, (_attempt, body) => {
      if (body.ack && !failedBody) {
        failedBody = body;
        return 'refuse';
      }
      return undefined;
    });
    const summary = await f.session.consume(async () => tick(), opts);
    const i = f.log.findIndex((x) => x.fault === 'refuse');
    expect(f.log[i + 1]).toMatchObject({ op: 'receive', body: failedBody, acked: f.seqsOf(failedBody.ack).length });
    expect(summary).toMatchObject({ handled: TOTAL, acked: TOTAL, unsettled: 0 });
    everyRecordAckedOnce(f);
    // The refused acks were not sent on their own.
    const alone = f.log.filter((x) => x.op === 'ack').flatMap((x) => f.seqsOf(x.body));
    expect(alone.filter((s) => f.seqsOf(failedBody.ack).includes(s))).toEqual([]);
  });

  it('failing after every retry (500): the acks go back and are flushed in an ack request; counted once', async () => {
    let failedBody: any;
    const f = fakeService(TOTAL, (_attempt, body) => {
      if (body.ack && (!failedBody || JSON.stringify(body) === JSON.stringify(failedBody))) {
        failedBody ??= body;
        return 'fail'; // all 3 attempts of that receive
      }
      return undefined;
    });
    const errors: string[] = [];
    const summary = await f.session.consume(async () => tick(), {
      ...opts,
      onError: (e, info) => errors.push(`${info.during}: ${(e as Error).message}`),
    });
    expect(f.log.filter((x) => x.fault === 'fail')).toHaveLength(3);
    expect(errors).toEqual(['receive: failed']);
    const carried = f.seqsOf(failedBody.ack);
    const flushed = f.log.find((x) => x.op === 'ack' && f.seqsOf(x.body).some((s) => carried.includes(s)));
    expect(flushed).toBeDefined();
    expect(f.seqsOf(flushed!.body)).toEqual(expect.arrayContaining(carried));
    expect(summary).toMatchObject({ handled: TOTAL, acked: TOTAL, unsettled: 0 });
    everyRecordAckedOnce(f);
  });

  it('answer lost after the acks were applied: retried, applied once, never counted twice (the lost count is not known)', async () => {
    let lost: { seqs: number[] } | undefined;
    const f = fakeService(TOTAL, (_attempt, body) => {
      if (body.ack && !lost) {
        lost = { seqs: f.seqsOf(body.ack) };
        return 'lose';
      }
      return undefined;
    });
    const summary = await f.session.consume(async () => tick(), opts);
    const i = f.log.findIndex((x) => x.fault === 'lose');
    // The retry carries the same acks; the service counts them 0 the second time.
    expect(f.log[i + 1]).toMatchObject({ op: 'receive', acked: 0 });
    expect(f.seqsOf(f.log[i + 1]!.body.ack)).toEqual(lost!.seqs);
    everyRecordAckedOnce(f);
    // The summary counts what the service confirmed: all but the acks whose answer was lost.
    expect(summary).toMatchObject({ handled: TOTAL, acked: TOTAL - lost!.seqs.length, unsettled: 0 });
  });

  it('an older service that rejects the ack field (400): acks go on their own from then on, none lost', async () => {
    const f = fakeService(TOTAL, () => 'reject-ack-field');
    const errors: string[] = [];
    const summary = await f.session.consume(async () => tick(), {
      ...opts,
      onError: (e, info) => errors.push(`${info.during}: ${(e as Error).message}`),
    });
    expect(errors).toEqual(['receive: Unrecognized key: "ack"']);
    expect(f.log.filter((x) => x.op === 'receive' && x.body.ack)).toHaveLength(1);
    expect(summary).toMatchObject({ handled: TOTAL, acked: TOTAL, unsettled: 0 });
    everyRecordAckedOnce(f);
  });

  it('acks do not wait long for a receive: a long poll in flight does not hold them beyond maxAckDelayMs', async () => {
    // One batch, then a receive that waits 1.5 s and finds nothing.
    const sent: { op: string; at: number }[] = [];
    let receives = 0;
    const reply = (b: unknown) => ({ status: 200, headers: { get: () => null }, text: async () => JSON.stringify(b) });
    const fetch: FetchLike = async (url, init) => {
      const op = new URL(url).pathname.split('/').pop()!;
      sent.push({ op, at: Date.now() });
      if (op === 'receive') {
        if (++receives === 1)
          return reply({
            records: [1, 2, 3].map((seq) => ({
              seq,
              data: seq,
              deliveryCount: 1,
              leaseExpiresAt: new Date(Date.now() + 60_000).toISOString(),
            })),
          });
        await new Promise((r) => setTimeout(r, 1500));
        const body = JSON.parse(init.body!);
        return reply(body.ack ? { records: [], acked: 0 } : { records: [] });
      }
      if (op === 'ack') return reply({ acked: 3 });
      throw new Error(op);
    };
    const client = new LogrelayClient({
      endpoint: 'http://127.0.0.1:8787',
      credentials: { accessKeyId: 'AKIDEXAMPLE00000', secretAccessKey: 'secret-secret-secret-secret' },
      fetch,
    });
    let finishedAt = 0;
    const summary = await client.session('s-1', { ackTimeoutSeconds: 60 }).consume(
      async () => {
        await tick();
        finishedAt = Date.now();
      },
      { concurrency: 3, waitSeconds: 2, stopWhenEmpty: true, maxAckDelayMs: 100 },
    );
    const ack = sent.find((x) => x.op === 'ack')!;
    expect(ack).toBeDefined();
    expect(ack.at - finishedAt).toBeGreaterThanOrEqual(90);
    expect(ack.at - finishedAt).toBeLessThan(1000); // not when the poll ends, 1.5 s later
    expect(summary).toMatchObject({ handled: 3, acked: 3 });
  });
});
