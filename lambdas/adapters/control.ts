/**
 * The Control table: the rollout state item (each profile's control version, the experiment,
 * the bake lock) and one record per bake. Every write is conditional on the item's `rev`, so two
 * writers (two bakes, a bake and an abort, a retried Lambda) can never overwrite each other.
 *
 * Every bake record also carries the keys of the table's `bakesByTime` index (lambdas/tables.ts):
 * the listing partition `lp` (one value, 'bake') and its creation time `lt`. They are written in
 * the same put as the record, every time, so there is no listing entry apart from the record
 * to go missing or be left over after a crash: a record is listed exactly when it exists (once
 * the index has caught up, which DynamoDB does asynchronously, typically within a second).
 * Neither ever changes, so with a keys-only index only a record's first put writes to the index.
 * Listing newest first is a Query of that one partition (listBakeKeys), then a consistent
 * BatchGetItem of the records (getBakes).
 */
import { BatchGetCommand, DynamoDBDocumentClient, GetCommand, PutCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { DynamoDBServiceException, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { INITIAL_ROLLOUT, type RolloutState } from '../domain/config';
import type { BakeRecord, RolloutItem } from '../domain/bake';
import { BAKES_BY_TIME } from '../tables';
import { sleep, type BakeListKey, type ControlStore } from '../ports';
import { conditional } from './store';

// Re-exported for the callers that import them from here (they live in ports.ts).
export type { BakeListKey, ControlStore } from '../ports';

const ROLLOUT_PK = 'rollout';
const BAKE_PREFIX = 'bake#';
const bakePk = (bakeId: string): string => `${BAKE_PREFIX}${bakeId}`;
/** Bake records are kept 90 days. */
const BAKE_KEEP_SECONDS = 90 * 86_400;
/** bakesByTime's key attributes, and the one listing partition every bake record is in. */
const LIST_PK = BAKES_BY_TIME.partitionKey.name;
const LIST_SK = BAKES_BY_TIME.sortKey.name;
const LIST_PARTITION = 'bake';
/** Attempts at a BatchGetItem's unprocessed keys (DynamoDB leaves some when throttled) before giving up. */
const BATCH_GET_ATTEMPTS = 8;

/**
 * DynamoDB left keys of a BatchGetItem unprocessed (it does so for capacity) after every attempt:
 * a DynamoDB throttle, so the edge answers 503 StorageThrottled with retry-after.
 */
export class UnprocessedKeysError extends DynamoDBServiceException {
  constructor(readonly unprocessed: number) {
    super({
      name: 'ProvisionedThroughputExceededException',
      $fault: 'client',
      $metadata: {},
      message: `DynamoDB left ${unprocessed} keys of a BatchGetItem unprocessed after ${BATCH_GET_ATTEMPTS} attempts`,
    });
    // DynamoDBServiceException pins its own prototype; put this class's back.
    Object.setPrototypeOf(this, UnprocessedKeysError.prototype);
  }
}

export class DynamoControlStore implements ControlStore {
  private readonly doc: DynamoDBDocumentClient;

  constructor(
    client: DynamoDBClient,
    private readonly table: string,
  ) {
    this.doc = DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
  }

  async getRollout(consistent: boolean): Promise<RolloutItem> {
    const out = await this.doc.send(new GetCommand({ TableName: this.table, Key: { pk: ROLLOUT_PK }, ConsistentRead: consistent }));
    const it = out.Item;
    if (!it) return { state: structuredClone(INITIAL_ROLLOUT), rev: 0 };
    return { state: it.s as RolloutState, ...(it.lock ? { lock: it.lock as RolloutItem['lock'] } : {}), rev: it.rev as number };
  }

  async putRollout(next: RolloutItem): Promise<RolloutItem> {
    const stored = { ...next, rev: next.rev + 1 };
    await conditional(
      this.doc.send(
        new PutCommand({
          TableName: this.table,
          Item: { pk: ROLLOUT_PK, s: stored.state, lock: stored.lock, rev: stored.rev },
          ...(next.rev === 0
            ? { ConditionExpression: 'attribute_not_exists(pk)' }
            : { ConditionExpression: 'rev = :rev', ExpressionAttributeValues: { ':rev': next.rev } }),
        }),
      ),
    );
    return stored;
  }

  async getBake(bakeId: string): Promise<BakeRecord | undefined> {
    const out = await this.doc.send(new GetCommand({ TableName: this.table, Key: { pk: bakePk(bakeId) }, ConsistentRead: true }));
    return out.Item ? (out.Item.b as BakeRecord) : undefined;
  }

  async putBake(b: BakeRecord): Promise<BakeRecord> {
    const stored = { ...b, rev: b.rev + 1 };
    await conditional(
      this.doc.send(
        new PutCommand({
          TableName: this.table,
          Item: {
            pk: bakePk(b.bakeId),
            b: stored,
            rev: stored.rev,
            x: Math.floor(b.createdAtMs / 1000) + BAKE_KEEP_SECONDS,
            [LIST_PK]: LIST_PARTITION,
            [LIST_SK]: b.createdAtMs,
          },
          ...(b.rev === 0
            ? { ConditionExpression: 'attribute_not_exists(pk)' }
            : { ConditionExpression: 'rev = :rev', ExpressionAttributeValues: { ':rev': b.rev } }),
        }),
      ),
    );
    return stored;
  }

  async listBakeKeys(limit: number, after?: BakeListKey): Promise<{ keys: BakeListKey[]; more: boolean }> {
    // One more than asked for tells whether the listing goes on, so the last page says so itself
    // instead of ending with an empty page.
    const out = await this.doc.send(
      new QueryCommand({
        TableName: this.table,
        IndexName: BAKES_BY_TIME.name,
        KeyConditionExpression: '#lp = :lp',
        ExpressionAttributeNames: { '#lp': LIST_PK },
        ExpressionAttributeValues: { ':lp': LIST_PARTITION },
        ScanIndexForward: false,
        Limit: limit + 1,
        ...(after ? { ExclusiveStartKey: { [LIST_PK]: LIST_PARTITION, [LIST_SK]: after.createdAtMs, pk: bakePk(after.bakeId) } } : {}),
      }),
    );
    const keys = (out.Items ?? [])
      .filter((it) => typeof it.pk === 'string' && it.pk.startsWith(BAKE_PREFIX) && typeof it[LIST_SK] === 'number')
      .map((it) => ({ createdAtMs: it[LIST_SK] as number, bakeId: (it.pk as string).slice(BAKE_PREFIX.length) }));
    // Keys only, so a page of limit + 1 is far under Query's 1 MB; a LastEvaluatedKey short of
    // it still means more.
    const more = keys.length > limit || (out.LastEvaluatedKey !== undefined && keys.length > 0);
    return { keys: keys.slice(0, limit), more };
  }

  async getBakes(bakeIds: readonly string[]): Promise<Map<string, BakeRecord>> {
    const found = new Map<string, BakeRecord>();
    // BatchGetItem takes 100 keys a call; callers ask for at most that.
    for (let i = 0; i < bakeIds.length; i += 100) {
      let keys: Record<string, unknown>[] = [...new Set(bakeIds.slice(i, i + 100))].map((id) => ({ pk: bakePk(id) }));
      for (let attempt = 0; keys.length; attempt++) {
        if (attempt >= BATCH_GET_ATTEMPTS) throw new UnprocessedKeysError(keys.length);
        if (attempt > 0) await sleep(Math.min(1000, 20 * 2 ** attempt) * Math.random());
        const out = await this.doc.send(new BatchGetCommand({ RequestItems: { [this.table]: { Keys: keys, ConsistentRead: true } } }));
        for (const it of out.Responses?.[this.table] ?? []) {
          const b = it.b as BakeRecord | undefined;
          if (b) found.set(b.bakeId, b);
        }
        keys = (out.UnprocessedKeys?.[this.table]?.Keys as Record<string, unknown>[] | undefined) ?? [];
      }
    }
    return found;
  }
}
