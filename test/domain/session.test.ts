import { describe, expect, it } from 'vitest';
import type { DeadRange, Lease, Range } from '../../lambdas/domain/ranges';
import {
  ack,
  ackCount,
  afterClaim,
  claimFromView,
  claimLimit,
  dropMissing,
  extend,
  freshRoom,
  isExpired,
  nack,
  planReceive,
  refreshExpiry,
  settle,
  skipTo,
  sweepDead,
  unsend,
  view,
  VIEW_MAX_AGE_MS,
  type AckMark,
  type Claim,
  type SessionState,
  type StoredSession,
} from '../../lambdas/domain/session';
import { fromModel, modelReceive, perSeq, prng, randomLeases, selectedSet, session, T0, toModel, type SeqState } from './model';

const L = (from: number, to: number, leaseMs: number, count: number): Lease => ({ from, to, leaseMs, count });
const NOW = T0 + 3_600_000;
const ACK_MS = 30_000; // SETTINGS.ackTimeoutSeconds
const LEASE = NOW + ACK_MS;

describe('planReceive', () => {
  it('hands out new records from the cursor, with count 1 and lease now + ackTimeout', () => {
    const s = session({ cursor: 1 });
    expect(planReceive(s, NOW, 10, 4)).toEqual([{ from: 1, to: 4, count: 1, leaseMs: LEASE }]);
    expect(s.cursor).toBe(5);
    expect(s.leases).toEqual([L(1, 4, LEASE, 1)]);
  });

  it('stops at lastSeq', () => {
    const s = session({ cursor: 8 });
    expect(planReceive(s, NOW, 10, 100)).toEqual([{ from: 8, to: 10, count: 1, leaseMs: LEASE }]);
    expect(s.cursor).toBe(11);
    const t = session({ cursor: 11 });
    expect(planReceive(t, NOW, 10, 100)).toEqual([]);
    expect(t.cursor).toBe(11);
    const empty = session({ cursor: 1 });
    expect(planReceive(empty, NOW, 0, 100)).toEqual([]); // empty log
    expect(empty.leases).toEqual([]);
  });

  it('uses the session ackTimeout', () => {
    const s = session({}, { ackTimeoutSeconds: 43_200 });
    expect(planReceive(s, NOW, 1, 10)).toEqual([{ from: 1, to: 1, count: 1, leaseMs: NOW + 43_200_000 }]);
  });

  it('hands out expired leases first, oldest sequence first, with count + 1, then new records', () => {
    const s = session({
      cursor: 7,
      leases: [L(1, 2, NOW - 1, 1), L(3, 5, NOW + 10, 1), L(6, 6, NOW, 2)], // a lease ending exactly now is expired
    });
    expect(planReceive(s, NOW, 20, 5)).toEqual([
      { from: 1, to: 2, count: 2, leaseMs: LEASE },
      { from: 6, to: 6, count: 3, leaseMs: LEASE },
      { from: 7, to: 8, count: 1, leaseMs: LEASE },
    ]);
    expect(s.leases).toEqual([L(1, 2, LEASE, 2), L(3, 5, NOW + 10, 1), L(6, 6, LEASE, 3), L(7, 8, LEASE, 1)]);
    expect(s.cursor).toBe(9);
  });

  it('orders redeliveries by sequence, not by how long ago their lease ended', () => {
    const s = session({ cursor: 4, leases: [L(1, 1, NOW - 10, 1), L(2, 2, NOW - 99_999, 1), L(3, 3, NOW - 50, 1)] });
    const grants = planReceive(s, NOW, 3, 2);
    expect(perSeq(grants).map((g) => g.seq)).toEqual([1, 2]);
  });

  it('cuts an expired lease at maxRecords, leaving the rest expired', () => {
    const s = session({ cursor: 11, leases: [L(1, 10, NOW - 5, 1)] });
    expect(planReceive(s, NOW, 50, 4)).toEqual([{ from: 1, to: 4, count: 2, leaseMs: LEASE }]);
    expect(s.leases).toEqual([L(1, 4, LEASE, 2), L(5, 10, NOW - 5, 1)]);
    expect(s.cursor).toBe(11);
  });

  it('never grants a live lease', () => {
    const leases = [L(1, 5, NOW + 1, 1), L(6, 6, NOW + 100_000, 4)];
    const s = session({ cursor: 7, leases });
    expect(planReceive(s, NOW, 6, 100)).toEqual([]);
    expect(s.leases).toEqual(leases);
    expect(s.cursor).toBe(7);
  });

  it('respects maxInFlight, counting live leases', () => {
    const s = session({ cursor: 9, leases: [L(1, 8, NOW + 1000, 1)] }, { maxInFlight: 10 });
    expect(planReceive(s, NOW, 100, 100)).toEqual([{ from: 9, to: 10, count: 1, leaseMs: LEASE }]);
    expect(planReceive(s, NOW, 100, 100)).toEqual([]);
    expect(s.cursor).toBe(11);
  });

  it('counts expired, not yet redelivered records as in flight', () => {
    // 8 expired in flight, maxInFlight 10: after redelivering them, room for 2 new ones only
    const s = session({ cursor: 9, leases: [L(1, 8, NOW - 1, 1)] }, { maxInFlight: 10 });
    expect(planReceive(s, NOW, 100, 100)).toEqual([
      { from: 1, to: 8, count: 2, leaseMs: LEASE },
      { from: 9, to: 10, count: 1, leaseMs: LEASE },
    ]);
    // a budget that does not reach all expired ones still leaves them in flight
    const t = session({ cursor: 9, leases: [L(1, 8, NOW - 1, 1)] }, { maxInFlight: 8 });
    expect(planReceive(t, NOW, 100, 3)).toEqual([{ from: 1, to: 3, count: 2, leaseMs: LEASE }]);
    expect(planReceive(t, NOW + 1, 100, 100)).toEqual([{ from: 4, to: 8, count: 2, leaseMs: NOW + 1 + ACK_MS }]);
    expect(t.cursor).toBe(9);
  });

  it('grants nothing new when the session is already over maxInFlight', () => {
    const s = session({ cursor: 21, leases: [L(1, 20, NOW + 1, 1)] }, { maxInFlight: 10 });
    expect(planReceive(s, NOW, 100, 100)).toEqual([]);
    expect(s.cursor).toBe(21);
  });

  it('dead-letters expired records that used up maxDeliveries and never grants them', () => {
    const s = session(
      {
        cursor: 7,
        leases: [L(1, 3, NOW - 1, 5), L(4, 4, NOW + 1, 5), L(5, 5, NOW, 4), L(6, 6, NOW, 5)],
        dead: [],
      },
      { maxDeliveries: 5 },
    );
    expect(planReceive(s, NOW, 6, 100)).toEqual([{ from: 5, to: 5, count: 5, leaseMs: LEASE }]);
    expect(s.dead).toEqual([
      { from: 1, to: 3, count: 5 },
      { from: 6, to: 6, count: 5 },
    ]);
    expect(s.leases).toEqual([L(4, 4, NOW + 1, 5), L(5, 5, LEASE, 5)]);
    // dead-lettering frees in-flight room
    const t = session({ cursor: 9, leases: [L(1, 8, NOW - 1, 2)] }, { maxDeliveries: 2, maxInFlight: 10 });
    expect(planReceive(t, NOW, 100, 100)).toEqual([{ from: 9, to: 18, count: 1, leaseMs: LEASE }]);
    expect(t.dead).toEqual([{ from: 1, to: 8, count: 2 }]);
  });

  it('with maxDeliveries 1 a record is delivered once and dead-lettered when its lease ends', () => {
    const s = session({}, { maxDeliveries: 1 });
    expect(planReceive(s, NOW, 1, 10)).toEqual([{ from: 1, to: 1, count: 1, leaseMs: LEASE }]);
    expect(planReceive(s, LEASE, 1, 10)).toEqual([]);
    expect(s.dead).toEqual([{ from: 1, to: 1, count: 1 }]);
    expect(s.leases).toEqual([]);
  });

  it('delivers a record exactly maxDeliveries times when it is never acked', () => {
    const s = session({}, { maxDeliveries: 3, ackTimeoutSeconds: 10 });
    const counts: number[] = [];
    let now = NOW;
    for (let i = 0; i < 10; i++) {
      for (const g of planReceive(s, now, 1, 10)) counts.push(g.count);
      now += 10_000;
    }
    expect(counts).toEqual([1, 2, 3]);
    expect(s.dead).toEqual([{ from: 1, to: 1, count: 3 }]);
  });

  it('merges a new grant into an equal neighbouring lease', () => {
    const s = session({ cursor: 4, leases: [L(1, 3, LEASE, 1)] });
    planReceive(s, NOW, 6, 10);
    expect(s.leases).toEqual([L(1, 6, LEASE, 1)]);
  });

  describe('randomized', () => {
    interface Case {
      s: SessionState;
      lastSeq: number;
      now: number;
    }
    const randomCase = (r: ReturnType<typeof prng>): Case => {
      const now = 1_000_000;
      const maxDeliveries = r.int(1, 4);
      // stored lease lists are always coalesced: canonicalize the random one through the model
      const leases = fromModel(toModel(randomLeases(r, now, { maxCount: maxDeliveries })));
      const cursor = (leases.length ? leases[leases.length - 1]!.to : 0) + r.int(1, 3);
      return {
        s: session({ cursor, leases }, { maxDeliveries, maxInFlight: r.int(1, 60), ackTimeoutSeconds: r.int(1, 100) }),
        lastSeq: cursor - 1 + r.int(-1, 25),
        now,
      };
    };
    const copy = (s: SessionState): SessionState => JSON.parse(JSON.stringify(s)) as SessionState;

    it('matches a per-sequence-number model (grants, leases, dead letters, cursor)', () => {
      const r = prng(99);
      for (let c = 0; c < 400; c++) {
        const { s, lastSeq, now } = randomCase(r);
        const maxRecords = r.int(1, 40);
        const label = JSON.stringify({ c, s, lastSeq, maxRecords });
        // the model
        const m = toModel(s.leases);
        const dead = new Map<number, number>();
        const { want, cursor } = modelReceive(m, dead, { now, lastSeq, cursor: s.cursor, maxRecords, settings: s.settings });
        const wantDead: DeadRange[] = [];
        for (const q of [...dead.keys()].sort((a, b) => a - b)) {
          const last = wantDead[wantDead.length - 1];
          if (last && last.to + 1 === q && last.count === dead.get(q)) last.to = q;
          else wantDead.push({ from: q, to: q, count: dead.get(q)! });
        }
        // the code
        const grants = planReceive(s, now, lastSeq, maxRecords);
        expect(perSeq(grants), label).toEqual(want);
        expect(s.leases, label).toEqual(fromModel(m));
        expect(s.dead, label).toEqual(wantDead);
        expect(s.cursor, label).toBe(cursor);
        expect(s.leases.reduce((n, l) => n + l.to - l.from + 1, 0)).toBeLessThanOrEqual(
          Math.max(s.settings.maxInFlight, toModel(JSON.parse(label).s.leases).size),
        );
      }
    });

    it('planning with a smaller maxRecords yields a prefix of the grants of a larger one', () => {
      const r = prng(5);
      for (let c = 0; c < 400; c++) {
        const { s, lastSeq, now } = randomCase(r);
        const big = r.int(1, 60);
        const small = r.int(1, big);
        const a = copy(s);
        const b = copy(s);
        const gBig = perSeq(planReceive(a, now, lastSeq, big));
        const gSmall = perSeq(planReceive(b, now, lastSeq, small));
        const label = JSON.stringify({ c, s, lastSeq, big, small });
        expect(gSmall, label).toEqual(gBig.slice(0, small));
        // and re-planning with exactly the number of records taken reproduces them
        const k = r.int(1, Math.max(1, gBig.length));
        const d = copy(s);
        expect(perSeq(planReceive(d, now, lastSeq, k)), label).toEqual(gBig.slice(0, k));
      }
    });
  });
});

