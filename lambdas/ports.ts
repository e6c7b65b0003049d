/**
 * Ports: the interfaces the services depend on, apart from the adapters that implement them
 * (lambdas/adapters/*.ts talk to DynamoDB, AppConfig and CloudWatch). Flow: a handler builds
 * the adapters with their AWS clients and hands them to the services as these interfaces;
 * services import only from here and from lambdas/domain, never from lambdas/adapters (checked
 * by test/architecture.test.ts). Nothing here holds an AWS client.
 */
import type { ChunkRef, ExpiryMark, IndexEntry, IndexRun } from './domain/log-index';
import type { DeadRange } from './domain/ranges';
import type { AckMark, SessionState, StoredSession } from './domain/session';
import type { ProfileName } from './domain/config';
import type { BakeRecord, RolloutItem } from './domain/bake';
import type { ArmSeries } from './domain/judge';

// ---- Log and session storage (adapters/store.ts: DynamoStore) ----

export interface LogHead {
  logKey: string;
  owner: string;
  logId: string;
  retentionHours: number;
  createdMs: number;
  /** The last committed sequence number: every record up to it is durable and indexed. */
  lastSeq: number;
  /** The index entries not yet moved to pages; `tail.first` is where the first one starts. */
  tail: IndexRun;
  /**
   * Which index pages have expiry marks: the pages from `expiry.from` to the tail's start. Set
   * by the trim that moves pages, together with the tail start. Undefined when a version that
   * kept no marks moved the pages before the tail start; the next mover then starts marks at
   * the tail start it finds, and only the pages before that `from` lack them.
   */
  expiry?: ExpiryIndex;
}

/** The expiry marks of a log (see expiryMarks in domain/log-index.ts). */
export interface ExpiryIndex {
  /** The first index page the marks cover: 1 for a log created with them. */
  from: number;
  /** The latest expiry of every page from `from` to the tail's start (0 when none). */
  latest: number;
}

/** Records read back: one chunk of a batch, at the sequence numbers the index gave it. */
export interface Segment {
  first: number;
  count: number;
  text: string;
  batchId: string;
  expiresSec: number;
}

/** The records of one chunk, as an append writes them. */
export interface ChunkDraft {
  count: number;
  text: string;
}

export interface IdemItem {
  status: 'PENDING' | 'COMPLETE';
  /** The attempt's batch id. */
  token: string;
  untilMs: number;
  first?: number;
  last?: number;
  /** Hash of the request's records: a reuse of the key with other records is refused. */
  hash?: string;
  /** A sequence number at or before the index position the attempt's batch can have (a tail start), and its earlier attempts'. */
  fromSeq?: number;
  /**
   * Batch ids of the dead attempts this one took the key over from (and those they had taken it
   * over from): one of them may have been ordered, so whoever finds this item must look for them.
   */
  prior?: string[];
}

/** An idempotent append's attempt, as its idempotency item records it while PENDING. */
export interface IdemAttempt {
  token: string;
  untilMs: number;
  hash: string;
  fromSeq: number;
}

/** An atomic claim of fresh records (Store.claimSession). */
export interface ClaimRequest {
  sessionId: string;
  /** How many records to take. */
  n: number;
  /** The claim is refused if the cursor is already past this (maxInFlight, the log's end). */
  limit: number;
  /** The release count the claim was planned from; refused if it changed since. */
  releases: number;
  /** When the claimed records' lease ends (epoch ms). */
  leaseMs: number;
  /** The session's new idle expiry (epoch ms). */
  expiresMs: number;
  nowMs: number;
  /** Acks carried on the receive, recorded in the same write (each below the cursor read). */
  marks?: readonly AckMark[];
}

