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
import { decodeAckMark, decodeBounds, decodeDead, decodeLeases, encodeAckMark, encodeBounds, encodeDead, encodeLeases } from '../domain/codec';
import type { DeadRange } from '../domain/ranges';
import { expiryAfterUseMs, type AckMark, type SessionState, type StoredSession } from '../domain/session';

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
  /** First sequence numbers of the most recent committed segments, ascending (at most BOUNDS_KEPT). */
  bounds?: number[];
}

/**
 * Recent segment starts kept in a log's head (binary, about 2 bytes each), so a receive can
 * query from the segment holding its first record with one Query. 1,024 cover the last 16 MB
 * or so of a log (segments are about 16 KB); a session further behind than that, catching up,
 * first looks up its segment (a second Query) until it is within them. It was 48 (about 0.8
 * MB) until the bench showed every catch-up receive paying that second Query; the head item
 * grows to about 2 KB, so each append's two head writes cost 2 to 3 write units instead of 1.
 */
export const BOUNDS_KEPT = 1024;

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
  /** Ends the reservation `batchId`: the log now ends at `lastSeq`; `bounds` replaces the head's segment starts. */
  commit(logKey: string, batchId: string, lastSeq: number, bounds: readonly number[]): Promise<void>;
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

  getSession(sessionId: string): Promise<StoredSession | undefined>;
  /** The session and its log's head in one round trip. */
  getSessionWithHead(sessionId: string, logKey: string): Promise<{ session?: StoredSession; head?: LogHead }>;
  createSession(s: SessionState): Promise<void>;
  /**
   * Writes `next` (a settled and changed copy of `stored`) as the new compacted state, if no
   * other compaction happened since `stored` was read: the claims and acks `stored` saw are
   * folded in and removed; claims and acks that landed since stay pending. If `next` moved the
   * cursor, also requires that no claim landed since. Bumps the version.
   */
  compactSession(stored: StoredSession, next: SessionState): Promise<void>;
  /**
   * Atomically takes the next `n` records: advances the cursor by `n` and appends the claim,
   * unless the cursor is already past `limit`, leases were released since the read (`releases`
   * changed), or the session expired at `nowMs`. Returns the
   * cursor after the claim (the records taken end right before it), how many claims are now
   * pending, and the session as it stood just before the claim (ReturnValues costs no capacity):
   * with this claim added, that is the session exactly as the claim left it. With `marks`,
   * records those acks in the same write (an ack carried on a receive; every mark must be
   * below the cursor the caller read).
   */
  claimSession(
    sessionId: string,
    n: number,
    limit: number,
    releases: number,
    leaseMs: number,
    expiresMs: number,
    nowMs: number,
    marks?: readonly AckMark[],
  ): Promise<{ cursor: number; pending: number; before: StoredSession }>;
  /**
   * Atomically records acks (and a use of the session), if the session is `owner`'s, not expired
   * at `nowMs`, and its cursor is past `maxSeq`. Returns the session as it was just before.
   */
  ackSession(sessionId: string, owner: string, marks: readonly AckMark[], maxSeq: number, nowMs: number): Promise<StoredSession>;
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
  // A binary index (encodeBounds); heads written before it hold a plain list.
  if (it.bnd instanceof Uint8Array) head.bounds = decodeBounds(it.bnd);
  else if (Array.isArray(it.bnd)) head.bounds = it.bnd as number[];
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

/** TTL deletes the item a day after it went idle; reads treat it as gone from `e` on. */
const ttlOf = (expiresMs: number): number => Math.ceil(expiresMs / 1000) + 86_400;

/** The compacted fields, written by create and by compaction. */
function compactedFields(s: SessionState): Item {
  return {
    L: encodeLeases(s.leases),
    D: encodeDead(s.dead),
    dp: s.deadPages,
    ds: s.deadSpilled,
    sk: s.skipped,
    rl: s.releases,
    e: s.expiresMs,
    x: ttlOf(s.expiresMs),
  };
}

function sessionToItem(s: SessionState, version: number): Item {
  return {
    pk: s.sessionId,
    o: s.owner,
    lid: s.logId,
    lk: s.logKey,
    set: s.settings,
    c: s.createdMs,
    ...compactedFields(s),
    // cur = b + the claims' sizes: `b` is where the pending claims start, `cur` the next
    // never-sent record, advanced atomically by claims.
    b: s.cursor,
    cur: s.cursor,
    C: [],
    // Atomic acks set `e = ie + now` and `x = ix + nowSec`: the same sums refreshExpiry uses.
    ie: expiryAfterUseMs(s.settings),
    ix: Math.ceil(expiryAfterUseMs(s.settings) / 1000) + 86_400,
    v: version,
  };
}