describe('sweepDead', () => {
  it('moves expired leases at or past maxDeliveries to the dead list, merging equal neighbours', () => {
    const s = session(
      {
        leases: [L(3, 4, NOW, 5), L(5, 5, NOW + 1, 5), L(6, 6, NOW - 1, 4), L(7, 8, NOW - 100, 6)],
        dead: [{ from: 1, to: 2, count: 5 }],
      },
      { maxDeliveries: 5 },
    );
    expect(sweepDead(s, NOW)).toBe(4);
    expect(s.dead).toEqual([
      { from: 1, to: 4, count: 5 },
      { from: 7, to: 8, count: 6 },
    ]);
    expect(s.leases).toEqual([L(5, 5, NOW + 1, 5), L(6, 6, NOW - 1, 4)]);
  });

  it('does nothing when no poison lease has expired', () => {
    const leases = [L(1, 1, NOW + 1, 5), L(2, 2, NOW - 1, 1)];
    const s = session({ leases }, { maxDeliveries: 5 });
    expect(sweepDead(s, NOW)).toBe(0);
    expect(s.leases).toEqual(leases);
    expect(s.dead).toEqual([]);
  });
});

describe('dropMissing / skipTo', () => {
  it('dropMissing forgets leased records retention removed and counts them as skipped', () => {
    const s = session({ cursor: 9, skipped: 2, leases: [L(1, 5, NOW + 1, 1), L(7, 8, NOW - 1, 3)] });
    expect(
      dropMissing(s, [
        [2, 3],
        [6, 7],
        [20, 30],
      ]),
    ).toBe(3);
    expect(s.leases).toEqual([L(1, 1, NOW + 1, 1), L(4, 5, NOW + 1, 1), L(8, 8, NOW - 1, 3)]);
    expect(s.skipped).toBe(5);
    expect(dropMissing(s, [[100, 200]])).toBe(0);
    expect(s.skipped).toBe(5);
  });

  it('skipTo moves the cursor forward only, counting the records passed', () => {
    const s = session({ cursor: 5, skipped: 1 });
    expect(skipTo(s, 3)).toBe(0);
    expect(skipTo(s, 5)).toBe(0);
    expect(s).toMatchObject({ cursor: 5, skipped: 1 });
    expect(skipTo(s, 9)).toBe(4);
    expect(s).toMatchObject({ cursor: 9, skipped: 5 });
  });
});