export interface Store {
  createLog(head: LogHead): Promise<void>;
  getHead(logKey: string): Promise<LogHead | undefined>;
  /** Writes a batch's chunks (records not yet ordered: nothing refers to them until `sequence`). */
  putChunks(logKey: string, batchId: string, chunks: readonly ChunkDraft[], expiresSec: number): Promise<void>;
  /**
   * Orders a batch: one atomic update of the head adds `n` to `lastSeq` and `entry` to the
   * tail's end, so the batch holds the `n` numbers ending at the returned head's `lastSeq`.
   * Refused (ConflictError) when the log does not exist or `entry` is already in the tail. Never
   * sent twice: an error after the request may have reached DynamoDB (other than a throttle)
   * is UnknownOutcomeError, and the caller must look before trying again.
   */
  sequence(logKey: string, entry: IndexEntry, n: number): Promise<LogHead>;
  /**
   * Writes index pages and their expiry marks (of the marks that cover pages from `marksFrom`)
   * in one batch. Immutable: every writer of the page at `page.first` writes the same entries,
   * and the same mark.
   */
  putIndexPages(logKey: string, pages: readonly IndexRun[], marksFrom: number, marks: readonly ExpiryMark[]): Promise<void>;
  /**
   * Removes the tail's first `k` entries (moved to pages), if the tail still starts at `first`,
   * and records which pages have marks, as of the new tail start.
   */
  trimTail(logKey: string, first: number, k: number, nextFirst: number, expiry: ExpiryIndex): Promise<void>;
  /** The index page with the greatest first sequence number <= seq. */
  indexPageAtOrBefore(logKey: string, seq: number): Promise<IndexRun | undefined>;
  /** Index pages whose first sequence number is within [from, to], ascending. */
  indexPagesBetween(logKey: string, from: number, to: number): Promise<IndexRun[]>;
  /**
   * The first index page before `before` whose retention has not fully passed at `nowSec`,
   * looking at every page from the log's start: for pages without expiry marks only (it reads,
   * and is billed for, every expired page storage still holds).
   */
  firstLiveIndexPage(logKey: string, nowSec: number, before: number): Promise<IndexRun | undefined>;
  /** The page of the first expiry mark (of those covering pages from `marksFrom`) whose key is later than `nowSec`: one item read. */
  firstExpiryMark(logKey: string, marksFrom: number, nowSec: number): Promise<IndexRun | undefined>;
  /** Reads chunks (strongly consistent); a chunk retention already removed is left out. */
  getChunks(logKey: string, refs: readonly ChunkRef[]): Promise<Segment[]>;
  /**
   * Starts an idempotent append: creates the key's item, or, with `over`, takes over that dead
   * attempt's item (its writer passed its deadline), listing it and its own prior attempts in
   * the new item's `prior`, so that the item itself says what to look for even when this
   * write's answer is lost. Refused (ConflictError) when the key has an item (without `over`),
   * or when `over` is no longer the item, is still live, or was for other records.
   */
  beginIdem(logKey: string, key: string, attempt: IdemAttempt, nowMs: number, over?: IdemItem): Promise<void>;
  getIdem(logKey: string, key: string): Promise<IdemItem | undefined>;
  completeIdem(logKey: string, key: string, token: string, first: number, last: number): Promise<void>;
  /**
   * Ends a PENDING attempt `token` that will order nothing (it failed before its ordering update):
   * its deadline becomes the past, so a retry takes the key over at once (and still looks for
   * the batches the item lists).
   */
  releaseIdem(logKey: string, key: string, token: string): Promise<void>;

