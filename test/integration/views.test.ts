/**
 * A receive host's view of its last claim (SessionService.views): right after a claim, the host
 * knows the session exactly as that claim left it (the claim's write returns the session as it
 * stood before), and its next receive claims from that without reading, when that is as safe as
 * a fresh read (claimFromView). These tests drive two hosts on one session: the harness's
 * handlers (host A) and a second SessionService on the same store (host B), and check that each
 * case the view cannot settle is read, and that what the view may miss is refused by the claim.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Harness } from '../support/harness';
import { COMPACT_AT, SessionService, type ReceivedRecord } from '../../lambdas/services/sessions';
import { DEFAULT_CONFIG } from '../../lambdas/domain/config';
import type { Range } from '../../lambdas/domain/ranges';

let h: Harness;
let n = 0;
beforeAll(async () => {
  h = await Harness.start();
});
afterAll(async () => h?.close());

const OWNER = 'arn:aws:iam::123456789012:user/alice';
const seqRange = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);
const seqsOf = (recs: readonly { seq: number }[]): number[] => recs.map((r) => r.seq);

async function setup(count: number, settings: Record<string, unknown> = {}): Promise<{ logId: string; sid: string }> {
  const logId = `views-${++n}`;
  await h.createLog(logId);
  await h.append(logId, seqRange(1, count));
  return { logId, sid: await h.openSession(logId, settings) };
}

/** Host A: the harness's receive function, over its HTTP handler. Returns the answer and the storage calls. */
async function onA(sid: string, body: Record<string, unknown>): Promise<{ records: ReceivedRecord[]; acked?: number; calls: string[] }> {
  let out!: { records: ReceivedRecord[]; acked?: number };
  const calls = await h.probe(async () => {
    const r = await h.call<{ records: ReceivedRecord[]; acked?: number }>('POST', `/sessions/${sid}/receive`, body);
    out = r.body;
    return r;
  });
  return { ...out, calls };
}

/** Host B: another receive host on the same store. */
function hostB(): { receive(sid: string, maxRecords: number, ack?: Range[]): Promise<{ records: ReceivedRecord[]; acked: number }> } {
  const svc = new SessionService(h.store, h.clock);
  return { receive: (sid, maxRecords, ack = []) => svc.receiveAndAck(OWNER, sid, { maxRecords, ack }, DEFAULT_CONFIG.delivery) };
}

const READ_AND_CLAIM = ['getSessionWithHead', 'claimSession', 'getChunks'];
const FROM_VIEW = ['claimSession', 'getChunks'];