describe('ack', () => {
  it('removes live and expired in-flight records and counts them', () => {
    const s = session({ cursor: 10, leases: [L(1, 5, NOW + 1000, 1), L(8, 9, NOW - 1, 2)] });
    expect(
      ack(s, [
        [3, 4],
        [8, 8],
        [9, 9],
      ]),
    ).toBe(4);
    expect(s.leases).toEqual([L(1, 2, NOW + 1000, 1), L(5, 5, NOW + 1000, 1)]);
  });

  it('counts 0 for unknown, already-acked and never-sent sequence numbers', () => {
    const s = session({ cursor: 6, leases: [L(2, 3, NOW + 1000, 1)] });
    expect(ack(s, [[1, 1]])).toBe(0); // acked before
    expect(ack(s, [[6, 100]])).toBe(0); // never sent (at or past the cursor)
    expect(ack(s, [[4, 5]])).toBe(0); // acked before
    expect(ack(s, [[2, 3]])).toBe(2);
    expect(ack(s, [[2, 3]])).toBe(0); // already acked
    expect(s.leases).toEqual([]);
  });

  it('counts each record once however often the selection names it', () => {
    const s = session({ cursor: 11, leases: [L(1, 10, NOW + 1000, 1)] });
    expect(
      ack(s, [
        [1, 4],
        [2, 2],
        [3, 6],
        [4, 4],
      ]),
    ).toBe(6);
    expect(s.leases).toEqual([L(7, 10, NOW + 1000, 1)]);
  });
});

describe('nack', () => {
  it('sets live leases to now + delay and keeps their count', () => {
    const s = session({ cursor: 6, leases: [L(1, 5, NOW + 10_000, 2)] });
    expect(nack(s, [[2, 3]], NOW, 5)).toBe(2);
    expect(s.leases).toEqual([L(1, 1, NOW + 10_000, 2), L(2, 3, NOW + 5000, 2), L(4, 5, NOW + 10_000, 2)]);
  });

  it('with delay 0 the records are handed out again at once, count + 1', () => {
    const s = session();
    planReceive(s, NOW, 3, 10);
    expect(nack(s, [[1, 3]], NOW + 5, 0)).toBe(3);
    expect(s.leases).toEqual([L(1, 3, NOW + 5, 1)]);
    expect(planReceive(s, NOW + 5, 3, 10)).toEqual([{ from: 1, to: 3, count: 2, leaseMs: NOW + 5 + ACK_MS }]);
  });

  it('sets the lease to exactly now + delay, even when that is later than the current lease', () => {
    const s = session({ cursor: 2, leases: [L(1, 1, NOW + 1000, 1)] });
    expect(nack(s, [[1, 1]], NOW, 60)).toBe(1);
    expect(s.leases).toEqual([L(1, 1, NOW + 60_000, 1)]);
  });

  it('counts 0 for expired leases (including one ending exactly now), unknown and never-sent records', () => {
    const leases = [L(1, 2, NOW, 1), L(3, 3, NOW - 1, 1), L(5, 5, NOW + 1, 1)];
    const s = session({ cursor: 6, leases });
    expect(nack(s, [[1, 3]], NOW, 10)).toBe(0);
    expect(
      nack(
        s,
        [
          [4, 4],
          [6, 50],
        ],
        NOW,
        10,
      ),
    ).toBe(0);
    expect(s.leases).toEqual(leases);
    expect(nack(s, [[1, 5]], NOW, 10)).toBe(1);
    expect(s.leases).toEqual([L(1, 2, NOW, 1), L(3, 3, NOW - 1, 1), L(5, 5, NOW + 10_000, 1)]);
  });

  it('merges with neighbours that end up with the same lease', () => {
    const s = session({ cursor: 10, leases: [L(1, 3, NOW + 5000, 1), L(4, 9, NOW + 20_000, 1)] });
    expect(nack(s, [[4, 9]], NOW, 5)).toBe(6);
    expect(s.leases).toEqual([L(1, 9, NOW + 5000, 1)]);
  });
});

describe('extend', () => {
  it('lengthens live leases to now + seconds, never shortens, skips expired ones, counts live records selected', () => {
    const s = session({
      cursor: 20,
      leases: [L(1, 3, NOW + 1000, 1), L(4, 5, NOW + 100_000, 2), L(6, 7, NOW, 1), L(8, 8, NOW - 5, 3)],
    });
    expect(
      extend(
        s,
        [
          [1, 9],
          [15, 30],
        ],
        NOW,
        60,
      ),
    ).toBe(5);
    expect(s.leases).toEqual([L(1, 3, NOW + 60_000, 1), L(4, 5, NOW + 100_000, 2), L(6, 7, NOW, 1), L(8, 8, NOW - 5, 3)]);
  });

  it('counts 0 for unknown, already-acked and never-sent records', () => {
    const s = session({ cursor: 5, leases: [L(2, 2, NOW + 1, 1)] });
    expect(
      extend(
        s,
        [
          [1, 1],
          [3, 4],
          [5, 10],
        ],
        NOW,
        30,
      ),
    ).toBe(0);
    expect(s.leases).toEqual([L(2, 2, NOW + 1, 1)]);
  });

  it('counts a live lease already longer than asked, without changing it', () => {
    const s = session({ cursor: 3, leases: [L(1, 2, NOW + 90_000, 1)] });
    expect(extend(s, [[1, 2]], NOW, 30)).toBe(2);
    expect(s.leases).toEqual([L(1, 2, NOW + 90_000, 1)]);
  });

  it('extended records are not handed out again until the new lease ends', () => {
    const s = session();
    planReceive(s, NOW, 1, 10); // lease NOW + 30 s
    expect(extend(s, [[1, 1]], NOW + 20_000, 60)).toBe(1);
    expect(planReceive(s, NOW + 40_000, 1, 10)).toEqual([]);
    expect(planReceive(s, NOW + 80_000, 1, 10)).toEqual([{ from: 1, to: 1, count: 2, leaseMs: NOW + 80_000 + ACK_MS }]);
  });
});

