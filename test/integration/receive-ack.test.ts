/**
 * Acks carried on a receive: `POST /sessions/{id}/receive` with `"ack": {"seqs"?, "ranges"?}`.
 * The acks are applied before the receive chooses records, counted exactly as `POST /ack` counts
 * them, and reported as `acked` (only when the request carried `ack`). When the receive claims
 * fresh records, the acks ride on the claim's write (one storage write, crash-atomic).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Harness, type Reply } from '../support/harness';
import { VIEW_MAX_AGE_MS } from '../../lambdas/domain/session';

interface Rec {
  seq: number;
  data: unknown;
  key?: string;
  deliveryCount: number;
  leaseExpiresAt: string;
}
interface ReceiveBody {
  records: Rec[];
  acked?: number;
}
type Range = [number, number];

let h: Harness;
let n = 0;
beforeAll(async () => {
  h = await Harness.start();
});
afterAll(async () => h?.close());

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** [from, from+1, ..., to] */
const seqRange = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);
const seqsOf = (recs: readonly Rec[]): number[] => recs.map((r) => r.seq);
/** Sorted seqs as a list of [from, to] runs. */
function toRanges(seqs: readonly number[]): Range[] {
  const out: Range[] = [];
  for (const s of [...seqs].sort((a, b) => a - b)) {
    const last = out[out.length - 1];
    if (last && s === last[1] + 1) last[1] = s;
    else out.push([s, s]);
  }
  return out;
}

/**
 * The receive function's storage calls for a receive that claims fresh records: on a warm host
 * (it knows the session's log) that reads the session and head, and on a host that claims from
 * the session as its own last claim left it (under VIEW_MAX_AGE_MS ago), which reads nothing.
 */
const WARM_RECEIVE = ['getSessionWithHead', 'claimSession', 'getChunks'];
const HOT_RECEIVE = ['claimSession', 'getChunks'];

/** A new log holding records 1..count (data = seq), and a session on it. */
async function setup(count: number, settings: Record<string, unknown> = {}): Promise<{ logId: string; sid: string }> {
  const logId = `rxack-${++n}`;
  await h.createLog(logId);
  for (let i = 1; i <= count; i += 500) await h.append(logId, seqRange(i, Math.min(count, i + 499)));
  return { logId, sid: await h.openSession(logId, settings) };
}

/** POST /receive (retrying 5xx/429 like a client), expecting 200. */
async function rx(sid: string, body: Record<string, unknown>): Promise<ReceiveBody> {
  const r = await h.callRetrying<ReceiveBody>('POST', `/sessions/${sid}/receive`, body);
  expect(r.status, JSON.stringify(r.body)).toBe(200);
  return r.body;
}

/** The storage calls `op` makes (it must answer 200). */
const probe = (op: () => Promise<Reply>): Promise<string[]> => h.probe(op, 200);
const crashAfter = (k: number, op: () => Promise<Reply>): Promise<Reply> => h.crashAfter(k, op);

describe('basic: a receive that acks the previous batch', () => {
  it('acks the 10 received and hands out the next 10; the session view agrees', async () => {
    const { sid } = await setup(30);
    const first = await rx(sid, { maxRecords: 10 });
    expect(seqsOf(first.records)).toEqual(seqRange(1, 10));
    const second = await rx(sid, { maxRecords: 10, ack: { ranges: [[1, 10]] } });
    expect(second.acked).toBe(10);
    expect(second.records.map((r) => [r.seq, r.data, r.deliveryCount])).toEqual(seqRange(11, 20).map((s) => [s, s, 1]));
    expect(await h.describe(sid)).toMatchObject({
      cursor: 21,
      ackFloor: 10,
      inFlight: 10,
      inFlightRanges: [[11, 20]],
      lag: 10,
      deadLettered: 0,
    });
    // And again, by seqs this time.
    const third = await rx(sid, { maxRecords: 10, ack: { seqs: seqRange(11, 20) } });
    expect(third.acked).toBe(10);
    expect(seqsOf(third.records)).toEqual(seqRange(21, 30));
    expect(await h.describe(sid)).toMatchObject({ cursor: 31, ackFloor: 20, inFlight: 10, inFlightRanges: [[21, 30]], lag: 0 });
  });

  it('the body has "acked" only when the request carried "ack" (also when nothing is left to receive)', async () => {
    const { sid } = await setup(5);
    const plain = await h.call('POST', `/sessions/${sid}/receive`, { maxRecords: 5 });
    expect(plain.status).toBe(200);
    expect(Object.keys(plain.body)).toEqual(['records']);
    expect(plain.body.records).toHaveLength(5);
    const empty = await h.call('POST', `/sessions/${sid}/receive`, {});
    expect(empty.body).toEqual({ records: [] });
    const withAck = await h.call('POST', `/sessions/${sid}/receive`, { ack: { seqs: [1, 2, 3, 4, 5] } });
    expect(withAck.status).toBe(200);
    expect(withAck.body).toEqual({ records: [], acked: 5 });
    expect(await h.describe(sid)).toMatchObject({ cursor: 6, ackFloor: 5, inFlight: 0 });
  });
});

