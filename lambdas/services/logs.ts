/**
 * Logs: create, describe, the append protocol, and finding records by sequence number.
 *
 * Append ("durable first, ordered after"): write the records as chunks under a fresh batch id
 * (nothing refers to them yet), then order them with one atomic update of the log's head that
 * adds their count to `lastSeq` and their index entry to the head's tail. That update is the
 * only per-log serialization: DynamoDB applies updates to one item one at a time, and no append
 * waits for another append's round trips. A crash before it leaves unreferenced chunks that TTL
 * removes; after it, a committed batch. Readers never look past the committed `lastSeq`, and
 * everything up to it is durable and indexed, so a batch is all-or-nothing and numbers have
 * no gaps. Every TAIL_PAGE entries, the appender whose entry made the tail that long moves the
 * tail's first TAIL_PAGE entries to an immutable index page, so the head stays about 1 KB.
 *
 * With an idempotencyKey, an idempotency item is created first (PENDING, with the batch id, a
 * hash of the records and a deadline) and completed after the ordering update. A retry finds
 * COMPLETE (answer the stored range), live PENDING (409, retry later), or dead PENDING: then it
 * looks for the dead attempt's batch in the index (from the tail start it recorded) and answers
 * its range, or appends afresh if it was never ordered (past its deadline, it never will be).
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import {
  ServiceError,
  busy,
  ConflictError,
  appendInProgress,
  idempotencyKeyReused,
  logExists,
  logFormatOutdated,
  logNotFound,
} from '../domain/errors';
import { encodeAppend, toSegments, type EncodedRecord, type InputRecord } from '../domain/records';
import {
  TAIL_PAGE,
  chunksIn,
  entryCount,
  expiryMarks,
  firstLiveIn,
  rangeOf,
  runLast,
  type ChunkRef,
  type IndexEntry,
  type IndexRun,
} from '../domain/log-index';
import type { LimitsConfig } from '../domain/config';
import { isThrottle, systemClock, type Clock, type IdemItem, type LogHead, type Segment, type Store } from '../ports';

// Re-exported for the callers that import them from here (they live in ports.ts).
export { systemClock, type Clock } from '../ports';

/** Time an appender keeps after its own deadline before a retry may take its idempotency key over. */
export const RESERVATION_MARGIN_MS = 5_000;
/** Index pages a host keeps (immutable, so never stale): about 16 entries, under 1 KB each. */
const PAGES_CACHED = 20_000;
/** Pages one trim moves at most (its REMOVE list stays far below DynamoDB's 4 KB expression limit). */
const MOVE_MAX_PAGES = 8;
/**
 * Whether the append whose entry made the tail `length` long moves it to pages: at every
 * multiple of TAIL_PAGE. Each length is seen by exactly one append, so movers rarely race; one
 * that crashed or gave up leaves its runs to the next multiple's mover, which moves them all.
 */
export const moveDue = (length: number): boolean => length >= TAIL_PAGE && length % TAIL_PAGE === 0;
/** Attempts at a write whose outcome was unknown (looked up before each new attempt). */
const UNKNOWN_OUTCOME_ATTEMPTS = 3;

export const logKeyOf = (owner: string, logId: string): string => `${owner}|${logId}`;

export interface LogView {
  logId: string;
  firstSeq: number;
  lastSeq: number;
  retentionHours: number;
  createdAt: string;
}

type SeqRange = { firstSeq: number; lastSeq: number };

export class LogService {
  /** logKey -> what this host last knew of the head: retention (immutable) and a tail start no later than today's. */
  private readonly known = new Map<string, { retentionHours: number; tailFirst: number }>();
  /** logKey -> index pages this host has read or written, ascending by first sequence number. */
  private readonly pages = new Map<string, IndexRun[]>();
  private pagesCached = 0;

  constructor(
    private readonly store: Store,
    private readonly clock: Clock = systemClock,
  ) {}

