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
import { ConditionalCheckFailedException, DynamoDBServiceException, type ConsumedCapacity, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { randomBytes } from 'node:crypto';
import { ConflictError } from '../domain/errors';
import { decodeAckMark, decodeDead, decodeLeases, encodeAckMark, encodeDead, encodeLeases } from '../domain/codec';
import { decodeEntry, encodeEntry, runExpiry, type ChunkRef, type ExpiryMark, type IndexEntry, type IndexRun } from '../domain/log-index';
import type { DeadRange } from '../domain/ranges';
import { expiryAfterUseMs, type AckMark, type SessionState, type StoredSession } from '../domain/session';
import { isThrottle, sleep, type ChunkDraft, type ExpiryIndex, type IdemAttempt, type IdemItem, type LogHead, type Segment, type Store } from '../ports';

// Re-exported for the callers that import them from here (they live in ports.ts).
export type { ChunkDraft, ExpiryIndex, IdemAttempt, IdemItem, LogHead, Segment, Store } from '../ports';
export { isThrottle, sleep } from '../ports';

export interface TableNames {
  logs: string;
  records: string;
  sessions: string;
}

/** Receives every storage call's name and consumed capacity (for metrics and the benchmark). */
export type CallObserver = (op: string, capacity: ConsumedCapacity[] | undefined) => void;

const IDEM_KEEP_SECONDS = 48 * 3600;
const idemPk = (logKey: string, key: string): string => `${logKey}#idem#${key}`;
/** A batch's chunks: a partition key of their own, so a busy log's data spreads over partitions. */
const chunkPk = (logKey: string, batchId: string): string => `${logKey}#${batchId}`;
/**
 * A log's expiry marks covering pages from `from` (sort key: the mark's expiry). A batch id is
 * base64url, which has no `#`, so no chunk's key can be this one.
 */
const markPk = (logKey: string, from: number): string => `${logKey}#exp#${from}`;

const isConditionFailure = (e: unknown): boolean =>
  e instanceof ConditionalCheckFailedException || (e as { name?: string })?.name === 'ConditionalCheckFailedException';

/**
 * An AWS service answered a server fault (InternalServerError, ServiceUnavailable, another 5xx)
 * and the SDK's retries ran out: the call may or may not have been applied.
 */
export const isServerFault = (e: unknown): boolean => {
  const x = e as { $fault?: string; $metadata?: { httpStatusCode?: number } } | undefined;
  return !!x && typeof x === 'object' && (x.$fault === 'server' || (x.$metadata?.httpStatusCode ?? 0) >= 500);
};
/** A server fault of DynamoDB itself (see isServerFault). */
export const isStorageServerFault = (e: unknown): boolean => e instanceof DynamoDBServiceException && isServerFault(e);

/**
 * A write that is not safe to send twice failed after it may have reached DynamoDB (a 500, a
 * timeout, a lost connection): it may or may not have been applied. The SDK does not retry it;
 * the caller must find out which before it writes again.
 */
export class UnknownOutcomeError extends Error {
  constructor(
    readonly op: string,
    /** What the attempt failed with (not `cause`: the SDK would retry a transient cause). */
    readonly previous: unknown,
  ) {
    super(`${op}: the write may or may not have been applied (${(previous as { name?: string })?.name ?? String(previous)})`);
    this.name = 'UnknownOutcomeError';
  }
}

/**
 * Makes the SDK send `cmd` at most once, unless DynamoDB throttled it (a throttled call was
 * not applied). Sits right inside the SDK's retry loop, so it sees every attempt: a second
 * attempt after any other failure would apply a non-idempotent write twice if the first
 * was applied and only its response lost.
 */
function sendOnce<C extends { middlewareStack: { addRelativeTo(m: unknown, o: unknown): void } }>(op: string, cmd: C): C {
  let attempts = 0;
  let previous: unknown;
  cmd.middlewareStack.addRelativeTo(
    (next: (a: unknown) => Promise<unknown>) => async (args: unknown) => {
      if (attempts++ > 0 && !isThrottle(previous)) throw new UnknownOutcomeError(op, previous);
      try {
        return await next(args);
      } catch (e) {
        previous = e;
        throw e;
      }
    },
    { relation: 'after', toMiddleware: 'retryMiddleware', name: 'logrelaySendOnce', override: true },
  );
  return cmd;
}

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
  const tailFirst = (it.tb as number | undefined) ?? (it.last as number) + 1;
  // The marks' state holds for the tail start it was written with (`xt`): a trim by a version
  // that keeps no marks moves the tail start and leaves it stale. A head still at 1 has no
  // pages, so nothing lacks a mark.
  const expiry: ExpiryIndex | undefined =
    it.xt === tailFirst && typeof it.xs === 'number' && typeof it.xm === 'number' ? { from: it.xs, latest: it.xm } : tailFirst === 1 ? { from: 1, latest: 0 } : undefined;
  return {
    logKey: it.pk as string,
    owner: it.o as string,
    logId: it.lid as string,
    retentionHours: it.ret as number,
    createdMs: it.c as number,
    lastSeq: it.last as number,
    tail: { first: tailFirst, entries: ((it.T as string[] | undefined) ?? []).map(decodeEntry) },
    ...(expiry ? { expiry } : {}),
  };
}