describe('counting exactly like ack', () => {
  it('already-acked records count 0 and are no error', async () => {
    const { sid } = await setup(30);
    await rx(sid, { maxRecords: 10 });
    expect(await h.ack(sid, { ranges: [[1, 10]] })).toBe(10);
    const r = await rx(sid, { maxRecords: 10, ack: { ranges: [[1, 10]] } });
    expect(r.acked).toBe(0);
    expect(seqsOf(r.records)).toEqual(seqRange(11, 20));
    expect(await h.describe(sid)).toMatchObject({ cursor: 21, ackFloor: 10, inFlight: 10 });
  });

  it("unknown seqs (past the log's end) count 0 and are no error", async () => {
    const { sid } = await setup(30);
    await rx(sid, { maxRecords: 10 });
    const r = await rx(sid, { maxRecords: 10, ack: { seqs: [1000], ranges: [[5000, 6000]] } });
    expect(r.acked).toBe(0);
    expect(seqsOf(r.records)).toEqual(seqRange(11, 20));
    expect(await h.describe(sid)).toMatchObject({ cursor: 21, ackFloor: 0, inFlight: 20, inFlightRanges: [[1, 20]] });
  });

  it('records never sent (past the cursor) count 0, even those this same receive then hands out', async () => {
    const { sid } = await setup(30);
    await rx(sid, { maxRecords: 10 });
    // 11..15 are past the cursor when the ack is applied: never sent, so not acked. This receive
    // then hands out 11..20: all ten must stay leased to the worker that got them.
    const r = await rx(sid, { maxRecords: 10, ack: { ranges: [[1, 15]] } });
    expect(seqsOf(r.records)).toEqual(seqRange(11, 20));
    expect(await h.describe(sid)).toMatchObject({ cursor: 21, ackFloor: 10, inFlight: 10, inFlightRanges: [[11, 20]] });
    expect(r.acked).toBe(10);
    // The standalone ack agrees: 11..20 are live leases now, and count 10.
    expect(await h.ack(sid, { ranges: [[11, 20]] })).toBe(10);
  });

  it('a mixed selection counts only the live leased records, the same as a standalone ack on a twin session', async () => {
    const a = await setup(30);
    const b = await setup(30);
    for (const { sid } of [a, b]) {
      expect(seqsOf((await rx(sid, { maxRecords: 10 })).records)).toEqual(seqRange(1, 10));
      expect(await h.ack(sid, { seqs: [1, 2] })).toBe(2);
    }
    // Live: 5, 7, 8, 9. Already acked: 1, 2. Unknown: 1000. Never sent: 25..40 (beyond cursor 11).
    const selection = {
      seqs: [1, 2, 5, 5, 1000],
      ranges: [
        [7, 9],
        [25, 40],
      ],
    };
    expect(await h.ack(a.sid, selection)).toBe(4);
    const r = await rx(b.sid, { maxRecords: 5, ack: selection });
    expect(r.acked).toBe(4);
    expect(seqsOf(r.records)).toEqual(seqRange(11, 15));
    expect(await h.describe(b.sid)).toMatchObject({
      cursor: 16,
      ackFloor: 2,
      inFlight: 9,
      inFlightRanges: [
        [3, 4],
        [6, 6],
        [10, 15],
      ],
    });
    expect(await h.describe(a.sid)).toMatchObject({
      cursor: 11,
      ackFloor: 2,
      inFlight: 4,
      inFlightRanges: [
        [3, 4],
        [6, 6],
        [10, 10],
      ],
    });
  });

  it('a dead-lettered record (lease over, deliveries used up) counts 0, as ack counts it', async () => {
    const { sid } = await setup(10, { ackTimeoutSeconds: 1, maxDeliveries: 1 });
    expect(seqsOf((await rx(sid, { maxRecords: 5 })).records)).toEqual(seqRange(1, 5));
    h.clock.advance(1_001);
    const r = await rx(sid, { maxRecords: 5, ack: { ranges: [[1, 5]] } });
    expect(r.acked).toBe(0);
    expect(r.records.map((x) => [x.seq, x.deliveryCount])).toEqual(seqRange(6, 10).map((s) => [s, 1]));
    expect(await h.describe(sid)).toMatchObject({ cursor: 11, ackFloor: 5, inFlight: 5, deadLettered: 5 });
    expect((await h.call('GET', `/sessions/${sid}/dead-letters`)).body).toEqual({ ranges: [[1, 5, 1]] });
  });
});

