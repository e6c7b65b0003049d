/**
 * Crash points: for every storage call that append, receive and ack make, the handler dies
 * right after that call succeeds (an injected fault in the store; the client sees a 500 and
 * the warm host is gone). A retry must lose no record, duplicate no sequence number and leave
 * the session usable.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Harness, drain, type Reply } from '../support/harness';
import { VIEW_MAX_AGE_MS } from '../../lambdas/domain/session';
import { TAIL_PAGE } from '../../lambdas/domain/log-index';

const ARN = 'arn:aws:iam::123456789012:user/alice';

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

const seqs = (n: number) => Array.from({ length: n }, (_, i) => i + 1);
const tagOf = (g: { data: any }) => (typeof g.data === 'string' ? g.data : `b${g.data.i}`);
const batchTags = Array.from({ length: 40 }, (_, i) => `b${i}`);

/** The log's records, in sequence order, read through a new session: gap-free from 1, each once. */
async function contents(id: string): Promise<string[]> {
  const got = await drain(h, await h.openSession(id), 1000);
  expect(got.map((g) => g.seq)).toEqual(seqs(got.length));
  return got.map(tagOf);
}

describe('append with an idempotencyKey', async () => {
  const logId = await (async () => {
    h ??= await Harness.start();
    return freshLog();
  })();
  h.restart(); // a cold host: the first append looks the log up
  const calls = await probe(() => h.call('POST', `/logs/${logId}/records`, { records: batch('probe'), idempotencyKey: 'probe' }));
  const orderedAt = calls.indexOf('sequence');

  it('makes the storage calls the protocol describes', () => {
    expect(calls).toEqual(['getHead', 'beginIdem', 'putChunks', 'sequence', 'completeIdem']);
  });

  it.each(calls.map((c, k) => [k, c] as const))(
    'crash after call %i (%s): the log takes other appends at once, and the retry writes the batch exactly once',
    async (k) => {
      const id = await freshLog();
      const body = { records: batch('b'), idempotencyKey: 'key-1' };
      h.restart();
      const crashed = await crashAfter(k, () => h.call('POST', `/logs/${id}/records`, body));
      expect(crashed.status).toBe(500);
      // No lock: another producer's append lands at once, whatever the crash left.
      const other = await h.call('POST', `/logs/${id}/records`, { records: [{ data: 'other' }] });
      expect(other.status).toBe(201);
      const committed = k >= orderedAt;
      const expected = committed ? { firstSeq: 4, lastSeq: 43 } : { firstSeq: 5, lastSeq: 44 };
      expect(other.body.firstSeq).toBe(committed ? 44 : 4);
      // The same key waits out the dead attempt's deadline (409 AppendInProgress) at most.
      const ok = await retry(() => h.call('POST', `/logs/${id}/records`, body));
      expect(ok.body).toEqual(expected);
      // The same key again: same answer, nothing written.
      expect((await h.call('POST', `/logs/${id}/records`, body)).body).toEqual(expected);
      await h.append(id, ['after']);
      expect((await h.call('GET', `/logs/${id}`)).body).toMatchObject({ firstSeq: 1, lastSeq: 45 });
      expect(await contents(id)).toEqual([
        'pre-1',
        'pre-2',
        'pre-3',
        ...(committed ? [...batchTags, 'other'] : ['other', ...batchTags]),
        'after',
      ]);
    },
  );
});