function sessionFromItem(it: Item): StoredSession {
  const state: SessionState = {
    sessionId: it.pk as string,
    owner: it.o as string,
    logId: it.lid as string,
    logKey: it.lk as string,
    settings: it.set as SessionState['settings'],
    createdMs: it.c as number,
    cursor: it.b as number,
    leases: decodeLeases(it.L as Uint8Array | undefined),
    dead: decodeDead(it.D as Uint8Array | undefined),
    deadPages: (it.dp as string[] | undefined) ?? [],
    deadSpilled: (it.ds as number | undefined) ?? 0,
    skipped: (it.sk as number | undefined) ?? 0,
    releases: (it.rl as number | undefined) ?? 0,
    expiresMs: it.e as number,
    version: it.v as number,
  };
  const claims = ((it.C as [number, number][] | undefined) ?? []).map(([n, leaseMs]) => ({ n, leaseMs }));
  const acks = [...((it.A as Set<string> | undefined) ?? [])].map(decodeAckMark);
  return { state, claims, acks };
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

  async commit(logKey: string, batchId: string, lastSeq: number, bounds: readonly number[]): Promise<void> {
    await conditional(
      this.send(
        'commit',
        this.doc.send(
          new UpdateCommand({
            TableName: this.tables.logs,
            Key: { pk: logKey },
            UpdateExpression: 'SET #last = :n, bnd = :bnd REMOVE pend',
            ConditionExpression: 'pend.b = :b',
            ExpressionAttributeNames: { '#last': 'last' },
            ExpressionAttributeValues: { ':n': lastSeq, ':b': batchId, ':bnd': encodeBounds(bounds) },
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

  async getSession(sessionId: string): Promise<StoredSession | undefined> {
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

  async getSessionWithHead(sessionId: string, logKey: string): Promise<{ session?: StoredSession; head?: LogHead }> {
    // The head is read eventually consistent (half the read units): a stale lastSeq only hands
    // out new records a moment later; it never names an uncommitted one. The session is read
    // strongly consistent: a claim bounded by a stale copy would be refused anyway.
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

  async compactSession(stored: StoredSession, next: SessionState): Promise<void> {
    const settledCursor = stored.state.cursor + stored.claims.reduce((n, c) => n + c.n, 0);
    const moved = next.cursor !== settledCursor;
    const values: Item = { ':v': stored.state.version, ':v2': stored.state.version + 1, ':b': next.cursor };
    const sets = ['v = :v2', 'b = :b'];
    for (const [k, val] of Object.entries(compactedFields(next))) {
      // The idle expiry only when this change moved it: claims and acks since the read set it
      // later, and a compaction must not take that back.
      if ((k === 'e' || k === 'x') && next.expiresMs === stored.state.expiresMs) continue;
      sets.push(`${k} = :${k}`);
      values[`:${k}`] = val;
    }
    let condition = 'v = :v';
    if (moved) {
      // Skipping past records retention removed: only if no claim landed since the read.
      sets.push('cur = :b');
      condition += ' AND cur = :cur0';
      values[':cur0'] = settledCursor;
    }
    let expr = `SET ${sets.join(', ')}`;
    // The claims and acks this compaction folded in. Claims are only ever appended, and only a
    // compaction (which bumps v) removes them, so under `v = :v` the first k are the ones read.
    // Listed last index first: DynamoDB removes the named elements of the list as it was, an
    // emulator (dynalite) one after another; in this order both remove the same ones.
    if (stored.claims.length) expr += ` REMOVE ${stored.claims.map((_, i) => `C[${stored.claims.length - 1 - i}]`).join(', ')}`;
    if (stored.acks.length) {
      expr += ' DELETE A :seen';
      values[':seen'] = new Set(stored.acks.map(encodeAckMark));
    }
    await conditional(
      this.send(
        'compactSession',
        this.doc.send(
          new UpdateCommand({
            TableName: this.tables.sessions,
            Key: { pk: stored.state.sessionId },
            UpdateExpression: expr,
            ConditionExpression: condition,
            ExpressionAttributeValues: values,
            ReturnConsumedCapacity: 'TOTAL',
          }),
        ),
      ),
    );
    next.version = stored.state.version + 1;
  }

  async claimSession(
    sessionId: string,
    n: number,
    limit: number,
    releases: number,
    leaseMs: number,
    expiresMs: number,
    nowMs: number,
    marks?: readonly AckMark[],
  ): Promise<{ cursor: number; pending: number; before: StoredSession }> {
    const acking = !!marks?.length;
    const out = await conditional(
      this.send(
        'claimSession',
        this.doc.send(
          new UpdateCommand({
            TableName: this.tables.sessions,
            Key: { pk: sessionId },
            UpdateExpression: `SET cur = cur + :n, C = list_append(C, :c), e = :e, x = :x${acking ? ' ADD A :a' : ''}`,
            ConditionExpression: 'cur <= :lim AND e > :now AND rl = :rl',
            ExpressionAttributeValues: {
              ':n': n,
              ':c': [[n, leaseMs]],
              ':e': expiresMs,
              ':x': ttlOf(expiresMs),
              ':lim': limit,
              ':now': nowMs,
              ':rl': releases,
              ...(acking ? { ':a': new Set(marks.map(encodeAckMark)) } : {}),
            },
            // The old item: carried acks are counted from the session as it stood, and the
            // receiving host keeps the session as its claim left it (see SessionService.views).
            ReturnValues: 'ALL_OLD',
            ReturnConsumedCapacity: 'TOTAL',
          }),
        ),
      ),
    );
    const before = sessionFromItem(out.Attributes!);
    return { cursor: (out.Attributes!.cur as number) + n, pending: before.claims.length + 1, before };
  }
  async ackSession(sessionId: string, owner: string, marks: readonly AckMark[], maxSeq: number, nowMs: number): Promise<StoredSession> {
    const out = await conditional(
      this.send(
        'ackSession',
        this.doc.send(
          new UpdateCommand({
            TableName: this.tables.sessions,
            Key: { pk: sessionId },
            UpdateExpression: 'ADD A :a SET e = ie + :now, x = ix + :nowSec',
            ConditionExpression: 'o = :o AND e > :now AND cur > :max',
            ExpressionAttributeValues: {
              ':a': new Set(marks.map(encodeAckMark)),
              ':o': owner,
              ':now': nowMs,
              ':nowSec': Math.ceil(nowMs / 1000),
              ':max': maxSeq,
            },
            ReturnValues: 'ALL_OLD',
            ReturnConsumedCapacity: 'TOTAL',
          }),
        ),
      ),
    );
    return sessionFromItem(out.Attributes!);
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