describe('maxInFlight', () => {
  it('a full session: the carried acks free the room before the receive chooses records', async () => {
    const { sid } = await setup(30, { maxInFlight: 10 });
    expect(seqsOf((await rx(sid, { maxRecords: 10 })).records)).toEqual(seqRange(1, 10));
    expect((await rx(sid, { maxRecords: 10 })).records).toEqual([]); // full
    const r = await rx(sid, { maxRecords: 10, ack: { ranges: [[1, 10]] } });
    expect(r.acked).toBe(10);
    expect(seqsOf(r.records)).toEqual(seqRange(11, 20));
    expect(await h.describe(sid)).toMatchObject({ cursor: 21, ackFloor: 10, inFlight: 10 });
    // Half the room freed: half a batch.
    const half = await rx(sid, { maxRecords: 10, ack: { seqs: seqRange(11, 15) } });
    expect(half.acked).toBe(5);
    expect(seqsOf(half.records)).toEqual(seqRange(21, 25));
    expect(await h.describe(sid)).toMatchObject({ cursor: 26, ackFloor: 15, inFlight: 10, inFlightRanges: [[16, 25]] });
  });
});

describe('the byte budget', () => {
  it('a batch cut by maxBatchBytes: the carried acks count, the unsent records go back without a delivery', async () => {
    const logId = `rxack-${++n}`;
    await h.createLog(logId);
    await h.append(
      logId,
      seqRange(1, 10).map((i) => 'x'.repeat(100_000) + i),
    );
    const sid = await h.openSession(logId);
    const saved = h.config;
    h.config = { ...saved, delivery: { ...saved.delivery, maxBatchBytes: 250_000 } };
    try {
      expect(seqsOf((await rx(sid, { maxRecords: 10 })).records)).toEqual([1, 2]);
      const r = await rx(sid, { maxRecords: 10, ack: { ranges: [[1, 2]] } });
      expect(r.acked).toBe(2);
      expect(r.records.map((x) => [x.seq, x.deliveryCount])).toEqual([
        [3, 1],
        [4, 1],
      ]);
      expect(await h.describe(sid)).toMatchObject({ ackFloor: 2 });
      const next = await rx(sid, { maxRecords: 10, ack: { seqs: [3, 4] } });
      expect(next.acked).toBe(2);
      expect(next.records.map((x) => [x.seq, x.deliveryCount])).toEqual([
        [5, 1],
        [6, 1],
      ]);
      expect(await h.describe(sid)).toMatchObject({ ackFloor: 4 });
    } finally {
      h.config = saved;
    }
  });
});