describe('a retry that takes over a dead attempt of its key', () => {
  // Found by npm run chaos (bin/chaos.ts) at 50% lost responses: a keyed append in the log twice.
  const body = { records: batch('t'), idempotencyKey: 'key-t' };
  const tags = Array.from({ length: 40 }, (_, i) => `b${i}`);

  it("whose takeover write is applied and its answer lost: still finds the dead attempt's batch and answers its range, writing nothing", async () => {
    const id = await freshLog();
    h.restart();
    // The first attempt dies right after ordering its batch (its key stays PENDING).
    expect((await crashAfter(3, () => h.call('POST', `/logs/${id}/records`, body))).status).toBe(500);
    h.clock.advance(30_000); // past its deadline
    // The retry finds the dead attempt's item (its create is refused: not a recorded call) and
    // takes it over; that write is applied and answered with an error, so the retry sends it
    // again (as the SDK would), is refused by its own write, and reads the item back.
    const r = await h.loseResponseOf(2, () => h.call('POST', `/logs/${id}/records`, body));
    expect(h.calls.slice(0, 4)).toEqual(['getHead', 'getIdem', 'beginIdem', 'getIdem']);
    expect(r.status).toBe(201);
    expect(r.body).toEqual({ firstSeq: 4, lastSeq: 43 });
    expect(await contents(id)).toEqual(['pre-1', 'pre-2', 'pre-3', ...tags]);
  });

  it("that dies itself right after taking over: the next retry looks for both attempts' batches", async () => {
    const id = await freshLog();
    h.restart();
    expect((await crashAfter(3, () => h.call('POST', `/logs/${id}/records`, body))).status).toBe(500);
    h.clock.advance(30_000);
    expect((await crashAfter(2, () => h.call('POST', `/logs/${id}/records`, body))).status).toBe(500);
    expect(h.calls).toEqual(['getHead', 'getIdem', 'beginIdem']);
    h.clock.advance(30_000);
    const r = await h.call('POST', `/logs/${id}/records`, body);
    expect(r.body).toEqual({ firstSeq: 4, lastSeq: 43 });
    expect(await contents(id)).toEqual(['pre-1', 'pre-2', 'pre-3', ...tags]);
  });
});

describe('append without a key', async () => {
  const logId = await freshLog();
  h.restart();
  const calls = await probe(() => h.call('POST', `/logs/${logId}/records`, { records: batch('probe') }));
  const orderedAt = calls.indexOf('sequence');

  it('makes the storage calls the protocol describes', () => {
    expect(calls).toEqual(['getHead', 'putChunks', 'sequence']);
  });

  it.each(calls.map((c, k) => [k, c] as const))(
    'crash after call %i (%s): no gap, no partial batch, other appends go on at once',
    async (k) => {
      const id = await freshLog();
      h.restart();
      const crashed = await crashAfter(k, () => h.call('POST', `/logs/${id}/records`, { records: batch('b') }));
      expect(crashed.status).toBe(500);
      const other = await h.call('POST', `/logs/${id}/records`, { records: [{ data: 'other' }] });
      const committed = k >= orderedAt;
      expect(other.status).toBe(201);
      expect(other.body.firstSeq).toBe(committed ? 44 : 4);
      expect(await contents(id)).toEqual(['pre-1', 'pre-2', 'pre-3', ...(committed ? batchTags : []), 'other']);
    },
  );

  it.each([['putIndexPages'], ['trimTail']])(
    'crash after %s, as the tail moves to an index page: the batch is committed, a later append moves the page, nothing is lost',
    async (op) => {
      const id = await freshLog(); // 1 index entry
      for (let i = 0; i < TAIL_PAGE - 2; i++) await h.append(id, [`fill-${i}`]);
      // The next entry makes the tail TAIL_PAGE long: its append moves the first run to a page.
      const moving = await probe(() => h.call('POST', `/logs/${id}/records`, { records: [{ data: 'probe' }] }));
      expect(moving).toEqual(['putChunks', 'sequence', 'putIndexPages', 'trimTail']);
      const id2 = await freshLog();
      for (let i = 0; i < TAIL_PAGE - 2; i++) await h.append(id2, [`fill-${i}`]);
      const crashed = await crashAfter(moving.indexOf(op), () => h.call('POST', `/logs/${id2}/records`, { records: [{ data: 'last' }] }));
      expect(crashed.status).toBe(500);
      // Until the next multiple the tail keeps its entries; that append moves the run again.
      for (let i = 0; i < TAIL_PAGE; i++) await h.append(id2, [`more-${i}`]);
      const head = await h.store.getHead(`${ARN}|${id2}`);
      expect(head!.tail.entries.length).toBeLessThan(2 * TAIL_PAGE);
      expect(head!.tail.first).toBeGreaterThan(1);
      const tags = await contents(id2);
      expect(tags).toEqual([
        'pre-1',
        'pre-2',
        'pre-3',
        ...Array.from({ length: TAIL_PAGE - 2 }, (_, i) => `fill-${i}`),
        'last',
        ...Array.from({ length: TAIL_PAGE }, (_, i) => `more-${i}`),
      ]);
    },
  );
});

