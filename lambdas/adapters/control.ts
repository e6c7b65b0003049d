/**
 * The Control table: the rollout state item (each profile's control version, the experiment,
 * the bake lock) and one record per bake. Every write is conditional on the item's `rev`, so two
 * writers (two bakes, a bake and an abort, a retried Lambda) can never overwrite each other.
 */
import { DynamoDBDocumentClient, GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { INITIAL_ROLLOUT, type RolloutState } from '../domain/config';
import type { BakeRecord, RolloutItem } from '../domain/bake';
import { conditional } from './store';

const ROLLOUT_PK = 'rollout';
const bakePk = (bakeId: string): string => `bake#${bakeId}`;
/** Bake records are kept 90 days. */
const BAKE_KEEP_SECONDS = 90 * 86_400;

export interface ControlStore {
  /** The rollout item; the initial state (rev 0) before any bake has written it. */
  getRollout(consistent: boolean): Promise<RolloutItem>;
  /** Writes `next` if the stored rev is still `next.rev`; stores rev + 1. Throws ConflictError. */
  putRollout(next: RolloutItem): Promise<RolloutItem>;
  getBake(bakeId: string): Promise<BakeRecord | undefined>;
  /** Creates (rev 0) or replaces (stored rev must equal `b.rev`) a bake record; stores rev + 1. Throws ConflictError. */
  putBake(b: BakeRecord): Promise<BakeRecord>;
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
          Item: { pk: bakePk(b.bakeId), b: stored, rev: stored.rev, x: Math.floor(b.createdAtMs / 1000) + BAKE_KEEP_SECONDS },
          ...(b.rev === 0
            ? { ConditionExpression: 'attribute_not_exists(pk)' }
            : { ConditionExpression: 'rev = :rev', ExpressionAttributeValues: { ':rev': b.rev } }),
        }),
      ),
    );
    return stored;
  }
}