describe('redelivery', () => {
  it('expired leases acked on the receive are not redelivered by it; the others are, with deliveryCount 2', async () => {
    const { sid } = await setup(20, { ackTimeoutSeconds: 1 });
    expect(seqsOf((await rx(sid, { maxRecords: 10 })).records)).toEqual(seqRange(1, 10));
    h.clock.advance(1_001); // every lease of 1..10 has ended
    const r = await rx(sid, { maxRecords: 20, ack: { ranges: [[1, 4]], seqs: [9] } });
    expect(r.acked).toBe(5);
    expect(r.records.map((x) => [x.seq, x.deliveryCount])).toEqual([5, 6, 7, 8, 10].map((s) => [s, 2]));
    expect(await h.describe(sid)).toMatchObject({
      cursor: 11,
      ackFloor: 4,
      inFlight: 5,
      inFlightRanges: [
        [5, 8],
        [10, 10],
      ],
    });
    // The redelivered ones, acked on the next receive, which then takes fresh records.
    const next = await rx(sid, { maxRecords: 20, ack: { seqs: [5, 6, 7, 8, 10] } });
    expect(next.acked).toBe(5);
    expect(next.records.map((x) => [x.seq, x.deliveryCount])).toEqual(seqRange(11, 20).map((s) => [s, 1]));
    expect(await h.describe(sid)).toMatchObject({ cursor: 21, ackFloor: 10, inFlight: 10 });
  });
});

describe('long poll', () => {
  it('applies the acks at once, while it waits; returns no records and the count', async () => {
    const { sid } = await setup(10);
    await rx(sid, { maxRecords: 10 });
    const started = Date.now();
    const pending = rx(sid, { waitSeconds: 2, ack: { ranges: [[1, 10]] } });
    await sleep(300);
    // Still waiting, and the acks are already in.
    expect(await h.describe(sid)).toMatchObject({ cursor: 11, ackFloor: 10, inFlight: 0 });
    expect(await h.ack(sid, { ranges: [[1, 10]] })).toBe(0);
    const r = await pending;
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_500);
    expect(r).toEqual({ records: [], acked: 10 });
    expect(await h.describe(sid)).toMatchObject({ cursor: 11, ackFloor: 10, inFlight: 0 });
  });

  it('a never-sent seq named in the ack, appended during the wait, is handed out and stays leased', async () => {
    const { logId, sid } = await setup(10);
    await rx(sid, { maxRecords: 10 });
    const pending = rx(sid, { waitSeconds: 5, ack: { ranges: [[1, 11]] } });
    await sleep(300);
    await h.append(logId, [11]);
    const r = await pending;
    expect(seqsOf(r.records)).toEqual([11]);
    expect(await h.describe(sid)).toMatchObject({ cursor: 12, ackFloor: 10, inFlight: 1, inFlightRanges: [[11, 11]] });
    expect(r.acked).toBe(10);
  });
});

describe('scattered acks (more than 8 ranges)', () => {
  it('every other record of 40, carried on a receive: counted exactly, the next records follow', async () => {
    const { sid } = await setup(50);
    expect(seqsOf((await rx(sid, { maxRecords: 40 })).records)).toEqual(seqRange(1, 40));
    const odd = seqRange(1, 40).filter((s) => s % 2 === 1);
    // 20 ranges, plus 41 and 43: past the cursor when applied, so they count 0 and stay leased.
    const r = await rx(sid, { maxRecords: 10, ack: { ranges: [...odd.map((s): Range => [s, s]), [41, 41], [43, 43]] } });
    expect(r.acked).toBe(20);
    expect(seqsOf(r.records)).toEqual(seqRange(41, 50));
    const d = await h.describe(sid);
    expect(d).toMatchObject({ cursor: 51, ackFloor: 1, inFlight: 30 });
    expect(d.inFlightRanges).toEqual([...seqRange(1, 19).map((k): Range => [2 * k, 2 * k]), [40, 50]]);
    // The evens, by seqs, with an already-acked one (1) and an unknown one (999): 20 again.
    const evens = seqRange(1, 40).filter((s) => s % 2 === 0);
    const r2 = await rx(sid, { maxRecords: 10, ack: { seqs: [...evens, 1, 999] } });
    expect(r2).toEqual({ records: [], acked: 20 });
    expect(await h.describe(sid)).toMatchObject({ cursor: 51, ackFloor: 40, inFlight: 10, inFlightRanges: [[41, 50]] });
  });
});