  async create(
    owner: string,
    logId: string | undefined,
    retentionHours: number,
  ): Promise<{ logId: string; createdAt: string; retentionHours: number }> {
    const id = logId ?? `log-${randomUUID()}`;
    const createdMs = this.clock.now();
    try {
      await this.store.createLog({
        logKey: logKeyOf(owner, id),
        owner,
        logId: id,
        retentionHours,
        createdMs,
        lastSeq: 0,
        tail: { first: 1, entries: [] },
      });
    } catch (e) {
      if (e instanceof ConflictError) throw logExists(id);
      throw e;
    }
    return { logId: id, createdAt: new Date(createdMs).toISOString(), retentionHours };
  }

  async head(owner: string, logId: string): Promise<LogHead> {
    const head = await this.store.getHead(logKeyOf(owner, logId));
    if (!head) throw logNotFound(logId);
    this.remember(head);
    return head;
  }

  /**
   * First sequence number retention has not removed (lastSeq + 1 when none is left).
   *
   * Expired items stay stored (and billed when read) until DynamoDB's TTL deletes them, days
   * later; the embedded store never does. So this reads no page by position: the first expiry
   * mark later than now is the first page holding a retained record (see expiryMarks), one
   * item, and none at all when the head says every page with marks has expired. A stale head
   * (eventually consistent) is fine: its tail start and marks' state were written together, and
   * a mark at or past its tail start means every page before it has expired.
   */
  async firstSeq(head: LogHead): Promise<number> {
    if (head.lastSeq === 0) return 1;
    const nowSec = Math.floor(this.clock.now() / 1000);
    if (head.tail.first > 1) {
      const marks = head.expiry;
      // Pages moved without marks (by an earlier version): the old lookup, over those pages
      // only. It reads every expired one still stored, until TTL has deleted them.
      let page =
        !marks || marks.from > 1 ? await this.store.firstLiveIndexPage(head.logKey, nowSec, marks?.from ?? head.tail.first) : undefined;
      if (!page && marks && marks.latest > nowSec) page = await this.store.firstExpiryMark(head.logKey, marks.from, nowSec);
      const seq = page && page.first < head.tail.first ? firstLiveIn(page, nowSec) : undefined;
      if (seq !== undefined) return seq;
    }
    return firstLiveIn(head.tail, nowSec) ?? head.lastSeq + 1;
  }

  async describe(owner: string, logId: string): Promise<LogView> {
    const head = await this.head(owner, logId);
    return {
      logId,
      firstSeq: await this.firstSeq(head),
      lastSeq: head.lastSeq,
      retentionHours: head.retentionHours,
      createdAt: new Date(head.createdMs).toISOString(),
    };
  }

  async append(
    owner: string,
    logId: string,
    records: readonly InputRecord[],
    opts: { limits: LimitsConfig; requestBytes: number; idempotencyKey?: string; deadlineMs: number },
  ): Promise<SeqRange> {
    const encoded = encodeAppend(records, opts.limits, opts.requestBytes);
    const logKey = logKeyOf(owner, logId);
    let known = this.known.get(logKey);
    if (known === undefined) {
      await this.head(owner, logId);
      known = this.known.get(logKey)!;
    }
    const batchId = randomBytes(12).toString('base64url');
    const key = opts.idempotencyKey;
    if (key !== undefined) {
      const attempt = {
        token: batchId,
        untilMs: opts.deadlineMs + RESERVATION_MARGIN_MS,
        hash: recordsHash(encoded),
        fromSeq: known.tailFirst,
      };
      const earlier = await this.beginIdempotent(logKey, logId, key, attempt, opts.deadlineMs);
      if (earlier) return earlier;
    }
    const chunks = toSegments(encoded);
    const entry: IndexEntry = {
      batchId,
      expiresSec: Math.floor(this.clock.now() / 1000) + known.retentionHours * 3600,
      counts: chunks.map((c) => c.count),
    };
    try {
      this.checkDeadline(opts.deadlineMs);
      // Idempotent (plain puts of the same items), so a write of unknown outcome is just sent again.
      await again(() => this.store.putChunks(logKey, batchId, chunks, entry.expiresSec));
    } catch (e) {
      // Nothing was ordered, and nothing of this attempt can be any more: let a retry take the
      // key over at once instead of answering AppendInProgress until this attempt's deadline.
      if (key !== undefined) await this.store.releaseIdem(logKey, key, batchId).catch(() => undefined);
      throw e;
    }
    const range = await this.order(logKey, logId, entry, known.tailFirst, opts.deadlineMs);
    if (key !== undefined) {
      // If this fails the batch is still committed, and a retry finds it in the index once this
      // attempt's deadline has passed; until then it answers AppendInProgress.
      await again(() => this.store.completeIdem(logKey, key, batchId, range.firstSeq, range.lastSeq)).catch(() => undefined);
    }
    return range;
  }