describe("a receive host's view of its last claim", () => {
  it('acks of records another host sent after the view make the host read: they are counted, not taken for records never sent', async () => {
    const { sid } = await setup(40);
    const b = hostB();
    expect(seqsOf((await onA(sid, { maxRecords: 10 })).records)).toEqual(seqRange(1, 10)); // A's view: cursor 11
    expect(seqsOf((await b.receive(sid, 10)).records)).toEqual(seqRange(11, 20)); // B's claim, after A's view
    // The worker that got 11..20 from B carries their acks on a receive that lands on A.
    const r = await onA(sid, { maxRecords: 10, ack: { ranges: [[11, 20]] } });
    expect(r.calls).toEqual(READ_AND_CLAIM);
    expect(r.acked).toBe(10);
    expect(seqsOf(r.records)).toEqual(seqRange(21, 30));
    expect(await h.describe(sid)).toMatchObject({
      cursor: 31,
      inFlight: 20,
      inFlightRanges: [
        [1, 10],
        [21, 30],
      ],
    });
    // Acks all below A's view (its cursor is 31 now) are taken from it: no read.
    const again = await onA(sid, {
      maxRecords: 10,
      ack: {
        ranges: [
          [1, 10],
          [21, 30],
        ],
      },
    });
    expect(again.calls).toEqual(FROM_VIEW);
    expect([again.acked, seqsOf(again.records)]).toEqual([20, seqRange(31, 40)]);
    expect(await h.describe(sid)).toMatchObject({ cursor: 41, inFlight: 10, inFlightRanges: [[31, 40]] });
  });

  it('a lease in the view that has ended makes the host read, and the expired records go first', async () => {
    const { sid } = await setup(40, { ackTimeoutSeconds: 1 });
    expect(seqsOf((await onA(sid, { maxRecords: 5 })).records)).toEqual(seqRange(1, 5)); // lease ends at t0 + 1 s
    h.clock.advance(800);
    expect((await onA(sid, { maxRecords: 5 })).records.map((x) => x.seq)).toEqual(seqRange(6, 10));
    h.clock.advance(300); // the view is 300 ms old (younger than half the ack timeout); 1..5's lease has ended
    const r = await onA(sid, { maxRecords: 5 });
    expect(r.calls[0]).toBe('getSessionWithHead');
    expect(r.records.map((x) => [x.seq, x.deliveryCount])).toEqual(seqRange(1, 5).map((s) => [s, 2]));
  });

  it('a view older than half the ack timeout is not used, even when younger than VIEW_MAX_AGE_MS', async () => {
    const { sid } = await setup(40, { ackTimeoutSeconds: 1 });
    // The clock stands still but for the advances: the ages below are exact, however long the
    // calls take on a loaded machine (400 ms left 100 ms of real time, and CI once took more).
    const realNow = h.clock.now;
    const t0 = Date.now();
    h.clock.now = () => t0 + h.clock.offsetMs;
    try {
      await onA(sid, { maxRecords: 5 });
      h.clock.advance(400);
      expect((await onA(sid, { maxRecords: 5 })).calls).toEqual(FROM_VIEW);
      h.clock.advance(500); // half of 1 s
      expect((await onA(sid, { maxRecords: 5 })).calls).toEqual(READ_AND_CLAIM);
    } finally {
      h.clock.now = realNow;
    }
  });

  it('when the view cannot show a full batch the host reads, and takes records appended since', async () => {
    const { logId, sid } = await setup(30);
    expect(seqsOf((await onA(sid, { maxRecords: 25 })).records)).toEqual(seqRange(1, 25)); // the view knows 30 records
    await h.append(logId, seqRange(31, 60));
    const r = await onA(sid, { maxRecords: 25 });
    expect(r.calls[0]).toBe('getSessionWithHead');
    expect(seqsOf(r.records)).toEqual(seqRange(26, 50));
  });

  it('claims from stale views on two hosts never put more than maxInFlight in flight', async () => {
    const { sid } = await setup(100, { maxInFlight: 30 });
    const b = hostB();
    expect(seqsOf((await onA(sid, { maxRecords: 10 })).records)).toEqual(seqRange(1, 10)); // A's view: 10 in flight
    expect(seqsOf((await b.receive(sid, 10)).records)).toEqual(seqRange(11, 20)); // B's view: 20 in flight
    // A's view says 10 in flight and room for 20, but the claim's bound counts the 10 B took.
    const a2 = await onA(sid, { maxRecords: 10 });
    expect(a2.calls).toEqual(FROM_VIEW);
    expect(seqsOf(a2.records)).toEqual(seqRange(21, 30));
    // B's view says 20 in flight and room for 10: its claim is refused (A took that room), it
    // reads, and finds no room.
    expect((await b.receive(sid, 10)).records).toEqual([]);
    const after = await onA(sid, { maxRecords: 10 });
    expect(after.records).toEqual([]);
    expect(await h.describe(sid)).toMatchObject({ cursor: 31, inFlight: 30 });
  });

  it('a session deleted by another host is not served from the view: 404', async () => {
    const { sid } = await setup(40);
    await onA(sid, { maxRecords: 10 });
    expect((await h.call('DELETE', `/sessions/${sid}`)).status).toBe(204); // the sessions function: another host
    const r = await h.call('POST', `/sessions/${sid}/receive`, { maxRecords: 10 });
    expect(r.status).toBe(404);
    expect(r.body.error.code).toBe('SessionNotFound');
  });

  it("another owner's receive is not served from the view: 404, and the owner's view still works", async () => {
    const { sid } = await setup(40);
    await onA(sid, { maxRecords: 10 });
    const r = await h.call('POST', `/sessions/${sid}/receive`, { maxRecords: 10 }, 'mallory');
    expect(r.status).toBe(404);
    const mine = await onA(sid, { maxRecords: 10 });
    expect(mine.calls).toEqual(FROM_VIEW);
    expect(seqsOf(mine.records)).toEqual(seqRange(11, 20));
  });

  it('the fold of the claim that makes the pending list COMPACT_AT long reads nothing: it folds the session as the claim returned it', async () => {
    const { sid } = await setup(40);
    let last: string[] = [];
    for (let i = 1; i <= COMPACT_AT; i++) {
      const r = await onA(sid, { maxRecords: 1 });
      expect(seqsOf(r.records)).toEqual([i]);
      last = r.calls;
    }
    // The fold's compaction runs beside the records' query: either may finish first.
    expect([...last].sort()).toEqual(['claimSession', 'compactSession', 'getChunks']);
    const stored = (await h.store.getSession(sid))!;
    expect([stored.claims.length, stored.state.cursor]).toEqual([0, COMPACT_AT + 1]);
    expect(stored.state.leases.flatMap((l) => seqRange(l.from, l.to))).toEqual(seqRange(1, COMPACT_AT));
  });
});
