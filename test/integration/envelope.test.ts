/**
 * Lambda's 6 MB payload envelope (issue 17): the harness invokes each handler as Lambda behind
 * the HTTP API does (local/gateway.ts invokeFunction), so a response or a request over the
 * envelope fails here as it fails in AWS.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Harness } from '../support/harness';

let h: Harness;
beforeAll(async () => {
  h = await Harness.start();
});
afterAll(async () => h?.close());

/** A record's data as JSON text of `bytes` bytes that is all escaped quotes: `"\"\"…"`. */
const quotes = (bytes: number): string => `"${'\\"'.repeat((bytes - 2) / 2)}"`;

describe("a receive's response stays inside Lambda's envelope", () => {
  it('6 MiB of quote-heavy records under a maxBatchBytes of 6 MiB: a batch that fits, the rest on the next receive, none dead-lettered', async () => {
    await h.createLog('quotes');
    const recordBytes = 200 * 1024;
    const total = 32; // 6.25 MiB of data, 12.5 MiB once escaped into the response envelope
    for (let i = 0; i < total; i += 4) {
      const body = `{"records":[${Array.from({ length: 4 }, () => `{"data":${quotes(recordBytes)}}`).join(',')}]}`;
      expect((await h.call('POST', '/logs/quotes/records', body)).status).toBe(201);
    }
    const sid = await h.openSession('quotes', { maxDeliveries: 1 });
    const saved = h.config;
    h.config = { ...saved, delivery: { ...saved.delivery, maxBatchBytes: 6_291_456, maxBatchRecords: 1000 } };
    try {
      const seen: number[] = [];
      const batches: number[] = [];
      for (let i = 0; i < 10 && seen.length < total; i++) {
        const res = await h.send({ method: 'POST', path: `/sessions/${sid}/receive`, body: '{"maxRecords":1000}' });
        // Without the cut, the handler's answer passed Lambda's limit: API Gateway's 500.
        expect(res.status).toBe(200);
        const got = (JSON.parse(res.text!) as { records: { seq: number; deliveryCount: number; data: string }[] }).records;
        for (const r of got) {
          expect(r.deliveryCount).toBe(1);
          expect(r.data.length).toBe((recordBytes - 2) / 2);
        }
        seen.push(...got.map((r) => r.seq));
        batches.push(got.length);
        const ack = await h.call('POST', `/sessions/${sid}/ack`, { ranges: [[got[0]!.seq, got[got.length - 1]!.seq]] });
        expect(ack.status).toBe(200);
      }
      expect(seen).toEqual(Array.from({ length: total }, (_, i) => i + 1));
      // Each batch about fills the envelope: 6 MiB / 400 KiB escaped is 15 records.
      expect(batches[0]).toBeGreaterThanOrEqual(14);
      expect(batches[0]).toBeLessThan(total);
      const session = await h.call('GET', `/sessions/${sid}`);
      expect(session.body.deadLettered).toBe(0);
      expect(session.body.inFlight).toBe(0);
      expect((await h.call('GET', `/sessions/${sid}/dead-letters`)).body.ranges).toEqual([]);
    } finally {
      h.config = saved;
    }
  });
});

describe('a request over the envelope', () => {
  it('an append whose body, escaped into the event, passes 6 MiB is a 413 from API Gateway that wrote nothing', async () => {
    await h.createLog('big-append');
    await h.append('big-append', ['before']);
    const saved = h.config;
    h.config = { ...saved, limits: { ...saved.limits, maxRequestBytes: 6_291_456 } };
    try {
      const before = await h.itemCounts();
      // 3.5 MiB of body, within maxRequestBytes, is 7 MiB once every quote is escaped.
      const body = `{"records":[${Array.from({ length: 14 }, () => `{"data":${quotes(256 * 1024)}}`).join(',')}]}`;
      expect(Buffer.byteLength(body)).toBeLessThan(6_291_456);
      const res = await h.send({ method: 'POST', path: '/logs/big-append/records', body });
      expect(res.status).toBe(413);
      expect(JSON.parse(res.text!)).toEqual({ message: 'Request Too Long' });
      expect(await h.itemCounts()).toEqual(before);
      expect((await h.call('GET', '/logs/big-append')).body.lastSeq).toBe(1);
      // The same records in two appends go through.
      const half = `{"records":[${Array.from({ length: 7 }, () => `{"data":${quotes(256 * 1024)}}`).join(',')}]}`;
      expect((await h.send({ method: 'POST', path: '/logs/big-append/records', body: half })).status).toBe(201);
    } finally {
      h.config = saved;
    }
  });
});
