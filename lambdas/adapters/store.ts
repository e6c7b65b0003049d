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
  type BatchWriteCommandInput,
  type QueryCommandInput,
} from '@aws-sdk/lib-dynamodb';
import {
  ConditionalCheckFailedException,
  DynamoDBServiceException,
  type ConsumedCapacity,
  type DynamoDBClient,
} from '@aws-sdk/client-dynamodb';
import { randomBytes } from 'node:crypto';
import { ConflictError } from '../domain/errors';
import { decodeAckMark, decodeDead, decodeLeases, encodeAckMark, encodeDead, encodeLeases } from '../domain/codec';
import { decodeEntry, encodeEntry, runExpiry, type ChunkRef, type ExpiryMark, type IndexEntry, type IndexRun } from '../domain/log-index';
import type { DeadRange } from '../domain/ranges';
import { CHUNK, DEAD_PAGE, HEAD, IDEM, MARK, namesIn, PAGE, SESSION } from './items';
import { expiryAfterUseMs, type AckMark, type SessionState, type StoredSession } from '../domain/session';
import {
  isThrottle,
  sleep,
  type ChunkDraft,
  type ClaimRequest,
  type ExpiryIndex,
  type IdemAttempt,
  type IdemItem,
  type LogHead,
  type Segment,
  type Store,
} from '../ports';

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
/** One write of a BatchWriteItem, as the document client takes it. */
type WriteRequest = NonNullable<BatchWriteCommandInput['RequestItems']>[string][number];

function headFromItem(it: Item): LogHead {
  const tailFirst = (it[HEAD.tailFirst] as number | undefined) ?? (it[HEAD.lastSeq] as number) + 1;
  // The marks' state holds for the tail start it was written with (marksAt): a trim by a
  // version that keeps no marks moves the tail start and leaves it stale. A head still at 1 has
  // no pages, so nothing lacks a mark.
  const from = it[HEAD.marksFrom];
  const latest = it[HEAD.marksLatest];
  const expiry: ExpiryIndex | undefined =
    it[HEAD.marksAt] === tailFirst && typeof from === 'number' && typeof latest === 'number'
      ? { from, latest }
      : tailFirst === 1
        ? { from: 1, latest: 0 }
        : undefined;
  return {
    logKey: it[HEAD.key] as string,
    owner: it[HEAD.owner] as string,
    logId: it[HEAD.logId] as string,
    retentionHours: it[HEAD.retentionHours] as number,
    createdMs: it[HEAD.createdMs] as number,
    lastSeq: it[HEAD.lastSeq] as number,
    tail: { first: tailFirst, entries: ((it[HEAD.tail] as string[] | undefined) ?? []).map(decodeEntry) },
    ...(expiry ? { expiry } : {}),
  };
}

const entriesOf = (encoded: unknown): IndexEntry[] => ((encoded as string[] | undefined) ?? []).map(decodeEntry);
const pageFromItem = (it: Item): IndexRun => ({ first: it[PAGE.first] as number, entries: entriesOf(it[PAGE.entries]) });

function idemFromItem(it: Item): IdemItem {
  const out: IdemItem = {
    status: it[IDEM.state] === 'C' ? 'COMPLETE' : 'PENDING',
    token: it[IDEM.token] as string,
    untilMs: it[IDEM.untilMs] as number,
  };
  const [first, last, hash, fromSeq, prior] = [it[IDEM.firstSeq], it[IDEM.lastSeq], it[IDEM.hash], it[IDEM.fromSeq], it[IDEM.prior]];
  if (typeof first === 'number') out.first = first;
  if (typeof last === 'number') out.last = last;
  if (typeof hash === 'string') out.hash = hash;
  if (typeof fromSeq === 'number') out.fromSeq = fromSeq;
  if (Array.isArray(prior) && prior.length) out.prior = prior as string[];
  return out;
}

/** TTL deletes the item a day after it went idle; reads treat it as gone from `e` on. */
const ttlOf = (expiresMs: number): number => Math.ceil(expiresMs / 1000) + 86_400;

/** The compacted fields, by their names in SESSION, written by create and by compaction. */
function compactedFields(s: SessionState): Partial<Record<keyof typeof SESSION, unknown>> {
  return {
    leases: encodeLeases(s.leases),
    dead: encodeDead(s.dead),
    deadPages: s.deadPages,
    deadSpilled: s.deadSpilled,
    skipped: s.skipped,
    releases: s.releases,
    expiresMs: s.expiresMs,
    ttl: ttlOf(s.expiresMs),
  };
}

