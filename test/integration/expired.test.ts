/**
 * Expired items that storage still holds cost the calls that find a log's first retained record
 * nothing. DynamoDB's TTL deletes an expired item typically within two days, on a best-effort
 * basis (no guarantee), and until then a query that passes over it reads it and bills it; the
 * embedded store never deletes on TTL, so it holds every expired index page for good. Each such
 * call (GET /logs/{id}, a session created at "oldest", a receive whose cursor retention
 * overtook) is measured from the ConsumedCapacity DynamoDB reports, on a log with 2,000 expired
 * appends behind it and on one with 32, on a cold host (no index page cached): the units must be
 * the same. Then: expiries out of order, and logs whose first pages have no expiry marks.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DeleteCommand, DynamoDBDocumentClient, QueryCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { Harness, drain } from '../support/harness';
import { TAIL_PAGE } from '../../lambdas/domain/log-index';

const ARN = 'arn:aws:iam::123456789012:user/alice';
const HOUR = 3600 * 1000;
/** Expired appends (one record each) behind the live ones: 125 index pages, or 2. */
const MANY = 2000;
const FEW = 2 * TAIL_PAGE;
/** Live appends after them: two index pages and a tail of 8. */
const LIVE = 2 * TAIL_PAGE + 8;

let h: Harness;
beforeAll(async () => {
  h = await Harness.start();
});
afterAll(async () => h?.close());

/** Appends `n` batches of one record each (`tag-0`, `tag-1`, ...), one after another. */
async function appendMany(logId: string, n: number, tag: string): Promise<void> {
  for (let i = 0; i < n; i++) await h.append(logId, [`${tag}-${i}`]);
}

/** A clock `minutes` after `baseMs` (the clock's offset when a test began): forward or back. */
function clockAt(baseMs: number, minutes: number): void {
  h.clock.advance(baseMs + minutes * 60_000 - h.clock.offsetMs);
}

/** Runs `op` on a cold host (no index page cached) and sums the capacity units of every storage request it made. */
async function measure<T>(op: () => Promise<T>): Promise<{ out: T; units: number; ops: string[] }> {
  h.restart();
  h.capacity = [];
  const out = await op();
  const units = h.capacity.reduce((a, c) => a + c.units, 0);
  return { out, units, ops: h.capacity.map((c) => `${c.op} ${c.units}`) };
}

describe('finding the first retained record costs the same with 2,000 expired appends as with 32', () => {
  type Measured = { units: number; ops: string[] };
  const cost: Record<number, { describe: Measured; oldest: Measured; overtaken: Measured }> = {};

  beforeAll(async () => {
    const behind: Record<number, string> = {};
    for (const n of [FEW, MANY]) {
      await h.createLog(`expired-${n}`, { retentionHours: 1 });
      // Opened before any record: its cursor stays at 1 while retention removes what follows.
      behind[n] = await h.openSession(`expired-${n}`, { start: 'oldest' });
      await appendMany(`expired-${n}`, n, 'old');
    }
    h.clock.advance(HOUR + 60_000); // every record so far is past its retention, and still stored
    for (const n of [FEW, MANY]) {
      const logId = `expired-${n}`;
      await appendMany(logId, LIVE, 'live');
      const d = await measure(() => h.call('GET', `/logs/${logId}`));
      expect(d.out.body).toMatchObject({ firstSeq: n + 1, lastSeq: n + LIVE });
      const o = await measure(() => h.call('POST', `/logs/${logId}/sessions`, { start: 'oldest' }));
      expect(o.out.status).toBe(201);
      expect(o.out.body.cursor).toBe(n + 1);
      // The session's cursor is at 1: its receive claims 10 removed records, skips to the first
      // retained one and hands out the 10 from there.
      const r = await measure(() => h.call('POST', `/sessions/${behind[n]}/receive`, { maxRecords: 10 }));
      expect(r.out.status).toBe(200);
      expect(r.out.body.records.map((x: { data: string }) => x.data)).toEqual(Array.from({ length: 10 }, (_, i) => `live-${i}`));
      expect((await h.describe(behind[n]!)).skippedByRetention).toBe(n);
      cost[n] = { describe: d, oldest: o, overtaken: r };
    }
  }, 180_000);

  it.each([
    // The head, and the first expiry mark later than now: 2 units on dynalite.
    ['GET /logs/{id}', 'describe', 3],
    // Those, and the session's create: 3.
    ['a session created at "oldest"', 'oldest', 4],
    // Reads the session and head, claims 10 removed records (their index page is read, never
    // their chunks), finds the first retained record, skips to it, then claims and reads the 10
    // chunks it hands out: 20.5.
    ['a receive whose cursor retention overtook (10 records handed out: 10 chunks read)', 'overtaken', 24],
  ] as const)('%s', (_label, call, bound) => {
    const few = cost[FEW]![call];
    const many = cost[MANY]![call];
    // The measurement is real: DynamoDB reported units for the call's requests.
    expect(few.units).toBeGreaterThan(0);
    expect({ units: many.units, ops: many.ops }).toEqual({ units: few.units, ops: few.ops });
    expect(many.units).toBeLessThanOrEqual(bound);
  });
});