describe('view', () => {
  it('reports cursor, ackFloor, inFlight, ranges, dead letters (with expired poison), lag, skipped and expiry', () => {
    const leases = [L(5, 6, NOW + 1000, 1), L(7, 9, NOW + 1000, 2), L(12, 12, NOW - 1, 5), L(15, 15, NOW - 1, 1)];
    const stored = session(
      { cursor: 21, leases, dead: [{ from: 1, to: 2, count: 5 }], deadSpilled: 10, skipped: 3, expiresMs: T0 + 86_400_000 },
      { maxDeliveries: 5 },
    );
    const snapshot = JSON.parse(JSON.stringify(stored)) as SessionState;
    expect(view(stored, NOW, 30)).toEqual({
      sessionId: 's-AAAAAAAAAAAAAAAAAAAAAA',
      logId: 'app',
      cursor: 21,
      ackFloor: 4,
      inFlight: 6,
      inFlightRanges: [
        [5, 9],
        [15, 15],
      ],
      deadLettered: 13,
      lag: 10,
      skippedByRetention: 3,
      expiresAt: '2025-01-02T00:00:00.000Z',
      settings: { ackTimeoutSeconds: 30, maxInFlight: 1000, maxDeliveries: 5, idleTimeoutSeconds: 86_400 },
    });
    expect(stored).toEqual(snapshot); // view does not change the stored state
  });

  it('ackFloor is cursor - 1 with nothing in flight, and skips a first record that is dead-lettered', () => {
    expect(view(session({ cursor: 1 }), NOW, 0).ackFloor).toBe(0);
    expect(view(session({ cursor: 42 }), NOW, 41).ackFloor).toBe(41);
    const s = session({ cursor: 4, leases: [L(1, 1, NOW - 1, 5), L(3, 3, NOW + 1, 1)] }, { maxDeliveries: 5 });
    expect(view(s, NOW, 3)).toMatchObject({ ackFloor: 2, inFlight: 1, inFlightRanges: [[3, 3]], deadLettered: 1 });
  });

  it('lag is 0 when caught up', () => {
    expect(view(session({ cursor: 11 }), NOW, 10).lag).toBe(0);
    expect(view(session({ cursor: 20 }), NOW, 10).lag).toBe(0);
    expect(view(session({ cursor: 10 }), NOW, 10).lag).toBe(1);
  });
});

describe('refreshExpiry', () => {
  const idle = (seconds: number, expiresMs: number): SessionState => session({ expiresMs }, { idleTimeoutSeconds: seconds });

  it('leaves the expiry while it is still at least one idle timeout away', () => {
    const s = idle(300, NOW + 300_000);
    expect(refreshExpiry(s, NOW)).toBe(false);
    expect(s.expiresMs).toBe(NOW + 300_000);
  });

  it('moves it to 1.1 idle timeouts from now once it is closer than one timeout', () => {
    const s = idle(300, NOW + 300_000);
    expect(refreshExpiry(s, NOW + 1)).toBe(true);
    expect(s.expiresMs).toBe(NOW + 1 + 330_000);
  });

  it('never moves the expiry backwards', () => {
    const s = idle(600, NOW + 10_000_000);
    expect(refreshExpiry(s, NOW)).toBe(false);
    expect(s.expiresMs).toBe(NOW + 10_000_000);
  });

  it('a session last used at t is alive until t + idle and gone by t + 1.1 idle, for any pattern of use', () => {
    for (const secs of [60, 300, 86_400, 604_800]) {
      const idleMs = secs * 1000;
      const s = idle(secs, NOW + idleMs);
      let t = NOW;
      for (const dt of [1, idleMs / 20, idleMs / 10 - 1, idleMs / 3, 7, idleMs - 1]) {
        t += dt;
        expect(isExpired(s, t), `idle ${secs} at +${t - NOW}`).toBe(false);
        refreshExpiry(s, t);
      }
      expect(isExpired(s, t + idleMs - 1), `idle ${secs}`).toBe(false);
      expect(isExpired(s, t + Math.floor(1.1 * idleMs)), `idle ${secs}`).toBe(true);
    }
  });

  it('writes at most once per tenth of the idle timeout of continuous use', () => {
    const s = idle(60, NOW + 60_000);
    let writes = 0;
    for (let now = NOW; now < NOW + 600_000; now += 100) if (refreshExpiry(s, now)) writes++;
    // 600 s of use every 100 ms with a 6 s slack: about 100 writes, not 6000.
    expect(writes).toBeGreaterThanOrEqual(99);
    expect(writes).toBeLessThanOrEqual(101);
  });
});

describe('isExpired', () => {
  it('is true at and after expiresMs', () => {
    expect(isExpired(session({ expiresMs: NOW }), NOW - 1)).toBe(false);
    expect(isExpired(session({ expiresMs: NOW }), NOW)).toBe(true);
    expect(isExpired(session({ expiresMs: NOW }), NOW + 1)).toBe(true);
  });
});

