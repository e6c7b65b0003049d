/**
 * Crash points: for every storage call that append, receive and ack make, the handler dies
 * right after that call succeeds (an injected fault in the store; the client sees a 500 and
 * the warm host is gone). A retry must lose no record, duplicate no sequence number and leave
 * the session usable.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Harness, drain, type Reply } from '../support/harness';
import { VIEW_MAX_AGE_MS } from '../../lambdas/domain/session';

let h: Harness;
let n = 0;
beforeAll(async () => {
  h = await Harness.start();
});
afterAll(async () => h?.close());

const probe = (op: () => Promise<Reply>): Promise<string[]> => h.probe(op);
const crashAfter = (k: number, op: () => Promise<Reply>): Promise<Reply> => h.crashAfter(k, op);

/** Retries like a client that waits out AppendInProgress/503 (moving the clock past any dead writer's deadline). */
async function retry(op: () => Promise<Reply>): Promise<Reply> {
  for (let i = 0; i < 10; i++) {
    const r = await op();
    if (r.status < 300) return r;
    expect([409, 503]).toContain(r.status);
    h.clock.advance(30_000);
  }
  throw new Error('retry did not succeed');
}

const batch = (tag: string) => Array.from({ length: 40 }, (_, i) => ({ data: { tag, i, pad: 'x'.repeat(1000) } }));

async function freshLog(): Promise<string> {
  const logId = `crash-${++n}`;
  await h.createLog(logId);
  await h.append(logId, ['pre-1', 'pre-2', 'pre-3']);
  return logId;
}

describe('append with an idempotencyKey', async () => {
  const logId = await (async () => {
    h ??= await Harness.start();
    return freshLog();
  })();
  const calls = await probe(() => h.call('POST', `/logs/${logId}/records`, { records: batch('probe'), idempotencyKey: 'probe' }));

  it('makes the storage calls the protocol describes', () => {
    expect(calls).toEqual(['beginIdem', 'getHead', 'reserve', 'setIdemRange', 'putSegments', 'commit', 'completeIdem']);
  });

  it.each(calls.map((c, k) => [k, c] as const))('crash after call %i (%s): the retry writes the batch exactly once', async (k) => {
    const id = await freshLog();
    const body = { records: batch('b'), idempotencyKey: 'key-1' };
    const crashed = await crashAfter(k, () => h.call('POST', `/logs/${id}/records`, body));
    expect(crashed.status).toBe(500);
    const ok = await retry(() => h.call('POST', `/logs/${id}/records`, body));
    expect(ok.body).toEqual({ firstSeq: 4, lastSeq: 43 });
    // The same key again: same answer, nothing written.
    expect((await h.call('POST', `/logs/${id}/records`, body)).body).toEqual({ firstSeq: 4, lastSeq: 43 });
    await h.append(id, ['after']);
    const log = (await h.call('GET', `/logs/${id}`)).body;
    expect(log).toMatchObject({ firstSeq: 1, lastSeq: 44 });
    const got = await drain(h, await h.openSession(id), 1000);
    expect(got.map((g) => g.seq)).toEqual(Array.from({ length: 44 }, (_, i) => i + 1));
    expect(got.map((g) => (typeof g.data === 'string' ? g.data : g.data.i))).toEqual(['pre-1', 'pre-2', 'pre-3', ...Array.from({ length: 40 }, (_, i) => i), 'after']);
  });
});

describe('append without a key', async () => {
  const logId = await freshLog();
  const calls = await probe(() => h.call('POST', `/logs/${logId}/records`, { records: batch('probe') }));
  const commitAt = calls.indexOf('commit');

  it.each(calls.map((c, k) => [k, c] as const))('crash after call %i (%s): no gap, no partial batch, other appends go on', async (k) => {
    const id = await freshLog();
    const crashed = await crashAfter(k, () => h.call('POST', `/logs/${id}/records`, { records: batch('b') }));
    expect(crashed.status).toBe(500);
    // Another producer's append waits out the dead reservation at most, then lands.
    const other = await retry(() => h.call('POST', `/logs/${id}/records`, { records: [{ data: 'other' }] }));
    const committed = k >= commitAt;
    expect(other.body.firstSeq).toBe(committed ? 44 : 4);
    const got = await drain(h, await h.openSession(id), 1000);
    expect(got.map((g) => g.seq)).toEqual(Array.from({ length: got.length }, (_, i) => i + 1));
    const tags = got.map((g) => (typeof g.data === 'string' ? g.data : `b${g.data.i}`));
    const expected = ['pre-1', 'pre-2', 'pre-3', ...(committed ? Array.from({ length: 40 }, (_, i) => `b${i}`) : []), 'other'];
    expect(tags).toEqual(expected);
  });

  it('a second crash while cleaning up a dead reservation still leaves the log consistent', async () => {
    const id = await freshLog();
    expect((await crashAfter(calls.indexOf('putSegments'), () => h.call('POST', `/logs/${id}/records`, { records: batch('b') }))).status).toBe(500);
    h.clock.advance(30_000);
    const cleanup = await probe(() => h.call('POST', `/logs/${id}/records`, { records: [{ data: 'probe' }] }));
    expect(cleanup.slice(0, 4)).toEqual(['getHead', 'segmentsBetween', 'deleteSegments', 'abandon']);
    // Again, on another log, crash after each cleanup call in turn.
    for (let k = 1; k <= 3; k++) {
      const id2 = await freshLog();
      await crashAfter(calls.indexOf('putSegments'), () => h.call('POST', `/logs/${id2}/records`, { records: batch('b') }));
      h.clock.advance(30_000);
      expect((await crashAfter(k, () => h.call('POST', `/logs/${id2}/records`, { records: [{ data: 'x' }] }))).status).toBe(500);
      const ok = await retry(() => h.call('POST', `/logs/${id2}/records`, { records: [{ data: 'y' }] }));
      expect(ok.body).toEqual({ firstSeq: 4, lastSeq: 4 });
      expect((await drain(h, await h.openSession(id2))).map((g) => g.data)).toEqual(['pre-1', 'pre-2', 'pre-3', 'y']);
    }
  });
});

