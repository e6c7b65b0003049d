/** The session item stays far below DynamoDB's 400 KB item limit, and dead letters spill to pages. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GetItemCommand } from '@aws-sdk/client-dynamodb';
import { Harness } from '../support/harness';
import { DEAD_SPILL_RANGES } from '../../lambdas/services/sessions';

let h: Harness;
beforeAll(async () => {
  h = await Harness.start();
  h.config = { ...h.config, delivery: { ...h.config.delivery, maxBatchRecords: 1000 } };
});
afterAll(async () => h?.close());

/** Bytes of a stored item by DynamoDB's rules (attribute names plus values), for S/N/B/M/L/SS. */
function itemBytes(item: Record<string, any>): number {
  const size = (v: any): number => {
    if (v.S !== undefined) return Buffer.byteLength(v.S);
    if (v.N !== undefined) return Math.ceil(v.N.replace(/^-|\./g, '').length / 2) + 1;
    if (v.B !== undefined) return v.B.length;
    if (v.BOOL !== undefined || v.NULL !== undefined) return 1;
    if (v.M !== undefined) return 3 + Object.entries(v.M).reduce((a, [k, x]) => a + Buffer.byteLength(k) + size(x) + 1, 0);
    if (v.L !== undefined) return 3 + v.L.reduce((a: number, x: any) => a + size(x) + 1, 0);
    if (v.SS !== undefined) return v.SS.reduce((a: number, x: string) => a + Buffer.byteLength(x), 0);
    throw new Error(`unsized ${JSON.stringify(v)}`);
  };
  return Object.entries(item).reduce((a, [k, v]) => a + Buffer.byteLength(k) + size(v), 0);
}

describe('session item bound', () => {
  it('10000 in flight as single-record ranges (every other record acked) stays under 100 KB', async () => {
    await h.createLog('bound');
    for (let i = 0; i < 40; i++)
      await h.append(
        'bound',
        Array.from({ length: 500 }, () => 0),
      );
    const sid = await h.openSession('bound', { maxInFlight: 10000, maxDeliveries: 100 });
    // Ack every even record as it arrives: the odd ones pile up as single-record ranges.
    for (;;) {
      const recs = await h.receive(sid, { maxRecords: 1000 });
      if (!recs.length) break;
      const even = recs.map((r) => r.seq).filter((s) => s % 2 === 0);
      if (even.length) await h.ack(sid, { seqs: even });
      h.clock.advance(7); // distinct lease expiries per batch
    }
    const d = await h.describe(sid);
    expect(d.inFlight).toBe(10000);
    expect(d.inFlightRanges.length).toBe(10000); // the worst case: no two in-flight records touch
    const raw = await h.dynamo.client.send(new GetItemCommand({ TableName: h.tableNames.sessions, Key: { pk: { S: sid } } }));
    const bytes = itemBytes(raw.Item!);
    // (The codec's unit test measures the same with a distinct lease on every range.)
    console.log(`session item with 10000 single-record in-flight ranges: ${bytes} bytes`);
    expect(bytes).toBeLessThan(100_000);
    // And it still works: ack everything, nothing left.
    expect(await h.ack(sid, { ranges: [[1, 20000]] })).toBe(10000);
  }, 120_000);
});

describe('dead-letter spill', () => {
  it(`moves more than ${DEAD_SPILL_RANGES} dead ranges to page items and still lists them all`, async () => {
    await h.createLog('spill');
    const total = 2 * (DEAD_SPILL_RANGES + 100);
    for (let i = 0; i < total; i += 500)
      await h.append(
        'spill',
        Array.from({ length: Math.min(500, total - i) }, (_, k) => i + k + 1),
      );
    const sid = await h.openSession('spill', { maxDeliveries: 1, ackTimeoutSeconds: 1, maxInFlight: 10000 });
    for (;;) {
      const recs = await h.receive(sid, { maxRecords: 1000 });
      if (!recs.length) break;
      await h.ack(sid, { seqs: recs.map((r) => r.seq).filter((s) => s % 2 === 0) }); // odd ones are poison
    }
    h.clock.advance(1_001);
    expect(await h.receive(sid)).toEqual([]); // sweeps the odd ones to dead letters
    const d = await h.describe(sid);
    expect(d).toMatchObject({ deadLettered: total / 2, inFlight: 0, ackFloor: total });
    const raw = await h.dynamo.client.send(new GetItemCommand({ TableName: h.tableNames.sessions, Key: { pk: { S: sid } } }));
    expect(raw.Item!.dp!.L!.length).toBe(1); // one page written
    const dl = await h.call('GET', `/sessions/${sid}/dead-letters`);
    expect(dl.body.ranges.length).toBe(total / 2);
    expect(dl.body.ranges.slice(0, 2)).toEqual([
      [1, 1, 1],
      [3, 3, 1],
    ]);
    expect(dl.body.ranges.at(-1)).toEqual([total - 1, total - 1, 1]);
    // Deleting the session deletes its pages too.
    const page = raw.Item!.dp!.L![0]!.S!;
    expect((await h.call('DELETE', `/sessions/${sid}`)).status).toBe(204);
    const gone = await h.dynamo.client.send(new GetItemCommand({ TableName: h.tableNames.sessions, Key: { pk: { S: page } } }));
    expect(gone.Item).toBeUndefined();
  }, 60_000);
});