describe('randomized session simulation against a per-sequence-number model', () => {
  it('receive / ack / nack / extend / view over time agree with the model', () => {
    const r = prng(2024);
    for (let run = 0; run < 60; run++) {
      const settings = {
        ackTimeoutSeconds: r.int(1, 5),
        maxInFlight: r.int(1, 30),
        maxDeliveries: r.int(1, 4),
        idleTimeoutSeconds: 86_400,
      };
      const s = session({}, settings);
      const m = new Map<number, SeqState>();
      const dead = new Map<number, number>();
      const delivered = new Map<number, number>(); // seq -> times handed out
      let cursor = 1;
      let lastSeq = 0;
      let now = NOW;
      for (let step = 0; step < 80; step++) {
        now += r.pick([0, 1, 500, 1000, 3000, 6000]);
        lastSeq += r.pick([0, 0, 1, 3, 10]);
        const op = r.int(0, 4);
        const sel: Range[] = [];
        for (let i = r.int(1, 3); i > 0; i--) {
          const a = r.int(1, lastSeq + 3);
          sel.push([a, a + r.int(0, 4)]);
        }
        const label = JSON.stringify({ run, step, op, sel, now, lastSeq });
        if (op <= 1) {
          const maxRecords = r.int(1, 12);
          const model = modelReceive(m, dead, { now, lastSeq, cursor, maxRecords, settings });
          const want = model.want;
          cursor = model.cursor;
          const got = perSeq(planReceive(s, now, lastSeq, maxRecords));
          expect(got, label).toEqual(want);
          for (const g of got) delivered.set(g.seq, (delivered.get(g.seq) ?? 0) + 1);
        } else if (op === 2) {
          let n = 0;
          for (const q of selectedSet(sel)) if (m.delete(q)) n++;
          expect(ack(s, sel), label).toBe(n);
        } else if (op === 3) {
          const delay = r.pick([0, 1, 2]);
          let n = 0;
          for (const q of selectedSet(sel)) {
            const v = m.get(q);
            if (v && v.leaseMs > now) {
              v.leaseMs = now + delay * 1000;
              n++;
            }
          }
          expect(nack(s, sel, now, delay), label).toBe(n);
        } else {
          const secs = r.pick([1, 2, 10]);
          let n = 0;
          for (const q of selectedSet(sel)) {
            const v = m.get(q);
            if (v && v.leaseMs > now) {
              v.leaseMs = Math.max(v.leaseMs, now + secs * 1000);
              n++;
            }
          }
          expect(extend(s, sel, now, secs), label).toBe(n);
        }
        expect(s.leases, label).toEqual(fromModel(m));
        expect(s.cursor, label).toBe(cursor);
        // view, against the model after a (copy) sweep
        const mv = new Map([...m].filter(([, v]) => !(v.leaseMs <= now && v.count >= settings.maxDeliveries)));
        const deadNow = dead.size + (m.size - mv.size);
        const inFlightSeqs = [...mv.keys()].sort((a, b) => a - b);
        const ranges: [number, number][] = [];
        for (const q of inFlightSeqs) {
          const last = ranges[ranges.length - 1];
          if (last && last[1] + 1 === q) last[1] = q;
          else ranges.push([q, q]);
        }
        expect(view(s, now, lastSeq), label).toMatchObject({
          cursor,
          ackFloor: inFlightSeqs.length ? inFlightSeqs[0]! - 1 : cursor - 1,
          inFlight: mv.size,
          inFlightRanges: ranges,
          deadLettered: deadNow,
          lag: Math.max(0, lastSeq - cursor + 1),
        });
        // invariants of the contract
        expect(m.size).toBeLessThanOrEqual(settings.maxInFlight);
        for (const [, n] of delivered) expect(n).toBeLessThanOrEqual(settings.maxDeliveries);
      }
    }
  });
});

const stored = (state: SessionState, claims: Claim[] = [], acks: AckMark[] = []): StoredSession => ({ state, claims, acks });
const snap = <T>(x: T): T => JSON.parse(JSON.stringify(x)) as T;

describe('settle', () => {
  const A = NOW + 10_000;
  const B = NOW + 20_000;

  it('with nothing pending returns the compacted state unchanged', () => {
    const st = session({ cursor: 7, leases: [L(2, 3, A, 1), L(5, 6, B, 2)], dead: [{ from: 1, to: 1, count: 5 }], skipped: 4, version: 9 });
    expect(settle(stored(st))).toEqual(snap(st));
  });

  it('turns claims into count-1 leases from the compacted cursor, in order, and moves the cursor past them', () => {
    const st = session({ cursor: 10, version: 3 });
    const s = settle(
      stored(st, [
        { n: 3, leaseMs: A },
        { n: 2, leaseMs: B },
      ]),
    );
    expect(s.leases).toEqual([L(10, 12, A, 1), L(13, 14, B, 1)]);
    expect(s.cursor).toBe(15);
    // nothing else changes
    expect({ ...s, leases: [], cursor: 0 }).toEqual({ ...snap(st), leases: [], cursor: 0 });
  });

  it('a claim of 0 records adds nothing and does not move the cursor', () => {
    const s = settle(
      stored(session({ cursor: 10 }), [
        { n: 2, leaseMs: A },
        { n: 0, leaseMs: NOW },
        { n: 1, leaseMs: B },
      ]),
    );
    expect(s.leases).toEqual([L(10, 11, A, 1), L(12, 12, B, 1)]);
    expect(s.cursor).toBe(13);
  });

  it('merges claims with an equal touching neighbour (compacted or claimed), and only then', () => {
    // touching, same lease and count: one range
    expect(
      settle(
        stored(session({ cursor: 10, leases: [L(5, 9, A, 1)] }), [
          { n: 2, leaseMs: A },
          { n: 3, leaseMs: A },
          { n: 1, leaseMs: B },
        ]),
      ).leases,
    ).toEqual([L(5, 14, A, 1), L(15, 15, B, 1)]);
    // same lease but the compacted range was redelivered (count 2): no merge
    expect(settle(stored(session({ cursor: 10, leases: [L(5, 9, A, 2)] }), [{ n: 2, leaseMs: A }])).leases).toEqual([
      L(5, 9, A, 2),
      L(10, 11, A, 1),
    ]);
    // same lease and count but 8 and 9 were acked: not touching, no merge
    expect(settle(stored(session({ cursor: 10, leases: [L(5, 7, A, 1)] }), [{ n: 2, leaseMs: A }])).leases).toEqual([
      L(5, 7, A, 1),
      L(10, 11, A, 1),
    ]);
    // claims A, B, A: three ranges
    expect(
      settle(
        stored(session({ cursor: 1 }), [
          { n: 1, leaseMs: A },
          { n: 1, leaseMs: B },
          { n: 1, leaseMs: A },
        ]),
      ).leases,
    ).toEqual([L(1, 1, A, 1), L(2, 2, B, 1), L(3, 3, A, 1)]);
  });

  it('acks remove the named records from compacted and claimed leases', () => {
    const st = session({ cursor: 11, leases: [L(1, 10, A, 1)] });
    const s = settle(
      stored(
        st,
        [{ n: 5, leaseMs: B }], // 11..15
        [
          { from: 3, to: 4, atMs: NOW },
          { from: 9, to: 12, atMs: NOW },
        ],
      ),
    );
    expect(s.leases).toEqual([L(1, 2, A, 1), L(5, 8, A, 1), L(13, 15, B, 1)]);
    expect(s.cursor).toBe(16);
  });

  it('an ack removes a merged claim range only in part, splitting it', () => {
    const s = settle(
      stored(
        session({ cursor: 1 }),
        [
          { n: 3, leaseMs: A },
          { n: 3, leaseMs: A },
        ],
        [{ from: 3, to: 4, atMs: NOW }],
      ),
    );
    expect(s.leases).toEqual([L(1, 2, A, 1), L(5, 6, A, 1)]);
  });

  it('an ack leaves records that were already dead letters when it was made (lease over and deliveries used up)', () => {
    const leases = [
      L(1, 2, NOW, 3), // lease ends exactly at the ack, count = max: dead at NOW, stays
      L(3, 3, NOW + 1, 3), // count = max but lease still running at NOW: acked
      L(4, 4, NOW - 100, 2), // expired but one delivery left: acked
      L(5, 5, NOW - 100, 4), // expired, count above max: dead, stays
    ];
    const st = session({ cursor: 6, leases }, { maxDeliveries: 3 });
    expect(settle(stored(st, [], [{ from: 1, to: 5, atMs: NOW }])).leases).toEqual([L(1, 2, NOW, 3), L(5, 5, NOW - 100, 4)]);
    // the same ack made one millisecond earlier: 1-2 were still leased then, so it removes them
    expect(settle(stored(st, [], [{ from: 1, to: 5, atMs: NOW - 1 }])).leases).toEqual([L(5, 5, NOW - 100, 4)]);
    // the rule is per record part: an ack naming only 2 of the dead range 1-2 leaves it whole
    expect(settle(stored(st, [], [{ from: 2, to: 2, atMs: NOW + 5 }])).leases).toEqual(leases);
  });

  it('with maxDeliveries 1 an ack after a claimed lease ended does not remove it', () => {
    const st = session({ cursor: 1 }, { maxDeliveries: 1 });
    const claims = [{ n: 2, leaseMs: NOW }];
    expect(settle(stored(st, claims, [{ from: 1, to: 2, atMs: NOW }])).leases).toEqual([L(1, 2, NOW, 1)]);
    expect(settle(stored(st, claims, [{ from: 1, to: 2, atMs: NOW - 1 }])).leases).toEqual([]);
    // with maxDeliveries 2 the record has one delivery left, so the late ack removes it
    expect(settle(stored(session({ cursor: 1 }, { maxDeliveries: 2 }), claims, [{ from: 1, to: 2, atMs: NOW + 60_000 }])).leases).toEqual(
      [],
    );
  });

  it('acks naming records that are not leased change nothing', () => {
    const st = session({ cursor: 10, leases: [L(3, 4, A, 1)], dead: [{ from: 1, to: 2, count: 5 }] });
    const s = settle(
      stored(
        st,
        [],
        [
          { from: 1, to: 2, atMs: NOW }, // dead letters
          { from: 5, to: 9, atMs: NOW }, // acked before
          { from: 20, to: 30, atMs: NOW }, // never sent
        ],
      ),
    );
    expect(s).toEqual(snap(st));
  });

  it('does not change its input, and the result can be changed without touching the input', () => {
    const input = stored(
      session({ cursor: 11, leases: [L(1, 10, A, 1)], dead: [{ from: 0, to: 0, count: 5 }], deadPages: ['p1'] }),
      [{ n: 4, leaseMs: B }],
      [{ from: 2, to: 12, atMs: NOW }],
    );
    const before = snap(input);
    const s = settle(input);
    expect(input).toEqual(before);
    expect(s.leases).toEqual([L(1, 1, A, 1), L(13, 14, B, 1)]);
    // mutate the result as the services do
    planReceive(s, B + 1, 100, 100);
    sweepDead(s, B + 1_000_000);
    s.deadPages.push('p2');
    s.leases[0]!.count = 99;
    expect(input).toEqual(before);
  });
});