describe('validation', () => {
  const bad: [name: string, ack: unknown, mention: RegExp][] = [
    ['ack names nothing', {}, /ack.*"seqs".*"ranges"/],
    ['ack with empty lists', { seqs: [], ranges: [] }, /ack.*"seqs".*"ranges"/],
    ['ack with a backwards range', { ranges: [[5, 3]] }, /ack\.ranges\[0\].*from <= to/],
    ['ack with seq 0', { seqs: [0] }, /ack\.seqs/],
    ['ack with an unknown field', { seqs: [1], seq: [2] }, /ack/],
    ['ack not an object', [1, 2], /ack/],
  ];
  it.each(bad)('%s: 400 ValidationError, and nothing acked or received', async (_name, ack, mention) => {
    const { sid } = await setup(20);
    await rx(sid, { maxRecords: 5 });
    const before = await h.describe(sid);
    expect(before).toMatchObject({ cursor: 6, inFlight: 5, ackFloor: 0 });
    const r = await h.call('POST', `/sessions/${sid}/receive`, { maxRecords: 5, ack });
    expect(r.status).toBe(400);
    expect(r.headers['content-type']).toBe('application/json');
    expect(Object.keys(r.body)).toEqual(['error']);
    expect(r.body.error.code).toBe('ValidationError');
    expect(r.body.error.message).toMatch(/^[A-Z].{10,}\.$/); // a sentence
    expect(r.body.error.message).toMatch(mention);
    const after = await h.describe(sid);
    expect({ ...after, expiresAt: undefined }).toEqual({ ...before, expiresAt: undefined });
  });
});

describe('storage calls', () => {
  it.each([
    ['warm', WARM_RECEIVE],
    ['hot', HOT_RECEIVE],
  ] as const)('on a %s host the ack rides on the claim: the calls of a plain receive there, and no ackSession', async (kind, calls) => {
    const { sid } = await setup(40);
    h.restart();
    const cold = await probe(() => h.call('POST', `/sessions/${sid}/receive`, { maxRecords: 10 }));
    expect(cold).toEqual(['getSession', 'getHead', 'claimSession', 'getChunks']);
    // Warm: this host's view of its last claim is too old to claim from.
    const age = (): void => {
      if (kind === 'warm') h.clock.advance(VIEW_MAX_AGE_MS);
    };
    age();
    const plain = await probe(() => h.call('POST', `/sessions/${sid}/receive`, { maxRecords: 10 }));
    expect(plain).toEqual(calls);
    age();
    let body: ReceiveBody | undefined;
    const carrying = await probe(async () => {
      const r = await h.call<ReceiveBody>('POST', `/sessions/${sid}/receive`, { maxRecords: 10, ack: { ranges: [[11, 20]] } });
      body = r.body;
      return r;
    });
    expect(carrying).toEqual(calls);
    expect(carrying).not.toContain('ackSession');
    expect(body!.acked).toBe(10);
    expect(seqsOf(body!.records)).toEqual(seqRange(21, 30));
    // The ack is a pending mark on the session item, written by that claim.
    const stored = (await h.store.getSession(sid))!;
    expect(stored.acks.map((a) => [a.from, a.to])).toEqual([[11, 20]]);
    expect(stored.claims.map((c) => c.n)).toEqual([10, 10, 10]);
    expect(await h.describe(sid)).toMatchObject({
      cursor: 31,
      ackFloor: 0,
      inFlight: 20,
      inFlightRanges: [
        [1, 10],
        [21, 30],
      ],
    });
  });
});

