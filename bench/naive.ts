/**
 * The baseline Logrelay's chunked design is measured against: one DynamoDB item per record, run for
 * the same records on the same embedded store in the same process, with every call's
 * ConsumedCapacity counted. It is the most charitable one-item-per-record design:
 *
 * - append: one `UpdateItem` per append request on a per-log counter item (`ADD last :n`) to
 *   allocate the request's sequence numbers, then one item per record (`BatchWriteItem`, 25 a
 *   call; the units are those of one `PutItem` per record);
 * - deliver: a strongly consistent `Query` of the same page size a receive uses (100 records);
 *   NO per-record lease write (a real design needs one to keep two workers off a record: at
 *   least one more write unit per record, not counted here);
 * - ack: one delete per record (`BatchWriteItem` deletes, 25 a call; the units are those of
 *   one `DeleteItem` per record).
 *
 * The naive table has the same key shape as Records (`pk` string, `sk` number) and each item
 * holds the record's serialized `data` (the same bytes Logrelay stores in a chunk's line).
 */
import { CreateTableCommand, type ConsumedCapacity, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { BatchWriteCommand, DynamoDBDocumentClient, QueryCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { performance } from 'node:perf_hooks';
import { recordData } from './client';

export const NAIVE_TABLE = 'BenchOneItemPerRecord';

export interface StageUnits {
  calls: number;
  readUnits: number;
  writeUnits: number;
  ms: number;
}

export interface NaiveResult {
  records: number;
  recordBytes: number;
  append: StageUnits;
  deliver: StageUnits;
  ack: StageUnits;
}

const units = (cc: ConsumedCapacity | ConsumedCapacity[] | undefined): number =>
  (Array.isArray(cc) ? cc : cc ? [cc] : []).reduce((a, c) => a + (c.CapacityUnits ?? 0), 0);

const stage = (): StageUnits => ({ calls: 0, readUnits: 0, writeUnits: 0, ms: 0 });

export async function createNaiveTable(client: DynamoDBClient): Promise<void> {
  try {
    await client.send(
      new CreateTableCommand({
        TableName: NAIVE_TABLE,
        BillingMode: 'PAY_PER_REQUEST',
        KeySchema: [
          { AttributeName: 'pk', KeyType: 'HASH' },
          { AttributeName: 'sk', KeyType: 'RANGE' },
        ],
        AttributeDefinitions: [
          { AttributeName: 'pk', AttributeType: 'S' },
          { AttributeName: 'sk', AttributeType: 'N' },
        ],
      }),
    );
  } catch (e) {
    if ((e as { name?: string }).name !== 'ResourceInUseException') throw e;
  }
}

async function batchWrite(doc: DynamoDBDocumentClient, requests: Record<string, unknown>[], st: StageUnits): Promise<void> {
  for (let i = 0; i < requests.length; i += 25) {
    let pending = requests.slice(i, i + 25);
    for (let attempt = 0; pending.length; attempt++) {
      if (attempt > 8) throw new Error(`naive BatchWriteItem left ${pending.length} writes unprocessed`);
      const out = await doc.send(
        new BatchWriteCommand({ RequestItems: { [NAIVE_TABLE]: pending as never }, ReturnConsumedCapacity: 'TOTAL' }),
      );
      st.calls++;
      st.writeUnits += units(out.ConsumedCapacity);
      pending = (out.UnprocessedItems?.[NAIVE_TABLE] as Record<string, unknown>[] | undefined) ?? [];
    }
  }
}

/**
 * Appends `total` records in the same batches as the Logrelay run, reads them in pages of
 * `page`, and acks (deletes) each page after reading it.
 */
export async function runNaive(
  client: DynamoDBClient,
  opts: { logKey: string; recordBytes: number; total: number; appendBatch: number; page: number },
): Promise<NaiveResult> {
  const doc = DynamoDBDocumentClient.from(client);
  const out: NaiveResult = { records: opts.total, recordBytes: opts.recordBytes, append: stage(), deliver: stage(), ack: stage() };

  let t = performance.now();
  for (let first = 1; first <= opts.total; first += opts.appendBatch) {
    const n = Math.min(opts.appendBatch, opts.total - first + 1);
    const counter = await doc.send(
      new UpdateCommand({
        TableName: NAIVE_TABLE,
        Key: { pk: `${opts.logKey}#counter`, sk: 0 },
        UpdateExpression: 'ADD #last :n',
        ExpressionAttributeNames: { '#last': 'last' },
        ExpressionAttributeValues: { ':n': n },
        ReturnValues: 'UPDATED_NEW',
        ReturnConsumedCapacity: 'TOTAL',
      }),
    );
    out.append.calls++;
    out.append.writeUnits += units(counter.ConsumedCapacity);
    const last = counter.Attributes?.last as number;
    const start = last - n + 1;
    const puts = Array.from({ length: n }, (_, k) => ({
      PutRequest: { Item: { pk: opts.logKey, sk: start + k, d: JSON.stringify(recordData(first + k, opts.recordBytes)) } },
    }));
    await batchWrite(doc, puts, out.append);
  }
  out.append.ms = performance.now() - t;

  for (let from = 1; from <= opts.total; from += opts.page) {
    const to = Math.min(opts.total, from + opts.page - 1);
    t = performance.now();
    const keys: { pk: string; sk: number }[] = [];
    let startKey: Record<string, unknown> | undefined;
    do {
      const q = await doc.send(
        new QueryCommand({
          TableName: NAIVE_TABLE,
          KeyConditionExpression: 'pk = :p AND sk BETWEEN :a AND :b',
          ExpressionAttributeValues: { ':p': opts.logKey, ':a': from, ':b': to },
          ConsistentRead: true,
          ExclusiveStartKey: startKey,
          ReturnConsumedCapacity: 'TOTAL',
        }),
      );
      out.deliver.calls++;
      out.deliver.readUnits += units(q.ConsumedCapacity);
      for (const it of q.Items ?? []) keys.push({ pk: it.pk as string, sk: it.sk as number });
      startKey = q.LastEvaluatedKey;
    } while (startKey);
    if (keys.length !== to - from + 1) throw new Error(`naive read ${keys.length} records of ${from}..${to}`);
    out.deliver.ms += performance.now() - t;
    t = performance.now();
    await batchWrite(
      doc,
      keys.map((Key) => ({ DeleteRequest: { Key } })),
      out.ack,
    );
    out.ack.ms += performance.now() - t;
  }
  return out;
}