describe('ackCount', () => {
  const leases = [L(1, 3, NOW + 1000, 1), L(4, 5, NOW - 1, 2), L(6, 6, NOW, 3), L(8, 9, NOW - 5, 3)];
  const settled = (): SessionState => session({ cursor: 10, leases }, { maxDeliveries: 3 });

  it('counts selected records still leased after the sweep at now', () => {
    // at NOW: 6 (lease ends at NOW, count 3) and 8-9 are dead; 4-5 expired but have a delivery left; 7 is not leased
    expect(ackCount(settled(), [[2, 9]], NOW)).toBe(4); // 2, 3, 4, 5
    expect(ackCount(settled(), [[6, 9]], NOW)).toBe(0);
    // a millisecond earlier 6 is still leased
    expect(ackCount(settled(), [[1, 9]], NOW - 1)).toBe(6); // 1..6
    expect(ackCount(settled(), [[1, 9]], NOW - 6)).toBe(8); // 1..6, 8, 9
  });

  it('counts each record once however often the selection names it', () => {
    expect(
      ackCount(
        settled(),
        [
          [1, 2],
          [2, 3],
          [3, 3],
          [1, 1],
          [2, 2],
        ],
        NOW,
      ),
    ).toBe(3);
  });

  it('counts nothing for records not leased', () => {
    expect(
      ackCount(
        settled(),
        [
          [7, 7],
          [10, 50],
        ],
        NOW,
      ),
    ).toBe(0);
    expect(ackCount(settled(), [], NOW)).toBe(0);
  });

  it('does not change the session', () => {
    const s = settled();
    const before = snap(s);
    ackCount(s, [[1, 9]], NOW + 10_000);
    expect(s).toEqual(before);
  });
});

describe('claimLimit / freshRoom', () => {
  // 10 records in flight (11-20), cursor 21, maxInFlight 15: room for 5 more
  const settled = (maxInFlight = 15): SessionState => session({ cursor: 21, leases: [L(11, 20, LEASE, 1)] }, { maxInFlight });

  it('claimLimit is bounded by maxInFlight or by the log end, whichever is lower', () => {
    // min(40 + 1 - 3, 21 + 5 - 3) = min(38, 23)
    expect(claimLimit(settled(), 40, 3)).toBe(23);
    // min(22 + 1 - 2, 21 + 5 - 2) = min(21, 24)
    expect(claimLimit(settled(), 22, 2)).toBe(21);
    // more than the room: min(35, 20) = 20, below the cursor, so no claim can land
    expect(claimLimit(settled(), 40, 6)).toBe(20);
  });

  it('a claim landing at any cursor up to the limit stays within lastSeq and maxInFlight, one past it does not', () => {
    // Other claims may land first, each moving the cursor by its size and adding that many
    // records in flight: at cursor c the session has 10 + (c - 21) in flight.
    const check = (lastSeq: number, n: number, limit: number): void => {
      expect(claimLimit(settled(), lastSeq, n)).toBe(limit);
      for (let c = 21; c <= limit; c++) {
        expect(c + n - 1, `c=${c}`).toBeLessThanOrEqual(lastSeq);
        expect(10 + (c - 21) + n, `c=${c}`).toBeLessThanOrEqual(15);
      }
      const c = limit + 1;
      expect(c + n - 1 > lastSeq || 10 + (c - 21) + n > 15).toBe(true);
    };
    check(40, 3, 23); // at 23: records 23-25, 10 + 2 + 3 = 15 in flight; at 24 it would be 16
    check(22, 2, 21); // at 21: records 21-22 = lastSeq; at 22 record 23 does not exist
    check(23, 1, 23); // both bounds equal: at 23 record 23, 10 + 2 + 1 = 13 in flight; at 24 past the log
  });

  it('freshRoom is min(maxRecords, maxInFlight - inFlight, lastSeq - cursor + 1), never negative', () => {
    expect(freshRoom(settled(), 40, 3)).toBe(3); // maxRecords
    expect(freshRoom(settled(), 40, 100)).toBe(5); // in-flight room
    expect(freshRoom(settled(), 22, 100)).toBe(2); // log end: 21, 22
    expect(freshRoom(settled(), 20, 100)).toBe(0); // caught up
    expect(freshRoom(settled(), 15, 100)).toBe(0); // lastSeq behind the cursor
    expect(freshRoom(settled(8), 40, 100)).toBe(0); // already over maxInFlight
    expect(freshRoom(settled(10), 40, 100)).toBe(0); // exactly at maxInFlight
  });

  it('a claim of freshRoom records may land at the snapshot cursor', () => {
    for (const [lastSeq, maxRecords] of [
      [40, 3],
      [40, 100],
      [22, 100],
    ] as const) {
      const n = freshRoom(settled(), lastSeq, maxRecords);
      expect(n).toBeGreaterThan(0);
      expect(claimLimit(settled(), lastSeq, n)).toBeGreaterThanOrEqual(21);
    }
  });
});