describe('the first retained record, when expiries are out of order', () => {
  it('a page that outlives the pages after it holds the first retained record until it expires; one that expires first is skipped', async () => {
    const logId = 'skewed';
    await h.createLog(logId, { retentionHours: 1 });
    const base = h.clock.offsetMs;
    const at = (minutes: number): void => clockAt(base, minutes);
    // Page A (1..16) appended at +30 min, page B (17..32) by a host whose clock says +0 (or
    // whose appends took that long), page C (33..48) at +45, a tail of 4 at +50. Retention 1 h:
    // A expires at +90, B at +60, C at +105, the tail at +110.
    const appends = [
      [30, 'A', TAIL_PAGE],
      [0, 'B', TAIL_PAGE],
      [45, 'C', TAIL_PAGE],
      [50, 'T', 4],
    ] as const;
    for (const [minutes, tag, n] of appends) {
      at(minutes);
      await appendMany(logId, n, tag);
    }
    const firstSeqAt = async (minutes: number): Promise<number> => {
      at(minutes);
      h.restart();
      return (await h.call('GET', `/logs/${logId}`)).body.firstSeq;
    };
    expect(await firstSeqAt(55)).toBe(1); // none has expired; B, the page that expires first, is not the first
    expect(await firstSeqAt(70)).toBe(1); // B has expired, A has not
    // A session from the oldest record gets A, skips B, gets C and the tail.
    const sid = await h.openSession(logId, { start: 'oldest' });
    const got = (await drain(h, sid)).map((r) => r.data as string);
    const tags = (tag: string, n: number): string[] => Array.from({ length: n }, (_, i) => `${tag}-${i}`);
    expect(got).toEqual([...tags('A', TAIL_PAGE), ...tags('C', TAIL_PAGE), ...tags('T', 4)]);
    expect((await h.describe(sid)).skippedByRetention).toBe(TAIL_PAGE);
    expect(await firstSeqAt(95)).toBe(2 * TAIL_PAGE + 1); // A and B have expired, C has not
    expect(await firstSeqAt(107)).toBe(3 * TAIL_PAGE + 1); // only the tail is left
    expect(await firstSeqAt(115)).toBe(3 * TAIL_PAGE + 5); // nothing is left: lastSeq + 1
  });
});

describe('a log whose first pages were moved without expiry marks (by an earlier version)', () => {
  it('finds the first retained record among those pages the old way, and past them from the marks a mover starts', async () => {
    const logId = 'unmarked';
    const logKey = `${ARN}|${logId}`;
    await h.createLog(logId, { retentionHours: 1 });
    const base = h.clock.offsetMs;
    const at = (minutes: number): void => clockAt(base, minutes);
    await appendMany(logId, TAIL_PAGE + 2, 'old'); // page 1..16 moved, expires at +60
    // As an earlier version left it: no marks, and no marks' state in the head.
    const doc = DynamoDBDocumentClient.from(h.dynamo.client);
    const { records, logs } = h.tableNames;
    const marks = await doc.send(
      new QueryCommand({ TableName: records, KeyConditionExpression: 'pk = :p', ExpressionAttributeValues: { ':p': `${logKey}#exp#1` } }),
    );
    expect(marks.Items?.length).toBe(1);
    for (const it of marks.Items ?? []) await doc.send(new DeleteCommand({ TableName: records, Key: { pk: it.pk, sk: it.sk } }));
    await doc.send(new UpdateCommand({ TableName: logs, Key: { pk: logKey }, UpdateExpression: 'REMOVE xs, xm, xt' }));
    expect((await h.store.getHead(logKey))!.expiry).toBeUndefined();
    h.restart();
    h.calls = [];
    expect((await h.call('GET', `/logs/${logId}`)).body.firstSeq).toBe(1);
    expect(h.calls).toEqual(['getHead', 'firstLiveIndexPage']);
    at(30);
    await appendMany(logId, TAIL_PAGE, 'new'); // 17..32 moved, with the first mark of a new run (expires at +90)
    expect((await h.store.getHead(logKey))!.expiry).toEqual({ from: TAIL_PAGE + 1, latest: expect.any(Number) });
    at(70); // page 1 has expired, and so have 17 and 18 (appended at +0); 19..32 have not
    h.restart();
    h.calls = [];
    expect((await h.call('GET', `/logs/${logId}`)).body.firstSeq).toBe(TAIL_PAGE + 3);
    expect(h.calls).toEqual(['getHead', 'firstLiveIndexPage', 'firstExpiryMark']);
    at(100); // everything has expired
    const last = 2 * TAIL_PAGE + 2;
    expect((await h.call('GET', `/logs/${logId}`)).body).toMatchObject({ firstSeq: last + 1, lastSeq: last });
  });
});
