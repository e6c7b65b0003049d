/**
 * The storage format is pinned: the attribute names every kind of item has on disk are listed
 * here literally, as earlier versions wrote them, so a change to lambdas/adapters/items.ts (or
 * to what the adapter writes) that would leave existing tables and `--data-dir`s unreadable
 * fails here. Flow: drive the real handlers over the embedded store through the write paths
 * (create, keyed append, index pages and marks, claim with carried acks, nack's compaction,
 * atomic ack), scan the raw tables, and compare each item kind's attribute names (dead-letter
 * pages by their map: test/integration/bounds.test.ts spills them).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ScanCommand, type AttributeValue } from '@aws-sdk/client-dynamodb';
import { Harness } from '../support/harness';
import { CHUNK, DEAD_PAGE, HEAD, IDEM, MARK, namesIn, PAGE, SESSION } from '../../lambdas/adapters/items';

let h: Harness;
beforeAll(async () => {
  h = await Harness.start();
});
afterAll(async () => h?.close());

async function scan(table: string): Promise<Record<string, AttributeValue>[]> {
  const items: Record<string, AttributeValue>[] = [];
  let start: Record<string, AttributeValue> | undefined;
  do {
    const page = await h.dynamo.client.send(new ScanCommand({ TableName: table, ExclusiveStartKey: start }));
    items.push(...(page.Items ?? []));
    start = page.LastEvaluatedKey;
  } while (start);
  return items;
}

const namesOf = (item: Record<string, AttributeValue>): string[] => Object.keys(item).sort();
const sorted = (names: string[]): string[] => [...names].sort();

describe('the items on disk', () => {
  it('keep the attribute names earlier versions wrote, for every kind of item', async () => {
    await h.createLog('pinned', { retentionHours: 1 });
    // 40 appends: more than one index page's worth (16 batches), so pages and marks are written.
    for (let i = 0; i < 40; i++) await h.append('pinned', [{ n: i }], { idempotencyKey: `k-${i}` });
    const sid = await h.openSession('pinned', { start: 'oldest', maxDeliveries: 1, ackTimeoutSeconds: 1 });
    const first = await h.call('POST', `/sessions/${sid}/receive`, { maxRecords: 5 });
    expect(first.status).toBe(200);
    // A claim carrying acks, a nack (a compaction, which folds the pending acks), then an
    // atomic ack (pending in the item: an empty set is not stored).
    expect((await h.call('POST', `/sessions/${sid}/receive`, { maxRecords: 5, ack: { seqs: [1] } })).status).toBe(200);
    expect((await h.call('POST', `/sessions/${sid}/nack`, { seqs: [3] })).status).toBe(200);
    expect((await h.call('POST', `/sessions/${sid}/ack`, { seqs: [2] })).status).toBe(200);

    const logs = await scan(h.tableNames.logs);
    const head = logs.find((i) => !i.pk!.S!.includes('#idem#'))!;
    expect(namesOf(head)).toEqual(sorted(['pk', 'o', 'lid', 'ret', 'c', 'last', 'tb', 'T', 'xs', 'xm', 'xt', 'ct']));
    const idem = logs.find((i) => i.pk!.S!.includes('#idem#'))!;
    expect(namesOf(idem)).toEqual(sorted(['pk', 'st', 't', 'u', 'h', 'fs', 'f', 'l', 'x']));

    const records = await scan(h.tableNames.records);
    const logKey = head.pk!.S!;
    const chunk = records.find((i) => i.pk!.S!.startsWith(`${logKey}#`) && !i.pk!.S!.includes('#exp#'))!;
    expect(namesOf(chunk)).toEqual(sorted(['pk', 'sk', 'n', 'r', 'x']));
    const page = records.find((i) => i.pk!.S === logKey)!;
    expect(namesOf(page)).toEqual(sorted(['pk', 'sk', 'e', 'x']));
    const mark = records.find((i) => i.pk!.S!.includes('#exp#'))!;
    expect(namesOf(mark)).toEqual(sorted(['pk', 'sk', 'f', 'e', 'x']));

    const sessions = await scan(h.tableNames.sessions);
    const session = sessions.find((i) => i.pk!.S === sid)!;
    expect(namesOf(session)).toEqual(
      sorted(['pk', 'o', 'lid', 'lk', 'set', 'c', 'b', 'cur', 'C', 'A', 'L', 'D', 'dp', 'ds', 'sk', 'rl', 'e', 'x', 'ie', 'ix', 'v', 'ct']),
    );

    // The maps name exactly these (and the few attributes only some items carry).
    const onDisk = (m: Record<string, string>) => sorted(Object.values(m));
    expect(onDisk(HEAD)).toEqual(namesOf(head));
    expect(onDisk(IDEM)).toEqual(sorted([...namesOf(idem), 'pr']));
    expect(onDisk(CHUNK)).toEqual(namesOf(chunk));
    expect(onDisk(PAGE)).toEqual(namesOf(page));
    expect(onDisk(MARK)).toEqual(namesOf(mark));
    expect(onDisk(SESSION)).toEqual(namesOf(session));
    expect(onDisk(DEAD_PAGE)).toEqual(sorted(['pk', 'D', 'x']));
  });
});

describe('namesIn', () => {
  it('names every placeholder of the expressions from the map, and only those', () => {
    expect(namesIn(SESSION, '#cursor <= :limit AND #releases = :releases', 'SET #claims = list_append(#claims, :c)')).toEqual({
      '#cursor': 'cur',
      '#releases': 'rl',
      '#claims': 'C',
    });
    expect(namesIn(HEAD, 'REMOVE #tail[3], #tail[2]')).toEqual({ '#tail': 'T' });
  });

  it('refuses a placeholder the map does not have, including an Object property name', () => {
    expect(() => namesIn(SESSION, '#cursr = :c')).toThrow(/no attribute 'cursr'/);
    expect(() => namesIn(SESSION, '#toString = :c')).toThrow(/no attribute 'toString'/);
  });
});
