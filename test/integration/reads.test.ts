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