describe('concurrency', () => {
  it('4 workers looping receive-with-ack-of-previous-batch over 2,000 records: each delivered once, each ack counted once', async () => {
    const total = 2000;
    const { sid } = await setup(total);
    const deliveries = new Map<number, number>();
    let ackedByService = 0;
    let acksSent = 0;
    let carrying = 0;
    const deadline = Date.now() + 60_000;
    h.calls = [];
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        let pending: Range[] | undefined;
        while ((deliveries.size < total || pending) && Date.now() < deadline) {
          const body: Record<string, unknown> = { maxRecords: 25 };
          if (pending) body.ack = { ranges: pending };
          const r = await rx(sid, body);
          if (pending) {
            carrying++;
            expect(typeof r.acked).toBe('number');
            ackedByService += r.acked!;
            acksSent += pending.reduce((k, [a, b]) => k + b - a + 1, 0);
            pending = undefined;
          } else {
            expect(r).not.toHaveProperty('acked');
          }
          for (const rec of r.records) {
            expect(rec.data).toBe(rec.seq);
            expect(rec.deliveryCount).toBe(1);
            deliveries.set(rec.seq, (deliveries.get(rec.seq) ?? 0) + 1);
          }
          if (r.records.length) pending = toRanges(seqsOf(r.records));
          else await sleep(10);
        }
      }),
    );
    expect(deliveries.size).toBe(total);
    const duplicated = [...deliveries].filter(([, k]) => k !== 1);
    expect(duplicated).toEqual([]);
    expect(acksSent).toBe(total);
    expect(ackedByService).toBe(total);
    expect(carrying).toBeGreaterThanOrEqual(total / 25);
    // Acks ride on claims while fresh records remain; a receive that finds nothing left to
    // hand out records its acks with the atomic ack update (at most one per worker here: its
    // last batch), never with a compaction that could race the others'.
    const ackUpdates = h.calls.filter((c) => c === 'ackSession').length;
    expect(ackUpdates).toBeGreaterThanOrEqual(1);
    expect(ackUpdates).toBeLessThanOrEqual(4);
    expect(await h.describe(sid)).toMatchObject({ cursor: total + 1, ackFloor: total, inFlight: 0, deadLettered: 0, lag: 0 });
  }, 90_000);

  it('8 workers with 1 s leases, some never acking a batch: never two live leases on a record, each record acked once', async () => {
    const total = 600;
    const ackTimeoutSeconds = 1;
    const { sid } = await setup(total, { ackTimeoutSeconds, maxDeliveries: 100 });
    const grants = new Map<number, { grantedMs: number; leaseMs: number }[]>();
    const ackedByHarness = new Set<number>();
    let ackedByService = 0;
    let dropped = 0;
    let seed = 7;
    const rand = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const deadline = Date.now() + 60_000;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        let pending: Range[] | undefined;
        while ((ackedByHarness.size < total || pending) && Date.now() < deadline) {
          const body: Record<string, unknown> = { maxRecords: 20 };
          if (pending) body.ack = { ranges: pending };
          const r = await rx(sid, body);
          if (pending) {
            ackedByService += r.acked!;
            for (const [a, b] of pending) for (let s = a; s <= b; s++) ackedByHarness.add(s);
            pending = undefined;
          }
          for (const rec of r.records) {
            const leaseMs = Date.parse(rec.leaseExpiresAt);
            grants.set(rec.seq, [...(grants.get(rec.seq) ?? []), { grantedMs: leaseMs - ackTimeoutSeconds * 1000, leaseMs }]);
          }
          if (!r.records.length) await sleep(50);
          else if (rand() < 0.15)
            dropped++; // this worker "crashes": the batch is never acked
          else pending = toRanges(seqsOf(r.records));
        }
      }),
    );
    expect(dropped).toBeGreaterThan(0);
    expect(ackedByHarness.size).toBe(total);
    // A record acked by two workers (its lease ended and it went to another) counts once.
    expect(ackedByService).toBe(total);
    let redelivered = 0;
    for (const [, list] of grants) {
      list.sort((a, b) => a.grantedMs - b.grantedMs);
      for (let k = 1; k < list.length; k++) {
        expect(list[k]!.grantedMs).toBeGreaterThanOrEqual(list[k - 1]!.leaseMs);
        redelivered++;
      }
    }
    expect(redelivered).toBeGreaterThan(0);
    expect(await h.describe(sid)).toMatchObject({ cursor: total + 1, ackFloor: total, inFlight: 0, deadLettered: 0, lag: 0 });
  }, 90_000);
});