  /**
   * The ordering update, and moving the tail's full runs to index pages when this batch's
   * entry made the tail a multiple of TAIL_PAGE long (moveDue). An update whose outcome is unknown is
   * looked up in the index before it is sent again (its entry in the tail also makes a second
   * application refused).
   */
  private async order(logKey: string, logId: string, entry: IndexEntry, fromSeq: number, deadlineMs: number): Promise<SeqRange> {
    const n = entryCount(entry);
    for (let attempt = 1; ; attempt++) {
      this.checkDeadline(deadlineMs);
      let head: LogHead;
      try {
        head = await this.store.sequence(logKey, entry, n);
      } catch (e) {
        if (isThrottle(e) || attempt >= UNKNOWN_OUTCOME_ATTEMPTS) throw e;
        // Refused (the entry is already there: an earlier attempt applied; or the log is gone)
        // or unknown: the index says which.
        const found = await this.findBatch(logKey, logId, entry.batchId, fromSeq);
        if (found) return found;
        if (e instanceof ConflictError) throw logFormatOutdated(logId); // the log exists and the batch is not in it: only a head without a tail refuses
        continue;
      }
      this.remember(head);
      if (moveDue(head.tail.entries.length)) {
        // Housekeeping: the batch is committed whatever happens here; a later append retries.
        await this.moveTail(head).catch(() => undefined);
      }
      return { firstSeq: head.lastSeq - n + 1, lastSeq: head.lastSeq };
    }
  }

  /**
   * Moves every full run of TAIL_PAGE entries at the tail's start to index pages, then removes
   * them from the head with one trim conditional on the tail start. Under concurrency the head
   * this append's update returned may predate another mover's trim (the append that makes the
   * tail 32 long often sees it before the one at 16 trimmed): its trim is then refused and it
   * gives up, leaving what is left to the next multiple's mover, which moves every full run it
   * sees. Trying again in the request (read the head, move, trim) cost the 32-producer bench its
   * p99 (350 ms against 160 ms) and raced the other movers more.
   */
  private async moveTail(head: LogHead): Promise<void> {
    const runs = Math.min(MOVE_MAX_PAGES, Math.floor(head.tail.entries.length / TAIL_PAGE));
    const pages: IndexRun[] = [];
    let next = head.tail.first;
    for (let i = 0; i < runs; i++) {
      const page: IndexRun = { first: next, entries: head.tail.entries.slice(i * TAIL_PAGE, (i + 1) * TAIL_PAGE) };
      pages.push(page);
      next = runLast(page) + 1;
    }
    if (!pages.length) return;
    // The marks go on from the state the head holds for this tail start; a head whose pages
    // were moved without marks starts them at this tail start (firstSeq looks at the pages
    // before it the old way).
    const from = head.expiry?.from ?? head.tail.first;
    const { marks, latest } = expiryMarks(head.expiry?.latest ?? 0, pages);
    // Every mover of the runs at this tail start writes the same pages and marks: entries never
    // change, and the head holds one marks' state per tail start. Written before the trim, so a
    // page before a head's tail start always has its mark; a crash or a lost answer in between
    // leaves pages and marks past the tail start, which the next mover writes again, the same.
    await this.store.putIndexPages(head.logKey, pages, from, marks);
    for (const p of pages) this.cachePage(head.logKey, p);
    try {
      await this.store.trimTail(head.logKey, head.tail.first, runs * TAIL_PAGE, next, { from, latest });
    } catch (e) {
      if (!(e instanceof ConflictError)) throw e; // another mover trimmed first: the next one moves the rest
    }
  }