/** An item from fields named as in `map`, under their names on disk. */
const onDisk = <M extends Readonly<Record<string, string>>>(map: M, fields: Partial<Record<keyof M, unknown>>): Item =>
  Object.fromEntries(Object.entries(fields).map(([k, v]) => [map[k]!, v]));

function sessionToItem(s: SessionState, version: number): Item {
  return onDisk(SESSION, {
    key: s.sessionId,
    owner: s.owner,
    logId: s.logId,
    logKey: s.logKey,
    settings: s.settings,
    createdMs: s.createdMs,
    ...compactedFields(s),
    // cursor = pendingFrom + the claims' sizes: pendingFrom is where the pending claims start,
    // cursor the next never-sent record, advanced atomically by claims.
    pendingFrom: s.cursor,
    cursor: s.cursor,
    claims: [],
    // Atomic acks set expiresMs = idleMs + now and ttl = idleTtl + nowSec: the same sums refreshExpiry uses.
    idleMs: expiryAfterUseMs(s.settings),
    idleTtl: Math.ceil(expiryAfterUseMs(s.settings) / 1000) + 86_400,
    version,
  });
}

function sessionFromItem(it: Item): StoredSession {
  const state: SessionState = {
    sessionId: it[SESSION.key] as string,
    owner: it[SESSION.owner] as string,
    logId: it[SESSION.logId] as string,
    logKey: it[SESSION.logKey] as string,
    settings: it[SESSION.settings] as SessionState['settings'],
    createdMs: it[SESSION.createdMs] as number,
    cursor: it[SESSION.pendingFrom] as number,
    leases: decodeLeases(it[SESSION.leases] as Uint8Array | undefined),
    dead: decodeDead(it[SESSION.dead] as Uint8Array | undefined),
    deadPages: (it[SESSION.deadPages] as string[] | undefined) ?? [],
    deadSpilled: (it[SESSION.deadSpilled] as number | undefined) ?? 0,
    skipped: (it[SESSION.skipped] as number | undefined) ?? 0,
    releases: (it[SESSION.releases] as number | undefined) ?? 0,
    expiresMs: it[SESSION.expiresMs] as number,
    version: it[SESSION.version] as number,
  };
  const claims = ((it[SESSION.claims] as [number, number][] | undefined) ?? []).map(([n, leaseMs]) => ({ n, leaseMs }));
  const acks = [...((it[SESSION.acks] as Set<string> | undefined) ?? [])].map(decodeAckMark);
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
    await this.createOnce(
      'createLog',
      this.tables.logs,
      HEAD,
      onDisk(HEAD, {
        key: head.logKey,
        owner: head.owner,
        logId: head.logId,
        retentionHours: head.retentionHours,
        createdMs: head.createdMs,
        lastSeq: 0,
        tailFirst: 1,
        tail: [],
        // Expiry marks cover every page, from the first (see headFromItem).
        marksFrom: 1,
        marksLatest: 0,
        marksAt: 1,
      }),
    );
  }

  /**
   * Puts a new item, refused (ConflictError) if its key exists. A create whose answer was lost
   * (applied, then a 500) is sent again by the SDK, and its condition then refuses it: a token
   * written with the item tells our own write from an item another request made.
   */
  private async createOnce(op: string, table: string, map: typeof HEAD | typeof SESSION, item: Item): Promise<void> {
    const token = randomBytes(12).toString('base64url');
    const condition = 'attribute_not_exists(#key)';
    try {
      await conditional(
        this.send(
          op,
          this.doc.send(
            new PutCommand({
              TableName: table,
              Item: { ...item, [map.createToken]: token },
              ConditionExpression: condition,
              ExpressionAttributeNames: namesIn(map, condition),
              ReturnConsumedCapacity: 'TOTAL',
            }),
          ),
        ),
      );
    } catch (e) {
      if (!(e instanceof ConflictError) || !(await this.holdsToken(table, map, item[map.key] as string, token))) throw e;
    }
  }

  /** Whether the item at `key` carries the create token `token` (read strongly consistent): a conditional create found its own write. */
  private async holdsToken(table: string, map: typeof HEAD | typeof SESSION, key: string, token: string): Promise<boolean> {
    const projection = '#createToken';
    const out = await this.send(
      'getOwnWrite',
      this.doc.send(
        new GetCommand({
          TableName: table,
          Key: { [map.key]: key },
          ConsistentRead: true,
          ProjectionExpression: projection,
          ExpressionAttributeNames: namesIn(map, projection),
          ReturnConsumedCapacity: 'TOTAL',
        }),
      ),
    );
    return out.Item !== undefined && out.Item[map.createToken] === token;
  }

  async getHead(logKey: string): Promise<LogHead | undefined> {
    const out = await this.send(
      'getHead',
      this.doc.send(
        new GetCommand({ TableName: this.tables.logs, Key: { [HEAD.key]: logKey }, ConsistentRead: true, ReturnConsumedCapacity: 'TOTAL' }),
      ),
    );
    return out.Item ? headFromItem(out.Item) : undefined;
  }

  async putChunks(logKey: string, batchId: string, chunks: readonly ChunkDraft[], expiresSec: number): Promise<void> {
    const pk = chunkPk(logKey, batchId);
    await this.batchWrite(
      'putChunks',
      this.tables.records,
      chunks.map((c, i) => ({ PutRequest: { Item: onDisk(CHUNK, { key: pk, index: i, count: c.count, text: c.text, ttl: expiresSec }) } })),
    );
  }

  async sequence(logKey: string, entry: IndexEntry, n: number): Promise<LogHead> {
    const e = encodeEntry(entry);
    const update = 'SET #lastSeq = #lastSeq + :n, #tail = list_append(#tail, :e)';
    // The log exists (in this format), and this batch is not in the tail yet.
    const condition = 'attribute_exists(#tailFirst) AND NOT contains(#tail, :one)';
    const out = await conditional(
      this.send(
        'sequence',
        this.doc.send(
          sendOnce(
            'sequence',
            new UpdateCommand({
              TableName: this.tables.logs,
              Key: { [HEAD.key]: logKey },
              UpdateExpression: update,
              ConditionExpression: condition,
              ExpressionAttributeNames: namesIn(HEAD, update, condition),
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
          Item: onDisk(PAGE, { key: logKey, first: page.first, entries: page.entries.map(encodeEntry), ttl: runExpiry(page) }),
        },
      })),
      ...marks.map((m) => ({
        PutRequest: {
          // Deleted with its page: once its key has passed, no reader's query reaches it.
          Item: onDisk(MARK, {
            key: markPk(logKey, marksFrom),
            expiresSec: m.expiresSec,
            pageFirst: m.page.first,
            entries: m.page.entries.map(encodeEntry),
            ttl: m.expiresSec,
          }),
        },
      })),
    ]);
  }

  async trimTail(logKey: string, first: number, k: number, nextFirst: number, expiry: ExpiryIndex): Promise<void> {
    // Listed last index first: DynamoDB removes the named elements of the list as it was, an
    // emulator (dynalite) one after another; in this order both remove the same ones.
    const removes = Array.from({ length: k }, (_, i) => `#tail[${k - 1 - i}]`).join(', ');
    // The marks' state and the tail start change together: for every tail start there is one
    // state, so every mover at a tail start computes the same marks.
    const update = `SET #tailFirst = :next, #marksFrom = :from, #marksLatest = :latest, #marksAt = :next REMOVE ${removes}`;
    const condition = '#tailFirst = :first';
    await conditional(
      this.send(
        'trimTail',
        this.doc.send(
          new UpdateCommand({
            TableName: this.tables.logs,
            Key: { [HEAD.key]: logKey },
            UpdateExpression: update,
            ConditionExpression: condition,
            ExpressionAttributeNames: namesIn(HEAD, update, condition),
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
          KeyConditionExpression: '#key = :p AND #first <= :s',
          ExpressionAttributeNames: namesIn(PAGE, '#key = :p AND #first <= :s'),
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
      KeyConditionExpression: '#key = :p AND #first BETWEEN :a AND :b',
      ExpressionAttributeNames: namesIn(PAGE, '#key = :p AND #first BETWEEN :a AND :b'),
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
        KeyConditionExpression: '#key = :p AND #first < :before',
        FilterExpression: '#ttl > :now',
        ExpressionAttributeNames: namesIn(PAGE, '#key = :p AND #first < :before', '#ttl > :now'),
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
          KeyConditionExpression: '#key = :p AND #expiresSec > :now',
          ExpressionAttributeNames: namesIn(MARK, '#key = :p AND #expiresSec > :now'),
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
    return it ? { first: it[MARK.pageFirst] as number, entries: entriesOf(it[MARK.entries]) } : undefined;
  }

  async getChunks(logKey: string, refs: readonly ChunkRef[]): Promise<Segment[]> {
    const byKey = new Map(refs.map((r) => [`${chunkPk(logKey, r.batchId)}\n${r.index}`, r]));
    const keys = [...byKey.values()].map((r) => ({ [CHUNK.key]: chunkPk(logKey, r.batchId), [CHUNK.index]: r.index }));
    const parts = [];
    for (let i = 0; i < keys.length; i += 100) {
      parts.push(this.batchGet('getChunks', { [this.tables.records]: { keys: keys.slice(i, i + 100), consistent: true } }));
    }
    const out: Segment[] = [];
    for (const found of await Promise.all(parts)) {
      for (const it of found[this.tables.records] ?? []) {
        const ref = byKey.get(`${it[CHUNK.key] as string}\n${it[CHUNK.index] as number}`)!;
        out.push({
          first: ref.first,
          count: ref.count,
          text: it[CHUNK.text] as string,
          batchId: ref.batchId,
          expiresSec: it[CHUNK.ttl] as number,
        });
      }
    }
    return out.sort((a, b) => a.first - b.first);
  }

  async beginIdem(logKey: string, key: string, a: IdemAttempt, nowMs: number, over?: IdemItem): Promise<void> {
    const prior = over ? [...(over.prior ?? []), over.token] : [];
    // New; or still the dead attempt at the same records this one takes over (another body is
    // the caller's mistake: refused).
    const condition = over
      ? '#token = :old AND #state = :pending AND #untilMs < :now AND (attribute_not_exists(#hash) OR #hash = :hash)'
      : 'attribute_not_exists(#key)';
    await conditional(
      this.send(
        'beginIdem',
        this.doc.send(
          new PutCommand({
            TableName: this.tables.logs,
            Item: onDisk(IDEM, {
              key: idemPk(logKey, key),
              state: 'P',
              token: a.token,
              untilMs: a.untilMs,
              hash: a.hash,
              // Where to start looking for this attempt's batch and the prior ones'.
              fromSeq: over ? Math.min(over.fromSeq ?? 1, a.fromSeq) : a.fromSeq,
              ...(prior.length ? { prior } : {}),
              ttl: Math.ceil(nowMs / 1000) + IDEM_KEEP_SECONDS,
            }),
            ConditionExpression: condition,
            ExpressionAttributeNames: namesIn(IDEM, condition),
            ...(over ? { ExpressionAttributeValues: { ':old': over.token, ':pending': 'P', ':now': nowMs, ':hash': a.hash } } : {}),
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
          Key: { [IDEM.key]: idemPk(logKey, key) },
          ConsistentRead: true,
          ReturnConsumedCapacity: 'TOTAL',
        }),
      ),
    );
    return out.Item ? idemFromItem(out.Item) : undefined;
  }

  async releaseIdem(logKey: string, key: string, token: string): Promise<void> {
    const update = 'SET #untilMs = :past';
    const condition = '#token = :t AND #state = :pending';
    await conditional(
      this.send(
        'releaseIdem',
        this.doc.send(
          new UpdateCommand({
            TableName: this.tables.logs,
            Key: { [IDEM.key]: idemPk(logKey, key) },
            UpdateExpression: update,
            ConditionExpression: condition,
            ExpressionAttributeNames: namesIn(IDEM, update, condition),
            ExpressionAttributeValues: { ':past': 0, ':t': token, ':pending': 'P' },
            ReturnConsumedCapacity: 'TOTAL',
          }),
        ),
      ),
    );
  }

  async completeIdem(logKey: string, key: string, token: string, first: number, last: number): Promise<void> {
    const update = 'SET #firstSeq = :f, #lastSeq = :l, #state = :complete';
    const condition = '#token = :t';
    await conditional(
      this.send(
        'completeIdem',
        this.doc.send(
          new UpdateCommand({
            TableName: this.tables.logs,
            Key: { [IDEM.key]: idemPk(logKey, key) },
            UpdateExpression: update,
            ConditionExpression: condition,
            ExpressionAttributeNames: namesIn(IDEM, update, condition),
            ExpressionAttributeValues: { ':f': first, ':l': last, ':complete': 'C', ':t': token },
            ReturnConsumedCapacity: 'TOTAL',
          }),
        ),
      ),
    );
  }

  private async batchWrite(op: string, table: string, requests: WriteRequest[]): Promise<void> {
    for (let i = 0; i < requests.length; i += 25) {
      let pending: WriteRequest[] = requests.slice(i, i + 25);
      for (let attempt = 0; pending.length; attempt++) {
        if (attempt > 0) await sleep(Math.min(1000, 20 * 2 ** attempt) * Math.random());
        if (attempt > 8) throw new Error(`${op}: DynamoDB left ${pending.length} writes unprocessed after ${attempt} attempts`);
        const out = await this.send(
          op,
          this.doc.send(new BatchWriteCommand({ RequestItems: { [table]: pending }, ReturnConsumedCapacity: 'TOTAL' })),
        );
        pending = out.UnprocessedItems?.[table] ?? [];
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
          Key: { [SESSION.key]: sessionId },
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
      [this.tables.sessions]: { keys: [{ [SESSION.key]: sessionId }], consistent: true },
      [this.tables.logs]: { keys: [{ [HEAD.key]: logKey }], consistent: false },
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
      for (const [table, items] of Object.entries(out.Responses ?? {})) {
        found[table] ??= [];
        found[table].push(...(items as Item[]));
      }
      request = (out.UnprocessedKeys ?? {}) as typeof request;
    }
    return found;
  }

  async createSession(s: SessionState): Promise<void> {
    await this.createOnce('createSession', this.tables.sessions, SESSION, sessionToItem(s, 1));
    s.version = 1;
  }

  async compactSession(stored: StoredSession, next: SessionState, opts: { noAcksSince?: boolean } = {}): Promise<void> {
    const settledCursor = stored.state.cursor + stored.claims.reduce((n, c) => n + c.n, 0);
    const moved = next.cursor !== settledCursor;
    const values: Item = { ':version': stored.state.version, ':next': stored.state.version + 1, ':pendingFrom': next.cursor };
    const sets = ['#version = :next', '#pendingFrom = :pendingFrom'];
    for (const [k, val] of Object.entries(compactedFields(next))) {
      // The idle expiry only when this change moved it: claims and acks since the read set it
      // later, and a compaction must not take that back.
      if ((k === 'expiresMs' || k === 'ttl') && next.expiresMs === stored.state.expiresMs) continue;
      sets.push(`#${k} = :${k}`);
      values[`:${k}`] = val;
    }
    let condition = '#version = :version';
    if (moved) {
      // Skipping past records retention removed: only if no claim landed since the read.
      sets.push('#cursor = :pendingFrom');
      condition += ' AND #cursor = :settledCursor';
      values[':settledCursor'] = settledCursor;
    }
    if (opts.noAcksSince) {
      // Acks are only ever added to the set, except by a compaction, which the version
      // condition already excludes: the set is the one read iff it has as many marks.
      if (stored.acks.length) {
        condition += ' AND size(#acks) = :ackMarks';
        values[':ackMarks'] = stored.acks.length;
      } else condition += ' AND attribute_not_exists(#acks)';
    }
    let expr = `SET ${sets.join(', ')}`;
    // The claims and acks this compaction folded in. Claims are only ever appended, and only a
    // compaction (which bumps v) removes them, so under `v = :v` the first k are the ones read.
    // Listed last index first: DynamoDB removes the named elements of the list as it was, an
    // emulator (dynalite) one after another; in this order both remove the same ones.
    if (stored.claims.length) expr += ` REMOVE ${stored.claims.map((_, i) => `#claims[${stored.claims.length - 1 - i}]`).join(', ')}`;
    if (stored.acks.length) {
      expr += ' DELETE #acks :seen';
      values[':seen'] = new Set(stored.acks.map(encodeAckMark));
    }
    await conditional(
      this.send(
        'compactSession',
        this.doc.send(
          new UpdateCommand({
            TableName: this.tables.sessions,
            Key: { [SESSION.key]: stored.state.sessionId },
            UpdateExpression: expr,
            ConditionExpression: condition,
            ExpressionAttributeNames: namesIn(SESSION, expr, condition),
            ExpressionAttributeValues: values,
            ReturnConsumedCapacity: 'TOTAL',
          }),
        ),
      ),
    );
    next.version = stored.state.version + 1;
  }

  async claimSession({
    sessionId,
    n,
    limit,
    releases,
    leaseMs,
    expiresMs,
    nowMs,
    marks,
  }: ClaimRequest): Promise<{ cursor: number; pending: number; before: StoredSession }> {
    const acking = !!marks?.length;
    const update = `SET #cursor = #cursor + :n, #claims = list_append(#claims, :claim), #expiresMs = :expiresMs, #ttl = :ttl${acking ? ' ADD #acks :acks' : ''}`;
    // Room under maxInFlight, not expired, and no release since the read the claim was planned
    // from (a released record must be handed out before fresh ones: session.ts, freshRoom).
    const condition = '#cursor <= :limit AND #expiresMs > :now AND #releases = :releases';
    const out = await conditional(
      this.send(
        'claimSession',
        this.doc.send(
          new UpdateCommand({
            TableName: this.tables.sessions,
            Key: { [SESSION.key]: sessionId },
            UpdateExpression: update,
            ConditionExpression: condition,
            ExpressionAttributeNames: namesIn(SESSION, update, condition),
            ExpressionAttributeValues: {
              ':n': n,
              ':claim': [[n, leaseMs]],
              ':expiresMs': expiresMs,
              ':ttl': ttlOf(expiresMs),
              ':limit': limit,
              ':now': nowMs,
              ':releases': releases,
              ...(acking ? { ':acks': new Set(marks.map(encodeAckMark)) } : {}),
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
    return { cursor: (out.Attributes![SESSION.cursor] as number) + n, pending: before.claims.length + 1, before };
  }
  async ackSession(sessionId: string, owner: string, marks: readonly AckMark[], maxSeq: number, nowMs: number): Promise<StoredSession> {
    const update = 'ADD #acks :acks SET #expiresMs = #idleMs + :now, #ttl = #idleTtl + :nowSec';
    // The caller's session, not expired, and every acked record already sent (below the cursor).
    const condition = '#owner = :owner AND #expiresMs > :now AND #cursor > :max';
    const out = await conditional(
      this.send(
        'ackSession',
        this.doc.send(
          new UpdateCommand({
            TableName: this.tables.sessions,
            Key: { [SESSION.key]: sessionId },
            UpdateExpression: update,
            ConditionExpression: condition,
            ExpressionAttributeNames: namesIn(SESSION, update, condition),
            ExpressionAttributeValues: {
              ':acks': new Set(marks.map(encodeAckMark)),
              ':owner': owner,
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
    if (deadPages.length)
      await this.batchWrite(
        'deleteSession',
        this.tables.sessions,
        deadPages.map((key) => ({ DeleteRequest: { Key: { [DEAD_PAGE.key]: key } } })),
      );
    await this.send(
      'deleteSession',
      this.doc.send(
        new DeleteCommand({ TableName: this.tables.sessions, Key: { [SESSION.key]: sessionId }, ReturnConsumedCapacity: 'TOTAL' }),
      ),
    );
  }

  async putDeadPage(key: string, ranges: readonly DeadRange[], expiresSec: number): Promise<void> {
    await this.send(
      'putDeadPage',
      this.doc.send(
        new PutCommand({
          TableName: this.tables.sessions,
          Item: onDisk(DEAD_PAGE, { key, ranges: encodeDead(ranges), ttl: expiresSec }),
          ReturnConsumedCapacity: 'TOTAL',
        }),
      ),
    );
  }

  async getDeadPages(keys: readonly string[]): Promise<DeadRange[][]> {
    const pages = new Map<string, DeadRange[]>();
    for (let i = 0; i < keys.length; i += 100) {
      const found = await this.batchGet('getDeadPages', {
        [this.tables.sessions]: { keys: keys.slice(i, i + 100).map((key) => ({ [DEAD_PAGE.key]: key })), consistent: true },
      });
      for (const it of found[this.tables.sessions] ?? [])
        pages.set(it[DEAD_PAGE.key] as string, decodeDead(it[DEAD_PAGE.ranges] as Uint8Array));
    }
    return keys.map((k) => pages.get(k) ?? []);
  }
}