describe('crash safety', () => {
  /**
   * A session of 30 records (5 s leases) on a warm host that got 1..10; then the receive that
   * acks 1..10 and claims 11..20.
   */
  async function warmSession(): Promise<string> {
    const { sid } = await setup(30, { ackTimeoutSeconds: 5 });
    expect(seqsOf((await rx(sid, { maxRecords: 10 })).records)).toEqual(seqRange(1, 10));
    return sid;
  }
  const carryingReceive = (sid: string) =>
    h.call<ReceiveBody>('POST', `/sessions/${sid}/receive`, { maxRecords: 10, ack: { ranges: [[1, 10]] } });
  /** Hot: the host claims from its view of the claim of 1..10; warm: that view is too old, it reads. */
  const paths = { hot: HOT_RECEIVE, warm: WARM_RECEIVE } as const;
  const ready = (path: keyof typeof paths): void => {
    if (path === 'warm') h.clock.advance(VIEW_MAX_AGE_MS);
  };

  it.each(['hot', 'warm'] as const)('the receive carrying acks makes the calls of a plain %s receive', async (path) => {
    const sid = await warmSession();
    ready(path);
    expect(await probe(() => carryingReceive(sid))).toEqual(paths[path]);
  });

  it.each((['hot', 'warm'] as const).flatMap((path) => paths[path].map((c, k) => [path, k, c] as const)))(
    '%s receive, crash after call %i (%s): acks and claim are both durable or both absent',
    async (path, k) => {
      const claimAt = paths[path].indexOf('claimSession');
      const sid = await warmSession();
      ready(path);
      const crashed = await crashAfter(k, () => carryingReceive(sid));
      expect(crashed.status).toBe(500);
      const written = k >= claimAt;
      // The same request again (a client's retry), on the cold host.
      const again = await rx(sid, { maxRecords: 10, ack: { ranges: [[1, 10]] } });
      if (written) {
        // The acks were written with the claim: nothing left to count. 11..20 are leased to the
        // crashed request, so the retry gets the records after them.
        expect(again.acked).toBe(0);
        expect(seqsOf(again.records)).toEqual(seqRange(21, 30));
        expect(await h.describe(sid)).toMatchObject({ cursor: 31, ackFloor: 10, inFlight: 20, inFlightRanges: [[11, 30]] });
        expect(await h.ack(sid, { ranges: [[21, 30]] })).toBe(10);
        h.clock.advance(5_001); // the leases of 1..10 (acked) and 11..20 (never sent) end
        const redelivered = await rx(sid, { maxRecords: 100 });
        expect(redelivered.records.map((r) => [r.seq, r.deliveryCount])).toEqual(seqRange(11, 20).map((s) => [s, 2]));
        expect(await h.ack(sid, { ranges: [[11, 20]] })).toBe(10);
      } else {
        // Nothing was written: the retry applies the acks and claims 11..20.
        expect(again.acked).toBe(10);
        expect(seqsOf(again.records)).toEqual(seqRange(11, 20));
        expect(await h.describe(sid)).toMatchObject({ cursor: 21, ackFloor: 10, inFlight: 10, inFlightRanges: [[11, 20]] });
        const rest = await rx(sid, { maxRecords: 100, ack: { ranges: [[11, 20]] } });
        expect(rest.acked).toBe(10);
        expect(seqsOf(rest.records)).toEqual(seqRange(21, 30));
        expect(await h.ack(sid, { ranges: [[21, 30]] })).toBe(10);
        h.clock.advance(5_001);
      }
      // Nothing acked comes back, ever.
      expect((await rx(sid, { maxRecords: 100 })).records).toEqual([]);
      h.clock.advance(5_001);
      expect((await rx(sid, { maxRecords: 100 })).records).toEqual([]);
      expect(await h.describe(sid)).toMatchObject({ cursor: 31, ackFloor: 30, inFlight: 0, deadLettered: 0 });
    },
  );
});