describe('receive and ack', async () => {
  async function sessionWith30(): Promise<{ id: string; sid: string }> {
    const id = `rx-${++n}`;
    await h.createLog(id);
    await h.append(id, Array.from({ length: 30 }, (_, i) => i + 1));
    return { id, sid: await h.openSession(id, { ackTimeoutSeconds: 5 }) };
  }
  const { sid: probeSid } = await sessionWith30();
  h.restart(); // a cold host: the first receive also looks up the session's log
  const coldCalls = await probe(() => h.call('POST', `/sessions/${probeSid}/receive`, { maxRecords: 5 }));
  // Right after its claim, the host claims from the session as that claim left it.
  const hotCalls = await probe(() => h.call('POST', `/sessions/${probeSid}/receive`, { maxRecords: 5 }));
  h.clock.advance(VIEW_MAX_AGE_MS); // that view is now too old: the host reads
  const warmCalls = await probe(() => h.call('POST', `/sessions/${probeSid}/receive`, { maxRecords: 10 }));
  const ackCalls = await probe(() => h.call('POST', `/sessions/${probeSid}/ack`, { ranges: [[1, 20]] }));

  it('receive claims with one atomic update, then reads from the segment the head names; ack is one atomic update', () => {
    expect(coldCalls).toEqual(['getSession', 'getHead', 'claimSession', 'segmentsBetween']);
    expect(hotCalls).toEqual(['claimSession', 'segmentsBetween']);
    expect(warmCalls).toEqual(['getSessionWithHead', 'claimSession', 'segmentsBetween']);
    expect(ackCalls).toEqual(['ackSession']);
  });

  it.each(hotCalls.map((c, k) => [k, c] as const))('receive from the view of the last claim, crash after call %i (%s): every record still delivered and acked', async (k) => {
    const { sid } = await sessionWith30();
    expect((await h.receive(sid, { maxRecords: 10 })).map((g) => g.seq)).toEqual(Array.from({ length: 10 }, (_, i) => i + 1));
    expect((await crashAfter(k, () => h.call('POST', `/sessions/${sid}/receive`, { maxRecords: 10 }))).status).toBe(500);
    expect(await h.ack(sid, { ranges: [[1, 10]] })).toBe(10);
    // Both calls come at or after the claim: 11..20 wait out their lease.
    const first = await drain(h, sid, 7);
    expect(first.map((g) => g.seq)).toEqual(Array.from({ length: 10 }, (_, i) => i + 21));
    h.clock.advance(5_001);
    const rest = await h.receive(sid, { maxRecords: 100 });
    expect(rest.map((r) => [r.seq, r.deliveryCount])).toEqual(Array.from({ length: 10 }, (_, i) => [i + 11, 2]));
    await h.ack(sid, { ranges: [[11, 20]] });
    expect(await h.describe(sid)).toMatchObject({ inFlight: 0, ackFloor: 30, cursor: 31 });
  });

  it.each(coldCalls.map((c, k) => [k, c] as const))('receive crash after call %i (%s): every record still delivered and acked', async (k) => {
    const { sid } = await sessionWith30();
    h.restart();
    expect((await crashAfter(k, () => h.call('POST', `/sessions/${sid}/receive`, { maxRecords: 10 }))).status).toBe(500);
    const first = await drain(h, sid, 7);
    const lostLease = k >= coldCalls.indexOf('claimSession');
    // If the crash came after the lease was saved, those 10 wait out their lease first.
    expect(first.map((g) => g.seq)).toEqual(Array.from({ length: lostLease ? 20 : 30 }, (_, i) => i + (lostLease ? 11 : 1)));
    h.clock.advance(5_001);
    const rest = await h.receive(sid, { maxRecords: 100 });
    expect(rest.map((r) => [r.seq, r.deliveryCount])).toEqual(lostLease ? Array.from({ length: 10 }, (_, i) => [i + 1, 2]) : []);
    if (rest.length) await h.ack(sid, { ranges: [[1, 10]] });
    expect(await h.describe(sid)).toMatchObject({ inFlight: 0, ackFloor: 30, cursor: 31 });
  });

  it.each(ackCalls.map((c, k) => [k, c] as const))('ack crash after call %i (%s): a retried ack finishes the job', async (k) => {
    const { sid } = await sessionWith30();
    const recs = await h.receive(sid, { maxRecords: 10 });
    expect(recs.length).toBe(10);
    expect((await crashAfter(k, () => h.call('POST', `/sessions/${sid}/ack`, { ranges: [[1, 10]] }))).status).toBe(500);
    const again = await h.ack(sid, { ranges: [[1, 10]] });
    expect(again).toBe(k >= ackCalls.indexOf('ackSession') ? 0 : 10);
    h.clock.advance(5_001); // nothing acked may come back
    expect((await drain(h, sid)).map((g) => g.seq)).toEqual(Array.from({ length: 20 }, (_, i) => i + 11));
    expect(await h.describe(sid)).toMatchObject({ inFlight: 0, ackFloor: 30 });
  });
});
