/** A receive reads each stored segment at most once, however scattered the records it hands out. */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Harness } from '../support/harness';

let h: Harness;
beforeAll(async () => {
  h = await Harness.start();
});
afterAll(async () => h?.close());

it('redelivering scattered records from one segment costs one query, not one per record', async () => {
  await h.createLog('scatter');
  await h.append('scatter', Array.from({ length: 60 }, (_, i) => i + 1)); // one ~1 KB segment
  const sid = await h.openSession('scatter', { ackTimeoutSeconds: 5 });
  const first = await h.receive(sid, { maxRecords: 60 });
  expect(first.length).toBe(60);
  await h.ack(sid, { seqs: first.map((r) => r.seq).filter((s) => s % 3 !== 0) }); // 20 single-record leases stay
  h.clock.advance(5_001);
  h.calls = [];
  const again = await h.receive(sid, { maxRecords: 60 });
  expect(again.map((r) => r.seq)).toEqual(Array.from({ length: 20 }, (_, i) => 3 * (i + 1)));
  expect(again.map((r) => r.data)).toEqual(again.map((r) => r.seq));
  const queries = h.calls.filter((c) => c === 'segmentAtOrBefore' || c === 'segmentsBetween');
  expect(queries.length).toBe(1);
});

it('a session far behind the head (catching up) reads its records with one query, from the head\'s segment index', async () => {
  await h.createLog('catch-up');
  // 300 appends of 5 records: 300 segments, far more than the 48 the head used to keep.
  for (let a = 0; a < 300; a++) await h.append('catch-up', Array.from({ length: 5 }, (_, i) => 5 * a + i + 1));
  const sid = await h.openSession('catch-up');
  await h.receive(sid, { maxRecords: 1 }); // a cold host's first call looks the session up
  // The cursor is about 290 segments behind the head for each of these receives.
  for (const from of [2, 12, 22]) {
    h.calls = [];
    const got = await h.receive(sid, { maxRecords: 10 });
    expect(got.map((r) => r.seq)).toEqual(Array.from({ length: 10 }, (_, i) => from + i));
    expect(h.calls.filter((c) => c === 'segmentAtOrBefore')).toEqual([]);
    expect(h.calls.filter((c) => c === 'segmentsBetween')).toEqual(['segmentsBetween']);
  }
});