const pageFromItem = (it: Item): IndexRun => ({ first: it.sk as number, entries: ((it.e as string[] | undefined) ?? []).map(decodeEntry) });

function idemFromItem(it: Item): IdemItem {
  const out: IdemItem = { status: it.st === 'C' ? 'COMPLETE' : 'PENDING', token: it.t as string, untilMs: it.u as number };
  if (typeof it.f === 'number') out.first = it.f;
  if (typeof it.l === 'number') out.last = it.l;
  if (typeof it.h === 'string') out.hash = it.h;
  if (typeof it.fs === 'number') out.fromSeq = it.fs;
  if (Array.isArray(it.pr) && it.pr.length) out.prior = it.pr as string[];
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
    await this.createOnce('createLog', this.tables.logs, {
      pk: head.logKey,
      o: head.owner,
      lid: head.logId,
      ret: head.retentionHours,
      c: head.createdMs,
      last: 0,
      tb: 1,
      T: [],
      // Expiry marks cover every page, from the first (see headFromItem).
      xs: 1,
      xm: 0,
      xt: 1,
    });
  }

  /**
   * Puts a new item, refused (ConflictError) if its key exists. A create whose answer was lost
   * (applied, then a 500) is sent again by the SDK, and its condition then refuses it: a token
   * written with the item tells our own write from an item another request made.
   */
  private async createOnce(op: string, table: string, item: Item): Promise<void> {
    const token = randomBytes(12).toString('base64url');
    try {
      await conditional(
        this.send(
          op,
          this.doc.send(new PutCommand({ TableName: table, Item: { ...item, ct: token }, ConditionExpression: 'attribute_not_exists(pk)', ReturnConsumedCapacity: 'TOTAL' })),
        ),
      );
    } catch (e) {
      if (!(e instanceof ConflictError) || !(await this.holds(table, item.pk as string, 'ct', token))) throw e;
    }
  }

  /** Whether the item at `pk` has `value` in `attr` (read strongly consistent): a conditional create found its own write. */
  private async holds(table: string, pk: string, attr: string, value: unknown): Promise<boolean> {
    const out = await this.send(
      'getOwnWrite',
      this.doc.send(
        new GetCommand({
          TableName: table,
          Key: { pk },
          ConsistentRead: true,
          ProjectionExpression: '#a',
          ExpressionAttributeNames: { '#a': attr },
          ReturnConsumedCapacity: 'TOTAL',
        }),
      ),
    );
    return out.Item !== undefined && out.Item[attr] === value;
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

  async putChunks(logKey: string, batchId: string, chunks: readonly ChunkDraft[], expiresSec: number): Promise<void> {
    const pk = chunkPk(logKey, batchId);
    await this.batchWrite(
      'putChunks',
      this.tables.records,
      chunks.map((c, i) => ({ PutRequest: { Item: { pk, sk: i, n: c.count, r: c.text, x: expiresSec } } })),
    );
  }

  async sequence(logKey: string, entry: IndexEntry, n: number): Promise<LogHead> {
    const e = encodeEntry(entry);
    const out = await conditional(
      this.send(
        'sequence',
        this.doc.send(
          sendOnce(
            'sequence',
            new UpdateCommand({
              TableName: this.tables.logs,
              Key: { pk: logKey },
              UpdateExpression: 'SET #last = #last + :n, #tail = list_append(#tail, :e)',
              // The log exists (in this format), and this batch is not in the tail yet.
              ConditionExpression: 'attribute_exists(#tailFirst) AND NOT contains(#tail, :one)',
              ExpressionAttributeNames: { '#last': 'last', '#tail': 'T', '#tailFirst': 'tb' },
              ExpressionAttributeValues: { ':n': n, ':e': [e], ':one': e },
              // The head as this update left it: the batch is the tail's last entry (costs no capacity).
              ReturnValues: 'ALL_NEW',
              ReturnConsumedCapacity: 'TOTAL',
            }),
          ),
        ),
      ),
    );
    return headFromItem(out.Attributes!);
  }

  async putIndexPages(logKey: string, pages: readonly IndexRun[], marksFrom: number, marks: readonly ExpiryMark[]): Promise<void> {
    await this.batchWrite('putIndexPages', this.tables.records, [
      ...pages.map((page) => ({
        PutRequest: {
          Item: {
            pk: logKey,
            sk: page.first,
            e: page.entries.map(encodeEntry),
            // Deleted once retention has passed for every batch it lists.
            x: runExpiry(page),
          },
        },
      })),
      ...marks.map((m) => ({
        PutRequest: {
          // Deleted with its page: once its key has passed, no reader's query reaches it.
          Item: { pk: markPk(logKey, marksFrom), sk: m.expiresSec, f: m.page.first, e: m.page.entries.map(encodeEntry), x: m.expiresSec },
        },
      })),
    ]);
  }

  async trimTail(logKey: string, first: number, k: number, nextFirst: number, expiry: ExpiryIndex): Promise<void> {
    // Listed last index first: DynamoDB removes the named elements of the list as it was, an
    // emulator (dynalite) one after another; in this order both remove the same ones.
    const removes = Array.from({ length: k }, (_, i) => `#tail[${k - 1 - i}]`).join(', ');
    await conditional(
      this.send(
        'trimTail',
        this.doc.send(
          new UpdateCommand({
            TableName: this.tables.logs,
            Key: { pk: logKey },
            // The marks' state and the tail start change together: for every tail start there
            // is one state, so every mover at a tail start computes the same marks.
            UpdateExpression: `SET #tailFirst = :next, #marksFrom = :from, #marksLatest = :latest, #marksAt = :next REMOVE ${removes}`,
            ConditionExpression: '#tailFirst = :first',
            ExpressionAttributeNames: { '#tail': 'T', '#tailFirst': 'tb', '#marksFrom': 'xs', '#marksLatest': 'xm', '#marksAt': 'xt' },
            ExpressionAttributeValues: { ':first': first, ':next': nextFirst, ':from': expiry.from, ':latest': expiry.latest },
            ReturnConsumedCapacity: 'TOTAL',
          }),
        ),
      ),
    );
  }

  async indexPageAtOrBefore(logKey: string, seq: number): Promise<IndexRun | undefined> {
    const out = await this.send(
      'indexPageAtOrBefore',
      this.doc.send(
        new QueryCommand({
          TableName: this.tables.records,
          KeyConditionExpression: 'pk = :p AND sk <= :s',
          ExpressionAttributeValues: { ':p': logKey, ':s': seq },
          ScanIndexForward: false,
          Limit: 1,
          ConsistentRead: true,
          ReturnConsumedCapacity: 'TOTAL',
        }),
      ),
    );
    const it = out.Items?.[0];
    return it ? pageFromItem(it) : undefined;
  }

  async indexPagesBetween(logKey: string, from: number, to: number): Promise<IndexRun[]> {
    const items = await this.queryAll('indexPagesBetween', {
      TableName: this.tables.records,
      KeyConditionExpression: 'pk = :p AND sk BETWEEN :a AND :b',
      ExpressionAttributeValues: { ':p': logKey, ':a': from, ':b': to },
      ConsistentRead: true,
    });
    return items.map(pageFromItem);
  }

  async firstLiveIndexPage(logKey: string, nowSec: number, before: number): Promise<IndexRun | undefined> {
    const items = await this.queryAll(
      'firstLiveIndexPage',
      {
        TableName: this.tables.records,
        KeyConditionExpression: '#pk = :p AND #sk < :before',
        FilterExpression: '#x > :now',
        ExpressionAttributeNames: { '#pk': 'pk', '#sk': 'sk', '#x': 'x' },
        ExpressionAttributeValues: { ':p': logKey, ':before': before, ':now': nowSec },
        ConsistentRead: true,
        Limit: 25,
      },
      1,
    );
    const it = items[0];
    return it ? pageFromItem(it) : undefined;
  }

  async firstExpiryMark(logKey: string, marksFrom: number, nowSec: number): Promise<IndexRun | undefined> {
    const out = await this.send(
      'firstExpiryMark',
      this.doc.send(
        new QueryCommand({
          TableName: this.tables.records,
          // The key condition skips every mark that has passed: they are neither read nor billed.
          KeyConditionExpression: '#pk = :p AND #sk > :now',
          ExpressionAttributeNames: { '#pk': 'pk', '#sk': 'sk' },
          ExpressionAttributeValues: { ':p': markPk(logKey, marksFrom), ':now': nowSec },
          Limit: 1,
          // Strongly consistent: the mark of a page the head's tail start has moved past was
          // written before that trim, and an eventually consistent read could miss it (and
          // answer a later page, skipping retained records).
          ConsistentRead: true,
          ReturnConsumedCapacity: 'TOTAL',
        }),
      ),
    );
    const it = out.Items?.[0];
    return it ? { first: it.f as number, entries: ((it.e as string[] | undefined) ?? []).map(decodeEntry) } : undefined;
  }

  async getChunks(logKey: string, refs: readonly ChunkRef[]): Promise<Segment[]> {
    const byKey = new Map(refs.map((r) => [`${chunkPk(logKey, r.batchId)}\n${r.index}`, r]));
    const keys = [...byKey.values()].map((r) => ({ pk: chunkPk(logKey, r.batchId), sk: r.index }));
    const parts = [];
    for (let i = 0; i < keys.length; i += 100) {
      parts.push(this.batchGet('getChunks', { [this.tables.records]: { keys: keys.slice(i, i + 100), consistent: true } }));
    }
    const out: Segment[] = [];
    for (const found of await Promise.all(parts)) {
      for (const it of found[this.tables.records] ?? []) {
        const ref = byKey.get(`${it.pk as string}\n${it.sk as number}`)!;
        out.push({ first: ref.first, count: ref.count, text: it.r as string, batchId: ref.batchId, expiresSec: it.x as number });
      }
    }
    return out.sort((a, b) => a.first - b.first);
  }

  async beginIdem(logKey: string, key: string, a: IdemAttempt, nowMs: number, over?: IdemItem): Promise<void> {
    const prior = over ? [...(over.prior ?? []), over.token] : [];
    await conditional(
      this.send(
        'beginIdem',
        this.doc.send(
          new PutCommand({
            TableName: this.tables.logs,
            Item: {
              pk: idemPk(logKey, key),
              st: 'P',
              t: a.token,
              u: a.untilMs,
              h: a.hash,
              // Where to start looking for this attempt's batch and the prior ones'.
              fs: over ? Math.min(over.fromSeq ?? 1, a.fromSeq) : a.fromSeq,
              ...(prior.length ? { pr: prior } : {}),
              x: Math.ceil(nowMs / 1000) + IDEM_KEEP_SECONDS,
            },
            // New; or still the dead attempt at the same records this one takes over (another
            // body is the caller's mistake: refused).
            ConditionExpression: over ? 't = :old AND st = :p AND u < :now AND (attribute_not_exists(h) OR h = :h)' : 'attribute_not_exists(pk)',
            ...(over ? { ExpressionAttributeValues: { ':old': over.token, ':p': 'P', ':now': nowMs, ':h': a.hash } } : {}),
            ReturnConsumedCapacity: 'TOTAL',
          }),
        ),
      ),
    );
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

  async releaseIdem(logKey: string, key: string, token: string): Promise<void> {
    await conditional(
      this.send(
        'releaseIdem',
        this.doc.send(
          new UpdateCommand({
            TableName: this.tables.logs,
            Key: { pk: idemPk(logKey, key) },
            UpdateExpression: 'SET u = :past',
            ConditionExpression: 't = :t AND st = :p',
            ExpressionAttributeValues: { ':past': 0, ':t': token, ':p': 'P' },
            ReturnConsumedCapacity: 'TOTAL',
          }),
        ),
      ),
    );
  }

  async completeIdem(logKey: string, key: string, token: string, first: number, last: number): Promise<void> {
    await conditional(
      this.send(
        'completeIdem',
        this.doc.send(
          new UpdateCommand({
            TableName: this.tables.logs,
            Key: { pk: idemPk(logKey, key) },
            UpdateExpression: 'SET f = :f, l = :l, st = :c',
            ConditionExpression: 't = :t',
            ExpressionAttributeValues: { ':f': first, ':l': last, ':c': 'C', ':t': token },
            ReturnConsumedCapacity: 'TOTAL',
          }),
        ),
      ),
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
    await this.createOnce('createSession', this.tables.sessions, sessionToItem(s, 1));
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