describe('claimFromView / afterClaim', () => {
  // The view: 10 records in flight (11-20, lease ends at LEASE), cursor 21, maxInFlight 100.
  const fresh = (over: Partial<SessionState> = {}, ackTimeoutSeconds = 30): SessionState =>
    session({ cursor: 21, leases: [L(11, 20, LEASE, 1)], expiresMs: NOW + 3_600_000, ...over }, { maxInFlight: 100, ackTimeoutSeconds });

  it('allows a full batch from a young view with live leases, room and the records', () => {
    expect(claimFromView(fresh(), 0, NOW, 40, 10, 0)).toBe(10);
    expect(claimFromView(fresh(), VIEW_MAX_AGE_MS - 1, NOW, 40, 10, 20)).toBe(10); // acks below its cursor
  });

  it('refuses a view as old as VIEW_MAX_AGE_MS, or as half the ack timeout when that is shorter, or from the future', () => {
    expect(claimFromView(fresh(), VIEW_MAX_AGE_MS, NOW, 40, 10, 0)).toBe(0);
    expect(claimFromView(fresh({}, 1), 499, NOW, 40, 10, 0)).toBe(10);
    expect(claimFromView(fresh({}, 1), 500, NOW, 40, 10, 0)).toBe(0);
    expect(claimFromView(fresh(), -1, NOW, 40, 10, 0)).toBe(0); // the clock went back: read
  });

  it('refuses when the session expired, when a lease ended, or when acks name records at or past its cursor', () => {
    expect(claimFromView(fresh({ expiresMs: NOW }), 0, NOW, 40, 10, 0)).toBe(0);
    expect(claimFromView(fresh({ leases: [L(11, 20, NOW, 1)] }), 0, NOW, 40, 10, 0)).toBe(0);
    expect(claimFromView(fresh({ leases: [L(11, 15, LEASE, 1), L(16, 16, NOW - 1, 2)] }), 0, NOW, 40, 10, 0)).toBe(0);
    expect(claimFromView(fresh(), 0, NOW, 40, 10, 21)).toBe(0);
  });

  it('refuses when it cannot show a full batch: the log end or maxInFlight nearer than maxRecords', () => {
    expect(claimFromView(fresh(), 0, NOW, 29, 10, 0)).toBe(0); // 21..29: 9 records
    expect(claimFromView(fresh(), 0, NOW, 30, 10, 0)).toBe(10); // 21..30
    expect(
      claimFromView(session({ cursor: 21, leases: [L(11, 20, LEASE, 1)], expiresMs: NOW + 1 }, { maxInFlight: 19 }), 0, NOW, 40, 10, 0),
    ).toBe(0);
  });

  it('afterClaim is the session as the claim left it: its records leased from the cursor, its acks applied', () => {
    const before: StoredSession = { state: fresh(), claims: [{ n: 5, leaseMs: LEASE + 1 }], acks: [] }; // 21-25 claimed since
    const marks: AckMark[] = [{ from: 11, to: 14, atMs: NOW }];
    const after = afterClaim(before, 10, LEASE + 2, NOW + 99, marks);
    const s = settle(after);
    expect(s.cursor).toBe(36);
    expect(s.expiresMs).toBe(NOW + 99);
    expect(s.leases).toEqual([L(15, 20, LEASE, 1), L(21, 25, LEASE + 1, 1), L(26, 35, LEASE + 2, 1)]);
    expect(before.claims).toHaveLength(1); // not changed in place
  });
});

describe('unsend', () => {
  it('releases exactly the claimed parts: count 0, lease ending now', () => {
    const s = session({ cursor: 5, leases: [L(1, 4, LEASE, 1)] });
    expect(unsend(s, [[2, 3]], LEASE, NOW + 5)).toBe(2);
    expect(s.leases).toEqual([L(1, 1, LEASE, 1), L(2, 3, NOW + 5, 0), L(4, 4, LEASE, 1)]);
    expect(s.cursor).toBe(5);
  });

  it('leaves parts with another lease, a redelivered count, or no lease at all', () => {
    const s = session({ cursor: 9, leases: [L(1, 2, LEASE, 1), L(3, 4, LEASE + 1, 1), L(5, 6, LEASE, 2)] });
    expect(unsend(s, [[1, 8]], LEASE, NOW)).toBe(2);
    expect(s.leases).toEqual([L(1, 2, NOW, 0), L(3, 4, LEASE + 1, 1), L(5, 6, LEASE, 2)]);
    const t = session({ cursor: 9, leases: [L(3, 4, LEASE, 1)] });
    expect(
      unsend(
        t,
        [
          [1, 2],
          [5, 8],
        ],
        LEASE,
        NOW,
      ),
    ).toBe(0);
    expect(t.leases).toEqual([L(3, 4, LEASE, 1)]);
  });

  it('unsent records are handed out again as a first delivery and are not dead-lettered, even with maxDeliveries 1', () => {
    const s = session({ cursor: 5, leases: [L(1, 4, LEASE, 1)] }, { maxDeliveries: 1 });
    expect(unsend(s, [[3, 4]], LEASE, NOW)).toBe(2);
    const probe = snap(s);
    expect(sweepDead(probe, NOW + 1000)).toBe(0);
    expect(probe.dead).toEqual([]);
    // a receive right away (the unsent lease ends at NOW, so it is expired at NOW)
    expect(planReceive(s, NOW, 4, 10)).toEqual([{ from: 3, to: 4, count: 1, leaseMs: LEASE }]);
    expect(s.dead).toEqual([]);
    expect(s.leases).toEqual([L(1, 4, LEASE, 1)]); // same as if they had been sent the first time
    // and only now, once that delivery's lease ends, are they dead letters
    expect(planReceive(s, LEASE, 4, 10)).toEqual([]);
    expect(s.dead).toEqual([{ from: 1, to: 4, count: 1 }]);
    // a later receive, not at the same millisecond
    const t = session({ cursor: 5, leases: [L(1, 4, LEASE, 1)] }, { maxDeliveries: 1 });
    unsend(t, [[1, 4]], LEASE, NOW);
    expect(planReceive(t, NOW + 7000, 4, 10)).toEqual([{ from: 1, to: 4, count: 1, leaseMs: NOW + 7000 + ACK_MS }]);
    expect(t.dead).toEqual([]);
  });
});