describe('a write whose response is lost (applied, then a 500)', async () => {
  const logId = await freshLog();
  h.restart();
  const withKey = await probe(() => h.call('POST', `/logs/${logId}/records`, { records: batch('probe'), idempotencyKey: 'probe' }));
  const writes = withKey.map((c, k) => [k, c] as const).filter(([, c]) => c !== 'getHead');

  it.each(writes)(
    'with a key, call %i (%s): answered with the range once, nothing duplicated, the log takes the next append',
    async (k) => {
      const id = await freshLog();
      const body = { records: batch('b'), idempotencyKey: 'key-1' };
      h.restart();
      const r = await h.loseResponseOf(k, () => h.call('POST', `/logs/${id}/records`, body));
      expect(h.calls[k]).toBe(withKey[k]);
      expect(r.status).toBe(201);
      expect(r.body).toEqual({ firstSeq: 4, lastSeq: 43 });
      expect((await h.call('POST', `/logs/${id}/records`, body)).body).toEqual({ firstSeq: 4, lastSeq: 43 });
      await h.append(id, ['after']);
      expect(await contents(id)).toEqual(['pre-1', 'pre-2', 'pre-3', ...batchTags, 'after']);
    },
  );

  it.each([['putChunks'], ['sequence'], ['putIndexPages'], ['trimTail']])(
    'without a key, %s: answered once, nothing duplicated, the log takes the next append',
    async (op) => {
      const id = await freshLog();
      for (let i = 0; i < TAIL_PAGE - 2; i++) await h.append(id, [`fill-${i}`]);
      // This append's entry makes the tail TAIL_PAGE long, so it makes every write of the path.
      const r = await h.loseResponseOf(['putChunks', 'sequence', 'putIndexPages', 'trimTail'].indexOf(op), () =>
        h.call('POST', `/logs/${id}/records`, { records: batch('b') }),
      );
      expect(r.status).toBe(201);
      expect(r.body).toEqual({ firstSeq: 3 + TAIL_PAGE - 2 + 1, lastSeq: 3 + TAIL_PAGE - 2 + 40 });
      for (let i = 0; i < TAIL_PAGE; i++) await h.append(id, [`more-${i}`]);
      const fills = Array.from({ length: TAIL_PAGE - 2 }, (_, i) => `fill-${i}`);
      expect(await contents(id)).toEqual([
        'pre-1',
        'pre-2',
        'pre-3',
        ...fills,
        ...batchTags,
        ...Array.from({ length: TAIL_PAGE }, (_, i) => `more-${i}`),
      ]);
    },
  );
});

describe('receive and ack', async () => {
  async function sessionWith30(): Promise<{ id: string; sid: string }> {
    const id = `rx-${++n}`;
    await h.createLog(id);
    await h.append(
      id,
      Array.from({ length: 30 }, (_, i) => i + 1),
    );
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

  it("receive claims with one atomic update, then reads the chunks the head's index names; ack is one atomic update", () => {
    expect(coldCalls).toEqual(['getSession', 'getHead', 'claimSession', 'getChunks']);
    expect(hotCalls).toEqual(['claimSession', 'getChunks']);
    expect(warmCalls).toEqual(['getSessionWithHead', 'claimSession', 'getChunks']);
    expect(ackCalls).toEqual(['ackSession']);
  });

  it.each(hotCalls.map((c, k) => [k, c] as const))(
    'receive from the view of the last claim, crash after call %i (%s): every record still delivered and acked',
    async (k) => {
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
    },
  );

  it.each(coldCalls.map((c, k) => [k, c] as const))(
    'receive crash after call %i (%s): every record still delivered and acked',
    async (k) => {
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
    },
  );

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