  /**
   * Starts an idempotent append. Returns the earlier attempt's range when there is one;
   * undefined when this call must write the records (holding the idempotency item).
   *
   * A dead attempt's item (PENDING past its deadline) is taken over with a write conditional on
   * its token that lists it, and the attempts it had taken over, in the new item (`prior`); then
   * their batches are looked for. The list is in the item, not only in this call's memory, so a
   * takeover whose answer is lost (applied, then a 500: the retry is refused by this very write
   * and reads it back) still looks, and so does the next retry when this one dies right after
   * taking over: either would otherwise append the records a second time.
   */
  private async beginIdempotent(
    logKey: string,
    logId: string,
    key: string,
    attempt: { token: string; untilMs: number; hash: string; fromSeq: number },
    deadlineMs: number,
  ): Promise<SeqRange | undefined> {
    /** The dead attempt's item this call takes the key over from. */
    let over: IdemItem | undefined;
    for (let i = 0; ; i++) {
      this.checkDeadline(deadlineMs);
      /** This attempt's own item, when it had to be read back (its write applied, the answer lost). */
      let mine: IdemItem | undefined;
      try {
        await this.store.beginIdem(logKey, key, attempt, this.clock.now(), over);
      } catch (e) {
        if (isThrottle(e) || (!(e instanceof ConflictError) && i >= UNKNOWN_OUTCOME_ATTEMPTS)) throw e;
        // Refused, or unknown: read what is there.
        const item = await this.store.getIdem(logKey, key);
        over = undefined;
        if (!item) continue; // an unknown outcome that did not apply
        if (item.token !== attempt.token) {
          if (item.hash !== undefined && item.hash !== attempt.hash) throw idempotencyKeyReused(key);
          if (item.status === 'COMPLETE') return { firstSeq: item.first!, lastSeq: item.last! };
          const now = this.clock.now();
          if (item.untilMs >= now) throw appendInProgress(Math.max(1, Math.ceil((item.untilMs - now) / 1000)));
          over = item; // its writer is past its deadline (it writes nothing more): take it over
          continue;
        }
        mine = item; // it did apply: ours
      }
      // The attempts this one took over: was one of their batches ordered? (At most one was:
      // each took over only after the one before it was past its deadline.)
      const earlier = mine ? (mine.prior ?? []) : over ? [...(over.prior ?? []), over.token] : [];
      if (!earlier.length) return undefined;
      const found = await this.findBatch(logKey, logId, earlier, (mine ?? over)!.fromSeq ?? 1);
      if (!found) return undefined;
      await again(() => this.store.completeIdem(logKey, key, attempt.token, found.firstSeq, found.lastSeq));
      return found;
    }
  }

  /** The range the index gave one of the batches `batchIds`, looking from `fromSeq` (a tail start before they were ordered). */
  private async findBatch(
    logKey: string,
    logId: string,
    batchIds: string | readonly string[],
    fromSeq: number,
  ): Promise<SeqRange | undefined> {
    const ids = typeof batchIds === 'string' ? [batchIds] : batchIds;
    const head = await this.store.getHead(logKey);
    if (!head) throw logNotFound(logId);
    this.remember(head);
    const inRun = (run: IndexRun): SeqRange | undefined => {
      for (const id of ids) {
        const r = rangeOf(run, id);
        if (r) return r;
      }
      return undefined;
    };
    const inTail = inRun(head.tail);
    if (inTail || fromSeq >= head.tail.first) return inTail;
    for (const p of await this.readPages(logKey, fromSeq, head.tail.first - 1)) {
      const r = inRun(p);
      if (r) return r;
    }
    return undefined;
  }

