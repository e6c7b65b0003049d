/**
 * Storage adapter: the only code that talks to DynamoDB. Each method is one storage
 * operation (one request, or one batch with its unprocessed-item retries), so tests can
 * inject a crash right after any of them. Works against DynamoDB and the embedded store
 * (no transactions are used: dynalite has none).
 */
import {
  BatchGetCommand,
  BatchWriteCommand,
  DeleteCommand,
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  UpdateCommand,
  type QueryCommandInput,
} from '@aws-sdk/lib-dynamodb';
import { ConditionalCheckFailedException, type ConsumedCapacity, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { ConflictError } from '../domain/errors';
import { decodeDead, decodeLeases, encodeDead, encodeLeases } from '../domain/codec';
import type { DeadRange } from '../domain/ranges';
import type { SessionState } from '../domain/session';

export interface Pending {
  batchId: string;
  first: number;
  last: number;
  untilMs: number;
}

export interface LogHead {
  logKey: string;
  owner: string;
  logId: string;
  retentionHours: number;
  createdMs: number;
  lastSeq: number;
  pending?: Pending;
}

export interface Segment {
  first: number;
  count: number;
  text: string;
  batchId: string;
  expiresSec: number;
}

export interface IdemItem {
  status: 'PENDING' | 'COMPLETE';
  token: string;
  untilMs: number;
  first?: number;
  last?: number;
}

export interface TableNames {
  logs: string;
  records: string;
  sessions: string;
}

/** Receives every storage call's name and consumed capacity (for metrics and the benchmark). */
export type CallObserver = (op: string, capacity: ConsumedCapacity[] | undefined) => void;

export interface Store {
  createLog(head: LogHead): Promise<void>;
  getHead(logKey: string): Promise<LogHead | undefined>;
  reserve(logKey: string, expectLastSeq: number, pending: Pending): Promise<void>;
  commit(logKey: string, batchId: string, lastSeq: number): Promise<void>;
  abandon(logKey: string, batchId: string): Promise<void>;
  putSegments(logKey: string, segments: readonly Segment[]): Promise<void>;
  deleteSegments(logKey: string, firsts: readonly number[]): Promise<void>;
  /** Segments whose first sequence number is within [from, to], ascending. */
  segmentsBetween(logKey: string, from: number, to: number, consistent: boolean): Promise<Segment[]>;
  /** The segment with the greatest first sequence number <= seq. */
  segmentAtOrBefore(logKey: string, seq: number, consistent: boolean): Promise<Segment | undefined>;
  /** The first segment whose retention has not passed. */
  firstLiveSegment(logKey: string, nowSec: number): Promise<Segment | undefined>;
  /** Starts an idempotent append, or takes over one whose writer died (returns its old item). */
  beginIdem(logKey: string, key: string, token: string, untilMs: number, nowMs: number): Promise<IdemItem | undefined>;
  getIdem(logKey: string, key: string): Promise<IdemItem | undefined>;
  setIdemRange(logKey: string, key: string, token: string, first: number, last: number): Promise<void>;
  completeIdem(logKey: string, key: string, token: string, first: number, last: number): Promise<void>;

  getSession(sessionId: string): Promise<SessionState | undefined>;
  /** The session and its log's head in one round trip. */
  getSessionWithHead(sessionId: string, logKey: string): Promise<{ session?: SessionState; head?: LogHead }>;
  createSession(s: SessionState): Promise<void>;
  /** Saves `s` if the stored version is still `s.version`, and bumps the version. */
  saveSession(s: SessionState): Promise<void>;
  /** Deletes a session's dead-letter pages, then the session item. */
  deleteSession(sessionId: string, deadPages: readonly string[]): Promise<void>;
  putDeadPage(key: string, ranges: readonly DeadRange[], expiresSec: number): Promise<void>;
  getDeadPages(keys: readonly string[]): Promise<DeadRange[][]>;
}

const IDEM_KEEP_SECONDS = 48 * 3600;
const idemPk = (logKey: string, key: string): string => `${logKey}#idem#${key}`;

const isConditionFailure = (e: unknown): boolean =>
  e instanceof ConditionalCheckFailedException || (e as { name?: string })?.name === 'ConditionalCheckFailedException';

export async function conditional<T>(p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (e) {
    if (isConditionFailure(e)) throw new ConflictError();
    throw e;
  }
}

type Item = Record<string, unknown>;

function headFromItem(it: Item): LogHead {
  const head: LogHead = {
    logKey: it.pk as string,
    owner: it.o as string,
    logId: it.lid as string,
    retentionHours: it.ret as number,
    createdMs: it.c as number,
    lastSeq: it.last as number,
  };
  const p = it.pend as { b: string; f: number; l: number; u: number } | undefined;
  if (p) head.pending = { batchId: p.b, first: p.f, last: p.l, untilMs: p.u };
  return head;
}

const segmentFromItem = (it: Item): Segment => ({
  first: it.sk as number,
  count: it.n as number,
  text: it.r as string,
  batchId: it.b as string,
  expiresSec: it.x as number,
});

function idemFromItem(it: Item): IdemItem {
  const out: IdemItem = { status: it.st === 'C' ? 'COMPLETE' : 'PENDING', token: it.t as string, untilMs: it.u as number };
  if (typeof it.f === 'number') out.first = it.f;
  if (typeof it.l === 'number') out.last = it.l;
  return out;
}

function sessionToItem(s: SessionState, version: number): Item {
  return {
    pk: s.sessionId,
    o: s.owner,
    lid: s.logId,
    lk: s.logKey,
    set: s.settings,
    c: s.createdMs,
    cur: s.cursor,
    cs: s.cursorSeg,
    L: encodeLeases(s.leases),
    D: encodeDead(s.dead),
    dp: s.deadPages,
    ds: s.deadSpilled,
    sk: s.skipped,
    e: s.expiresMs,
    // TTL deletes the item a day after it went idle; reads treat it as gone from `e` on.
    x: Math.ceil(s.expiresMs / 1000) + 86_400,
    v: version,
  };
}

function sessionFromItem(it: Item): SessionState {
  return {
    sessionId: it.pk as string,
    owner: it.o as string,
    logId: it.lid as string,
    logKey: it.lk as string,
    settings: it.set as SessionState['settings'],
    createdMs: it.c as number,
    cursor: it.cur as number,
    cursorSeg: it.cs as number,
    leases: decodeLeases(it.L as Uint8Array | undefined),
    dead: decodeDead(it.D as Uint8Array | undefined),
    deadPages: (it.dp as string[] | undefined) ?? [],
    deadSpilled: (it.ds as number | undefined) ?? 0,
    skipped: (it.sk as number | undefined) ?? 0,
    expiresMs: it.e as number,
    version: it.v as number,
  };
}

export class DynamoStore implements Store {
  private readonly doc: DynamoDBDocumentClient;

  constructor(
    client: DynamoDBClient,
    private readonly tables: TableNames,
    private readonly observe: CallObserver = () => {},
  ) {
    this.doc = DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
  }

  private async send<T extends { ConsumedCapacity?: ConsumedCapacity | ConsumedCapacity[] }>(op: string, p: Promise<T>): Promise<T> {
    const out = await p;
    const cc = out.ConsumedCapacity;
    this.observe(op, cc === undefined ? undefined : Array.isArray(cc) ? cc : [cc]);
    return out;
  }

  async createLog(head: LogHead): Promise<void> {
    await conditional(
      this.send(
        'createLog',
        this.doc.send(
          new PutCommand({
            TableName: this.tables.logs,
            Item: { pk: head.logKey, o: head.owner, lid: head.logId, ret: head.retentionHours, c: head.createdMs, last: 0 },
            ConditionExpression: 'attribute_not_exists(pk)',
            ReturnConsumedCapacity: 'TOTAL',
          }),
        ),
      ),
    );
  }

  async getHead(logKey: string): Promise<LogHead | undefined> {
    const out = await this.send(
      'getHead',
      this.doc.send(
        new GetCommand({ TableName: this.tables.logs, Key: { pk: logKey }, ConsistentRead: true, ReturnConsumedCapacity: 'TOTAL' }),
      ),
    );
    return out.Item ? headFromItem(out.Item) : undefined;
  }

  async reserve(logKey: string, expectLastSeq: number, p: Pending): Promise<void> {
    await conditional(
      this.send(
        'reserve',
        this.doc.send(
          new UpdateCommand({
            TableName: this.tables.logs,
            Key: { pk: logKey },
            UpdateExpression: 'SET pend = :p',
            ConditionExpression: '#last = :l AND attribute_not_exists(pend)',
            ExpressionAttributeNames: { '#last': 'last' },
            ExpressionAttributeValues: { ':p': { b: p.batchId, f: p.first, l: p.last, u: p.untilMs }, ':l': expectLastSeq },
            ReturnConsumedCapacity: 'TOTAL',
          }),
        ),
      ),
    );
  }

  async commit(logKey: string, batchId: string, lastSeq: number): Promise<void> {
    await conditional(
      this.send(
        'commit',
        this.doc.send(
          new UpdateCommand({
            TableName: this.tables.logs,
            Key: { pk: logKey },
            UpdateExpression: 'SET #last = :n REMOVE pend',
            ConditionExpression: 'pend.b = :b',
            ExpressionAttributeNames: { '#last': 'last' },
            ExpressionAttributeValues: { ':n': lastSeq, ':b': batchId },
            ReturnConsumedCapacity: 'TOTAL',
          }),
        ),
      ),
    );
  }

  async abandon(logKey: string, batchId: string): Promise<void> {
    await conditional(
      this.send(
        'abandon',
        this.doc.send(
          new UpdateCommand({
            TableName: this.tables.logs,
            Key: { pk: logKey },
            UpdateExpression: 'REMOVE pend',
            ConditionExpression: 'pend.b = :b',
            ExpressionAttributeValues: { ':b': batchId },
            ReturnConsumedCapacity: 'TOTAL',
          }),
        ),
      ),
    );
  }

  async putSegments(logKey: string, segments: readonly Segment[]): Promise<void> {
    await this.batchWrite(
      'putSegments',
      this.tables.records,
      segments.map((s) => ({
        PutRequest: { Item: { pk: logKey, sk: s.first, n: s.count, r: s.text, b: s.batchId, x: s.expiresSec } },
      })),
    );
  }

  async deleteSegments(logKey: string, firsts: readonly number[]): Promise<void> {
    await this.batchWrite(
      'deleteSegments',
      this.tables.records,
      firsts.map((sk) => ({ DeleteRequest: { Key: { pk: logKey, sk } } })),
    );
  }

  private async batchWrite(op: string, table: string, requests: Item[]): Promise<void> {
    for (let i = 0; i < requests.length; i += 25) {
      let pending: Item[] = requests.slice(i, i + 25);
      for (let attempt = 0; pending.length; attempt++) {
        if (attempt > 0) await sleep(Math.min(1000, 20 * 2 ** attempt) * Math.random());
        if (attempt > 8) throw new Error(`${op}: DynamoDB left ${pending.length} writes unprocessed after ${attempt} attempts`);
        const out = await this.send(
          op,
          this.doc.send(
            new BatchWriteCommand({ RequestItems: { [table]: pending as never }, ReturnConsumedCapacity: 'TOTAL' }),
          ),
        );
        pending = (out.UnprocessedItems?.[table] as Item[] | undefined) ?? [];
      }
    }
  }

  private async queryAll(op: string, input: QueryCommandInput, max = Infinity): Promise<Item[]> {
    const items: Item[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const out = await this.send(
        op,
        this.doc.send(new QueryCommand({ ...input, ExclusiveStartKey: start, ReturnConsumedCapacity: 'TOTAL' })),
      );
      items.push(...((out.Items as Item[] | undefined) ?? []));
      start = out.LastEvaluatedKey;
    } while (start && items.length < max);
    return items;
  }

  async segmentsBetween(logKey: string, from: number, to: number, consistent: boolean): Promise<Segment[]> {
    const items = await this.queryAll('segmentsBetween', {
      TableName: this.tables.records,
      KeyConditionExpression: 'pk = :p AND sk BETWEEN :a AND :b',
      ExpressionAttributeValues: { ':p': logKey, ':a': from, ':b': to },
      ConsistentRead: consistent,
    });
    return items.map(segmentFromItem);
  }

  async segmentAtOrBefore(logKey: string, seq: number, consistent: boolean): Promise<Segment | undefined> {
    const out = await this.send(
      'segmentAtOrBefore',
      this.doc.send(
        new QueryCommand({
          TableName: this.tables.records,
          KeyConditionExpression: 'pk = :p AND sk <= :s',
          ExpressionAttributeValues: { ':p': logKey, ':s': seq },
          ScanIndexForward: false,
          Limit: 1,
          ConsistentRead: consistent,
          ReturnConsumedCapacity: 'TOTAL',
        }),
      ),
    );
    const it = out.Items?.[0];
    return it ? segmentFromItem(it) : undefined;
  }

  async firstLiveSegment(logKey: string, nowSec: number): Promise<Segment | undefined> {
    const items = await this.queryAll(
      'firstLiveSegment',
      {
        TableName: this.tables.records,
        KeyConditionExpression: 'pk = :p',
        FilterExpression: 'x > :now',
        ExpressionAttributeValues: { ':p': logKey, ':now': nowSec },
        ProjectionExpression: 'pk, sk, n, b, x',
        ConsistentRead: true,
        Limit: 25,
      },
      1,
    );
    const it = items[0];
    return it ? { ...segmentFromItem(it), text: '' } : undefined;
  }

  async beginIdem(logKey: string, key: string, token: string, untilMs: number, nowMs: number): Promise<IdemItem | undefined> {
    const out = await conditional(
      this.send(
        'beginIdem',
        this.doc.send(
          new PutCommand({
            TableName: this.tables.logs,
            Item: { pk: idemPk(logKey, key), st: 'P', t: token, u: untilMs, x: Math.ceil(nowMs / 1000) + IDEM_KEEP_SECONDS },
            ConditionExpression: 'attribute_not_exists(pk) OR (st = :p AND u < :now)',
            ExpressionAttributeValues: { ':p': 'P', ':now': nowMs },
            ReturnValues: 'ALL_OLD',
            ReturnConsumedCapacity: 'TOTAL',
          }),
        ),
      ),
    );
    return out.Attributes ? idemFromItem(out.Attributes) : undefined;
  }

  async getIdem(logKey: string, key: string): Promise<IdemItem | undefined> {
    const out = await this.send(
      'getIdem',
      this.doc.send(
        new GetCommand({
          TableName: this.tables.logs,
          Key: { pk: idemPk(logKey, key) },
          ConsistentRead: true,
          ReturnConsumedCapacity: 'TOTAL',
        }),
      ),
    );
    return out.Item ? idemFromItem(out.Item) : undefined;
  }

  async setIdemRange(logKey: string, key: string, token: string, first: number, last: number): Promise<void> {
    await this.updateIdem('setIdemRange', logKey, key, token, 'SET f = :f, l = :l', { ':f': first, ':l': last });
  }

  async completeIdem(logKey: string, key: string, token: string, first: number, last: number): Promise<void> {
    await this.updateIdem('completeIdem', logKey, key, token, 'SET f = :f, l = :l, st = :c', {
      ':f': first,
      ':l': last,
      ':c': 'C',
    });
  }

  private async updateIdem(op: string, logKey: string, key: string, token: string, expr: string, values: Item): Promise<void> {
    await conditional(
      this.send(
        op,
        this.doc.send(
          new UpdateCommand({
            TableName: this.tables.logs,
            Key: { pk: idemPk(logKey, key) },
            UpdateExpression: expr,
            ConditionExpression: 't = :t',
            ExpressionAttributeValues: { ...values, ':t': token },
            ReturnConsumedCapacity: 'TOTAL',
          }),
        ),
      ),
    );
  }

  async getSession(sessionId: string): Promise<SessionState | undefined> {
    const out = await this.send(
      'getSession',
      this.doc.send(
        new GetCommand({
          TableName: this.tables.sessions,
          Key: { pk: sessionId },
          ConsistentRead: true,
          ReturnConsumedCapacity: 'TOTAL',
        }),
      ),
    );
    return out.Item ? sessionFromItem(out.Item) : undefined;
  }

  async getSessionWithHead(sessionId: string, logKey: string): Promise<{ session?: SessionState; head?: LogHead }> {
    // The head is read eventually consistent (half the read units): a stale lastSeq only hands
    // out new records a moment later; it never names an uncommitted one. The session is read
    // strongly consistent, since its conditional write would fail on a stale copy anyway.
    const found = await this.batchGet('getSessionWithHead', {
      [this.tables.sessions]: { keys: [{ pk: sessionId }], consistent: true },
      [this.tables.logs]: { keys: [{ pk: logKey }], consistent: false },
    });
    const s = found[this.tables.sessions]?.[0];
    const h = found[this.tables.logs]?.[0];
    return { ...(s ? { session: sessionFromItem(s) } : {}), ...(h ? { head: headFromItem(h) } : {}) };
  }

  /** BatchGetItem until DynamoDB has answered every key. */
  private async batchGet(op: string, keysByTable: Record<string, { keys: Item[]; consistent: boolean }>): Promise<Record<string, Item[]>> {
    const found: Record<string, Item[]> = {};
    let request: Record<string, { Keys: Item[]; ConsistentRead: boolean }> = Object.fromEntries(
      Object.entries(keysByTable).map(([table, { keys, consistent }]) => [table, { Keys: keys, ConsistentRead: consistent }]),
    );
    for (let attempt = 0; Object.keys(request).length; attempt++) {
      if (attempt > 0) await sleep(Math.min(1000, 20 * 2 ** attempt) * Math.random());
      if (attempt > 8) throw new Error(`${op}: DynamoDB left keys unprocessed after ${attempt} attempts`);
      const out = await this.send(op, this.doc.send(new BatchGetCommand({ RequestItems: request, ReturnConsumedCapacity: 'TOTAL' })));
      for (const [table, items] of Object.entries(out.Responses ?? {})) (found[table] ??= []).push(...(items as Item[]));
      request = (out.UnprocessedKeys ?? {}) as typeof request;
    }
    return found;
  }

  async createSession(s: SessionState): Promise<void> {
    await conditional(
      this.send(
        'createSession',
        this.doc.send(
          new PutCommand({
            TableName: this.tables.sessions,
            Item: sessionToItem(s, 1),
            ConditionExpression: 'attribute_not_exists(pk)',
            ReturnConsumedCapacity: 'TOTAL',
          }),
        ),
      ),
    );
    s.version = 1;
  }

  async saveSession(s: SessionState): Promise<void> {
    await conditional(
      this.send(
        'saveSession',
        this.doc.send(
          new PutCommand({
            TableName: this.tables.sessions,
            Item: sessionToItem(s, s.version + 1),
            ConditionExpression: 'v = :v',
            ExpressionAttributeValues: { ':v': s.version },
            ReturnConsumedCapacity: 'TOTAL',
          }),
        ),
      ),
    );
    s.version += 1;
  }

  async deleteSession(sessionId: string, deadPages: readonly string[]): Promise<void> {
    // Pages first: a crash in between leaves a session that a retried DELETE still finds.
    if (deadPages.length) await this.batchWrite('deleteSession', this.tables.sessions, deadPages.map((pk) => ({ DeleteRequest: { Key: { pk } } })));
    await this.send(
      'deleteSession',
      this.doc.send(new DeleteCommand({ TableName: this.tables.sessions, Key: { pk: sessionId }, ReturnConsumedCapacity: 'TOTAL' })),
    );
  }

  async putDeadPage(key: string, ranges: readonly DeadRange[], expiresSec: number): Promise<void> {
    await this.send(
      'putDeadPage',
      this.doc.send(
        new PutCommand({
          TableName: this.tables.sessions,
          Item: { pk: key, D: encodeDead(ranges), x: expiresSec },
          ReturnConsumedCapacity: 'TOTAL',
        }),
      ),
    );
  }

  async getDeadPages(keys: readonly string[]): Promise<DeadRange[][]> {
    const pages = new Map<string, DeadRange[]>();
    for (let i = 0; i < keys.length; i += 100) {
      const found = await this.batchGet('getDeadPages', { [this.tables.sessions]: { keys: keys.slice(i, i + 100).map((pk) => ({ pk })), consistent: true } });
      for (const it of found[this.tables.sessions] ?? []) pages.set(it.pk as string, decodeDead(it.D as Uint8Array));
    }
    return keys.map((k) => pages.get(k) ?? []);
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