describe('settle, randomized against a per-sequence-number model', () => {
  it('claims and acks applied one by one to the model give the settled leases, cursor and ack counts', () => {
    const r = prng(4242);
    const now = 1_000_000;
    const times = [now - 5000, now - 1, now, now + 1, now + 1000, now + 30_000];
    let acksSeen = 0;
    let deadKept = 0;
    for (let c = 0; c < 500; c++) {
      const maxDeliveries = r.int(1, 4);
      const raw = randomLeases(r, now, { maxCount: maxDeliveries + 1 });
      for (const l of raw) if (r.next() < 0.1) l.count = 0; // unsent records
      // stored lease lists are coalesced: canonicalize through the model
      const leases = fromModel(toModel(raw));
      const cursor0 = (leases.length ? leases[leases.length - 1]!.to : 0) + r.int(1, 3);
      const state = session({ cursor: cursor0, leases, dead: [{ from: 0, to: 0, count: 1 }] }, { maxDeliveries });
      const claims: Claim[] = [];
      const acks: AckMark[] = [];
      // the model: one entry per leased sequence number, operations applied in the order made
      const m = new Map<number, SeqState>();
      for (const l of leases) for (let q = l.from; q <= l.to; q++) m.set(q, { leaseMs: l.leaseMs, count: l.count });
      let cursor = cursor0;
      for (let i = r.int(0, 14); i > 0; i--) {
        if (r.next() < 0.5) {
          const claim = { n: r.pick([0, 1, 1, 2, 3, 5]), leaseMs: r.pick(times) };
          claims.push(claim);
          for (let k = 0; k < claim.n; k++) m.set(cursor + k, { leaseMs: claim.leaseMs, count: 1 });
          cursor += claim.n;
        } else {
          // an ack only names records the cursor had passed when it was made (the service clips)
          if (cursor <= 1) continue;
          const from = r.int(1, cursor - 1);
          const mark = { from, to: Math.min(cursor - 1, from + r.int(0, 6)), atMs: r.pick(times) };
          acks.push(mark);
          acksSeen++;
          for (let q = mark.from; q <= mark.to; q++) {
            const v = m.get(q);
            if (!v) continue;
            if (v.leaseMs <= mark.atMs && v.count >= maxDeliveries) deadKept++;
            else m.delete(q);
          }
        }
      }
      const input = stored(state, claims, acks);
      const before = snap(input);
      const label = JSON.stringify({ c, before });
      const s = settle(input);
      expect(input, label).toEqual(before);
      expect(s.leases, label).toEqual(fromModel(m));
      expect(s.cursor, label).toBe(cursor);
      expect({ ...s, leases: [], cursor: 0 }, label).toEqual({ ...before.state, leases: [], cursor: 0 });
      // ackCount against the model: selected records present and not dead at the ack's time
      const at = r.pick(times);
      const sel: Range[] = [];
      for (let i = r.int(0, 3); i >= 0; i--) {
        const a = r.int(0, cursor + 2);
        sel.push([a, a + r.int(0, 8)]);
      }
      let want = 0;
      for (const q of selectedSet(sel)) {
        const v = m.get(q);
        if (v && !(v.leaseMs <= at && v.count >= maxDeliveries)) want++;
      }
      const settledBefore = snap(s);
      expect(ackCount(s, sel, at), JSON.stringify({ label, sel, at })).toBe(want);
      expect(s).toEqual(settledBefore);
    }
    // the cases exercised both branches of the ack rule
    expect(acksSeen).toBeGreaterThan(500);
    expect(deadKept).toBeGreaterThan(20);
  });
});

describe('release counter (mutation survivors: nack/unsend must bump `releases`)', () => {
  // A claim requires `releases` unchanged since its read; if nack or unsend stopped counting,
  // a racing receive could take fresh records past records released after its read.
  it('nack bumps releases once when it ends a live lease early, and not when it touches nothing', () => {
    const s = session({ cursor: 6, leases: [L(1, 5, NOW + 10_000, 1)], releases: 7 });
    expect(nack(s, [[1, 2]], NOW, 0)).toBe(2);
    expect(s.releases).toBe(8);
    expect(nack(s, [[20, 30]], NOW, 0)).toBe(0);
    expect(s.releases).toBe(8);
  });

  it('unsend bumps releases once when it gives records back, and not when it touches nothing', () => {
    const s = session({ cursor: 5, leases: [L(1, 4, LEASE, 1)], releases: 3 });
    expect(unsend(s, [[3, 4]], LEASE, NOW)).toBe(2);
    expect(s.releases).toBe(4);
    expect(unsend(s, [[1, 2]], LEASE + 1, NOW)).toBe(0); // another claim's lease: untouched
    expect(s.releases).toBe(4);
  });
});

describe('settle keeps what it does not fold (mutation survivor: dropping spilled dead-letter page keys)', () => {
  it('keeps deadPages, deadSpilled, dead and releases of the stored state', () => {
    const st = session({
      cursor: 3,
      leases: [L(1, 2, LEASE, 1)],
      dead: [{ from: 0, to: 0, count: 5 }],
      deadPages: ['page-a', 'page-b'],
      deadSpilled: 40,
      releases: 2,
    });
    for (const acks of [[], [{ from: 1, to: 1, atMs: NOW }]]) {
      const s = settle({ state: st, claims: [{ n: 2, leaseMs: LEASE + 1 }], acks });
      expect(s.deadPages).toEqual(['page-a', 'page-b']);
      expect(s.deadSpilled).toBe(40);
      expect(s.dead).toEqual([{ from: 0, to: 0, count: 5 }]);
      expect(s.releases).toBe(2);
      expect(s.cursor).toBe(5);
    }
  });
});
