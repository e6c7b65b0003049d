import { describe, expect, it } from 'vitest';
import type { DeadRange, Lease, Range } from '../../lambdas/domain/ranges';
import {
  ack,
  dropMissing,
  extend,
  isExpired,
  nack,
  planReceive,
  refreshExpiry,
  skipTo,
  sweepDead,
  view,
  type SessionState,
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
    expect(dropMissing(s, [[2, 3], [6, 7], [20, 30]])).toBe(3);
    expect(s.leases).toEqual([L(1, 1, NOW + 1, 1), L(4, 5, NOW + 1, 1), L(8, 8, NOW - 1, 3)]);
    expect(s.skipped).toBe(5);
    expect(dropMissing(s, [[100, 200]])).toBe(0);
    expect(s.skipped).toBe(5);
  });

  it('skipTo moves the cursor forward only, counting the records passed', () => {
    const s = session({ cursor: 5, cursorSeg: 3, skipped: 1 });
    expect(skipTo(s, 3)).toBe(0);
    expect(skipTo(s, 5)).toBe(0);
    expect(s).toMatchObject({ cursor: 5, cursorSeg: 3, skipped: 1 });
    expect(skipTo(s, 9)).toBe(4);
    expect(s).toMatchObject({ cursor: 9, cursorSeg: 0, skipped: 5 });
  });
});

describe('ack', () => {
  it('removes live and expired in-flight records and counts them', () => {
    const s = session({ cursor: 10, leases: [L(1, 5, NOW + 1000, 1), L(8, 9, NOW - 1, 2)] });
    expect(ack(s, [[3, 4], [8, 8], [9, 9]])).toBe(4);
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
    expect(ack(s, [[1, 4], [2, 2], [3, 6], [4, 4]])).toBe(6);
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
    expect(nack(s, [[4, 4], [6, 50]], NOW, 10)).toBe(0);
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
    expect(extend(s, [[1, 9], [15, 30]], NOW, 60)).toBe(5);
    expect(s.leases).toEqual([L(1, 3, NOW + 60_000, 1), L(4, 5, NOW + 100_000, 2), L(6, 7, NOW, 1), L(8, 8, NOW - 5, 3)]);
  });

  it('counts 0 for unknown, already-acked and never-sent records', () => {
    const s = session({ cursor: 5, leases: [L(2, 2, NOW + 1, 1)] });
    expect(extend(s, [[1, 1], [3, 4], [5, 10]], NOW, 30)).toBe(0);
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
      const settings = { ackTimeoutSeconds: r.int(1, 5), maxInFlight: r.int(1, 30), maxDeliveries: r.int(1, 4), idleTimeoutSeconds: 86_400 };
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
