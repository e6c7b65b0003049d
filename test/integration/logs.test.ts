import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Harness, drain } from '../support/harness';
import { TAIL_PAGE } from '../../lambdas/domain/log-index';

let h: Harness;
beforeAll(async () => {
  h = await Harness.start();
});
afterAll(async () => h?.close());

describe('appends', () => {
  it.each([
    ['without idempotency keys', false],
    ['with idempotency keys (each sent twice at once)', true],
  ])(
    '32 concurrent appenders %s: gap-free, non-overlapping, all-or-nothing; a session reads in order while they race',
    async (_label, keyed) => {
      const logId = `concurrent-${keyed ? 'keyed' : 'plain'}`;
      await h.createLog(logId);
      const appenders = 32;
      const perAppender = 8;
      const results: { who: number; i: number; firstSeq: number; lastSeq: number; n: number }[] = [];
      const sid = await h.openSession(logId, { ackTimeoutSeconds: 60 });
      const seen: number[] = [];
      let appending = true;
      // A worker receiving while the appends race: every batch is the next records in order.
      const reader = (async () => {
        while (appending || seen.length < results.reduce((a, r) => a + r.n, 0)) {
          const recs = await h.receive(sid, { maxRecords: 50 });
          for (const r of recs) {
            expect(r.seq).toBe(seen.length + 1);
            seen.push(r.seq);
          }
          if (recs.length) await h.ack(sid, { ranges: [[recs[0]!.seq, recs[recs.length - 1]!.seq]] });
          else await new Promise((res) => setTimeout(res, 2));
        }
      })();
      await Promise.all(
        Array.from({ length: appenders }, async (_, who) => {
          for (let i = 0; i < perAppender; i++) {
            const n = 1 + ((who + i) % 4);
            const datas = Array.from({ length: n }, (_, k) => ({ who, i, k }));
            const extra = keyed ? { idempotencyKey: `${who}-${i}` } : {};
            // With keys, the same request twice at once (a retry racing the original): one write.
            const [r, twin] = await Promise.all([h.append(logId, datas, extra), keyed ? h.append(logId, datas, extra) : undefined]);
            if (twin) expect(twin).toEqual(r);
            results.push({ who, i, n, ...r });
          }
        }),
      );
      appending = false;
      await reader;
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
      expect((await h.call('GET', `/logs/${logId}`)).body).toMatchObject({ firstSeq: 1, lastSeq: total });
      expect(seen.length).toBe(total);
      // The head's tail was moved to index pages as it went: however the movers raced, it is
      // back under a few pages' worth (the head stays about 1 KB).
      const head = await h.store.getHead(`arn:aws:iam::123456789012:user/alice|${logId}`);
      expect(head!.lastSeq).toBe(total);
      expect(head!.tail.entries.length).toBeLessThan(3 * TAIL_PAGE);
      // What a reader sees at each sequence number is what the append that got it wrote.
      const got = await drain(h, await h.openSession(logId), 500);
      expect(got.length).toBe(total);
      for (const r of results) {
        for (let s = r.firstSeq; s <= r.lastSeq; s++) expect(got[s - 1]!.data).toEqual({ who: r.who, i: r.i, k: s - r.firstSeq });
      }
    },
  );

  it('a keyed append throttled before it was ordered answers 503 and frees its key: the retry lands at once, once', async () => {
    await h.createLog('throttled-key');
    await h.append('throttled-key', ['pre']);
    const store = h.store as unknown as Record<string, unknown>;
    store.putChunks = async () => {
      delete store.putChunks; // once
      throw Object.assign(new Error('Rate exceeded'), { name: 'ProvisionedThroughputExceededException', $fault: 'client' });
    };
    const body = { records: [{ data: 'a' }, { data: 'b' }], idempotencyKey: 'tk' };
    const refused = await h.call('POST', '/logs/throttled-key/records', body);
    expect(refused.status).toBe(503);
    expect(refused.headers['retry-after']).toBe('1');
    // No AppendInProgress for the rest of the dead attempt's deadline: the key was released.
    const ok = await h.call('POST', '/logs/throttled-key/records', body);
    expect(ok.status).toBe(201);
    expect(ok.body).toEqual({ firstSeq: 2, lastSeq: 3 });
    expect((await h.call('POST', '/logs/throttled-key/records', body)).body).toEqual({ firstSeq: 2, lastSeq: 3 });
    expect((await drain(h, await h.openSession('throttled-key'))).map((g) => g.data)).toEqual(['pre', 'a', 'b']);
  });

  it('an idempotencyKey reused with other records is refused (422) and writes nothing; the same records in other JSON spacing are a retry', async () => {
    await h.createLog('reuse');
    const first = await h.append('reuse', ['a', 'b'], { idempotencyKey: 'k' });
    const other = await h.call('POST', '/logs/reuse/records', { records: [{ data: 'a' }, { data: 'c' }], idempotencyKey: 'k' });
    expect(other.status).toBe(422);
    expect(other.body.error.code).toBe('IdempotencyKeyReused');
    expect(other.body.error.message).toMatch(/already used .* other records/);
    const spaced = await h.call('POST', '/logs/reuse/records', '{ "records": [ {"data": "a"}, {"data":"b"} ], "idempotencyKey": "k" }');
    expect(spaced.status).toBe(201);
    expect(spaced.body).toEqual(first);
    expect((await h.call('GET', '/logs/reuse')).body.lastSeq).toBe(2);
    expect((await drain(h, await h.openSession('reuse'))).map((g) => g.data)).toEqual(['a', 'b']);
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

  it('retention over index pages: a long expired history is skipped and counted, and describe finds the first live record', async () => {
    await h.createLog('ret-pages', { retentionHours: 1 });
    for (let i = 1; i <= 3 * TAIL_PAGE + 5; i++) await h.append('ret-pages', [i]); // three pages and a tail
    const early = await h.openSession('ret-pages', { start: 'oldest' });
    await h.receive(early, { maxRecords: 10 });
    h.clock.advance(2 * 3600 * 1000);
    await h.append('ret-pages', ['new-1', 'new-2']);
    const last = 3 * TAIL_PAGE + 5;
    expect((await h.call('GET', '/logs/ret-pages')).body).toMatchObject({ firstSeq: last + 1, lastSeq: last + 2 });
    const fromZero = await h.openSession('ret-pages', { start: { afterSeq: 0 } });
    expect((await drain(h, fromZero)).map((r) => r.data)).toEqual(['new-1', 'new-2']);
    expect((await h.describe(fromZero)).skippedByRetention).toBe(last);
    expect((await drain(h, early)).map((r) => r.data)).toEqual(['new-1', 'new-2']);
    expect(await h.describe(early)).toMatchObject({ skippedByRetention: last, inFlight: 0, ackFloor: last + 2 });
  });
});
