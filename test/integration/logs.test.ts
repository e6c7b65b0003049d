import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Harness, drain } from '../support/harness';

let h: Harness;
beforeAll(async () => {
  h = await Harness.start();
});
afterAll(async () => h?.close());

describe('appends', () => {
  it('8 concurrent appenders get gap-free, strictly increasing, non-overlapping sequence numbers', async () => {
    await h.createLog('concurrent');
    const appenders = 8;
    const perAppender = 25;
    const results: { who: number; i: number; firstSeq: number; lastSeq: number; n: number }[] = [];
    await Promise.all(
      Array.from({ length: appenders }, async (_, who) => {
        for (let i = 0; i < perAppender; i++) {
          const n = 1 + ((who + i) % 4);
          const datas = Array.from({ length: n }, (_, k) => ({ who, i, k }));
          const r = await h.append('concurrent', datas);
          results.push({ who, i, n, ...r });
        }
      }),
    );
    const total = results.reduce((a, r) => a + r.n, 0);
    // Each append got exactly n numbers, and together they tile 1..total with no gap or overlap.
    const taken = new Array(total + 1).fill(0);
    for (const r of results) {
      expect(r.lastSeq - r.firstSeq + 1).toBe(r.n);
      for (let s = r.firstSeq; s <= r.lastSeq; s++) taken[s]++;
    }
    expect(taken.slice(1).every((c) => c === 1)).toBe(true);
    // One appender's appends are ordered as it made them.
    for (let who = 0; who < appenders; who++) {
      const mine = results.filter((r) => r.who === who).sort((a, b) => a.i - b.i);
      for (let k = 1; k < mine.length; k++) expect(mine[k]!.firstSeq).toBeGreaterThan(mine[k - 1]!.lastSeq);
    }
    const log = await h.call('GET', '/logs/concurrent');
    expect(log.body).toMatchObject({ firstSeq: 1, lastSeq: total });
    // What a reader sees at each sequence number is what the append that got it wrote.
    const sid = await h.openSession('concurrent');
    const got = await drain(h, sid, 500);
    expect(got.length).toBe(total);
    for (const r of results) {
      for (let s = r.firstSeq; s <= r.lastSeq; s++) expect(got[s - 1]!.data).toEqual({ who: r.who, i: r.i, k: s - r.firstSeq });
    }
  });

  it('a retried append with the same idempotencyKey returns the first result and writes nothing', async () => {
    await h.createLog('idem');
    const first = await h.append('idem', ['a', 'b', 'c'], { idempotencyKey: 'k1' });
    await h.append('idem', ['d']);
    const again = await h.append('idem', ['a', 'b', 'c'], { idempotencyKey: 'k1' });
    expect(again).toEqual(first);
    const log = await h.call('GET', '/logs/idem');
    expect(log.body.lastSeq).toBe(4);
    // Concurrent retries of one key: one write, everyone gets the same answer.
    const answers = await Promise.all(Array.from({ length: 6 }, () => h.append('idem', ['e', 'f'], { idempotencyKey: 'k2' })));
    expect(new Set(answers.map((a) => JSON.stringify(a))).size).toBe(1);
    expect((await h.call('GET', '/logs/idem')).body.lastSeq).toBe(6);
  });

  it('one request over the segment size is still all-or-nothing and readable', async () => {
    await h.createLog('big');
    const datas = Array.from({ length: 400 }, (_, i) => ({ i, pad: 'p'.repeat(2000) })); // ~800 KB, ~50 segments
    const r = await h.append('big', datas);
    expect(r).toEqual({ firstSeq: 1, lastSeq: 400 });
    const sid = await h.openSession('big', { start: { afterSeq: 150 } });
    const got = await drain(h, sid, 1000);
    expect(got.map((g) => g.data.i)).toEqual(Array.from({ length: 250 }, (_, i) => i + 150));
  });

  it('retention removes old records; sessions skip them and say how many', async () => {
    await h.createLog('ret', { retentionHours: 1 });
    await h.append('ret', [1, 2, 3, 4, 5]);
    const early = await h.openSession('ret', { start: 'oldest' });
    await h.receive(early, { maxRecords: 2 }); // 1 and 2 in flight, never acked
    h.clock.advance(2 * 3600 * 1000);
    await h.append('ret', [6, 7]);
    const log = await h.call('GET', '/logs/ret');
    expect(log.body).toMatchObject({ firstSeq: 6, lastSeq: 7 });
    const late = await h.openSession('ret', { start: 'oldest' });
    expect((await drain(h, late)).map((r) => r.data)).toEqual([6, 7]);
    const fromZero = await h.openSession('ret', { start: { afterSeq: 0 } });
    expect((await drain(h, fromZero)).map((r) => r.data)).toEqual([6, 7]);
    expect((await h.describe(fromZero)).skippedByRetention).toBe(5);
    // The early session had 1-2 leased and 3-5 unsent: all five are gone and counted.
    expect((await drain(h, early)).map((r) => r.data)).toEqual([6, 7]);
    const d = await h.describe(early);
    expect(d).toMatchObject({ skippedByRetention: 5, inFlight: 0, ackFloor: 7 });
  });
});