  /**
   * Where the committed records `from .. to` (at most `head.lastSeq`) are stored, from the
   * head's tail and the index pages (cached: they never change). Records retention removed
   * are in no chunk returned.
   */
  async locate(head: LogHead, from: number, to: number): Promise<ChunkRef[]> {
    const out: ChunkRef[] = [];
    to = Math.min(to, head.lastSeq);
    let seq = from;
    while (seq <= to && seq < head.tail.first) {
      const upTo = Math.min(to, head.tail.first - 1);
      let page = this.cachedPage(head.logKey, seq);
      if (!page) {
        const found = await this.readPages(head.logKey, seq, upTo);
        page = found.find((p) => p.first <= seq && runLast(p) >= seq);
        if (!page) {
          // Retention removed the page holding `seq`: continue at the next one still there.
          const next = found.find((p) => p.first > seq);
          if (!next) break;
          seq = next.first;
          continue;
        }
      }
      out.push(...chunksIn(page, seq, upTo));
      seq = runLast(page) + 1;
    }
    if (seq <= to) out.push(...chunksIn(head.tail, Math.max(seq, head.tail.first), to));
    const nowSec = Math.floor(this.clock.now() / 1000);
    return out.filter((c) => c.expiresSec > nowSec);
  }

  /** Reads chunks (strongly consistent). */
  readChunks(logKey: string, refs: readonly ChunkRef[]): Promise<Segment[]> {
    return refs.length ? this.store.getChunks(logKey, refs) : Promise.resolve([]);
  }

  /** The page holding `from` and the pages after it up to `to`, in at most two queries; all cached. */
  private async readPages(logKey: string, from: number, to: number): Promise<IndexRun[]> {
    const first = await this.store.indexPageAtOrBefore(logKey, from);
    const rest = first && runLast(first) >= to ? [] : await this.store.indexPagesBetween(logKey, from + 1, to);
    const all = [...(first ? [first] : []), ...rest];
    for (const p of all) this.cachePage(logKey, p);
    return all;
  }

  private cachedPage(logKey: string, seq: number): IndexRun | undefined {
    const list = this.pages.get(logKey);
    if (!list?.length) return undefined;
    let lo = 0;
    let hi = list.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (list[mid]!.first <= seq) lo = mid;
      else hi = mid - 1;
    }
    const p = list[lo]!;
    return p.first <= seq && runLast(p) >= seq ? p : undefined;
  }

  private cachePage(logKey: string, page: IndexRun): void {
    if (this.pagesCached >= PAGES_CACHED) {
      this.pages.clear();
      this.pagesCached = 0;
    }
    const list = this.pages.get(logKey) ?? [];
    if (list.some((p) => p.first === page.first)) return;
    list.push(page);
    list.sort((a, b) => a.first - b.first);
    this.pages.set(logKey, list);
    this.pagesCached++;
  }

  private remember(head: LogHead): void {
    if (this.known.size > 10_000) this.known.clear();
    const was = this.known.get(head.logKey);
    // Tail starts only grow; a stale read must not move this host's bound back.
    this.known.set(head.logKey, { retentionHours: head.retentionHours, tailFirst: Math.max(was?.tailFirst ?? 0, head.tail.first) });
  }

  private checkDeadline(deadlineMs: number): void {
    if (this.clock.now() >= deadlineMs) throw busy('The append ran out of time.', 1);
  }
}

/** A hash of an append's records as stored: the same records give the same hash, whatever the JSON's spacing. */
function recordsHash(encoded: readonly EncodedRecord[]): string {
  const h = createHash('sha256');
  for (const r of encoded) h.update(r.line).update('\n');
  return h.digest('base64url').slice(0, 22);
}

/**
 * Runs an idempotent write, sending it again after an error that may have come after it was
 * applied (anything but a throttle or a refused condition), up to UNKNOWN_OUTCOME_ATTEMPTS times.
 */
async function again<T>(write: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await write();
    } catch (e) {
      if (isThrottle(e) || e instanceof ConflictError || e instanceof ServiceError || attempt >= UNKNOWN_OUTCOME_ATTEMPTS) throw e;
    }
  }
}
