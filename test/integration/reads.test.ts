/**
 * A receive reads each stored chunk at most once, however scattered the records it hands out,
 * and finds old records through index pages that a host reads once and keeps.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Harness } from '../support/harness';
import { DynamoStore } from '../../lambdas/adapters/store';

let h: Harness;
beforeAll(async () => {
  h = await Harness.start();
});
afterAll(async () => h?.close());

it('redelivering scattered records from one chunk costs one batch read, not one per record', async () => {
  await h.createLog('scatter');
  await h.append(
    'scatter',
    Array.from({ length: 60 }, (_, i) => i + 1),
  ); // one ~1 KB segment
  const sid = await h.openSession('scatter', { ackTimeoutSeconds: 5 });
  const first = await h.receive(sid, { maxRecords: 60 });
  expect(first.length).toBe(60);
  await h.ack(sid, { seqs: first.map((r) => r.seq).filter((s) => s % 3 !== 0) }); // 20 single-record leases stay
  h.clock.advance(5_001);
  h.calls = [];
  const again = await h.receive(sid, { maxRecords: 60 });
  expect(again.map((r) => r.seq)).toEqual(Array.from({ length: 20 }, (_, i) => 3 * (i + 1)));
  expect(again.map((r) => r.data)).toEqual(again.map((r) => r.seq));
  expect(h.calls.filter((c) => c === 'getChunks')).toEqual(['getChunks']);
});

it('a session far behind the head (catching up) finds its records through index pages it reads once', async () => {
  await h.createLog('catch-up');
  // 300 appends of 5 records: 300 index entries, all but the last few moved to index pages.
  for (let a = 0; a < 300; a++)
    await h.append(
      'catch-up',
      Array.from({ length: 5 }, (_, i) => 5 * a + i + 1),
    );
  const sid = await h.openSession('catch-up');
  h.restart(); // a cold host: no page cached
  h.calls = [];
  expect((await h.receive(sid, { maxRecords: 10 })).map((r) => r.seq)).toEqual(Array.from({ length: 10 }, (_, i) => i + 1));
  // The page holding record 1 covers records 1..80: one lookup, then the chunks.
  expect(h.calls).toEqual(['getSession', 'getHead', 'claimSession', 'indexPageAtOrBefore', 'getChunks']);
  for (const from of [11, 21, 31]) {
    h.calls = [];
    const got = await h.receive(sid, { maxRecords: 10 });
    expect(got.map((r) => r.seq)).toEqual(Array.from({ length: 10 }, (_, i) => from + i));
    // From the page this host keeps: no index query.
    expect(h.calls).toEqual(['claimSession', 'getChunks']);
  }
  // A receive that runs into the next page (records 81..160) looks that page up once.
  h.calls = [];
  const wide = await h.receive(sid, { maxRecords: 100 });
  expect(wide.map((r) => r.seq)).toEqual(Array.from({ length: 100 }, (_, i) => 41 + i));
  expect(wide.map((r) => r.data)).toEqual(wide.map((r) => r.seq));
  expect(h.calls.filter((c) => c.startsWith('index'))).toEqual(['indexPageAtOrBefore']);
});

it('a redelivery past a stale head (eventually consistent read) re-reads the head instead of taking the records as removed', async () => {
  await h.createLog('stale');
  await h.append(
    'stale',
    Array.from({ length: 10 }, (_, i) => i + 1),
  );
  const sid = await h.openSession('stale', { ackTimeoutSeconds: 1 });
  expect((await h.receive(sid, { maxRecords: 10 })).length).toBe(10);
  const staleHead = await h.store.getHead(`arn:aws:iam::123456789012:user/alice|stale`);
  await h.append(
    'stale',
    Array.from({ length: 10 }, (_, i) => i + 11),
  );
  expect((await h.receive(sid, { maxRecords: 10 })).map((r) => r.seq)).toEqual(Array.from({ length: 10 }, (_, i) => i + 11));
  h.clock.advance(1_001);
  h.restart();
  // This host's read of the head lags: it still says lastSeq 10.
  const store = h.store as unknown as Record<string, unknown>;
  store.getSessionWithHead = async function (this: DynamoStore, sessionId: string, logKey: string) {
    const fresh = await DynamoStore.prototype.getSessionWithHead.call(this, sessionId, logKey);
    return { ...fresh, head: staleHead };
  };
  try {
    await h.receive(sid, { maxRecords: 1 }); // a cold host: learns the session's log
    h.clock.advance(1_001);
    const again = await h.receive(sid, { maxRecords: 100 });
    expect(again.map((r) => r.seq).sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
  } finally {
    delete store.getSessionWithHead;
  }
  expect((await h.describe(sid)).skippedByRetention).toBe(0);
});