  getSession(sessionId: string): Promise<StoredSession | undefined>;
  /** The session and its log's head in one round trip. */
  getSessionWithHead(sessionId: string, logKey: string): Promise<{ session?: StoredSession; head?: LogHead }>;
  createSession(s: SessionState): Promise<void>;
  /**
   * Writes `next` (a settled and changed copy of `stored`) as the new compacted state, if no
   * other compaction happened since `stored` was read: the claims and acks `stored` saw are
   * folded in and removed; claims and acks that landed since stay pending. If `next` moved the
   * cursor, also requires that no claim landed since. With `noAcksSince`, also requires that
   * no ack landed since the read (the pending ack set is the one read): for a compaction that
   * counts acks it applies, which an atomic ack made meanwhile would have counted too. Bumps
   * the version.
   */
  compactSession(stored: StoredSession, next: SessionState, opts?: { noAcksSince?: boolean }): Promise<void>;
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
  claimSession(claim: ClaimRequest): Promise<{ cursor: number; pending: number; before: StoredSession }>;
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

const THROTTLES = new Set(['ProvisionedThroughputExceededException', 'ThrottlingException', 'RequestLimitExceeded']);
/** DynamoDB refused the call for capacity: it was not applied. (By error name, so no SDK import is needed.) */
export const isThrottle = (e: unknown): boolean => THROTTLES.has((e as { name?: string })?.name ?? '');

// ---- Control table (adapters/control.ts: DynamoControlStore) ----

/** Where a bake is in the newest-first listing: its creation time, then its id (ties). */
/**
 * The Store operations that only read (the rest write). The fuzz test asserts a refused request
 * made none but these; the bench bills these as read units. Typed against Store, so a renamed
 * operation is a compile error here.
 */
export const STORE_READS: ReadonlySet<string> = new Set<keyof Store>([
  'getHead',
  'getSession',
  'getSessionWithHead',
  'indexPageAtOrBefore',
  'indexPagesBetween',
  'firstLiveIndexPage',
  'firstExpiryMark',
  'getChunks',
  'getIdem',
  'getDeadPages',
]);

export interface BakeListKey {
  createdAtMs: number;
  bakeId: string;
}

export interface ControlStore {
  /** The rollout item; the initial state (rev 0) before any bake has written it. */
  getRollout(consistent: boolean): Promise<RolloutItem>;
  /** Writes `next` if the stored rev is still `next.rev`; stores rev + 1. Throws ConflictError. */
  putRollout(next: RolloutItem): Promise<RolloutItem>;
  getBake(bakeId: string): Promise<BakeRecord | undefined>;
  /** Creates (rev 0) or replaces (stored rev must equal `b.rev`) a bake record; stores rev + 1. Throws ConflictError. */
  putBake(b: BakeRecord): Promise<BakeRecord>;
  /**
   * Up to `limit` bakes, newest first, after `after` (exclusive); `more` when the listing goes
   * on past them. From the index, so eventually consistent: a bake created a moment ago may be
   * missing, and one whose record has just gone (TTL) may still be named.
   */
  listBakeKeys(limit: number, after?: BakeListKey): Promise<{ keys: BakeListKey[]; more: boolean }>;
  /** The records of these bakes (strongly consistent), by bake id; an id with no record is absent. */
  getBakes(bakeIds: readonly string[]): Promise<Map<string, BakeRecord>>;
}

// ---- Config versions (adapters/appconfig.ts: AppConfigVersions) ----

export interface AppConfigIds {
  applicationId: string;
  profiles: Record<ProfileName, string>;
}

export interface ConfigVersions {
  /** A version's content (parsed JSON), or undefined when the version does not exist. */
  get(profile: ProfileName, version: string): Promise<unknown>;
  /** Stores new content as the profile's next version; returns its number. */
  create(profile: ProfileName, content: unknown, description?: string): Promise<string>;
  /** Every version number of a profile, newest first. */
  list(profile: ProfileName): Promise<string[]>;
}

// ---- Arm metrics (adapters/cloudwatch.ts: CloudWatchArmMetrics) ----

export interface ArmMetricsReader {
  /** Both arms, one entry per 10-second period of [fromMs, toMs), aligned (a period with no data is 0 requests). */
  armSeries(fromMs: number, toMs: number): Promise<ArmSeries>;
}

// ---- Time ----

export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/** Waits `ms` (backoff between retries). */
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
